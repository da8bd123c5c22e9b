"""The docs a newcomer walks stay walkable: every relative link resolves (to a file, and to a heading when it
names one), every code path the docs name exists, and the configuration page names every variable the settings
read. Pure file checks: no database, no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The pages checked. CONTRIBUTING.md may not exist in a branch; links *to* it are checked wherever they are.
DOC_FILES = sorted(
    path
    for path in [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "bench" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
    if path.exists()
)

# A backticked path is taken for code when its first segment is one of the project's own folders.
CODE_ROOTS = {".ci", "bench", "config", "devtools", "docs", "emails", "exports", "jobs", "sync", "templates", "tests"}
# Placeholders and globs (`tests/<app>/`, `var/mail/*.eml`, `templates/emails/{name}/`) name no one file.
PLACEHOLDER = re.compile(r"[<>*{}$\s]")

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (``-`` and ``_`` kept), spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path):
        line = CODE_SPAN.sub("", line)  # a link shown as code is an example, not a link
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                continue  # http:, https:, mailto:: not ours to check offline
            found.append((number, target))
    return found


def code_paths(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path):
        for _, span in CODE_SPAN.findall(line):
            candidate = span.strip()
            if "/" not in candidate or PLACEHOLDER.search(candidate) or candidate.startswith(("/", "http")):
                continue
            if candidate.split("/", 1)[0] in CODE_ROOTS:
                found.append((number, candidate))
    return found


def where(path: Path, number: int) -> str:
    return f"{path.relative_to(ROOT)}:{number}"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    broken = []
    for number, target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            broken.append(f"{where(doc, number)}: {target} -> no such file {resolved.relative_to(ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where(doc, number)}: {target} -> no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_paths_named_exist(doc: Path):
    missing = [f"{where(doc, number)}: `{name}`" for number, name in code_paths(doc) if not (ROOT / name).exists()]
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


ENV_READ = re.compile(
    r"""(?:env_bool|env_int|env_list|environ\.get|getenv|environ\.pop|environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)


def settings_variables() -> set[str]:
    names = set()
    for source in [*(ROOT / "config" / "settings").glob("*.py"), ROOT / "config" / "gunicorn.py"]:
        for match in ENV_READ.finditer(source.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return names


def test_configuration_page_names_every_variable_the_settings_read():
    variables = settings_variables()
    assert len(variables) > 50, f"the pattern found only {sorted(variables)}: has the way settings read changed?"
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(name for name in variables if f"`{name}`" not in page)
    assert not missing, f"docs/configuration.md does not name: {', '.join(missing)}"


def test_the_checks_find_what_they_look_for(tmp_path):
    """The parsers themselves: a link, an anchor, a code path, and what must be left alone."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Title: with `code`, punctuation!\n\n"
        "See [a](other.md#the-section) and [web](https://example.com) and `jobs/core/lifecycle.py`.\n"
        "`tests/<app>/` and `var/mail/*.eml` and `[not](a-link.md)` are left alone.\n"
        "```\n[in a fence](nowhere.md) `jobs/nowhere.py`\n```\n",
        encoding="utf-8",
    )
    assert relative_links(page) == [(3, "other.md#the-section")]
    assert code_paths(page) == [(3, "jobs/core/lifecycle.py")]
    assert anchors(page) == {"title-with-code-punctuation"}
    assert slug("Session 14: the stock baselines on a stock project's settings (issue 22, 4.1)") == (
        "session-14-the-stock-baselines-on-a-stock-projects-settings-issue-22-41"
    )
