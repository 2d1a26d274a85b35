"""The infrastructure scanners in .venv-tools (make setup builds it from requirements-tools.txt)."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.infra import ROOT

TOOLS_BIN = ROOT / ".venv-tools" / "bin"


def tool(name: str) -> Path:
    """The path of a scanner; a clear failure (not a skip) when make setup has not built it."""
    path = TOOLS_BIN / name
    assert path.is_file(), f"{path} is missing: run `make setup` (it installs requirements-tools.txt)"
    return path
