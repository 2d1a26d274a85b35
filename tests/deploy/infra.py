"""infra/ as parsed trees (pycep-parser), and the few lookups the deploy tests make in them.

pycep writes an identifier and a string literal alike as a Python string; :func:`resolve` follows
an identifier to the variable or parameter it names, so a test can read what a value is made of.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
PARAMETERS = INFRA / "main.parameters.json"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@lru_cache(maxsize=None)
def tree(path: Path) -> dict:
    """The parsed tree of one Bicep file."""
    return BicepParser().parse(file_path=path)


def module_file(name: str) -> Path:
    """The file behind ``module NAME '...'`` in main.bicep."""
    module = tree(MAIN)["modules"][name]
    assert module["type"] == "local", f"module {name} must be a local file, to be read offline"
    return INFRA / module["detail"]["path"]


def module_params(name: str) -> dict:
    config = tree(MAIN)["modules"][name]["config"]
    if set(config) == {"condition", "config"}:  # a conditional module: `= if (...) {...}`
        config = config["config"]
    return config["params"]


def resources(path: Path, resource_type: str | None = None) -> dict[str, dict]:
    """A file's resources (``existing`` ones left out), name -> config; a conditional one unwrapped."""
    found = {}
    for name, resource in tree(path).get("resources", {}).items():
        if resource["existing"] or (resource_type and resource["type"] != resource_type):
            continue
        config = resource["config"]
        if set(config) == {"condition", "config"}:
            config = config["config"]
        found[name] = {"type": resource["type"], **config}
    return found


def the_resource(path: Path, resource_type: str) -> dict:
    """The one resource of a type in a file."""
    found = resources(path, resource_type)
    assert len(found) == 1, f"{path.name} should declare one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


def parameter_values() -> dict:
    """main.parameters.json's values, still with azd's ${VAR} references in them."""
    return {name: entry["value"] for name, entry in json.loads(PARAMETERS.read_text())["parameters"].items()}


def resolve(path: Path, expression):
    """Follow an identifier to the variable it names (once per step), else return it as it is."""
    file_tree = tree(path)
    while isinstance(expression, str) and expression in file_tree.get("variables", {}):
        expression = file_tree["variables"][expression]["value"]
    return expression


def object_entries(path: Path, expression) -> dict:
    """The name -> value entries an object expression may hold: through variables, union(),
    both branches of a conditional, and main.bicep parameters filled from main.parameters.json."""
    expression = resolve(path, expression)
    file_tree = tree(path)
    if isinstance(expression, str) and expression in file_tree.get("parameters", {}):
        if path == MAIN:
            value = parameter_values().get(expression, file_tree["parameters"][expression].get("default", {}))
        else:
            value = file_tree["parameters"][expression].get("default", {})
        assert isinstance(value, dict), f"parameter {expression} is not an object"
        return dict(value)
    if isinstance(expression, dict) and "function" in expression:
        function = expression["function"]
        assert function["type"] == "union", f"cannot read app settings through {function['type']}()"
        entries: dict = {}
        for argument in function["parameters"].values():
            entries.update(object_entries(path, argument))
        return entries
    if isinstance(expression, dict) and "operator" in expression:
        operator = expression["operator"]
        assert operator["type"] == "conditional", f"cannot read app settings through {operator['type']}"
        operands = operator["operands"]
        return {**object_entries(path, operands["true_value"]), **object_entries(path, operands["false_value"])}
    assert isinstance(expression, dict), f"not an object: {expression!r}"
    return dict(expression)


def app_settings() -> dict:
    """Every app setting main.bicep gives the Function App (name -> value expression)."""
    return object_entries(MAIN, module_params("functionApp")["appSettings"])


def secure_parameters(path: Path) -> set[str]:
    return {name for name, parameter in tree(path).get("parameters", {}).items()
            if any(decorator["type"] == "secure" for decorator in parameter["decorators"])}


def dotted(expression) -> str:
    """``a.b.c`` for a property-accessor chain (``identity.outputs.clientId``), else the value as text."""
    if isinstance(expression, dict) and expression.get("operator", {}).get("type") == "property_accessor":
        operands = expression["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return str(expression)
