"""`fleet dev`'s app: every service at its own paths in one process, plus the catalog."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastmcp import Client

from fleet.dev import build_fleet_app
from fleet.testing import MCP_HEADERS, loopback_http, serve
from fleet.workspace import find_root, service_dirs


@pytest.fixture(scope="module")
def fleet_url() -> Iterator[str]:
    with serve(build_fleet_app(service_dirs(find_root()))) as base:
        yield base


def test_catalog_lists_every_service_with_urls_and_tools(fleet_url):
    catalog = loopback_http().get(f"{fleet_url}/").json()
    by_name = {service["name"]: service for service in catalog["services"]}
    assert set(by_name) == {service.name for service in service_dirs(find_root())}
    math = by_name["math"]
    assert math["mcp_url"] == f"{fleet_url}/math/mcp"
    assert math["health_url"] == f"{fleet_url}/math/health"
    assert "evaluate" in {tool["name"] for tool in math["tools"]}


def test_each_service_answers_at_its_paths(fleet_url):
    for service in service_dirs(find_root()):
        health = loopback_http().get(f"{fleet_url}/{service.name}/health")
        assert health.status_code == 200
        assert health.json()["service"] == service.name


async def test_mcp_client_through_the_fleet(fleet_url):
    async with Client(f"{fleet_url}/math/mcp") as client:
        assert (await client.call_tool("add", {"a": 40, "b": 2})).data == 42


def test_unknown_service_is_404_with_hints(fleet_url):
    response = loopback_http().post(f"{fleet_url}/nope/mcp", json={}, headers=MCP_HEADERS)
    assert response.status_code == 404
    assert "/math/mcp" in response.json()["services"]


@pytest.mark.parametrize("path", ["/", "/nope/mcp"])
def test_what_the_router_answers_itself_checks_the_host_too(fleet_url, path):
    """Regression: GET / answered a DNS-rebinding Host (evil.example) with the catalog,
    its URLs built from that Host, while /math/health answered 421."""
    port = fleet_url.rsplit(":", 1)[1]
    response = loopback_http().get(f"{fleet_url}{path}", headers={"host": f"evil.example:{port}"})
    assert response.status_code == 421
    assert "evil.example" not in response.text
    health = loopback_http().get(
        f"{fleet_url}/math/health", headers={"host": f"evil.example:{port}"}
    )
    assert health.status_code == 421


def test_the_open_auth_warning_is_printed_once_for_the_whole_fleet(caplog):
    """Regression: 50 services printed 50 MCP_AUTH=none warnings at every start."""
    import logging

    from mcp_common import app

    app._warn_open_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        build_fleet_app(service_dirs(find_root()))
        build_fleet_app(service_dirs(find_root()))
    warnings = [r for r in caplog.records if "MCP_AUTH=none" in r.getMessage()]
    assert len(warnings) == 1


@pytest.fixture
def scratch_services(tmp_path, monkeypatch):
    """Services made by `fleet new` in a copy of the workspace, importable from it."""
    import secrets

    from fleet.new import create_service
    from fleet.testing import copy_workspace

    workspace = copy_workspace(find_root(), tmp_path / "repo")

    def make(prefix: str) -> str:
        name = f"{prefix}{secrets.token_hex(3)}"
        create_service(workspace, name, lock=False, log=lambda _: None)
        monkeypatch.syspath_prepend(str(workspace / "services" / name / "src"))
        return name

    return workspace, make


async def greeting(base: str, service: str) -> str:
    async with Client(f"{base}/{service}/mcp") as client:
        return (await client.call_tool("greet", {"name": "Ada"})).data


async def test_a_broken_service_is_reported_and_the_others_keep_serving(scratch_services):
    """Regression: one broken tools module stopped fleet dev for every team (40 lines of
    traceback)."""
    workspace, make = scratch_services
    good, bad = make("good"), make("bad")
    broken = workspace / "services" / bad / "src" / f"{bad}_service" / "tools" / "oops.py"
    broken.write_text("def broken(:\n")
    app = build_fleet_app([s for s in service_dirs(workspace) if s.name in {good, bad}])
    with serve(app) as base:
        assert await greeting(base, good) == "Hello, Ada!"
        refused = loopback_http().post(f"{base}/{bad}/mcp", json={}, headers=MCP_HEADERS)
        assert refused.status_code == 503
        catalog = {s["name"]: s for s in loopback_http().get(f"{base}/").json()["services"]}
    assert catalog[bad]["status"] == "broken"
    assert f"{bad}_service.tools.oops" in catalog[bad]["error"]
    assert "SyntaxError" in catalog[bad]["error"]
    assert "\n" not in catalog[bad]["error"]
    assert catalog[good]["tools"]


async def test_reload_makes_an_edited_tool_live_within_two_seconds(scratch_services):
    import time

    workspace, make = scratch_services
    name = make("live")
    tool = workspace / "services" / name / "src" / f"{name}_service" / "tools" / "greeting.py"
    app = build_fleet_app([s for s in service_dirs(workspace) if s.name == name], reload=True)
    with serve(app) as base:
        assert await greeting(base, name) == "Hello, Ada!"
        tool.write_text(tool.read_text().replace('f"Hello, {', 'f"Hi again, {'))
        edited = time.monotonic()
        while (answer := await greeting(base, name)) == "Hello, Ada!":
            assert time.monotonic() - edited < 2.0
        assert answer == "Hi again, Ada!"
        tool.write_text(tool.read_text() + "\ndef broken(:\n")  # a mistake while editing
        edited = time.monotonic()
        while loopback_http().get(f"{base}/{name}/health").status_code == 200:
            assert time.monotonic() - edited < 2.0
        assert loopback_http().get(f"{base}/{name}/health").status_code == 503


def test_a_subset_names_only_services_that_exist(capsys):
    from fleet.cli import main

    assert main(["dev", "math_typo"]) == 1
    err = capsys.readouterr().err
    assert "no service 'math_typo'" in err
    assert "services:" in err


def test_fleet_dev_reports_the_working_trees_commit(monkeypatch):
    monkeypatch.setenv("MCP_SOURCE_COMMIT", "abc1234-dirty")
    app = build_fleet_app([s for s in service_dirs(find_root()) if s.name == "math"])
    with serve(app) as base:
        assert loopback_http().get(f"{base}/math/health").json()["commit"] == "abc1234-dirty"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_a_network_bind_without_auth_is_refused(host, monkeypatch, capsys):
    """`fleet dev --host 0.0.0.0` with MCP_AUTH=none served every service to the network."""
    from fleet.cli import main

    monkeypatch.delenv("MCP_AUTH", raising=False)
    assert main(["dev", "--host", host]) == 1
    assert "refusing to serve" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "auth", "flag"),
    [("127.0.0.1", "none", False), ("0.0.0.0", "api_key", False), ("0.0.0.0", "none", True)],
)
def test_loopback_auth_or_an_explicit_flag_may_serve(host, auth, flag, monkeypatch):
    from fleet.cli import refuse_open_bind

    monkeypatch.setenv("MCP_AUTH", auth)
    monkeypatch.setenv("MCP_API_KEYS", "[]")
    refuse_open_bind(host, flag)  # no exception


async def test_reload_follows_services_created_and_removed_while_it_runs(scratch_services):
    """Regression: a service made by `fleet new` while `fleet dev --reload` ran was not
    served, and a removed one showed as broken with a hint to run `uv sync`."""
    import asyncio
    import shutil
    import time

    from fleet.new import create_service

    workspace, make = scratch_services
    first = make("first")
    app = build_fleet_app(
        [s for s in service_dirs(workspace) if s.name == first], reload=True, root=workspace
    )
    with serve(app) as base:
        assert await greeting(base, first) == "Hello, Ada!"
        later = f"later{first[-6:]}"
        create_service(workspace, later, lock=False, log=lambda _: None)
        created = time.monotonic()
        while loopback_http().get(f"{base}/{later}/health").status_code != 200:
            assert time.monotonic() - created < 10.0
            await asyncio.sleep(0.1)
        assert await greeting(base, later) == "Hello, Ada!"
        shutil.rmtree(workspace / "services" / first)
        removed = time.monotonic()
        while loopback_http().get(f"{base}/{first}/health").status_code != 404:
            assert time.monotonic() - removed < 10.0
            await asyncio.sleep(0.1)
        assert await greeting(base, later) == "Hello, Ada!"


@pytest.mark.parametrize("front_door", [False, True], ids=["direct", "front door"])
async def test_a_call_in_flight_when_its_app_is_replaced_is_still_answered(
    scratch_services, front_door
):
    """Regression (CI's four-teams check): a call that had reached a service's old app when a
    reload swapped in the new one met the old app's stopped session manager: a 500. The front
    door is rebuilt when a service is, and its old app holds calls the same way."""
    import json
    import socket
    import time

    workspace, make = scratch_services
    name = make("drain")
    tool = workspace / "services" / name / "src" / f"{name}_service" / "tools" / "greeting.py"
    app = build_fleet_app([s for s in service_dirs(workspace) if s.name == name], reload=True)
    path, tool_name = ("/mcp", f"{name}_greet") if front_door else (f"/{name}/mcp", "greet")
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool_name, "arguments": {"name": "Ada"}},
    }
    body = json.dumps(call).encode()

    async def greet(base: str) -> str:
        async with Client(base + path) as client:
            return (await client.call_tool(tool_name, {"name": "Ada"})).data

    with serve(app) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
                "content-type: application/json\r\naccept: application/json, text/event-stream\r\n"
                f"mcp-protocol-version: 2025-11-25\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n".encode()
                + body[:10]
            )
            await greet(base)  # by now the call's head is read: it is in the old app
            tool.write_text(tool.read_text().replace('f"Hello, {', 'f"Hi again, {'))
            edited = time.monotonic()
            while await greet(base) == "Hello, Ada!":  # through the front door: rebuilds it
                assert time.monotonic() - edited < 10.0
            sock.sendall(body[10:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", answer[:300]
    # The old service app answers with the old code; the old front door calls the service
    # as it is now.
    assert (b"Hi again, Ada!" if front_door else b"Hello, Ada!") in payload
