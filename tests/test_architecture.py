"""The shape of the code base: no import cycles; the frameworks told apart only in estimators.backends;
no file above 400 lines.

Each is computed from the source, never from a list kept by hand (exceptions are listed with their
reason), and each has a planted violation that the analysis must find.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("estimators", "studies", "favor_bench")


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {
        _module_name(path, root): path
        for package in PACKAGES
        for path in (root / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def _imported(module: str, path: Path, node, modules) -> set[str]:
    """Project modules that ``node`` imports: ``from pkg import name`` depends on ``pkg.name`` when
    that is a module, else on ``pkg``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = set()
    for alias in node.names:
        target = f"{base}.{alias.name}"
        found.add(target if target in modules else base)
    return found & set(modules)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module → the project modules it imports (anywhere in its body, lazy imports included)."""
    modules = _modules(root)
    graph = {}
    for module, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(module, path, node, modules)
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for child in edges:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_a_planted_cycle_is_found(tmp_path):
    """Two modules that import each other (one lazily, inside a function) form a cycle."""
    package = tmp_path / "estimators"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "catalog.py").write_text("from . import algebra\n")
    (package / "algebra.py").write_text("def names():\n    from .catalog import ROWS\n    return ROWS\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    assert cycles(import_graph(tmp_path)) == [["estimators.algebra", "estimators.catalog"]]


FRAMEWORK_COMPARISON = re.compile(
    r"""(==|!=)\s*["'](numpy|torch|jax)["']|["'](numpy|torch|jax)["']\s*(==|!=)"""
)
FRAMEWORK_EXCEPTIONS = {
    "favor_bench/common.py": "the benchmark harness measures peak memory and gradients through each "
    "framework's own allocator, profiler and autodiff; what it times never branches",
    "favor_bench/projections.py": "a native-generator benchmark: which generator object to hand the "
    "sampler is the parameter being benchmarked",
    "favor_bench/throughput.py": "the same native-generator choice as favor_bench/projections.py",
    "studies/audit/adapters/favor_bench.py": "the control's mask is converted by the adapter protocol's "
    "host arrays; to be moved behind Target.asarray",
}
"""file → reason, for a framework-name comparison allowed outside ``estimators/backends/``."""


def framework_comparisons(root: Path = ROOT) -> dict[str, list[int]]:
    """file → line numbers comparing a value with a framework's name, outside ``estimators/backends/``."""
    found = {}
    for package in (*PACKAGES, "scripts"):
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith("estimators/backends/") or "__pycache__" in path.parts:
                continue
            lines = [
                number
                for number, line in enumerate(path.read_text().splitlines(), start=1)
                if FRAMEWORK_COMPARISON.search(line)
            ]
            if lines:
                found[relative] = lines
    return found


def test_frameworks_are_told_apart_only_in_backends():
    found = {
        path: lines for path, lines in framework_comparisons().items() if path not in FRAMEWORK_EXCEPTIONS
    }
    assert found == {}, f"framework-name comparisons outside estimators/backends/: {found}"


def test_a_planted_framework_branch_is_found(tmp_path):
    for package in (*PACKAGES, "scripts"):
        (tmp_path / package).mkdir()
    (tmp_path / "estimators" / "causal.py").write_text('if backend_of(v) == "jax":\n    pass\n')
    assert framework_comparisons(tmp_path) == {"estimators/causal.py": [1]}


MAX_LINES = 400
LONG_FILES = {"estimators/triton_favor/kernels.py": "the Triton kernels: one @triton.jit function per pass"}


def long_files(root: Path) -> list[str]:
    """Python files under ``root`` (the shipped packages, scripts and tests) above MAX_LINES lines."""
    folders = ("estimators", "studies", "favor_bench", "scripts", "tests")
    return sorted(
        f"{path.relative_to(root).as_posix()} ({count} lines)"
        for folder in folders
        for path in (root / folder).rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and path.relative_to(root).as_posix() not in LONG_FILES
    )


def test_every_file_has_one_job_of_at_most_400_lines():
    """One job per file: no module above 400 lines except those listed, with the reason, in LONG_FILES."""
    assert long_files(ROOT) == []


def test_a_planted_long_file_is_found(tmp_path):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_files(tmp_path) == [f"studies/long.py ({MAX_LINES + 1} lines)"]
