"""The documentation is reference, and provably current.

* docs/performance.md is exactly what ``benchmarks/report.py`` renders from the committed
  ``benchmarks/results/*.json`` (so every figure there came from a result file), and the
  README's performance lines are rendered the same way.
* README.md is a product page: at most 8,000 bytes.
* README, docs and the source's comments and docstrings hold no work-diary traces: no issue or
  ``#N`` references, no run dates, no "session" / "this round" / "eleventh"-style narrative.
  Dates that are *data* are allowed: the Fraud Detection Handbook file's calendar, the
  simulator's, and the schema's accepted epoch bounds.
* docs/configuration.md lists exactly the fields of ``Settings``, with their defaults.
* Paths, modules and ``riskstream`` commands the docs mention exist.
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import importlib.util
import io
import json
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
MARKDOWN = [README, *DOCS]
SOURCES = sorted((ROOT / "src" / "riskstream").rglob("*.py"))


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks/report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- performance figures come from the result files -----------------------------------------


def test_performance_doc_is_rendered_from_the_committed_results() -> None:
    report = _report()
    doc = (ROOT / "docs" / "performance.md").read_text()
    results = report.load_results(ROOT / "benchmarks" / "results")
    assert results, "no benchmarks/results/*.json"
    markers = re.findall(r"<!-- BEGIN report:([\w-]+) -->", doc)
    assert set(markers) >= {"core", "score", "kafka", "stores", "http"}
    assert report.render(doc, results) == doc, (
        "docs/performance.md differs from its results: .venv/bin/python benchmarks/report.py "
        "render")


def test_readme_performance_lines_are_rendered_from_the_committed_results() -> None:
    report = _report()
    text = README.read_text()
    assert "<!-- BEGIN report:headline -->" in text
    assert report.render(text, report.load_results(ROOT / "benchmarks" / "results")) == text


def test_every_result_file_records_machine_load_and_commands() -> None:
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        runs = json.loads(path.read_text())["runs"]
        assert runs, path.name
        for data in runs:
            assert data["machine"]["cpu_model"] and data["machine"]["cores"] >= 1, path.name
            assert len(data["load_average_before"]) == 3, path.name
            assert len(data["load_average_after"]) == 3, path.name
            assert data["commands"] and data["code"]["commit"], path.name


def test_readme_is_a_product_page() -> None:
    size = len(README.read_bytes())
    assert size <= 8000, f"README.md is {size} bytes (at most 8,000)"


# -- no work-diary traces --------------------------------------------------------------------

#: "issue 4", "issues 3 and 5", "#11" (not "&#8594;", not "/#anchor", not "C#1").
ISSUE = re.compile(r"\bissues?\s+#?\d+\b|(?<![\w&/#])#\d+\b", re.I)
#: Words that only a work diary uses. In docs "session" is refused anywhere in prose (code
#: spans may name settings such as ``session.timeout.ms``); in source, where a session is a
#: technical term (Kafka group sessions, database sessions), only diary phrases are.
_ORDINALS = ("first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
             "twelfth|thirteenth|fourteenth|fifteenth")
DIARY_DOCS = re.compile(
    rf"\bsessions?\b|\bthis round\b|\b(?:earlier|previous|last|next|working|{_ORDINALS})\s+"
    rf"rounds?\b|\b(?:eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth)\b",
    re.I)
DIARY_SOURCE = re.compile(
    rf"\b(?:this|that|earlier|previous|last|next|{_ORDINALS})\s+(?:sessions?|rounds?)\b|"
    r"\bthis round\b|\b(?:eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|"
    r"fifteenth)\b",
    re.I)
ISO_DATE = re.compile(r"(?<![\w-])((?:19|20|21)\d\d)-(\d\d)-(\d\d)(?![\w])")
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December")
WORDED_DATE = re.compile(rf"\b\d{{1,2}} (?:{_MONTHS}) (?:19|20)\d\d\b|\b(?:{_MONTHS}) "
                         rf"\d{{1,2}}, (?:19|20)\d\d\b")


def _allowed_dates() -> list[tuple[dt.date, dt.date]]:
    """Calendars the project's *data* lives in; any other date in prose is a run date."""
    from riskstream.schema import MAX_EPOCH, MIN_EPOCH
    from riskstream.simulate import SimConfig

    sim_year = int(SimConfig().start[:4])
    bounds = [dt.datetime.fromtimestamp(t, dt.UTC).date() for t in (MIN_EPOCH, MAX_EPOCH)]
    return [
        # The Fraud Detection Handbook file (its README): 2018-04-01 .. 2018-09-30.
        (dt.date(2018, 4, 1), dt.date(2018, 9, 30)),
        # The simulator's calendar (SimConfig.start) and the examples written in it.
        (dt.date(sim_year, 1, 1), dt.date(sim_year, 12, 31)),
        # The schema's accepted epoch range, quoted in its error message.
        *[(b, b) for b in bounds],
    ]


def _run_dates(text: str, allowed: list[tuple[dt.date, dt.date]]) -> list[str]:
    found = [m.group(0) for m in WORDED_DATE.finditer(text)]
    for m in ISO_DATE.finditer(text):
        try:
            day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue  # not a date (e.g. a version or an id)
        if not any(lo <= day <= hi for lo, hi in allowed):
            found.append(m.group(0))
    return found


def _prose(markdown: str) -> str:
    """Markdown without fenced code blocks and inline code spans."""
    without_blocks = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", without_blocks)


def _comments_and_docstrings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python file."""
    source = path.read_text()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc and node.body:
                yield node.body[0].lineno, doc


def _markdown_hits() -> list[str]:
    allowed = _allowed_dates()
    hits = []
    for path in MARKDOWN:
        text = path.read_text()
        name = path.relative_to(ROOT)
        for lineno, line in enumerate(text.splitlines(), 1):
            hits += [f"{name}:{lineno}: {m.group(0)!r}" for m in ISSUE.finditer(line)]
            hits += [f"{name}:{lineno}: date {d}" for d in _run_dates(line, allowed)]
        for line in _prose(text).splitlines():
            hits += [f"{name}: {m.group(0)!r} in {line.strip()[:80]!r}"
                     for m in DIARY_DOCS.finditer(line)]
    return hits


def _source_hits() -> list[str]:
    allowed = _allowed_dates()
    hits = []
    for path in SOURCES:
        name = path.relative_to(ROOT)
        for lineno, text in _comments_and_docstrings(path):
            hits += [f"{name}:{lineno}: {m.group(0)!r}" for m in ISSUE.finditer(text)]
            hits += [f"{name}:{lineno}: {m.group(0)!r}" for m in DIARY_SOURCE.finditer(text)]
            hits += [f"{name}:{lineno}: date {d}" for d in _run_dates(text, allowed)]
    return hits


def test_readme_and_docs_hold_no_diary_traces() -> None:
    assert _markdown_hits() == []


def test_source_comments_and_docstrings_hold_no_diary_traces() -> None:
    assert _source_hits() == []


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("as issue 4 asked", True),
        ("the #11 runs", True),
        ("eleventh session", True),
        ("In this round we", True),
        ("measured on 2026-11-22", True),
        ("on 22 November 2026", True),
        ("train 2018-07-25..31, test 2018-08-08..14", False),
        ("`--until 2024-01-10`", False),
        ("between 2000-01-01 and 2100-01-01", False),
        ("see [Tests](#tests), &#8594;", False),
        ("`session.timeout.ms` is a setting", False),
        ("the second worker", False),
    ],
)
def test_the_diary_check_flags_what_it_should(text: str, flagged: bool) -> None:
    allowed = _allowed_dates()
    hit = bool(ISSUE.search(text) or DIARY_DOCS.search(_prose(text))
               or _run_dates(text, allowed))
    assert hit is flagged


# -- configuration reference -----------------------------------------------------------------


def _default_text(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def test_configuration_doc_lists_every_setting_with_its_default() -> None:
    from riskstream.settings import Settings

    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        m = re.match(r"\| `(RISKSTREAM_[A-Z0-9_]+)` \| (`([^`]*)`|unset) \|", line)
        if m:
            rows[m.group(1)] = "unset" if m.group(2) == "unset" else m.group(3)
    fields = {}
    for name, info in Settings.model_fields.items():
        default = info.default_factory() if info.default_factory else info.default
        fields[f"RISKSTREAM_{name.upper()}"] = _default_text(default)
    assert sorted(rows) == sorted(fields)
    assert {k: rows[k] for k in fields} == fields


def test_every_variable_the_docs_name_exists() -> None:
    from riskstream.settings import Settings

    known = {f"RISKSTREAM_{n.upper()}" for n in Settings.model_fields}
    known |= {"RISKSTREAM_TEST_REDIS_URL", "RISKSTREAM_TEST_PG_HOST", "RISKSTREAM_TEST_PG_PORT"}
    unknown = []
    for path in MARKDOWN:
        for name in re.findall(r"RISKSTREAM_[A-Z0-9_]*[A-Z0-9]", path.read_text()):
            # "RISKSTREAM_KAFKA_TOPIC_TRANSACTIONS / _SCORED" style abbreviations are not used.
            if name not in known:
                unknown.append(f"{path.relative_to(ROOT)}: {name}")
    assert unknown == []


# -- what the docs point at exists -----------------------------------------------------------

_PATH = re.compile(r"^(?:src|tests|benchmarks|docs|deploy|scripts)/[\w./-]*[\w/]$|"
                   r"^riskstream/[\w/]+\.py$")


def _code_spans(text: str) -> Iterator[str]:
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        yield from block.splitlines()
    yield from re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


def test_paths_the_docs_mention_exist() -> None:
    missing = []
    for path in MARKDOWN:
        text = path.read_text()
        for span in _code_spans(text):
            for word in re.split(r"[\s,()]+", span):
                word = word.rstrip(".:;")
                if not _PATH.match(word) or "*" in word or "<" in word:
                    continue
                target = ROOT / "src" / word if word.startswith("riskstream/") else ROOT / word
                if not target.exists():
                    missing.append(f"{path.relative_to(ROOT)}: {word}")
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in link:
                continue
            if not (path.parent / link).exists():
                missing.append(f"{path.relative_to(ROOT)}: link {link}")
    assert missing == []


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _logger_names() -> set[str]:
    """Logger names the source uses (``riskstream.kafka`` is a logger, not a module)."""
    names: set[str] = set()
    for path in SOURCES:
        names |= set(re.findall(r"getLogger\(\"([\w.]+)\"\)", path.read_text()))
    return names


def test_modules_the_docs_name_exist() -> None:
    loggers = _logger_names()
    missing = []
    for path in MARKDOWN:
        for span in _code_spans(path.read_text()):
            for dotted in re.findall(r"(?<![\w/.-])riskstream(?:\.\w+)+", span):
                if dotted not in loggers and not _resolves(dotted):
                    missing.append(f"{path.relative_to(ROOT)}: {dotted}")
    assert missing == []


def test_riskstream_commands_the_docs_use_exist() -> None:
    import typer.main

    from riskstream.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    unknown = []
    for path in MARKDOWN:
        for span in _code_spans(path.read_text()):
            line = " " + span.split(" #", 1)[0]
            for m in re.finditer(r"(?:^|[\s/])riskstream ([a-z][\w-]*)([^|&;`]*)", line):
                name, rest = m.group(1), m.group(2)
                where = f"{path.relative_to(ROOT)}: riskstream {name}"
                if name not in commands:
                    unknown.append(where)
                    continue
                cmd = commands[name]
                words = rest.split()
                subcommands = getattr(cmd, "commands", {})
                if words and words[0] in subcommands:
                    cmd = subcommands[words[0]]
                opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
                for opt in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                    # A marker the command's own help documents (``evaluate ... --compare A B``).
                    if opt not in opts and opt != "--help" and opt not in (cmd.help or ""):
                        unknown.append(f"{where} {opt}")
    assert unknown == []
