"""docs/theory.md is the theory reference that the code's "theory.md §N" and "claim N" citations name.

The checker scans every .py file under estimators/, studies/, favor_bench/, scripts/ and tests/ for

* ``theory.md §X`` (X like 5, 5.2 or 10.3), with lists and ranges after it (``theory.md §2, §7.1, §8``,
  ``theory.md §1–§7, §11``), also when the citation wraps onto the next line;
* ``theory.md Appendix A``;
* ``claim N`` / ``claims N, M, P–Q`` / ``Claim N/M`` anywhere,

and reports every citation whose section, appendix or claim has no heading or entry in docs/theory.md,
naming the file and line. Sections are the document's headings ``## N.`` / ``### N.M``; claims are
the entries ``N.`` of the numbered list in §11; appendices are headings ``## Appendix X``. Every
numbered section and appendix must carry a source line (``**Sources:**`` or ``**Source:**``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "theory.md"
SCANNED = ("estimators", "studies", "favor_bench", "scripts", "tests")

_GAP = r"[\s#]*"  # whitespace, newlines and comment markers between the words of a wrapped citation
_SECTION = r"§\s?\d+(?:\.\d+)?"
_SECTION_LIST = (
    rf"{_SECTION}(?:{_GAP}(?:,|;|/|and|or){_GAP}{_SECTION}|{_GAP}(?:–|—|-){_GAP}§?\s?\d+(?:\.\d+)?)*"
)
_SECTION_CITATION = re.compile(rf"theory\.md{_GAP}(?P<list>{_SECTION_LIST})")
_APPENDIX_CITATION = re.compile(rf"theory\.md{_GAP}Appendix\s+(?P<letter>[A-Z])\b")
_CLAIM_CITATION = re.compile(rf"\b[Cc]laims?{_GAP}(?P<list>\d+(?:{_GAP}(?:,|/|–|—|-|and|or){_GAP}\d+)*)")
_HEADING = re.compile(r"^#{2,4}\s+(?:§\s?)?(?P<number>\d+(?:\.\d+)?)[.\s]", re.MULTILINE)
_APPENDIX_HEADING = re.compile(r"^#{2,4}\s+Appendix\s+(?P<letter>[A-Z])\b", re.MULTILINE)
_ANY_HEADING = re.compile(r"^(#{2,4})\s+(?P<title>.+)$", re.MULTILINE)
_CLAIM_ENTRY = re.compile(r"^(?P<number>\d+)\.\s", re.MULTILINE)
_SOURCE_LINE = re.compile(r"^\*\*Sources?:\*\*", re.MULTILINE)


class Reference:
    """The numbered sections, appendices and claims that a theory document defines."""

    def __init__(self, text: str):
        self.sections = {match["number"] for match in _HEADING.finditer(text)}
        self.appendices = {match["letter"] for match in _APPENDIX_HEADING.finditer(text)}
        self.claims = {int(match["number"]) for match in _CLAIM_ENTRY.finditer(_section_body(text, "11"))}


def _section_body(text: str, number: str) -> str:
    """The text of section ``number`` (with its subsections), up to the next heading of its level."""
    start = re.search(rf"^(#{{2,4}})\s+(?:§\s?)?{re.escape(number)}[.\s]", text, re.MULTILINE)
    if start is None:
        return ""
    level = len(start.group(1))
    following = re.compile(rf"^#{{2,{level}}}\s", re.MULTILINE)
    end = following.search(text, start.end())
    return text[start.end() : end.start() if end else len(text)]


def _numbers(listed: str) -> list[str]:
    """Expand a cited list such as ``§2, §7.1–§7.3 and §8`` or ``15-18, 21`` into its items."""
    items = re.findall(r"(\d+(?:\.\d+)?)|(–|—|-)", listed)
    out: list[str] = []
    pending_range = False
    for number, dash in items:
        if dash:
            pending_range = bool(out)
            continue
        if pending_range:
            out.extend(_range(out[-1], number))
            pending_range = False
        else:
            out.append(number)
    return out


def _range(first: str, last: str) -> list[str]:
    """The items strictly after ``first`` up to ``last``: 1–7 or 10.1–10.3 (same parent)."""
    head, _, low = first.rpartition(".")
    last_head, _, high = last.rpartition(".")
    if head != last_head or int(high) < int(low):
        return [last]
    prefix = f"{head}." if head else ""
    return [f"{prefix}{k}" for k in range(int(low) + 1, int(high) + 1)]


def citations(text: str) -> list[tuple[int, str, str]]:
    """Every citation in ``text`` as (line number, kind, item) in reading order; kind is ``section``,
    ``appendix`` or ``claim``."""
    found = []
    for match in _SECTION_CITATION.finditer(text):
        found += [(match.start(), "section", item) for item in _numbers(match["list"])]
    for match in _APPENDIX_CITATION.finditer(text):
        found.append((match.start(), "appendix", match["letter"]))
    for match in _CLAIM_CITATION.finditer(text):
        found += [(match.start(), "claim", item) for item in _numbers(match["list"])]
    found.sort(key=lambda entry: entry[0])  # stable: items of one list keep their order
    return [(text.count("\n", 0, position) + 1, kind, item) for position, kind, item in found]


def unresolved(paths, reference: Reference, root: Path = ROOT) -> list[str]:
    """``path:line: …`` for every citation in ``paths`` that ``reference`` does not define."""
    problems = []
    for path in paths:
        name = path.relative_to(root) if path.is_relative_to(root) else path
        for line, kind, item in citations(path.read_text(encoding="utf-8")):
            if kind == "section" and item not in reference.sections:
                problems.append(f"{name}:{line}: theory.md §{item} has no heading in docs/theory.md")
            elif kind == "appendix" and item not in reference.appendices:
                problems.append(f"{name}:{line}: theory.md Appendix {item} has no heading in docs/theory.md")
            elif kind == "claim" and int(item) not in reference.claims:
                problems.append(f"{name}:{line}: claim {item} has no entry in §11 of docs/theory.md")
    return problems


def sections_without_source(text: str) -> list[str]:
    """Titles of the numbered sections and appendices whose own text (before any subsection) has no
    source line."""
    headings = list(_ANY_HEADING.finditer(text))
    missing = []
    for index, heading in enumerate(headings):
        title = heading["title"].strip()
        if not re.match(r"(?:§\s?)?\d|Appendix\s", title):
            continue
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        if not _SOURCE_LINE.search(text, heading.end(), end):
            missing.append(title)
    return missing


def scanned_files(root: Path = ROOT) -> list[Path]:
    """The .py files whose citations must resolve (this module is left out: its fixtures cite
    sections and claims that do not exist, on purpose)."""
    this = Path(__file__).resolve()
    paths = (path for folder in SCANNED for path in (root / folder).rglob("*.py"))
    return sorted(path for path in paths if path.resolve() != this)


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference(DOC.read_text(encoding="utf-8"))


# --- the repository --------------------------------------------------------------------------------


def test_every_citation_in_the_code_resolves(reference):
    problems = unresolved(scanned_files(), reference)
    assert not problems, "citations without a target in docs/theory.md:\n" + "\n".join(problems)


def test_the_scan_sees_the_citations():
    """Guard against a checker that silently finds nothing (a broken pattern or a moved tree)."""
    kinds = [kind for path in scanned_files() for _, kind, _ in citations(path.read_text(encoding="utf-8"))]
    assert kinds.count("section") >= 50 and kinds.count("claim") >= 30


def test_every_numbered_section_has_a_source_line():
    missing = sections_without_source(DOC.read_text(encoding="utf-8"))
    assert not missing, f"sections of docs/theory.md without a source line: {missing}"


def test_the_document_keeps_the_section_and_claim_numbering(reference):
    expected = (
        {str(n) for n in range(1, 13)} | {"5.1", "5.2", "5.3", "7.1"} | {f"10.{k}" for k in range(1, 7)}
    )
    assert expected <= reference.sections, sorted(expected - reference.sections)
    assert reference.claims == set(range(1, 31))
    assert "A" in reference.appendices


def test_the_opening_says_what_the_citations_refer_to():
    opening = DOC.read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert '"theory.md §N"' in opening and "claim N" in opening


# --- the checker can fail ----------------------------------------------------------------------------

_FAKE_DOC = """# Reference

## 1. Notation
**Sources:** a paper.

## 5. Orthogonal features
**Sources:** a paper.

### 5.2 Exact MSE
**Sources:** a paper.

## 11. Claims
**Sources:** the sections above.

1. First.
2. Second.
3. Third.

## Appendix A. Numbers
**Sources:** a simulation.
"""


def test_checker_reports_unknown_sections_and_claims_with_file_and_line(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        '"""Fine: theory.md §5.2 and claims 1–3.\n'
        "\n"
        "Broken: theory.md §5.9, then theory.md §13 and claim 31.\n"
        '"""\n'
        "# a wrapped one: see theory.md\n"
        "#   §7.1 for details (claim 2/4), Appendix B of theory.md is not cited like this\n"
        "X = 1  # theory.md Appendix C\n",
        encoding="utf-8",
    )
    problems = unresolved([module], Reference(_FAKE_DOC), root=tmp_path)
    assert problems == [
        "module.py:3: theory.md §5.9 has no heading in docs/theory.md",
        "module.py:3: theory.md §13 has no heading in docs/theory.md",
        "module.py:3: claim 31 has no entry in §11 of docs/theory.md",
        "module.py:5: theory.md §7.1 has no heading in docs/theory.md",
        "module.py:6: claim 4 has no entry in §11 of docs/theory.md",
        "module.py:7: theory.md Appendix C has no heading in docs/theory.md",
    ]


def test_checker_expands_lists_and_ranges():
    text = "theory.md §1–§3, §5.1–§5.3; claims 15-18, 21 and Claim 19/20 (theory.md §10, claims 19–25)."
    items = [(kind, item) for _, kind, item in citations(text)]
    sections = [item for kind, item in items if kind == "section"]
    claims = [int(item) for kind, item in items if kind == "claim"]
    assert sections == ["1", "2", "3", "5.1", "5.2", "5.3", "10"]
    assert sorted(claims) == sorted([15, 16, 17, 18, 21, 19, 20, *range(19, 26)])


def test_source_checker_reports_a_section_without_sources():
    broken = _FAKE_DOC.replace(
        "### 5.2 Exact MSE\n**Sources:** a paper.\n", "### 5.2 Exact MSE\nNo source.\n"
    )
    assert sections_without_source(broken) == ["5.2 Exact MSE"]
    assert sections_without_source(_FAKE_DOC) == []
