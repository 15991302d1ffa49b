"""`fleet new`: refused names change nothing; a new service is wired in, tested and checked."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.new import create_service
from fleet.template import load_template
from fleet.testing import copy_workspace
from fleet.workspace import find_root

ROOT = find_root(Path(__file__).parent)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    copy = copy_workspace(ROOT, tmp_path / "repo")
    monkeypatch.setenv("FLEET_ROOT", str(copy))
    return copy


def fingerprint(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Billing", "invalid service name 'Billing': use a lowercase identifier"),
        ("bill-ing", "use a lowercase identifier"),
        ("9lives", "use a lowercase identifier"),
        ("json", "would shadow Python's standard library module"),
        ("asyncio", "would shadow Python's standard library module"),
        ("class", "Python keyword"),
        ("math", "would shadow Python's standard library module"),
        ("weather", "service 'weather' already exists"),
        ("fleet", "reserved by the fleet"),
    ],
)
def test_refused_names_change_nothing(workspace, capsys, name, message):
    before = fingerprint(workspace)
    assert main(["new", name, "--no-lock"]) == 1
    assert message in capsys.readouterr().err
    assert fingerprint(workspace) == before


def test_new_service_is_wired_into_the_template_and_workspace(workspace):
    template_before = (workspace / "template.yaml").read_text()
    create_service(workspace, "billing", lock=False, log=lambda _: None)
    service = workspace / "services" / "billing"
    assert os.access(service / "run.sh", os.X_OK)
    assert (service / "src" / "billing_service" / "tools" / "greeting.py").is_file()
    assert "build-BillingFunction:" in (service / "Makefile").read_text()
    template_text = (workspace / "template.yaml").read_text()
    # Everything that was there is still there, in order, comments included.
    lines_before = [line for line in template_before.splitlines() if line.strip()]
    remaining = iter(template_text.splitlines())
    assert all(any(line == other for other in remaining) for line in lines_before)
    template = load_template(workspace / "template.yaml")
    function = template["Resources"]["BillingFunction"]
    assert function["Properties"]["CodeUri"] == "services/billing"
    assert {event["Properties"]["Path"] for event in function["Properties"]["Events"].values()} >= {
        "/billing/mcp",
        "/billing/{proxy+}",
    }
    assert "BillingMcpUrl" in template["Outputs"]
    pyproject = (workspace / "pyproject.toml").read_text()
    assert '"billing-service",' in pyproject
    assert "billing-service = { workspace = true }" in pyproject


def test_end_to_end_new_service_locks_passes_its_tests_and_checks(workspace):
    """The real thing: uv lock, its own tests, fleet check and fleet list in the new workspace."""

    def uv(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "FLEET_ROOT"}}
        result = subprocess.run(
            ["uv", *args], cwd=workspace, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    create_service(workspace, "billing", lock=True, log=lambda _: None)
    uv("lock", "--check")
    assert "2 passed" in uv(
        "run", "--frozen", "pytest", "services/billing", "-q", "-p", "no:cacheprovider"
    )
    assert "fleet check: OK (3 services: billing, math, weather)" in uv(
        "run", "--frozen", "fleet", "check"
    )
    assert "http://127.0.0.1:8080/billing/mcp" in uv("run", "--frozen", "fleet", "list")
