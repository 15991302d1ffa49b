"""The front door (mcp_common.frontdoor) in front of a streaming service, both over real HTTP
on loopback: the service's progress reaches the caller through it, in order, before the
result; a cancelled call stops the service's tool; every call has a deadline; and the
caller's credential is what the service checks."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2 as httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from fleet.testing import app_settings, free_port, serve, write_tools_package
from mcp_common.apikeys import hash_key
from mcp_common.service import ServiceSpec

TOOLS = '''
import asyncio

from fastmcp import Context
from fastmcp.tools import tool

STOPPED: dict[str, int] = {}


@tool(annotations={"readOnlyHint": True})
async def count(steps: int, ctx: Context, label: str = "", delay: float = 0.02) -> str:
    """Report progress at each step."""
    try:
        for step in range(1, steps + 1):
            await asyncio.sleep(delay)
            await ctx.report_progress(step, steps, f"step {step}")
    except asyncio.CancelledError:
        STOPPED[label] = STOPPED.get(label, 0) + 1
        raise
    return f"counted {steps}"
'''
KEY = "mcpk_frontdoor_stream_0123456789"
OTHER_KEY = "mcpk_frontdoor_other_0123456789"
RECORDS = json.dumps(
    [
        {"name": "alice", "sha256": hash_key(KEY), "services": ["*"]},
        {"name": "mallory", "sha256": hash_key(OTHER_KEY), "services": ["*"]},
    ]
)
DEFINITION = {
    "name": "count",
    "description": "Report progress at each step.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "steps": {"type": "integer"},
            "label": {"type": "string"},
            "delay": {"type": "number"},
        },
        "required": ["steps"],
    },
}
MCP_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[tuple[str, Any]]:
    """A streaming service over HTTP, and its tools module (whose STOPPED says what stopped)."""
    from mcp_common.app import create_app

    root = tmp_path_factory.mktemp("frontdoor_service")
    sys.path.insert(0, str(root))
    package = write_tools_package(root, "frontdoor_sample_tools", {"tools": TOOLS})
    module = importlib.import_module(f"{package}.tools")
    service = create_app(ServiceSpec(name="streamer", tools_package=package), SETTINGS)
    with serve(service) as service_base:
        yield service_base, module


SETTINGS = app_settings(
    AWS_LWA_INVOKE_MODE="response_stream",
    MCP_AUTH="api_key",
    MCP_API_KEYS=RECORDS,
    MCP_MAX_CALLS_PER_PRINCIPAL="2",
)


@pytest.fixture(scope="module")
def door(service) -> Iterator[str]:
    from mcp_common.frontdoor import HttpUpstream, frontdoor_app

    upstream = HttpUpstream(httpx.AsyncClient(timeout=10), service[0])
    app = frontdoor_app({"streamer": {"tools": [DEFINITION]}}, upstream, SETTINGS)
    with serve(app) as door_base:
        yield door_base


def client(base: str) -> Client:
    return Client(StreamableHttpTransport(f"{base}/mcp", headers={"x-api-key": KEY}))


async def test_a_streaming_services_progress_passes_through_in_order(door):
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    async with client(door) as mcp:
        result = await mcp.call_tool("streamer_count", {"steps": 4}, progress_handler=on_progress)
    assert result.data == "counted 4"
    assert seen == [1, 2, 3, 4]


async def test_without_a_progress_token_the_call_still_answers(door):
    async with client(door) as mcp:
        result = await mcp.call_tool("streamer_count", {"steps": 2})
    assert result.data == "counted 2"


def test_a_service_whose_name_holds_the_separator_is_refused_its_neighbours_tools():
    """Regression (four teams in CI): service `deps_team`'s tools were taken for a service
    `deps`, so a key for another service reached them through the front door (the service
    itself refused it: no call ran, but the front door must say "unknown tool")."""
    import asyncio

    from fastmcp import Client as InProcess

    from mcp_common.frontdoor import _allowed, build_frontdoor

    tool = {"name": "t", "inputSchema": {"type": "object"}}
    server = build_frontdoor({"deps_team": {"tools": [tool]}, "math": {"tools": [tool]}}, None)

    async def call() -> Any:
        token = _allowed.set(frozenset({"math"}))
        try:
            async with InProcess(server) as mcp:
                listed = {t.name for t in await mcp.list_tools()}
                refused = await mcp.call_tool("deps_team_t", {}, raise_on_error=False)
                return listed, refused
        finally:
            _allowed.reset(token)

    listed, refused = asyncio.run(call())
    assert listed == {"math_t"}
    assert refused.is_error
    assert "Unknown tool" in refused.content[0].text


def test_two_tools_with_one_front_door_name_are_refused_at_build():
    from mcp_common.frontdoor import build_frontdoor

    catalog = {"a": {"tools": [{"name": "b_c"}]}, "a_b": {"tools": [{"name": "c"}]}}
    with pytest.raises(ValueError, match="both have a tool the front door would name 'a_b_c'"):
        build_frontdoor(catalog, None)


async def wait_until(condition: Any, within: float = 5.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_caller_that_leaves_stops_the_services_tool(door, service):
    _, module = service
    progressed = asyncio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with client(door) as mcp:
        arguments = {"steps": 200, "label": "left", "delay": 0.05}
        call = asyncio.create_task(
            mcp.call_tool("streamer_count", arguments, progress_handler=on_progress)
        )
        await asyncio.wait_for(progressed.wait(), 5)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await wait_until(lambda: module.STOPPED.get("left") == 1)


async def cancel_through_the_door(
    door: str, label: str, canceller: str, caller: str = KEY
) -> tuple[int, str]:
    """Start a call with `caller`'s key (alice's) through the front door, then post
    notifications/cancelled for its id with `canceller`'s key; (the cancellation's status,
    the rest of the call's stream)."""
    body = {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "streamer_count",
            "arguments": {"steps": 24, "label": label, "delay": 0.05},
            "_meta": {"progressToken": "p"},
        },
    }
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42}}
    url = f"{door}/mcp"
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("POST", url, json=body, headers={**MCP_HEADERS, "x-api-key": caller}) as stream,
    ):
        lines = stream.aiter_lines()
        async for line in lines:
            if "notifications/progress" in line:
                break
        answer = await http.post(url, json=cancel, headers={**MCP_HEADERS, "x-api-key": canceller})
        rest = "".join([line async for line in lines])
    return answer.status_code, rest


async def test_a_callers_cancellation_stops_the_services_tool(door, service):
    _, module = service
    status, rest = await cancel_through_the_door(door, "cancelled", canceller=KEY)
    assert status == 202
    assert "counted 24" not in rest
    await wait_until(lambda: module.STOPPED.get("cancelled") == 1)


async def test_nobody_cancels_another_callers_call_through_the_door(door, service):
    _, module = service
    status, rest = await cancel_through_the_door(door, "theirs", canceller=OTHER_KEY)
    assert status == 202  # acknowledged, as any notification is, but it cancelled nothing
    assert "counted 24" in rest
    assert "theirs" not in module.STOPPED


async def test_one_caller_cannot_hold_more_calls_than_its_share(door):
    """A flood by one principal: past MCP_MAX_CALLS_PER_PRINCIPAL (2 here) calls in flight,
    the next is refused at once, while another caller's call still runs. The caller's share
    is the same through the front door as direct: its credential goes with the call."""
    async with (
        client(door) as mcp,
        Client(StreamableHttpTransport(f"{door}/mcp", headers={"x-api-key": OTHER_KEY})) as other,
    ):
        slow = {"steps": 20, "delay": 0.05}
        held = [asyncio.create_task(mcp.call_tool("streamer_count", slow)) for _ in range(2)]
        await asyncio.sleep(0.3)
        refused = await mcp.call_tool("streamer_count", {"steps": 1}, raise_on_error=False)
        theirs = await other.call_tool("streamer_count", {"steps": 1})
        results = await asyncio.gather(*held)
    assert refused.is_error
    assert "already has 2 calls running" in refused.content[0].text
    assert theirs.data == "counted 1"
    assert [result.data for result in results] == ["counted 20", "counted 20"]


class Silent:
    """An upstream that never answers (a service that hangs, or a network that drops)."""

    @contextlib.asynccontextmanager
    async def forward(
        self, service: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None


async def test_a_call_the_service_never_answers_ends_at_its_deadline(monkeypatch):
    from mcp_common import frontdoor
    from mcp_common.frontdoor import frontdoor_app

    monkeypatch.setattr(frontdoor, "DEADLINE_MARGIN_SECONDS", 0.2)  # 2 s deployed

    catalog = {"streamer": {"tools": [DEFINITION], "deadline_seconds": 0.5}}
    with serve(frontdoor_app(catalog, Silent(), SETTINGS)) as base:
        started = time.monotonic()
        async with client(base) as mcp:
            result = await mcp.call_tool("streamer_count", {"steps": 1}, raise_on_error=False)
        waited = time.monotonic() - started
    assert result.is_error
    assert "did not answer within" in result.content[0].text
    assert waited < 0.5 + 0.2 + 3


async def test_an_unreachable_service_is_a_tool_error_that_names_it():
    from mcp_common.frontdoor import HttpUpstream, frontdoor_app

    upstream = HttpUpstream(httpx.AsyncClient(timeout=5), f"http://127.0.0.1:{free_port()}")
    catalog = {"streamer": {"tools": [DEFINITION]}}
    with serve(frontdoor_app(catalog, upstream, SETTINGS)) as base:
        async with client(base) as mcp:
            result = await mcp.call_tool("streamer_count", {"steps": 1}, raise_on_error=False)
    assert result.is_error
    assert result.content[0].text == "service 'streamer' could not be reached (ConnectError)"


async def test_a_credential_the_service_refuses_stays_its_refusal(service):
    """The front door's view of a key can lag the service's (a revocation within its 30 s
    cache): the call then gets the service's own 401, not a success or a 500."""
    from mcp_common.frontdoor import HttpUpstream, frontdoor_app

    revoked = "mcpk_frontdoor_revoked_0123456789"
    door_records = json.dumps([{"name": "eve", "sha256": hash_key(revoked), "services": ["*"]}])
    door_settings = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=door_records)
    upstream = HttpUpstream(httpx.AsyncClient(timeout=10), service[0])
    catalog = {"streamer": {"tools": [DEFINITION]}}
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "streamer_count", "arguments": {"steps": 1}},
    }
    with serve(frontdoor_app(catalog, upstream, door_settings)) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"{base}/mcp", json=body, headers={**MCP_HEADERS, "x-api-key": revoked}
            )
    assert answer.status_code == 401, answer.text
    assert "invalid_token" in answer.headers["www-authenticate"]


def test_with_key_records_per_service_in_ssm_each_services_own_decide_read_ten_a_call():
    """Deployed, each service's records are its own SSM parameter (`<prefix>/<service>`): a
    record in one service's parameter reaches that service only, whatever it says. At fleet
    size the front door reads them ten a call with one client (it made a client and a call
    per service: 200 of each at 200 services, against SSM's 40 calls a second)."""
    import boto3

    from fleet.testing import fake_aws
    from mcp_common.frontdoor import Visibility

    prefix = "/mcp-fleet/t/api-keys"
    services = [f"svc{index:02d}" for index in range(25)]
    everywhere = "mcpk_frontdoor_everywhere_0123456789"
    one = "mcpk_frontdoor_one_0123456789"
    with fake_aws():
        ssm = boto3.client("ssm")
        for service in services:
            records = [{"name": "ops", "sha256": hash_key(everywhere), "services": ["*"]}]
            if service == "svc03":
                records.append({"name": "eve", "sha256": hash_key(one), "services": ["*"]})
            value = json.dumps(records)
            ssm.put_parameter(Name=f"{prefix}/{service}", Value=value, Type="SecureString")
        calls: list[str] = []
        boto3.DEFAULT_SESSION.events.register(
            "before-call.ssm", lambda model, **_: calls.append(model.name)
        )
        settings = app_settings(MCP_AUTH="api_key", MCP_API_KEYS_SSM_PREFIX=prefix).auth
        visibility = Visibility(services, settings)

        async def callers() -> tuple[Any, Any, Any]:
            return (
                await visibility.caller(one),
                await visibility.caller(everywhere),
                await visibility.caller("mcpk_nobody_0123456789"),
            )

        only_one, everyone, nobody = asyncio.run(callers())
    assert only_one.services == {"svc03"}
    assert only_one.principal == "svc03/eve"
    assert everyone.services == set(services)
    assert nobody.services == frozenset()
    assert nobody.refusal is not None
    assert nobody.refusal.status == 401
    assert calls == ["GetParameters"] * 3  # 25 parameters, ten a call, read once for all


async def test_a_key_named_like_another_services_key_cancels_nothing_of_its(service):
    """Key records per service in SSM: each team names its own keys. A team that names its key
    as another service's caller is named is not that caller at the front door: it cancelled
    that caller's calls there (and shared its calls-in-flight share), which it could not do
    calling directly, since the other service does not know its key at all."""
    import boto3

    from fleet.testing import fake_aws
    from mcp_common.frontdoor import HttpUpstream, frontdoor_app

    prefix = "/mcp-fleet/t/api-keys"
    namesake = "mcpk_frontdoor_namesake_0123456789"
    own = {"streamer": (KEY, "alice"), "other": (namesake, "alice")}
    with fake_aws():
        ssm = boto3.client("ssm")
        for name, (key, record) in own.items():
            value = json.dumps([{"name": record, "sha256": hash_key(key), "services": ["*"]}])
            ssm.put_parameter(Name=f"{prefix}/{name}", Value=value, Type="SecureString")
        door_settings = app_settings(MCP_AUTH="api_key", MCP_API_KEYS_SSM_PREFIX=prefix)
        catalog = {name: {"tools": [DEFINITION]} for name in own}
        upstream = HttpUpstream(httpx.AsyncClient(timeout=10), service[0])
        with serve(frontdoor_app(catalog, upstream, door_settings)) as base:
            status, rest = await cancel_through_the_door(base, "namesake", canceller=namesake)
    assert status == 202
    assert "counted 24" in rest
    assert "namesake" not in service[1].STOPPED


def small_bodies() -> Any:
    return app_settings(MCP_AUTH="api_key", MCP_API_KEYS=RECORDS, MCP_MAX_BODY_BYTES="2048")


async def test_the_search_endpoint_is_guarded_as_the_direct_one(service):
    """Attack (an attacker's review): `/search/mcp` in the front door's own app (run.sh)
    skipped the edge's guard, which matched `/mcp` only: no body bound, no calls-in-flight
    share, no cancellation."""
    from mcp_common.frontdoor import HttpUpstream, fleet_app

    upstream = HttpUpstream(httpx.AsyncClient(timeout=10), service[0])
    app = fleet_app({"streamer": {"tools": [DEFINITION]}}, upstream, small_bodies())
    padding = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "y" * 4096}}
    with serve(app) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            for path in ("/mcp", "/search/mcp"):
                answer = await http.post(
                    f"{base}{path}", json=padding, headers={**MCP_HEADERS, "x-api-key": KEY}
                )
                assert answer.status_code == 413, (path, answer.text)
        async with Client(
            StreamableHttpTransport(f"{base}/search/mcp", headers={"x-api-key": KEY})
        ) as search:
            assert {tool.name for tool in await search.list_tools()} == {
                "search_tools",
                "call_tool",
            }


async def test_hostile_call_bodies_are_answered_not_a_500(door):
    """Attack: a deeply nested body, or a tool name that is not a string, raised inside the
    front door's forwarding (RecursionError, TypeError: a 500 and a traceback)."""
    nested = b"[" * 5000
    odd_name = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": []}}
    async with httpx.AsyncClient(timeout=10) as http:
        headers = {**MCP_HEADERS, "x-api-key": KEY}
        deep = await http.post(f"{door}/mcp", content=nested, headers=headers)
        typed = await http.post(f"{door}/mcp", json=odd_name, headers=headers)
    for answer in (deep, typed):
        assert answer.status_code < 500, answer.text
        assert "Traceback" not in answer.text


class Breaks:
    """An upstream whose stream begins (a progress event), then breaks (a dropped link)."""

    @contextlib.asynccontextmanager
    async def forward(
        self, service: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[Any]:
        from mcp_common.frontdoor import Answer

        token = json.loads(body)["params"].get("_meta", {}).get("progressToken")

        async def events() -> AsyncIterator[bytes]:
            progress = {"progressToken": token, "progress": 1, "total": 2}
            note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": progress}
            yield f"event: message\ndata: {json.dumps(note)}\n\n".encode()
            raise ConnectionResetError("the link dropped")

        yield Answer(200, {"content-type": "text/event-stream"}, events())


async def test_a_stream_that_breaks_ends_with_a_tool_error_not_silence():
    """Attack: once a streamed answer had begun, a broken upstream ended the stream with no
    response, and the caller waited for one until its own timeout."""
    from mcp_common.frontdoor import frontdoor_app

    catalog = {"streamer": {"tools": [DEFINITION]}}
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    with serve(frontdoor_app(catalog, Breaks(), SETTINGS)) as base:
        transport = StreamableHttpTransport(f"{base}/mcp", headers={"x-api-key": KEY})
        async with Client(transport, timeout=10) as mcp:
            result = await mcp.call_tool(
                "streamer_count", {"steps": 2}, progress_handler=on_progress, raise_on_error=False
            )
    assert seen == [1]
    assert result.is_error
    assert (
        "service 'streamer' could not be reached (ConnectionResetError)" in result.content[0].text
    )


async def test_a_call_cancelled_before_its_answer_began_ends_cleanly(tmp_path_factory):
    """Attack: a buffered service answers only at its end; cancelling the call before then
    made the front door send a tool error whose body the cancel guard emptied: h11 refused
    the short body, and the connection dropped with a traceback in the log."""
    from mcp_common.app import create_app
    from mcp_common.frontdoor import HttpUpstream, frontdoor_app

    root = tmp_path_factory.mktemp("buffered_service")
    sys.path.insert(0, str(root))
    package = write_tools_package(root, "frontdoor_buffered_tools", {"tools": TOOLS})
    importlib.import_module(f"{package}.tools")
    buffered = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=RECORDS)
    service_app = create_app(ServiceSpec(name="buffered", tools_package=package), buffered)
    definition = {**DEFINITION}
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "buffered_count", "arguments": {"steps": 40, "delay": 0.05}},
    }
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
    headers = {**MCP_HEADERS, "x-api-key": KEY}
    with serve(service_app) as service_base:
        upstream = HttpUpstream(httpx.AsyncClient(timeout=10), service_base)
        catalog = {"buffered": {"tools": [definition]}}
        with serve(frontdoor_app(catalog, upstream, SETTINGS)) as base:
            async with httpx.AsyncClient(timeout=10) as http:
                pending = asyncio.create_task(http.post(f"{base}/mcp", json=call, headers=headers))
                await asyncio.sleep(0.3)
                cancelled = await http.post(f"{base}/mcp", json=cancel, headers=headers)
                answer = await pending
    assert cancelled.status_code == 202
    assert answer.status_code == 204, answer.text
    assert answer.content == b""


def test_a_forged_credential_costs_one_check_not_one_per_service(monkeypatch):
    """Attack: with one authenticator for the fleet, an unknown credential was checked once
    per service (at 200 services, 200 signature checks for each forged token)."""
    from mcp_common.auth import ApiKeyAuthenticator
    from mcp_common.frontdoor import Visibility

    checks: list[str] = []
    original = ApiKeyAuthenticator.authenticate

    async def counted(self: Any, credential: str | None, service: str) -> str:
        checks.append(service)
        return await original(self, credential, service)

    monkeypatch.setattr(ApiKeyAuthenticator, "authenticate", counted)
    services = [f"svc{index:02d}" for index in range(50)]
    visibility = Visibility(services, SETTINGS.auth)
    forged = asyncio.run(visibility.caller("mcpk_forged_0123456789"))
    assert forged.refusal is not None
    assert forged.refusal.status == 401
    assert len(checks) == 1
    checks.clear()
    known = asyncio.run(visibility.caller(KEY))
    assert known.services == set(services)
    assert len(checks) == len(services)


def test_a_failed_batch_fails_its_own_services_and_is_shared_not_retried_by_each():
    """An attacker's review: one failing GetParameters failed every service's read, and a
    failure was not shared, so each of 200 stores retried the whole read in turn."""
    import boto3
    from botocore.stub import Stubber

    from mcp_common.apikeys import SsmParameterBatch

    names = [f"/mcp-fleet/t/api-keys/s{index:02d}" for index in range(12)]
    now = [100.0]
    client = boto3.client(
        "ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    batch = SsmParameterBatch(names, clock=lambda: now[0], client=client)
    with Stubber(client) as ssm:
        ssm.add_client_error("get_parameters", service_error_code="ThrottlingException")
        found = [{"Name": name, "Value": "[]", "Type": "SecureString"} for name in names[10:]]
        ssm.add_response("get_parameters", {"Parameters": found})
        assert batch.read(names[11]) == "[]"  # the second batch answered
        for name in names[:10]:  # the first failed: its names say so, without a new call
            with pytest.raises(Exception, match="ThrottlingException"):
                batch.read(name)
        ssm.assert_no_pending_responses()
        now[0] += batch.COALESCE_SECONDS + 1  # past the window: read again, both batches
        ssm.add_response("get_parameters", {"Parameters": [], "InvalidParameters": names[:10]})
        ssm.add_response("get_parameters", {"Parameters": found})
        with pytest.raises(LookupError, match="does not exist"):
            batch.read(names[0])
        assert batch.read(names[10]) == "[]"


def test_a_lambda_invoke_carries_the_callers_api_domain_and_stage():
    """An attacker's review: a service refusing a forwarded call named its metadata at
    `http://<host>/...` without the stage (the invoke's request context had neither), a URL
    no client can reach. The adapter's request context (no client can forge it) is passed on."""
    from mcp_common.frontdoor import LambdaUpstream, _gateway, _gateway_context

    context = json.dumps({"domainName": "api.example.com", "stage": "prod", "other": 1})
    gateway = _gateway_context({b"x-amzn-request-context": context.encode()})
    assert gateway == {"domainName": "api.example.com", "stage": "prod"}
    token = _gateway.set(gateway)
    try:
        event = LambdaUpstream("fleet", set()).event("math", b"{}", {"host": "api.example.com"})
    finally:
        _gateway.reset(token)
    assert event["requestContext"]["domainName"] == "api.example.com"
    assert event["requestContext"]["stage"] == "prod"
    assert event["path"] == "/math/mcp"
