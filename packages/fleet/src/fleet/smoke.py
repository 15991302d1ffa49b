"""`fleet smoke`: after a deploy, one command checks every service of a stack (or of a local
fleet at `--base-url`), as a client would meet it.

For each service: its health (and the version and commit it reports), the 401 that points
an unauthenticated client to its RFC 9728 metadata (and that metadata), the MCP handshake,
`tools/list` against what the repository's discovery finds, and one call of a read-only tool
that needs no arguments or declares a smoke example (`@tool(meta={"smoke": {...}})`). One
line per service, a summary, and a non-zero exit on any failure.

And the front door (`fleet`): its 401 and RFC 9728 metadata, `/mcp` listing only tools of the
fleet's services (each named by its `_meta`) and one call through it, and `/search/mcp`
showing its two tools.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleet import aws
from fleet.workspace import FleetError, find_root, service_dirs

TIMEOUT_SECONDS = 20.0
"""Every request of the smoke test (a cold start behind API Gateway takes a few seconds)."""


@dataclass
class Result:
    service: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    version: str = "?"

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        details = "; ".join(self.failed) if self.failed else ", ".join(self.passed)
        return f"{mark} {self.service:<14} {self.version:<28} {details}"


def _expected_tools() -> dict[str, int]:
    """{service: how many tools the repository's discovery finds}."""
    from mcp_common.discovery import discover_tools

    counts = {}
    for folder in service_dirs(find_root()):
        try:
            counts[folder.name] = len(discover_tools(folder.load_spec().tools_package))
        except Exception:  # noqa: BLE001, S112 - a broken folder is fleet check's to report
            continue
    return counts


def _smoke_call(tools: list[Any]) -> tuple[str, dict[str, Any]] | None:
    """A read-only tool to call: one with a declared smoke example, else one without
    required arguments."""
    from fleet.testing import declared_example

    for tool in tools:
        example = declared_example(tool)
        read_only = tool.annotations is not None and tool.annotations.read_only_hint
        if read_only and example is not None:
            return tool.name, example
    for tool in tools:
        read_only = tool.annotations is not None and tool.annotations.read_only_hint
        if read_only and not tool.input_schema.get("required"):
            return tool.name, {}
    return None


async def check_service(
    base: str, service: str, credential: str | None, expected_tools: int | None
) -> Result:
    """Every check for one service; a failed step ends it (the rest would only repeat it)."""
    import httpx2 as httpx
    from fastmcp import Client

    result = Result(service)
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
        try:
            health = await http.get(f"{base}/{service}/health")
            if health.status_code != 200:
                result.failed.append(f"health: HTTP {health.status_code}")
                return result
            body = health.json()
            version = body.get("version", "?")
            commit = body.get("commit")
            function = body.get("function_version")
            result.version = " ".join(
                part for part in (version, commit, function and f"v{function}") if part
            )
            result.passed.append("health")
            if not await _challenge(http, base, f"/{service}/mcp", credential, result):
                return result
        except (httpx.HTTPError, ValueError) as exc:
            result.failed.append(f"HTTP: {type(exc).__name__}: {exc}")
            return result
    try:
        async with Client(
            f"{base}/{service}/mcp", auth=credential, timeout=TIMEOUT_SECONDS
        ) as client:
            result.passed.append("initialize")
            tools = await client.list_tools()
            if expected_tools is not None and len(tools) != expected_tools:
                result.failed.append(
                    f"tools/list: {len(tools)} tools, the repository has {expected_tools}"
                )
                return result
            result.passed.append(f"{len(tools)} tools")
            await _call_one(client, tools, result)
    except Exception as exc:  # noqa: BLE001 - any client failure is this service's failure
        said = await what_the_server_said(f"{base}/{service}/mcp", credential)
        result.failed.append(f"MCP: {said or f'{type(exc).__name__}: {str(exc)[:160]}'}")
    return result


async def _challenge(
    http: Any, base: str, path: str, credential: str | None, result: Result
) -> bool:
    """An unauthenticated POST gets the 401 that points to RFC 9728 metadata naming the
    endpoint (or, without a credential to check, the endpoint is open); False on a failure."""
    denied = await http.post(f"{base}{path}", json={})
    if denied.status_code == 401:
        found = re.search(
            r'resource_metadata="([^"]+)"', denied.headers.get("www-authenticate", "")
        )
        if found is None:
            result.failed.append("401 without resource_metadata")
            return False
        metadata = (await http.get(found[1])).json()
        if not str(metadata.get("resource", "")).endswith(path):
            result.failed.append(f"RFC 9728 metadata names {metadata.get('resource')!r}")
            return False
        result.passed.append("401 + metadata")
        return True
    if credential is None:
        result.passed.append("open (no auth)")
        return True
    result.failed.append(f"no credential: HTTP {denied.status_code}, not 401")
    return False


async def _call_one(client: Any, tools: list[Any], result: Result) -> bool:
    """Call the smoke tool of `tools` (a declared example, or a read-only tool without
    arguments); False when it answered a tool error."""
    chosen = _smoke_call(tools)
    if chosen is None:
        result.passed.append("no smoke call (no read-only tool without arguments)")
        return True
    name, arguments = chosen
    started = time.perf_counter()
    answer = await client.call_tool(name, arguments, raise_on_error=False)
    if answer.is_error:
        text = answer.content[0].text if answer.content else ""
        result.failed.append(f"{name}: tool error: {text[:120]}")
        return False
    result.passed.append(f"{name} ok ({(time.perf_counter() - started) * 1000:.0f} ms)")
    return True


async def what_the_server_said(url: str, credential: str | None) -> str | None:
    """The status and error text of the server's answer to an initialize, as it sent them:
    a client library's "Server returned an error response" hides a clear 403."""
    import httpx2 as httpx

    headers = {"accept": "application/json, text/event-stream"}
    if credential:
        headers["authorization"] = f"Bearer {credential}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "fleet-smoke", "version": "1"},
        },
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
            answer = await http.post(url, json=body, headers=headers)
    except httpx.HTTPError:
        return None
    if answer.status_code < 400:
        return None
    challenge = answer.headers.get("www-authenticate", "")
    text = " ".join(part for part in (challenge, answer.text.strip()) if part)
    return f"HTTP {answer.status_code}: {text[:200]}"


async def smoke(
    base: str,
    services: list[str],
    credential: str | None,
    expected: dict[str, int],
    front_door: bool = True,
) -> list[Result]:
    checks = [check_service(base, name, credential, expected.get(name)) for name in services]
    if front_door:
        checks.append(check_front_door(base, credential, services))
    return list(await asyncio.gather(*checks))


FRONT_DOOR = "fleet"
"""The front door's line in the report (its name in `fleet urls`)."""
SEARCH_TOOLS = frozenset({"search_tools", "call_tool"})


async def check_front_door(base: str, credential: str | None, services: list[str]) -> Result:
    """The front door as a client meets it: the 401 pointing to its metadata, `/mcp` listing
    tools of the fleet's services only, one call through it, and `/search/mcp`'s two tools."""
    import httpx2 as httpx
    from fastmcp import Client

    from mcp_common.frontdoor import META_KEY

    result = Result(FRONT_DOOR)
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
        try:
            if not await _challenge(http, base, "/mcp", credential, result):
                return result
        except (httpx.HTTPError, ValueError) as exc:
            result.failed.append(f"HTTP: {type(exc).__name__}: {exc}")
            return result
    url = f"{base}/mcp"
    try:
        async with Client(url, auth=credential, timeout=TIMEOUT_SECONDS) as client:
            tools = await client.list_tools()
            origins = {((tool.meta or {}).get(META_KEY) or {}).get("service") for tool in tools}
            strangers = origins - set(services)
            if strangers:
                result.failed.append(f"/mcp lists tools of {sorted(map(str, strangers))}")
                return result
            result.passed.append(f"{len(tools)} tools of {len(origins)} services")
            if not await _call_one(client, tools, result):
                return result
        url = f"{base}/search/mcp"
        async with Client(url, auth=credential, timeout=TIMEOUT_SECONDS) as search:
            names = {tool.name for tool in await search.list_tools()}
            if names != SEARCH_TOOLS:
                result.failed.append(f"/search/mcp lists {sorted(names)}")
                return result
            result.passed.append("search")
    except Exception as exc:  # noqa: BLE001 - any client failure is the front door's failure
        said = await what_the_server_said(url, credential)
        result.failed.append(f"MCP: {said or f'{type(exc).__name__}: {str(exc)[:160]}'}")
    return result


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def refuse_plain_http(base: str, credential: str | None) -> None:
    """A key or token goes to https URLs, or to a fleet on this machine: never in clear
    over a network."""
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    if credential and parts.scheme != "https" and parts.hostname not in LOOPBACK:
        raise FleetError(
            f"not sending a key or token in clear to {parts.hostname}: use an https URL "
            "(or a fleet on 127.0.0.1)"
        )


def credential(args: argparse.Namespace) -> str | None:
    """The caller's credential: --key, a Cognito machine token (--token), or MCP_API_KEY."""
    if args.key:
        return args.key
    if args.token:
        from fleet.machine_token import machine_token
        from fleet.urls import stack_outputs

        aws.apply_samconfig(args)
        outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
        return machine_token(outputs, aws.client(args, "cognito-idp"), None)["access_token"]
    return os.environ.get("MCP_API_KEY") or None


def _target(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(base URL, services) of a local fleet (`--base-url`) or of the deployed stack."""
    if args.base_url:
        names = [folder.name for folder in service_dirs(find_root())]
        return args.base_url.rstrip("/"), names
    from fleet.urls import BASE_OUTPUT, service_urls, stack_outputs

    aws.apply_samconfig(args)
    outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
    return outputs[BASE_OUTPUT].rstrip("/"), list(service_urls(args.stack, outputs))


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    base, names = _target(args)
    key = credential(args)
    refuse_plain_http(base, key)
    if args.service:
        unknown = [name for name in args.service if name not in names]
        if unknown:
            raise FleetError(f"no service {', '.join(map(repr, unknown))} at {base}")
        names = args.service
    results = asyncio.run(smoke(base, names, key, _expected_tools(), front_door=not args.service))
    for result in results:
        out(result.line())
    failed = [result.service for result in results if not result.ok]
    checked = f"{len(names)} services" + (" and the front door" if not args.service else "")
    summary = f"smoke: {checked} at {base}: {len(results) - len(failed)} passed"
    out(summary + (f", {len(failed)} failed ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "smoke", help="check every service of a stack (or a local fleet) as a client would"
    )
    parser.add_argument(
        "--base-url", help="a local fleet, e.g. http://127.0.0.1:8080 (default: the stack's API)"
    )
    parser.add_argument("--service", action="append", help="only this service (repeatable)")
    parser.add_argument("--key", help="an API key (default: MCP_API_KEY)")
    parser.add_argument(
        "--token", action="store_true", help="use a token of the stack's Cognito machine client"
    )
    aws.add_arguments(parser, stack=True, all_regions=True)
    parser.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    if args.all_regions and args.base_url:
        raise FleetError("--all-regions checks each region's deployed stack: not with --base-url")
    return aws.each_region(lambda one: run(one, _print))(args)


def _print(line: str) -> None:
    print(line, flush=True, file=sys.stdout)
