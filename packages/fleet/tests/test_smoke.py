"""`fleet smoke` against a local fleet (fleet dev's app over real HTTP): healthy, and with one
service broken."""

from __future__ import annotations

import json
import secrets

import pytest

from fleet.cli import main
from fleet.dev import build_fleet_app
from fleet.testing import app_settings, copy_workspace, serve
from fleet.workspace import find_root, service_dirs
from mcp_common.apikeys import hash_key

KEY = "mcpk_smoke_0123456789abcdef"
RECORDS = json.dumps([{"name": "smoke", "sha256": hash_key(KEY), "services": ["*"]}])


@pytest.fixture
def memory_store(tmp_path):
    from memory_service.sqlite_store import SQLiteStore
    from memory_service.store import get_store, set_store

    set_store(SQLiteStore(tmp_path / "memory.sqlite", get_store().limits))
    yield
    set_store(None)


def test_a_healthy_fleet_passes_with_one_line_per_service(memory_store, capsys, monkeypatch):
    monkeypatch.delenv("MCP_API_KEY", raising=False)
    chosen = [s for s in service_dirs(find_root()) if s.name in {"math", "memory"}]
    settings = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=RECORDS, MCP_PRIME="false")
    with serve(build_fleet_app(chosen, settings)) as base:
        code = main(
            ["smoke", "--base-url", base, "--key", KEY, "--service", "math", "--service", "memory"]
        )
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]
    assert code == 0, out
    [math_line] = [line for line in out if line.startswith("ok   math")]
    assert "health, 401 + metadata, initialize" in math_line
    assert "add ok" in math_line  # its declared smoke example
    [memory_line] = [line for line in out if line.startswith("ok   memory")]
    assert "read_graph ok" in memory_line  # read-only, no arguments
    assert out[-1] == f"smoke: 2 services at {base}: 2 passed"


def test_a_broken_service_fails_the_smoke_and_is_named(tmp_path, capsys, monkeypatch):
    from fleet.new import create_service

    workspace = copy_workspace(find_root(), tmp_path / "repo")
    monkeypatch.setenv("FLEET_ROOT", str(workspace))
    names = []
    for prefix in ("fine", "bad"):
        name = f"{prefix}{secrets.token_hex(3)}"
        create_service(workspace, name, lock=False, log=lambda _: None)
        monkeypatch.syspath_prepend(str(workspace / "services" / name / "src"))
        names.append(name)
    good, bad = names
    (workspace / "services" / bad / "src" / f"{bad}_service" / "tools" / "oops.py").write_text(
        "import not_installed_anywhere\n"
    )
    chosen = [s for s in service_dirs(workspace) if s.name in names]
    with serve(build_fleet_app(chosen, app_settings(MCP_AUTH="none"))) as base:
        code = main(["smoke", "--base-url", base, "--service", good, "--service", bad])
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]
    assert code == 1
    assert any(line.startswith(f"ok   {good}") and "open (no auth)" in line for line in out)
    assert any(line.startswith(f"FAIL {bad}") and "health: HTTP 503" in line for line in out)
    assert out[-1].endswith(f"1 passed, 1 failed ({bad})")


def test_a_refusal_is_reported_with_the_servers_status_and_words(capsys, monkeypatch):
    """Regression: a clear 403 from the server printed as `MCPError: Server returned an
    error response`."""
    monkeypatch.delenv("MCP_API_KEY", raising=False)
    service = service_dirs(find_root())[0]
    elsewhere = json.dumps([{"name": "smoke", "sha256": hash_key(KEY), "services": ["zz_other"]}])
    settings = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=elsewhere, MCP_PRIME="false")
    with serve(build_fleet_app([service], settings)) as base:
        code = main(["smoke", "--base-url", base, "--key", KEY, "--service", service.name])
    out = capsys.readouterr().out
    assert code == 1
    [line] = [line for line in out.splitlines() if line.startswith(f"FAIL {service.name}")]
    assert "MCP: HTTP 403" in line, line
    assert "Server returned an error response" not in line


def test_all_regions_smokes_each_regions_stack(tmp_path, capsys, monkeypatch):
    """Issue 30: two local fleets stand in for two regions' APIs; each region's stack (moto)
    names its own. The second region's fleet has a broken key: that region fails, by name."""
    from fleet.testing import deployed_stack, fake_aws

    root = copy_workspace(find_root(), tmp_path / "ws")
    samconfig = root / "samconfig.toml"
    samconfig.write_text(
        samconfig.read_text().replace(
            "[default.deploy.parameters]\n",
            '[default.deploy.parameters]\nparameter_overrides = "PrimaryRegion=us-east-1 '
            'ReplicaRegions=eu-west-1"\n',
            1,
        )
    )
    monkeypatch.setenv("FLEET_ROOT", str(root))
    from fleet.new import create_service

    name = f"regional{secrets.token_hex(3)}"  # a scaffold: no other team's service is needed
    create_service(root, name, lock=False, log=lambda _: None)
    monkeypatch.syspath_prepend(str(root / "services" / name / "src"))
    [service] = [s for s in service_dirs(root) if s.name == name]
    other = json.dumps([{"name": "x", "sha256": hash_key(KEY + "x"), "services": ["*"]}])
    good = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=RECORDS, MCP_PRIME="false")
    bad = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=other, MCP_PRIME="false")
    with (
        serve(build_fleet_app([service], good)) as first,
        serve(build_fleet_app([service], bad)) as second,
        fake_aws("us-east-1"),
    ):
        for region, base in (("us-east-1", first), ("eu-west-1", second)):
            outputs = {"ApiBaseUrl": base, "ServiceNames": service.name}
            deployed_stack("mcp-fleet", outputs, region)
        code = main(["smoke", "--all-regions", "--key", KEY])
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]
    assert code == 1
    assert out[0] == "== us-east-1"
    assert f"smoke: 1 services and the front door at {first}: 2 passed" in out
    assert any(line.startswith("ok   fleet") and "search" in line for line in out)
    assert "== eu-west-1" in out
    assert any(line.startswith(f"FAIL {service.name}") for line in out)
    assert out[-1] == "1 of 2 regions OK; failed: eu-west-1"
