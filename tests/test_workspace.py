"""Fleet-level invariants of the workspace: what ships, what stays dev-only, how services start."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
DEV_ONLY = {"fleet", "pytest", "ruff", "moto", "aws-sam-cli", "hypothesis", "cfn-lint"}


def _lock_packages() -> dict[str, dict]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {package["name"]: package for package in lock["package"]}


def runtime_closure(name: str) -> set[str]:
    """Every package `name` needs at run time, from uv.lock (dev groups excluded)."""
    packages = _lock_packages()
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(dep["name"] for dep in packages[current].get("dependencies", []))
    return seen


SHIPPED = ["mcp-common", *(service.distribution for service in service_dirs(ROOT))]


@pytest.mark.parametrize("package", SHIPPED)
def test_dev_tooling_never_ships(package):
    assert runtime_closure(package) & DEV_ONLY == set()


def test_requires_python_accepts_the_machine_and_lambda():
    members = [ROOT / "packages" / "fleet", ROOT / "packages" / "mcp_common"]
    members += [service.path for service in service_dirs(ROOT)]
    for member in members:
        spec = tomllib.loads((member / "pyproject.toml").read_text())["project"]["requires-python"]
        assert spec == ">=3.11", f"{member}: {spec}"


def test_the_workspace_root_is_virtual_so_a_service_folder_is_a_member_by_existing():
    """`fleet new` edits no pyproject.toml: uv installs every member of a virtual root."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in root
    assert "services/*" in root["tool"]["uv"]["workspace"]["members"]
    locked = {
        package["name"] for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    }
    assert {service.distribution for service in service_dirs(ROOT)} <= locked


@pytest.mark.parametrize("service", service_dirs(ROOT), ids=lambda service: service.name)
def test_each_service_has_an_executable_run_sh_for_its_package(service):
    run_sh = service.path / "run.sh"
    assert os.access(run_sh, os.X_OK)
    assert f"exec python -m {service.package}" in run_sh.read_text()
    assert (service.package_dir / "__main__.py").is_file()
    assert service.load_spec().name == service.name


@pytest.mark.parametrize("service", service_dirs(ROOT), ids=lambda service: service.name)
def test_every_tool_keeps_the_contract(service):
    """A typed, documented function with annotations: refused here and by fleet check, so a
    team learns it from the default suite, not from the conformance run."""
    from mcp_common.discovery import contract_faults, discover_tools

    tools = discover_tools(service.load_spec().tools_package)
    assert [fault for tool in tools for fault in contract_faults(tool)] == []
