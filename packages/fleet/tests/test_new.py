"""`fleet new`: refused names change nothing; a new service is wired in, tested and checked."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.check import check_fleet
from fleet.cli import main
from fleet.new import create_service
from fleet.template import ALARMS, load_template, logical_id
from fleet.testing import copy_workspace
from fleet.workspace import find_root, service_dirs

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


def unused_name(prefix: str = "probe") -> str:
    """A service name that cannot exist already, whatever services the repository has."""
    existing = {service.name for service in service_dirs(ROOT)}
    while (name := f"{prefix}{secrets.token_hex(3)}") in existing:
        pass
    return name


EXISTING = next(s.name for s in service_dirs(ROOT) if s.name not in sys.stdlib_module_names)


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
        (EXISTING, f"service {EXISTING!r} already exists"),
        ("fleet", "reserved by the fleet"),
    ],
)
def test_refused_names_change_nothing(workspace, capsys, name, message):
    before = fingerprint(workspace)
    assert main(["new", name, "--no-lock"]) == 1
    assert message in capsys.readouterr().err
    assert fingerprint(workspace) == before


def test_new_service_is_wired_into_the_template_and_workspace(workspace, monkeypatch):
    name = unused_name()
    stem = logical_id(name)
    template_before = (workspace / "template.yaml").read_text()
    create_service(workspace, name, lock=False, log=lambda _: None)
    service = workspace / "services" / name
    assert os.access(service / "run.sh", os.X_OK)
    assert (service / "src" / f"{name}_service" / "tools" / "greeting.py").is_file()
    assert f"build-{stem}Function:" in (service / "Makefile").read_text()
    template_text = (workspace / "template.yaml").read_text()
    # Everything that was there is still there, in order, comments included.
    lines_before = [line for line in template_before.splitlines() if line.strip()]
    remaining = iter(template_text.splitlines())
    assert all(any(line == other for other in remaining) for line in lines_before)
    template = load_template(workspace / "template.yaml")
    function = template["Resources"][f"{stem}Function"]
    assert function["Properties"]["CodeUri"] == f"services/{name}"
    assert {event["Properties"]["Path"] for event in function["Properties"]["Events"].values()} >= {
        f"/{name}/mcp",
        f"/{name}/{{proxy+}}",
    }
    assert f"{stem}McpUrl" in template["Outputs"]
    resources = template["Resources"]
    for alarm in ALARMS:
        assert resources[f"{stem}{alarm}"]["Type"] == "AWS::CloudWatch::Alarm"
    scopes = resources["UserPoolResourceServer"]["Properties"]["Scopes"]
    assert name in [scope["ScopeName"] for scope in scopes]
    for client in ("PeopleClient", "MachineClient"):
        assert f"mcp-fleet/{name}" in resources[client]["Properties"]["AllowedOAuthScopes"]
    for query in ("SlowestToolsQuery", "ErrorsByToolQuery", "ColdStartsQuery"):
        assert {"Ref": f"{stem}LogGroup"} in resources[query]["Properties"]["LogGroupNames"]
    monkeypatch.syspath_prepend(str(service / "src"))  # as `uv sync` would install it
    assert check_fleet(workspace) == []  # the scaffold passes fleet check as written
    pyproject = (workspace / "pyproject.toml").read_text()
    assert f'"{name}-service",' in pyproject
    assert f"{name}-service = {{ workspace = true }}" in pyproject


@pytest.mark.parametrize("prefix", ["aprobe", "zprobe"])  # sorts before / after mcp_common
def test_generated_code_is_ruff_clean_as_written(workspace, prefix):
    """Regression: the scaffold's imports failed ruff's I001 in CI."""
    name = unused_name(prefix)
    create_service(workspace, name, lock=False, log=lambda _: None)
    ruff = str(Path(sys.executable).parent / "ruff")
    for command in ([ruff, "check", "--no-cache"], [ruff, "format", "--check", "--no-cache"]):
        result = subprocess.run(
            [*command, f"services/{name}"],
            cwd=workspace,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_end_to_end_new_service_locks_passes_its_tests_and_checks(workspace, monkeypatch, capsys):
    """The real thing: uv lock (touching only the new member), its tests, fleet check.

    CI goes further (.ci/scaffold-check): a fresh clone, `fleet new billing`, the README's
    `circle_area` tool, then ruff, fleet check and the whole test suite."""
    name = unused_name()
    lock_before = (workspace / "uv.lock").read_text().splitlines()
    create_service(workspace, name, lock=True, log=lambda _: None)
    lock_after = (workspace / "uv.lock").read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(lock_before, lock_after, n=0, lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert not [line for line in changed if line.startswith("-")], changed[:10]
    assert len(changed) < 20, changed  # the new member's entry, not a rewrite of the lock

    # Its own tests, as pytest would run them (plain async functions, no fixtures).
    monkeypatch.syspath_prepend(str(workspace / "services" / name / "src"))
    module_path = workspace / "services" / name / "tests" / "test_tools.py"
    spec = importlib.util.spec_from_file_location(f"scaffold_tests_{name}", module_path)
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    ran = [test for test_name, test in vars(tests).items() if test_name.startswith("test_")]
    for test in ran:
        asyncio.run(test())
    assert len(ran) == 2

    monkeypatch.setenv("FLEET_ROOT", str(workspace))
    capsys.readouterr()
    assert main(["check"]) == 0  # its tools are discoverable, too
    services = sorted(path.name for path in (workspace / "services").iterdir())
    expected = f"fleet check: OK ({len(services)} services: {', '.join(services)})"
    assert expected in capsys.readouterr().out
