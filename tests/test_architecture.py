"""The house holds: shared/'s layers as docs/architecture.md draws them, and modules one can read
in one sitting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 400


def test_no_layer_imports_one_above_it_and_no_import_circle():
    # .importlinter's layers contract: an upward import (and so any circle between layers) breaks it.
    done = subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_the_contract_catches_an_upward_import(tmp_path):
    # A copy of shared/ in which the store imports the sync engine must break the contract.
    import shutil

    copy = tmp_path / "shared"
    shutil.copytree(ROOT / "shared", copy, ignore=shutil.ignore_patterns("__pycache__"))
    keys = copy / "store" / "runs.py"
    keys.write_text(keys.read_text() + "\nfrom shared.sync import engine  # noqa: E402,F401\n")
    done = subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "shared.store.runs -> shared.sync.engine" in done.stdout


def test_every_module_reads_in_one_sitting():
    long = {str(path.relative_to(ROOT)): lines for path in (ROOT / "shared").rglob("*.py")
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}
