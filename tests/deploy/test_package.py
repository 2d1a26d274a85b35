"""The package boundary is the deployment boundary.

Builds the deployment package as `func azure functionapp publish` and azd do (the project folder
minus the .funcignore patterns), installs requirements.txt alone into a clean virtual environment,
and indexes every function there: nothing in it may need or import a development-only module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pathspec
import pytest

from devstack.local.host import function_index
from tests.deploy.infra import ROOT

DEVELOPMENT_FOLDERS = {"devstack", "tests", "bench", "docs", "infra", ".github"}
PRODUCT = {"function_app.py", "host.json", "requirements.txt", "shared"}

# Run inside the clean environment: import the app as the Python worker does, index it, and say
# which modules that loaded and which distributions requirements.txt brought in.
INDEX_SCRIPT = """
import importlib.metadata, json, sys
import function_app
functions = {f.get_function_name(): json.loads(f.get_function_json()) for f in function_app.app.get_functions()}
installed = sorted(d.metadata["Name"] for d in importlib.metadata.distributions())
print(json.dumps({"functions": functions, "modules": sorted(sys.modules), "installed": installed}))
"""


def funcignore() -> pathspec.PathSpec:
    return pathspec.PathSpec.from_lines("gitignore", (ROOT / ".funcignore").read_text().splitlines())


def build_package(target: Path) -> Path:
    """Copy the project into target, leaving out what .funcignore matches (gitignore syntax)."""
    spec = funcignore()
    for folder, dirs, files in os.walk(ROOT):
        relative = Path(folder).relative_to(ROOT)
        dirs[:] = [d for d in dirs if not spec.match_file(f"{(relative / d).as_posix()}/")]
        for name in files:
            path = (relative / name).as_posix()
            if not spec.match_file(path):
                (target / relative).mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, target / path)
    return target


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[=<>!~\[;]", line)[0].strip().lower().replace("_", "-"))
    return names


def normalized(name: str) -> str:
    return name.lower().replace("_", "-")


def development_only_modules(runtime_distributions: set[str]) -> set[str]:
    """Top-level modules of the packages requirements-dev.txt adds and the runtime does not bring.

    werkzeug, for one, is in requirements-dev.txt for the local server but also a dependency of
    azure-functions itself (its HTTP types), so the deployed app may import it.
    """
    import importlib.metadata

    dev_only = (requirement_names(ROOT / "requirements-dev.txt") - requirement_names(ROOT / "requirements.txt")
                - {normalized(name) for name in runtime_distributions})
    modules = set()
    for module, distributions in importlib.metadata.packages_distributions().items():
        if any(normalized(d) in dev_only for d in distributions) and not module.startswith("_"):
            modules.add(module)
    return modules | {"_pytest"}


def test_funcignore_names_development_files_only():
    spec = funcignore()
    assert all(spec.match_file(f"{folder}/") for folder in DEVELOPMENT_FOLDERS)
    for product in PRODUCT:
        assert not spec.match_file(product) and not spec.match_file(f"{product}/"), product
    for sub in (ROOT / "shared").rglob("*"):
        if "__pycache__" in sub.parts:  # bytecode the interpreter left, not a product file
            continue
        assert not spec.match_file(sub.relative_to(ROOT).as_posix()), f".funcignore drops product file {sub}"


@pytest.mark.timeout(180)
@pytest.mark.slow
def test_the_deployment_package_indexes_every_function_with_runtime_requirements_alone(tmp_path):
    package = build_package(tmp_path / "package")
    shipped = {path.name for path in package.iterdir()}
    assert PRODUCT <= shipped and not shipped & DEVELOPMENT_FOLDERS, sorted(shipped)

    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True, clear=True)
    python = environment / "bin" / "python"
    clean_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)),
                 "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE"):
        if name in os.environ:
            clean_env[name] = os.environ[name]
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile",
                                "-r", str(package / "requirements.txt")],
                               capture_output=True, text=True, timeout=150, env=clean_env)
    assert installed.returncode == 0, installed.stderr[-3000:]

    # -E -s: no PYTHONPATH and no user site, so only the package and the clean venv are importable.
    done = subprocess.run([str(python), "-E", "-s", "-c", INDEX_SCRIPT],
                          cwd=package, capture_output=True, text=True, timeout=60, env=clean_env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    dev_modules = development_only_modules(set(report["installed"]))
    # (psutil is not among them: the Azure Monitor exporter needs it at run time.)
    assert {"pytest", "jsonschema", "hypothesis", "yaml", "pycep"} <= dev_modules
    forbidden = dev_modules | {"devstack", "tests", "bench"}

    assert set(report["functions"]) == set(function_index())
    assert all(function["bindings"] for function in report["functions"].values())
    imported = {module.split(".")[0] for module in report["modules"]}
    assert not imported & forbidden, f"the deployed app imported {sorted(imported & forbidden)}"
    installed = {normalized(name) for name in report["installed"]}
    assert not installed & {"pytest", "jsonschema", "hypothesis"}, "requirements.txt installs dev tools"
    assert not any((package / name).exists() for name in forbidden)


def test_the_package_builder_honours_funcignore(tmp_path):
    """The builder itself: a dropped folder is absent, a kept one is copied whole."""
    package = build_package(tmp_path / "package")
    assert not (package / "devstack").exists() and not (package / "tests").exists()
    assert (package / "shared" / "settings.py").read_bytes() == (ROOT / "shared" / "settings.py").read_bytes()
    assert not any(part == "__pycache__" for path in package.rglob("*") for part in path.parts)
