"""Structured logging: one JSON object per line on stdout, one line per MCP request.

CloudWatch indexes JSON lines, so every record (ours, fastmcp's, uvicorn's) goes
through one formatter. The request line is assembled in two layers: an ASGI
wrapper opens a record per HTTP request (timing, Lambda request ids) and the
fastmcp middleware fills in the MCP method, tool and outcome. A request that
never reaches MCP dispatch (unparseable body, wrong Accept, refused by auth) is
still logged, as a protocol error with its HTTP status.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from fastmcp.server.middleware import CallNext, MiddlewareContext
from fastmcp.server.middleware import Middleware as _FastMCPMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Outcome = Literal["ok", "tool_error", "protocol_error"]

REQUEST_LOGGER = "mcp_common.request"

_SKIPPED_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}

# Libraries that narrate every request at INFO (e.g. "Terminating session: None"
# per stateless request); they speak at WARNING unless LOG_LEVEL=DEBUG.
_CHATTY_LOGGERS = (
    "mcp.server.streamable_http",
    "mcp.server.streamable_http_manager",
    "httpx2",
)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object: time, level, logger, message, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _SKIPPED_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


JsonFormatter.converter = time.gmtime  # type: ignore[assignment]

_configured_level: str | None = None


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines at `level`.

    Idempotent and cheap on repeat calls. fastmcp installs its own (rich)
    handlers at import; they are removed so its records flow through ours.
    """
    global _configured_level
    if _configured_level == level:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("fastmcp", "mcp", "uvicorn", "uvicorn.error", "uvicorn.access"):
        lib_logger = logging.getLogger(name)
        for existing in lib_logger.handlers[:]:
            lib_logger.removeHandler(existing)
        lib_logger.propagate = True
        lib_logger.setLevel(logging.NOTSET)
    chatty_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty_level)
    _configured_level = level


@dataclass
class RequestRecord:
    """What is known about one HTTP request to an MCP endpoint, filled in as it is served."""

    service: str
    started: float = field(default_factory=time.perf_counter)
    lambda_request_id: str | None = None
    apigw_request_id: str | None = None
    principal: str | None = None
    method: str | None = None
    tool: str | None = None
    outcome: Outcome | None = None
    error: str | None = None
    logged: bool = False

    def fields(self, status: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "mcp_method": self.method,
            "tool": self.tool,
            "outcome": self.outcome,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "lambda_request_id": self.lambda_request_id,
            "apigw_request_id": self.apigw_request_id,
            "principal": self.principal,
            "error": self.error,
            "http_status": status,
        }
        return {key: value for key, value in data.items() if value is not None}


current_request: ContextVar[RequestRecord | None] = ContextVar("mcp_request_record", default=None)


def _json_header(headers: dict[bytes, bytes], name: bytes) -> dict[str, Any]:
    raw = headers.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def lambda_request_ids(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """(Lambda request id, API Gateway request id) from the Web Adapter's headers."""
    lambda_ctx = _json_header(headers, b"x-amzn-lambda-context")
    request_ctx = _json_header(headers, b"x-amzn-request-context")
    lambda_id = lambda_ctx.get("request_id") or lambda_ctx.get("requestId")
    apigw_id = request_ctx.get("requestId") or request_ctx.get("request_id")
    return (
        str(lambda_id) if lambda_id else None,
        str(apigw_id) if apigw_id else None,
    )


def emit_request_line(record: RequestRecord, status: int | None = None) -> None:
    """Write the one log line for this MCP request (once)."""
    if record.logged:
        return
    record.logged = True
    level = logging.WARNING if record.outcome == "protocol_error" else logging.INFO
    logging.getLogger(REQUEST_LOGGER).log(level, "mcp request", extra=record.fields(status))


class RequestLogASGIMiddleware:
    """Open a RequestRecord for each HTTP request to the MCP endpoint; log the ones MCP never saw."""

    def __init__(self, app: ASGIApp, service: str, mcp_path: str) -> None:
        self.app = app
        self.service = service
        self.mcp_path = mcp_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.mcp_path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        lambda_id, apigw_id = lambda_request_ids(headers)
        record = RequestRecord(
            service=self.service, lambda_request_id=lambda_id, apigw_request_id=apigw_id
        )
        status: int | None = None

        def finish() -> None:
            if record.outcome is None:
                ok = status is not None and status < 400
                record.outcome = "ok" if ok else "protocol_error"
            emit_request_line(record, status)

        async def send_and_log(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finish()  # before the last byte leaves, so the line precedes the client's next step
            await send(message)

        token = current_request.set(record)
        try:
            await self.app(scope, receive, send_and_log)
        finally:
            current_request.reset(token)
            finish()


def _classify(exc: BaseException) -> Outcome:
    from fastmcp.exceptions import ToolError

    return "tool_error" if isinstance(exc, ToolError) else "protocol_error"


class RequestLogMiddleware(_FastMCPMiddleware):
    """Annotate the current request's record with MCP method, tool name and outcome."""

    async def on_message(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        record = current_request.get()
        if record is None:
            return await call_next(context)
        record.method = context.method
        if context.method == "tools/call":
            record.tool = getattr(context.message, "name", None)
        try:
            result = await call_next(context)
        except Exception as exc:
            record.outcome = _classify(exc)
            # A tool error's message is written for the caller, so it is safe to log;
            # anything else is summarised by type (its traceback is logged by fastmcp).
            record.error = str(exc)[:300] if record.outcome == "tool_error" else type(exc).__name__
            raise
        is_error = getattr(result, "is_error", None) or getattr(result, "isError", None)
        record.outcome = "tool_error" if is_error else "ok"
        return result
