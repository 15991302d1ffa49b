"""A service's life under Lambda: priming at start-up, and the SnapStart hooks.

Priming: before the service reports ready, it sends its own MCP requests through its
own app, in-process (both protocol eras: `tools/list`, and a `tools/call` that argument
validation refuses before any tool runs). fastmcp imports several hundred modules
lazily on the first request; priming moves that cost (about 300 ms) from the first
client's request to start-up, and, with SnapStart, into the snapshot.

SnapStart: the Lambda Web Adapter (v1.1.0+) POSTs to two paths of the app, from
loopback, around a snapshot:
- before checkpoint: prime; run the service's own hooks (close pools); forget API-key
  records and AWS clients (credentials must not be frozen in); collect and freeze the heap.
- after restore: reseed `random`; run the service's own hooks (invalidate time-based
  caches: a monotonic clock does not count the time a snapshot sat in storage); re-read
  key sources within a short budget, so a key revoked since the snapshot stays revoked.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message

from mcp_common.logs import INTERNAL_SCOPE_KEY, internal_request
from mcp_common.service import Phase, ServiceSpec

logger = logging.getLogger(__name__)

PRIME_ARGUMENT: Final = "__mcp_common_prime__"
LOOPBACK_CLIENTS: Final = frozenset({"127.0.0.1", "::1"})
HANDSHAKE_VERSION, MODERN_VERSION = "2025-11-25", "2026-07-28"
# Imported lazily by fastmcp only once a tool has returned (its result is checked for
# app payloads). Priming refuses its call before any tool runs, so it imports them itself.
SUCCESS_PATH_MODULES: Final = ("fastmcp.server.providers.prefab_payload",)


def primable_tool(tools: list[Any]) -> str | None:
    """A tool that an unexpected keyword argument is sure to be refused by (no `**kwargs`)."""
    for discovered in tools:
        parameters = inspect.signature(discovered.tool.fn).parameters.values()
        if all(parameter.kind is not parameter.VAR_KEYWORD for parameter in parameters):
            return discovered.tool.name
    return None


async def _internal_post(app: ASGIApp, path: str, body: dict[str, Any], version: str) -> int:
    """POST `body` to `path` through the whole app, as a loopback client would; the status."""
    data = json.dumps(body).encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-length", str(len(data)).encode()),
        (b"mcp-protocol-version", version.encode()),
    ]
    if version == MODERN_VERSION:
        headers.append((b"mcp-method", body["method"].encode()))
        name = body.get("params", {}).get("name")
        if name:
            headers.append((b"mcp-name", name.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
        INTERNAL_SCOPE_KEY: True,  # only code in this process can set a scope key
    }
    delivered = False
    status = 0

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def prime(app: ASGIApp, spec: ServiceSpec, tool: str | None) -> float:
    """Run the service's MCP request path in-process, so the first real request finds
    every lazy import done. No tool runs: the one `tools/call` per protocol era carries
    an argument the tool does not take, and validation refuses it first. Seconds taken."""
    started = time.perf_counter()
    quiet = internal_request.set(True)
    try:
        await _prime_each_era(app, spec, tool)
        for module in SUCCESS_PATH_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:  # another fastmcp: an optimisation must not stop a start
                logger.warning("priming: no module %s in this fastmcp", module)
    finally:
        internal_request.reset(quiet)
    return time.perf_counter() - started


async def _prime_each_era(app: ASGIApp, spec: ServiceSpec, tool: str | None) -> None:
    for version in (HANDSHAKE_VERSION, MODERN_VERSION):
        meta = (
            {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": version,
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            }
            if version == MODERN_VERSION
            else {}
        )
        requests = [{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {**meta}}]
        if tool is not None:
            arguments = {PRIME_ARGUMENT: True}
            params = {**meta, "name": tool, "arguments": arguments}
            requests.append({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
        for body in requests:
            status = await _internal_post(app, spec.mcp_path, body, version)
            if status != 200:
                logger.warning("priming %s (%s) answered HTTP %s", body["method"], version, status)


async def _run_hooks(spec: ServiceSpec, phase: Phase) -> None:
    for hook in spec.hooks(phase):
        outcome = hook()
        if inspect.isawaitable(outcome):
            await outcome


async def before_checkpoint(app: Any) -> dict[str, Any]:
    """Everything a snapshot must (and must not) contain; see the module docstring."""
    state = app.state
    primed = await prime(app, state.service, state.primable_tool)
    await _run_hooks(state.service, "before_checkpoint")
    state.authenticator.invalidate()
    gc.collect()
    gc.freeze()
    return {"primed_ms": round(primed * 1000, 1)}


async def after_restore(app: Any) -> dict[str, Any]:
    """Make a restored instance its own; see the module docstring."""
    state = app.state
    random.seed()  # from os.urandom: instances restored from one snapshot must not agree
    await _run_hooks(state.service, "after_restore")
    state.authenticator.invalidate()
    budget = state.settings.lifecycle.restore_budget_seconds
    await asyncio.to_thread(state.authenticator.reload, budget)
    return {}


HOOKS = {"before_checkpoint": before_checkpoint, "after_restore": after_restore}


def hook_endpoint(phase: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A POST endpoint running one SnapStart phase; only loopback clients may call it."""
    run = HOOKS[phase]

    async def endpoint(request: Request) -> JSONResponse:
        client = request.client.host if request.client else None
        if client not in LOOPBACK_CLIENTS:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        started = time.perf_counter()
        try:
            details = await run(request.app)
        except Exception:
            # The adapter fails the SnapStart phase on a non-2xx: never snapshot or serve a
            # half-prepared instance.
            logger.exception("SnapStart %s failed", phase)
            return JSONResponse({"status": "failed", "phase": phase}, status_code=500)
        seconds = time.perf_counter() - started
        logger.info("SnapStart %s done in %.0f ms", phase, seconds * 1000, extra=details)
        return JSONResponse({"status": "ok", "phase": phase, "ms": round(seconds * 1000, 1)})

    return endpoint
