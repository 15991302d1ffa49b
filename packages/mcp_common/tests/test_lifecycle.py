"""Priming and the SnapStart hooks, in-process (the host-twin run is tests/test_lifecycle.py)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.testing import app_settings, write_tools_package
from mcp_common.app import create_app
from mcp_common.service import ServiceSpec

TOOLS = '''
from pathlib import Path
from fastmcp.tools import tool

CALLS = Path(__file__).with_name("calls.txt")


@tool
def remember(note: str) -> str:
    """A tool with a side effect: every run appends to a file."""
    with CALLS.open("a") as handle:
        handle.write(note + "\\n")
    return "ok"
'''


@pytest.fixture
def spec(tmp_path, monkeypatch) -> ServiceSpec:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = write_tools_package(tmp_path, f"lifecycle_tools_{tmp_path.name}", {"tools": TOOLS})
    return ServiceSpec(name="life", tools_package=package)


async def asgi(app, method: str, path: str, client: str = "127.0.0.1") -> tuple[int, dict]:
    """One request through the app's full middleware stack, from `client`."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080")],
        "client": (client, 40000),
        "server": ("127.0.0.1", 8080),
    }
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    is_json = (b"content-type", b"application/json") in messages[0].get("headers", [])
    return messages[0]["status"], json.loads(body) if is_json else {}


async def test_priming_runs_no_tool_and_logs_nothing(spec, tmp_path, log_lines):
    app = create_app(spec, app_settings(MCP_AUTH="none"))
    async with app.router.lifespan_context(app):
        assert app.state.startup_phases["priming"] > 0
    assert not (tmp_path / spec.tools_package / "calls.txt").exists()
    assert [e for e in log_lines.entries() if "Invalid arguments" in e["message"]] == []
    assert log_lines.requests() == []  # not client requests


@pytest.mark.parametrize("client", ["10.0.0.7", "203.0.113.9", "::ffff:10.0.0.1"])
async def test_hooks_refuse_callers_other_than_loopback(spec, client):
    app = create_app(spec, app_settings(MCP_AUTH="none", MCP_PRIME="false"))
    async with app.router.lifespan_context(app):
        for path in ("/_lifecycle/before-checkpoint", "/_lifecycle/after-restore"):
            status, _ = await asgi(app, "POST", path, client=client)
            assert status == 403


async def test_hooks_run_the_services_own_steps_in_order(spec):
    calls: list[str] = []

    @spec.before_checkpoint
    async def close_pool() -> None:
        calls.append("close pool")

    @spec.after_restore
    def clear_cache() -> None:
        calls.append("clear cache")

    app = create_app(spec, app_settings(MCP_AUTH="none", MCP_PRIME="false"))
    async with app.router.lifespan_context(app):
        status, body = await asgi(app, "POST", "/_lifecycle/before-checkpoint")
        assert (status, body["phase"]) == (200, "before_checkpoint")
        random.seed(7)
        frozen = random.random()
        status, _ = await asgi(app, "POST", "/_lifecycle/after-restore")
        assert status == 200
        random.seed(7)
        assert random.random() == frozen
    assert calls == ["close pool", "clear cache"]


async def test_after_restore_reseeds_random(spec):
    app = create_app(spec, app_settings(MCP_AUTH="none", MCP_PRIME="false"))
    async with app.router.lifespan_context(app):
        random.seed(7)
        state = random.getstate()
        await asgi(app, "POST", "/_lifecycle/after-restore")
        assert random.getstate() != state  # restored instances must not share a sequence


async def test_a_failing_hook_fails_the_phase(spec, log_lines):
    @spec.before_checkpoint
    def broken() -> None:
        raise RuntimeError("cannot close")

    app = create_app(spec, app_settings(MCP_AUTH="none", MCP_PRIME="false"))
    async with app.router.lifespan_context(app):
        status, body = await asgi(app, "POST", "/_lifecycle/before-checkpoint")
    assert (status, body["status"]) == (500, "failed")  # the adapter then fails the snapshot
    assert any("SnapStart before_checkpoint failed" in e["message"] for e in log_lines.entries())


async def test_the_hooks_need_no_credential_but_answer_only_post(spec):
    records = '[{"name": "k", "sha256": "' + "0" * 64 + '", "services": ["*"]}]'
    app = create_app(spec, app_settings(MCP_AUTH="api_key", MCP_API_KEYS=records))
    async with app.router.lifespan_context(app):
        assert (await asgi(app, "POST", "/_lifecycle/after-restore"))[0] == 200
        assert (await asgi(app, "GET", "/_lifecycle/after-restore"))[0] == 405
        assert (await asgi(app, "POST", "/life/mcp"))[0] == 401


PROBE = """
import asyncio, json, os, sys
import httpx2
from mcp_common.app import create_app
from math_service import service

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}


async def first_call(prime):
    os.environ["MCP_PRIME"] = prime
    app = create_app(service)
    async with app.router.lifespan_context(app):
        before = set(sys.modules)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            headers = {"accept": "application/json, text/event-stream"}
            response = await client.post("/math/mcp", json=CALL, headers=headers)
        assert response.json()["result"]["structuredContent"] == {"result": 3}
        return len(set(sys.modules) - before)


results = {}
for prime in ("false", "true"):
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.environ["MCP_AUTH"] = "none"
        count = asyncio.run(first_call(prime))
        os.write(write_end, str(count).encode())
        os._exit(0)
    os.close(write_end)
    results[prime] = int(os.read(read_end, 64))
print(json.dumps(results))
"""


def test_priming_moves_the_lazy_imports_out_of_the_first_call():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["false"] > 100  # fastmcp loads a few hundred modules on its first call
    assert loaded["true"] == 0  # the success path included (lifecycle.SUCCESS_PATH_MODULES)
