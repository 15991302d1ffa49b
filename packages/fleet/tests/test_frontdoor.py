"""The whole fleet at one endpoint (`/mcp`, `/search/mcp`) under `fleet dev`, over real HTTP
with fastmcp's client: every service's tools as declared, calls that reach the service with
the caller's own credential, what each key may see, and the refusals a direct call gets.

Everything is read from what discovery finds, never from today's list of services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from fleet.dev import build_fleet_app
from fleet.smoke import _smoke_call
from fleet.testing import app_settings, serve
from fleet.workspace import find_root, service_dirs
from mcp_common.apikeys import hash_key

ROOT = find_root()
SERVICES = service_dirs(ROOT)
EVERYTHING = "mcpk_frontdoor_everything_0123456789"


def key_for(service: str) -> str:
    return f"mcpk_frontdoor_{service}_0123456789"


RECORDS = json.dumps(
    [{"name": "all", "sha256": hash_key(EVERYTHING), "services": ["*"]}]
    + [
        {"name": s.name, "sha256": hash_key(key_for(s.name)), "services": [s.name]}
        for s in SERVICES
    ]
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[tuple[str, Any]]:
    import os
    from pathlib import Path

    here = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))  # a local store (memory's) lands in a scratch folder
    try:
        settings = app_settings(MCP_AUTH="api_key", MCP_API_KEYS=RECORDS, MCP_PRIME="false")
        app = build_fleet_app(SERVICES, settings)
        with serve(app) as base:
            yield base, app
    finally:
        os.chdir(here)


def client(url: str, key: str | None) -> Client:
    headers = {"x-api-key": key} if key else {}
    return Client(StreamableHttpTransport(url, headers=headers))


async def declared(app: Any) -> dict[str, dict[str, Any]]:
    """{service: {tool name: tool}} as each service itself lists them."""
    found = {}
    for name, served in app.apps.items():
        tools = await served.state.mcp_server.list_tools()
        found[name] = {tool.name: tool.to_mcp_tool() for tool in tools}
    return found


async def test_every_tool_of_every_service_as_its_service_declares_it(fleet):
    base, app = fleet
    services = await declared(app)
    async with client(f"{base}/mcp", EVERYTHING) as door:
        listed = {tool.name: tool for tool in await door.list_tools()}
    expected = {f"{s}_{t}": tool for s, tools in services.items() for t, tool in tools.items()}
    assert set(listed) == set(expected)
    for name, tool in expected.items():
        assert listed[name].input_schema == tool.input_schema, name
        assert listed[name].description == tool.description, name
        assert listed[name].annotations == tool.annotations, name


async def answers_as_a_direct_call(base: str, door: str, app: Any) -> list[str]:
    """Call, for each service with a read-only example (fleet smoke's choice), that tool
    directly and through the front door at `door`: the same answer, a tool error included (a
    service whose provider is unreachable here answers a tool error both ways). The services
    called."""
    called = []
    for service, tools in (await declared(app)).items():
        choice = _smoke_call(list(tools.values()))
        if choice is None:
            continue
        tool, arguments = choice
        async with client(f"{base}/{service}/mcp", EVERYTHING) as direct:
            expected = await direct.call_tool(tool, arguments, raise_on_error=False)
        async with client(f"{door}/mcp", EVERYTHING) as mcp:
            through = await mcp.call_tool(f"{service}_{tool}", arguments, raise_on_error=False)
        assert through.is_error == expected.is_error, (service, through.content)
        assert through.structured_content == expected.structured_content, service
        called.append(service)
    return called


async def test_a_call_reaches_its_service_and_answers_as_a_direct_call(fleet):
    base, app = fleet
    called = len(await answers_as_a_direct_call(base, base, app))
    assert called, "no service has a read-only tool with an example to call"


async def test_a_key_sees_and_calls_only_its_own_services(fleet):
    base, app = fleet
    services = await declared(app)
    for service, tools in services.items():
        async with client(f"{base}/mcp", key_for(service)) as door:
            listed = {tool.name for tool in await door.list_tools()}
            assert listed == {f"{service}_{tool}" for tool in tools}, service
            others = [
                (other, name)
                for other, names in services.items()
                if other != service
                for name in names
            ]
            if others:
                other, name = others[0]
                refused = await door.call_tool(f"{other}_{name}", {}, raise_on_error=False)
                assert refused.is_error
                assert "Unknown tool" in str(refused.content[0].text)


async def test_no_credential_and_an_unknown_key_are_refused_as_a_service_refuses(fleet):
    import httpx2 as httpx

    base, _ = fleet
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    for path in ("/mcp", "/search/mcp"):
        async with httpx.AsyncClient() as http:
            missing = await http.post(f"{base}{path}", json=body, headers=headers)
            wrong = await http.post(
                f"{base}{path}", json=body, headers={**headers, "x-api-key": "mcpk_nobody_00000"}
            )
        assert missing.status_code == 401, path
        assert wrong.status_code == 401, path
        assert "www-authenticate" in missing.headers


async def test_search_mode_shows_a_few_tools_and_finds_each_by_its_words(fleet):
    base, app = fleet
    services = await declared(app)
    async with client(f"{base}/search/mcp", EVERYTHING) as door:
        listed = {tool.name for tool in await door.list_tools()}
        assert listed == {"search_tools", "call_tool"}  # a few tools, whatever the fleet's size
        for service, tools in services.items():
            for name, tool in tools.items():
                query = f"{name.replace('_', ' ')} {tool.description or ''}"[:200]
                found = await door.call_tool("search_tools", {"query": query})
                assert f"{service}_{name}" in json.dumps(found.structured_content), query
        weather = services.get("weather", {})
        if any("forecast" in name for name in weather):  # the issue's own example
            found = await door.call_tool("search_tools", {"query": "weather forecast in Paris"})
            assert "weather_" in json.dumps(found.structured_content)


async def test_the_catalog_at_the_root_is_authenticated_like_everything_else(fleet):
    """Issue 31: `GET /` listed every service's tools to anyone when MCP_AUTH=api_key."""
    import httpx2 as httpx

    base, app = fleet
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{base}/")).status_code == 401
        everything = (await http.get(f"{base}/", headers={"x-api-key": EVERYTHING})).json()
        assert {s["name"] for s in everything["services"]} == set(app.apps)
        for service in app.apps:
            mine = await http.get(f"{base}/", headers={"x-api-key": key_for(service)})
            assert [s["name"] for s in mine.json()["services"]] == [service]


class AdapterStandIn:
    """Lambda's Invoke and InvokeWithResponseStream at the edge, for the fleet served on
    loopback: the REST proxy event becomes the HTTP request the Web Adapter would make, and
    the answer comes back in the adapter's formats (a proxy response; a JSON prelude, eight NUL
    bytes and the body). It records what was invoked."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.invoked: list[tuple[str, str, str]] = []

    def _forward(self, FunctionName: str, Qualifier: str, Payload: bytes, kind: str):
        import httpx2 as httpx

        event = json.loads(Payload)
        self.invoked.append((FunctionName, Qualifier, kind))
        assert event["httpMethod"] == "POST"
        # The caller's Host goes with it: the service accepts it as it accepts a direct call's.
        assert event["headers"]["host"].startswith("127.0.0.1:")
        assert FunctionName.endswith(f"-{event['path'].split('/')[1]}")  # its own function
        return httpx.post(
            f"{self.base}{event['path']}", content=event["body"], headers=event["headers"]
        )

    def invoke(self, **call: Any) -> dict[str, Any]:
        import io

        response = self._forward(**call, kind="invoke")
        # As the Web Adapter answers a REST API: every header in multiValueHeaders, none in
        # headers (an attacker's review: the front door read `headers` only, and relayed
        # an answer without its content type).
        multi: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            multi.setdefault(name, []).append(value)
        body = {"statusCode": response.status_code, "headers": {}, "multiValueHeaders": multi}
        body["body"] = response.text
        return {"Payload": io.BytesIO(json.dumps(body).encode())}

    def invoke_with_response_stream(self, **call: Any) -> dict[str, Any]:
        response = self._forward(**call, kind="stream")
        prelude = json.dumps(
            {"statusCode": response.status_code, "headers": dict(response.headers)}
        )
        body = response.content
        json_answer = response.headers.get("content-type", "").startswith("application/json")
        if response.status_code == 200 and json_answer:
            # As a streaming service answers: server-sent events, lines ended with CRLF.
            prelude = json.dumps(
                {"statusCode": 200, "headers": {"content-type": "text/event-stream"}}
            )
            body = b"event: message\r\ndata: " + body + b"\r\n\r\n"
        data = prelude.encode() + b"\x00" * 8 + body
        chunks = [data[i : i + 7] for i in range(0, len(data), 7)]  # split anywhere
        return {"EventStream": [{"PayloadChunk": {"Payload": chunk}} for chunk in chunks]}


async def test_in_lambda_each_call_invokes_its_services_serving_alias(fleet):
    """The deployed front door calls `<stack>-<service>:serving` directly (Invoke when buffered,
    InvokeWithResponseStream when streaming), never a second API Gateway request, and answers
    as the service does."""
    from fleet.catalog import frontdoor_catalog
    from mcp_common.frontdoor import LambdaUpstream, frontdoor_app

    base, app = fleet
    servers = [(s.state.service, s.state.mcp_server) for s in app.apps.values()]
    catalog = await frontdoor_catalog(servers)
    stand_in = AdapterStandIn(base)
    streaming = set(list(catalog)[::2])  # some each way: both formats are read
    upstream = LambdaUpstream("fleet", streaming, client=stand_in)
    door_app = frontdoor_app(catalog, upstream, app.settings)
    with serve(door_app) as door:
        called = await answers_as_a_direct_call(base, door, app)
    assert called
    assert [invoked[0] for invoked in stand_in.invoked] == [f"fleet-{s}" for s in called]
    for (_, qualifier, kind), service in zip(stand_in.invoked, called, strict=True):
        assert (qualifier, kind) == ("serving", "stream" if service in streaming else "invoke")


async def test_its_own_run_sh_serves_the_built_catalog_against_the_services(fleet, tmp_path):
    """Issue 31: the front door's artifact (fleet build --frontdoor: run.sh and the catalog
    built from discovery) started as Lambda starts it, its calls going to the services (here
    the fleet on loopback, standing in for their functions)."""
    from fleet.build import build_frontdoor
    from fleet.testing import dev_env, start_service

    base, app = fleet
    import asyncio

    out = await asyncio.to_thread(build_frontdoor, ROOT, tmp_path / "frontdoor", lambda _: None)
    catalog = json.loads((out / "catalog.json").read_text())["services"]
    assert set(catalog) == set(app.apps)
    from fleet.template import OWN_TEMPLATE, load_template

    for folder in SERVICES:  # each call waits as long as the service's deployed deadline
        outputs = load_template(folder.path / OWN_TEMPLATE).get("Outputs") or {}
        deadline = (outputs.get("ToolTimeout") or {}).get("Value")  # MCP_TOOL_TIMEOUT_SECONDS
        from fleet.build import own_deadline

        expected = own_deadline(outputs)  # a literal number, or unknown until deploy (None)
        assert catalog[folder.name].get("deadline_seconds") == expected, folder.name
        assert expected is None or expected == float(deadline)
    env = dev_env(
        MCP_AUTH="api_key", MCP_API_KEYS=RECORDS, MCP_FRONTDOOR_UPSTREAM=base, MCP_PRIME="false"
    )
    with start_service(out / "run.sh", "/health", env) as door:
        health = json.loads(await _get(f"{door.base}/health"))
        assert health["tools"] == sum(len(entry["tools"]) for entry in catalog.values())
        services = await declared(app)
        for path in ("/mcp", "/search/mcp"):
            async with client(f"{door.base}{path}", EVERYTHING) as mcp:
                assert await mcp.list_tools(), (path, door.output()[-2000:])
        async with client(f"{door.base}/mcp", EVERYTHING) as mcp:
            for service, tools in services.items():
                choice = _smoke_call(list(tools.values()))
                if choice is not None:
                    tool, arguments = choice
                    result = await mcp.call_tool(
                        f"{service}_{tool}", arguments, raise_on_error=False
                    )
                    assert result.content, service


async def _get(url: str) -> str:
    import httpx2 as httpx

    async with httpx.AsyncClient() as http:
        return (await http.get(url)).text


async def test_search_finds_and_calls_only_what_the_key_may_call(fleet):
    """A key for one service searches that service's tools only, and the call tool refuses
    another service's tool as the direct endpoint does."""
    base, app = fleet
    services = await declared(app)
    for service in services:
        others = [(o, n) for o, names in services.items() if o != service for n in names]
        async with client(f"{base}/search/mcp", key_for(service)) as door:
            for other, name in others[:1]:
                found = await door.call_tool("search_tools", {"query": name.replace("_", " ")})
                assert f"{other}_{name}" not in json.dumps(found.structured_content)
                refused = await door.call_tool(
                    "call_tool", {"name": f"{other}_{name}", "arguments": {}}, raise_on_error=False
                )
                assert refused.is_error


async def test_one_protected_resource_and_a_challenge_that_leads_to_it(fleet):
    """Issue 31: the front door is one protected resource; a 401 points a client to its
    RFC 9728 metadata, as each service's does."""
    import httpx2 as httpx

    base, _ = fleet
    async with httpx.AsyncClient() as http:
        for path in ("/mcp", "/search/mcp"):
            refused = await http.post(
                f"{base}{path}", json={}, headers={"accept": "application/json"}
            )
            challenge = refused.headers["www-authenticate"]
            url = f"{base}/.well-known/oauth-protected-resource{path}"
            assert f'resource_metadata="{url}"' in challenge, challenge
            metadata = (await http.get(url)).json()
            assert metadata["resource"] == f"{base}{path}"


def test_fleet_list_reads_a_fleets_catalog_through_its_front_door(fleet, capsys, monkeypatch):
    """Issue 31: `fleet list --base-url` lists what the front door serves the caller (a key
    for one service: that service's tools, by their own names), not the repository."""
    import asyncio

    from fleet.cli import main

    base, app = fleet
    monkeypatch.delenv("MCP_API_KEY", raising=False)
    services = asyncio.run(declared(app))
    assert main(["list", "--base-url", base, "--json", "--key", EVERYTHING]) == 0
    listed = json.loads(capsys.readouterr().out)["services"]
    assert {entry["name"]: {t["name"] for t in entry["tools"]} for entry in listed} == {
        name: set(tools) for name, tools in services.items() if tools
    }
    assert all(entry["mcp_url"] == f"{base}/{entry['name']}/mcp" for entry in listed)
    one = min(services)
    assert main(["list", "--base-url", base, "--json", "--key", key_for(one)]) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)["services"]] == [one]
    assert main(["list", "--base-url", base, "--key", "mcpk_not_a_key_0123456789"]) == 1
    said = capsys.readouterr().err
    assert f"cannot read the catalog at {base}/mcp: HTTP 401" in said, said


async def test_smoke_checks_the_front_door_as_a_client_meets_it(fleet):
    from fleet.smoke import check_front_door

    base, app = fleet
    names = sorted(app.apps)
    passed = await check_front_door(base, EVERYTHING, names)
    assert passed.ok, passed.failed
    assert passed.passed[0] == "401 + metadata"
    assert f"tools of {len(names)} services" in passed.line()
    assert passed.passed[-1] == "search"
    # A front door that lists a service the stack does not name fails, naming it.
    strange = await check_front_door(base, EVERYTHING, names[1:])
    assert not strange.ok
    assert f"/mcp lists tools of {[names[0]]}" in strange.line()


COGNITO = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_FRONTDOOR"
PEOPLE, MACHINES = "people-client", "machine-client"


@pytest.fixture(scope="module")
def jwt_fleet(tmp_path_factory) -> Iterator[tuple[str, Any, Any]]:
    """The fleet under `fleet dev` as the template wires it with Cognito (jwt mode, the
    `mcp-fleet` resource server), and the issuer of its tokens."""
    import os
    from pathlib import Path

    from fleet.testing import JwtIssuer

    issuer = JwtIssuer(issuer=COGNITO, kid="frontdoor-key")
    here = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        with serve(issuer.jwks_app()) as jwks:
            settings = app_settings(
                MCP_AUTH="jwt",
                MCP_JWT_JWKS_URI=f"{jwks}/.well-known/jwks.json",
                MCP_JWT_ISSUER=COGNITO,
                MCP_JWT_AUDIENCE=f"{PEOPLE},{MACHINES}",
                MCP_JWT_RESOURCE_SERVER="mcp-fleet",
                MCP_PRIME="false",
            )
            with serve(build_fleet_app(SERVICES, settings)) as base:
                yield base, build_fleet_app, issuer
    finally:
        os.chdir(here)


async def test_a_token_sees_and_calls_the_services_its_scopes_and_groups_name(jwt_fleet):
    """Issue 31: one sign-in. A person's token (scope mcp-fleet/services) reaches the services
    its groups name, `all` every one; the machine client's (mcp-fleet/all) every one; a
    per-service scope its service. Another service's tool is unknown to it."""
    base, _, issuer = jwt_fleet
    names = [folder.name for folder in SERVICES]

    def bearer(token: str) -> Client:
        transport = StreamableHttpTransport(f"{base}/mcp", auth=token)
        return Client(transport)

    async def services_listed(token: str) -> set[str]:
        async with bearer(token) as door:
            tools = await door.list_tools()
        return {tool.meta["fleet"]["service"] for tool in tools}

    def person(*groups: str) -> str:
        return issuer.cognito_token(
            PEOPLE, "mcp-fleet/services", **{"cognito:groups": list(groups)}
        )

    one = names[0]
    assert await services_listed(person(one)) == {one}
    assert await services_listed(person("all")) == set(names)
    assert await services_listed(issuer.cognito_token(MACHINES, "mcp-fleet/all", sub=None)) == set(
        names
    )
    assert await services_listed(issuer.cognito_token(PEOPLE, f"mcp-fleet/{one}")) == {one}
    if len(names) > 1:
        other = names[1]
        async with bearer(person(one)) as door:
            refused = await door.call_tool(f"{other}_anything", {}, raise_on_error=False)
        assert refused.is_error
        assert "Unknown tool" in refused.content[0].text
    # A token that reaches no service is refused as a service refuses it (403: no scope).
    import httpx2 as httpx

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {person('nobody-group')}",
    }
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{base}/mcp", json=body, headers=headers)
    assert answer.status_code == 403, answer.text
