"""The repository stands on its own: every reference in its documents and code leads to a file in it.

- every relative markdown link in README.md and docs/ names a file (or folder) of the repository,
  and a `#fragment` names a heading of the linked page (GitHub's anchors);
- no file points at the product spec that used to live outside the repository (spec sections,
  feature ids): the contracts are in docs/ and references name the docs page;
- the README's two commands are the ones `.ci/run` and the Makefile provide.
"""

from __future__ import annotations

import pytest
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Folders that are not the project's own text: environments, dependencies, vendored Swagger files.
SKIPPED = {".git", ".venv", ".venv-tools", "node_modules", ".local", "__pycache__", ".pytest_cache"}
VENDORED = {ROOT / "tests" / "simulator" / "swagger"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".bicep", ".txt", ".ini", ".toml", ".sh", ""}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# Built from parts so this file does not match itself.
SPEC_SECTION = re.compile("SPEC" + r"\s*" + "\u00a7")
FEATURE_ID = re.compile(r"\b" + "F" + r"(?:[1-9]|1[0-6])\b")
OUTSIDE = "/work" + "/shared"  # where the spec and the old notes were


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text()))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(match) for match in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", text, re.MULTILINE)}


def project_files():
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED for part in relative.parts) or any(v in path.parents for v in VENDORED):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.name != "package-lock.json":
            yield path


def test_the_docs_exist():
    assert len(DOCUMENTS) > 10
    for name in ("settings", "storage", "validation", "execution-model", "glossary", "performance",
                 "local-development"):
        assert (ROOT / "docs" / f"{name}.md").is_file(), name


def broken_links(documents, root: Path = ROOT) -> list[str]:
    broken = []
    for document in documents:
        for target in links(document):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            linked = (document.parent / file_part).resolve() if file_part else document
            name = f"{document.relative_to(root)} -> {target}"
            if root not in linked.parents and linked != root:
                broken.append(f"{name}: outside the repository")
            elif not linked.exists():
                broken.append(f"{name}: no such file")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{name}: no such heading")
    return broken


def test_every_relative_link_names_a_file_of_the_repository_and_a_heading_of_it():
    broken = broken_links(DOCUMENTS)
    assert not broken, "\n".join(broken)


def test_the_link_checker_finds_a_missing_file_a_missing_heading_and_a_way_out(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [no](#nothing) [out](../../x.md)\n\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert broken_links([page], tmp_path) == [
        "docs/page.md -> missing.md: no such file",
        "docs/page.md -> #nothing: no such heading",
        "docs/page.md -> ../../x.md: outside the repository",
    ]
    assert slug("A 50,000-customer night: `python -m bench.night`") == "a-50000-customer-night-python--m-benchnight"


@pytest.mark.slow
def test_nothing_refers_to_the_spec_outside_the_repository():
    found = []
    for path in project_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if SPEC_SECTION.search(line) or FEATURE_ID.search(line) or OUTSIDE in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "references that lead outside the repository:\n" + "\n".join(found)


def test_the_readme_commands_are_the_ones_ci_and_make_run():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.MULTILINE), ".ci/run must call the README's test command"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
