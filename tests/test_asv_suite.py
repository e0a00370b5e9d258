"""The asv suite's contract: import hygiene, machine-independent parameters, n/a for absent devices.

Speed and memory are never asserted here; these tests check that the suite measures what it says
(synchronized calls, allocator peaks, skips) and that the figure script reads asv's results.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import json
import math
import pkgutil
import subprocess
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import pytest

import favor_bench
from favor_bench import common

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")
TOPIC_MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(favor_bench.__path__) if name != "common")

DUMP_PARAMETERS = """
import importlib, json, sys
blocked = sys.argv[1:]
for name in blocked:
    sys.modules[name] = None  # importing it now raises ImportError, as on a machine without it
from favor_bench import common
out = {}
for module_name in %r:
    module = importlib.import_module("favor_bench." + module_name)
    for name, cls in vars(module).items():
        if isinstance(cls, type) and cls.__module__ == module.__name__ and hasattr(cls, "params"):
            out[module_name + "." + name] = [[repr(v) for v in values] for values in cls.params]
print(json.dumps({"params": out, "imported": common.imported_array_libraries()}))
"""


def _dump_parameters(*blocked):
    code = DUMP_PARAMETERS % (TOPIC_MODULES,)
    result = subprocess.run(
        [sys.executable, "-c", code, *blocked], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(result.stdout)


def benchmark_classes():
    """(qualified name, class) of every class in the suite that asv would parameterize."""
    found = []
    for module_name in TOPIC_MODULES:
        module = importlib.import_module(f"favor_bench.{module_name}")
        for name, cls in vars(module).items():
            if isinstance(cls, type) and cls.__module__ == module.__name__ and _benchmark_methods(cls):
                found.append((f"{module_name}.{name}", cls))
    return found


def _benchmark_methods(cls):
    return [name for name in dir(cls) if name.startswith(BENCHMARK_PREFIXES)]


def test_importing_the_suite_imports_no_array_library_and_touches_no_device():
    dumped = _dump_parameters()
    assert dumped["imported"] == []


def test_parameter_lists_are_the_same_without_torch_and_jax():
    """What a machine lacks may only turn results into n/a, never change the parameter grid."""
    assert _dump_parameters()["params"] == _dump_parameters("torch", "jax")["params"]


@pytest.mark.parametrize(("name", "cls"), benchmark_classes())
def test_backend_parameter_is_the_shared_tuple(name, cls):
    if "backend" in cls.param_names:
        assert cls.param_names[0] == "backend"
        assert tuple(cls.params[0]) == common.BACKENDS
        assert issubclass(cls, common.BackendBenchmark)


@pytest.mark.parametrize(("name", "cls"), benchmark_classes())
def test_every_backend_is_na_when_the_probe_finds_it_absent(name, cls):
    if "backend" not in cls.param_names:
        pytest.skip("numpy-only benchmark")
    absent = {backend: f"{backend} absent" for backend in common.BACKENDS}
    rest = [values[0] for values in cls.params[1:]]
    for backend in common.BACKENDS:
        with pytest.raises(NotImplementedError):
            cls().setup(absent, backend, *rest)


def test_probe_marks_this_machines_missing_devices(probe):
    assert set(probe) == set(common.BACKENDS)
    assert probe["numpy"] is None
    for backend, reason in probe.items():
        if reason is None:
            continue
        assert isinstance(reason, str) and backend in reason
        with pytest.raises(NotImplementedError):
            common.target(backend)


def test_unknown_backend_or_dtype_is_an_error_not_a_skip():
    with pytest.raises(ValueError, match="backend"):
        common.target("cuda")
    with pytest.raises(ValueError, match="dtype"):
        common.target("numpy", "int8")


def test_length_caps_follow_the_device_named_by_the_parameter():
    common.require_length("numpy", common.CPU_MAX_LENGTH)
    common.require_length("torch:cuda", common.ACCELERATOR_MAX_LENGTH)
    with pytest.raises(NotImplementedError, match="cpu"):
        common.require_length("jax:cpu", 2 * common.CPU_MAX_LENGTH)
    with pytest.raises(NotImplementedError, match="cuda"):
        common.require_length("jax:gpu", 2 * common.ACCELERATOR_MAX_LENGTH)


def test_sizes_beyond_the_memory_budget_are_skipped():
    numpy_cpu = common.target("numpy")
    budget = common.memory_budget_bytes(numpy_cpu)
    common.require_fits(numpy_cpu, budget, "at the budget")
    with pytest.raises(NotImplementedError, match="GiB"):
        common.require_fits(numpy_cpu, budget + 1, "over the budget")


def test_numpy_peak_bytes_counts_the_buffers_a_call_allocates():
    n = 1_000_000
    peak = common.peak_bytes(common.target("numpy"), lambda: [np.ones(n) for _ in range(3)])
    assert 3 * 8 * n <= peak < 3 * 8 * n + 65_536


def test_torch_cpu_peak_bytes_sees_the_largest_live_set_not_the_total():
    """Three 8 MB buffers alive together peak at 24 MB; allocating and freeing one at a time, at 8 MB."""
    torch = pytest.importorskip("torch")
    n = 1_000_000
    together = common.peak_bytes(
        common.target("torch:cpu"), lambda: [torch.ones(n, dtype=torch.float64) for _ in range(3)]
    )
    one_at_a_time = common.peak_bytes(
        common.target("torch:cpu"),
        lambda: [float(torch.ones(n, dtype=torch.float64).sum()) for _ in range(3)],
    )
    assert 3 * 8 * n <= together < 3 * 8 * n + 65_536
    assert 8 * n <= one_at_a_time < 2 * 8 * n


def test_jax_cpu_peak_bytes_reads_the_compiled_buffer_plan():
    """A jitted x -> (x·2, x·3) on 10^6 float32 plans at least its 8 MB of outputs; a plain closure has no
    plan to read and is n/a."""
    jax = pytest.importorskip("jax")
    where = common.target("jax:cpu")
    x = jax.numpy.ones(1_000_000, dtype=jax.numpy.float32)
    jitted = jax.jit(lambda a: (a * 2, a * 3))
    assert 8_000_000 <= common.peak_bytes(where, functools.partial(jitted, x)) < 16_000_000
    with pytest.raises(NotImplementedError, match="partial"):
        common.peak_bytes(where, lambda: jitted(x))


def test_peak_bytes_is_na_for_cpu_allocators_without_statistics():
    for backend in common.BACKENDS:
        if backend in common.PEAK_BYTES_BACKENDS:
            common.require_peak_bytes(backend)
        else:
            with pytest.raises(NotImplementedError):
                common.require_peak_bytes(backend)


def test_cached_setup_runs_once_per_process():
    calls = []

    @common.cached
    def build(size):
        calls.append(size)
        return size

    assert [build(3), build(3), build(4)] == [3, 3, 4]
    assert calls == [3, 4]


def test_gradient_function_differentiates_sum_of_squares(backend):
    where = common.target({"numpy": "numpy", "torch": "torch:cpu", "jax": "jax:cpu"}[backend], "float64")
    x = where.asarray(np.array([1.0, -2.0, 0.5]))

    def square(x):
        return x * x

    if backend == "numpy":
        with pytest.raises(NotImplementedError, match="differentiation"):
            common.gradient_function(where, square, 1)
        return
    (gradient,) = common.gradient_function(where, square, 1)(common.requires_grad(x))
    np.testing.assert_allclose(np.asarray(gradient), [2.0, -4.0, 1.0], rtol=0, atol=1e-15)


def test_untraceable_jax_function_is_na_not_a_failure():
    pytest.importorskip("jax")
    where = common.target("jax:cpu")
    x = where.asarray(np.ones(3))
    branching = common.compile_function(where, lambda x: x if x.sum() > 0 else -x)
    with pytest.raises(NotImplementedError, match=r"jax\.jit"):
        common.warmed_up(lambda: branching(x))


@pytest.fixture(scope="module")
def probe():
    return common.probe_backends()


@pytest.mark.parametrize(("name", "cls"), benchmark_classes())
def test_smallest_numpy_case_of_every_benchmark_runs_or_is_na(name, cls, probe):
    """One call per benchmark method at the first (smallest) parameter values, numpy backend."""
    values = [v[0] for v in cls.params]
    instance = cls()
    arguments = (probe, *values) if issubclass(cls, common.BackendBenchmark) else tuple(values)
    try:
        instance.setup(*arguments)
    except NotImplementedError:
        pytest.skip(f"{name}{tuple(values)} is n/a here")
    for method in _benchmark_methods(cls):
        result = getattr(instance, method)(*arguments)
        if method.startswith("track_"):
            assert math.isfinite(result) and result >= 0
        elif method.startswith("timeraw_"):
            compile(result, method, "exec")


def _load_figure_script():
    spec = importlib.util.spec_from_file_location(
        "speed_memory_figure", ROOT / "scripts" / "speed_memory_figure.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _synthetic_results(path: Path, lengths, exact_scale, favor_scale):
    """An asv results file: exact time c·L², FAVOR times linear, causal = 1.5x bidirectional."""
    methods, passes = ("exact", "favor", "favor-causal"), ("forward", "forward+backward")
    times, peaks = [], []
    for method, attention_pass, length in itertools.product(methods, passes, lengths):
        factor = 3.0 if attention_pass == "forward+backward" else 1.0
        if method == "exact":
            times.append(factor * exact_scale * length**2)
        else:
            times.append(factor * favor_scale * length * (1.5 if method == "favor-causal" else 1.0))
        peaks.append(2.0 * length * (256 + 64) * 4 if method == "favor-causal" else None)
    params = [["'numpy'"], [repr(m) for m in methods], [repr(p) for p in passes], [str(n) for n in lengths]]
    columns = ["result", "params", "version", "started_at", "duration"]
    data = {
        "commit_hash": "0123456789abcdef",
        "env_name": "existing-py",
        "date": 1,
        "params": {"machine": "synthetic"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": columns,
        "results": {
            "attention.AttentionTime.time_attention": [times, params, "v", 0, 1.0],
            "attention.AttentionPeakMemory.track_peak_bytes": [peaks, params, "v", 0, 1.0],
        },
        "durations": {},
        "version": 2,
    }
    path.mkdir(parents=True)
    (path / "machine.json").write_text("{}")
    (path / "0123-existing.json").write_text(json.dumps(data))


def test_figure_script_recovers_slopes_crossover_and_claims(tmp_path):
    pytest.importorskip("matplotlib")
    script = _load_figure_script()
    lengths = [2**p for p in range(8, 17)]
    exact_scale, favor_scale = 1e-9, 2e-6  # times cross where 1e-9 L² = 2e-6 L, at L = 2000
    _synthetic_results(tmp_path / "results" / "synthetic", lengths, exact_scale, favor_scale)
    out = tmp_path / "figure"
    script.main(["--results-dir", str(tmp_path / "results"), "--out", str(out)])
    for name in ("speed_memory.csv", "claims.csv", "speed_memory.png", "speed_memory.svg", "meta.json"):
        assert (out / name).stat().st_size > 0
    data = json.loads((tmp_path / "results" / "synthetic" / "0123-existing.json").read_text())
    records = script.merge(
        *(script.benchmark_rows(data, key) for key in (script.TIME_KEY, script.MEMORY_KEY))
    )
    exact_l, exact_t = script.series(records, "numpy", "exact", "forward", "time_s")
    favor_l, favor_t = script.series(records, "numpy", "favor", "forward", "time_s")
    assert script.loglog_slope(exact_l, exact_t) == pytest.approx(2.0, abs=1e-12)
    assert script.loglog_slope(favor_l, favor_t) == pytest.approx(1.0, abs=1e-12)
    # On the power laws the log-ratio is linear in log L, so interpolation is exact.
    assert script.crossover_length(records, "numpy") == pytest.approx(favor_scale / exact_scale, rel=1e-9)
    claims = {(c["pass"], c["quantity"], c["L"]): c["value"] for c in script.claims(records)}
    assert claims[("forward", "causal/bidirectional time", 4096)] == pytest.approx(1.5)
    assert claims[("forward", "favor time(16384)/time(4096)", 16384)] == pytest.approx(4.0)
    assert claims[("forward", "exact time(16384)/time(4096)", 16384)] == pytest.approx(16.0)
    assert claims[("forward", "causal peak bytes / (L(m+d) float32)", 65536)] == pytest.approx(2.0)


def test_timer_is_wall_clock_unless_process_time_is_asked_for(monkeypatch):
    monkeypatch.delenv("FAVOR_BENCH_TIMER", raising=False)
    assert common.benchmark_timer() is timeit.default_timer
    monkeypatch.setenv("FAVOR_BENCH_TIMER", "process")
    assert common.benchmark_timer() is time.process_time
    monkeypatch.setenv("FAVOR_BENCH_TIMER", "cpu")
    with pytest.raises(ValueError, match="FAVOR_BENCH_TIMER"):
        common.benchmark_timer()
