"""Structured logging: one JSON object per line on stdout, one line per MCP request.

CloudWatch indexes JSON lines, so every record (ours, fastmcp's, uvicorn's) goes
through one formatter. The request line is assembled at the ASGI edge, without a
fastmcp middleware (whose chain alone costs more per request than everything
here): this wrapper opens a record per HTTP request (timing, Lambda request ids),
the request guard fills in the MCP method and tool from the body it validates,
and the outcome is read from the response that went to the client: a JSON-RPC
error or an HTTP error is a protocol error, a result with `isError` a tool error.
A request refused before dispatch (unparseable body, wrong Accept, auth) is still
logged, as a protocol error with its HTTP status.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_common import untrusted
from mcp_common.metrics import RequestMetrics

Outcome = Literal["ok", "tool_error", "protocol_error", "cancelled"]
INVALID_NAME: Final = "(invalid)"
"""The request line's `mcp_method` when the method is too long or not printable."""
UNKNOWN_TOOL: Final = "(unknown)"
"""The request line's `tool` when the called tool is not one of the service's."""
MAX_LINE_BYTES: Final = 8192
"""No log line is longer: Lambda splits lines over 256 KB (breaking the JSON), and
CloudWatch bills every byte, so one hostile request must not write a megabyte."""

REQUEST_LOGGER = "mcp_common.request"
INTERNAL_SCOPE_KEY: Final = "mcp_common.internal"
STREAM_METHODS: Final = frozenset({"GET", "DELETE"})
"""What a stateless server answers 405 to: opening an SSE stream, ending a session."""
"""An ASGI scope key marking the service's own in-process requests (priming, lifecycle.py).
No HTTP client can set a scope key: auth lets these through, the request log skips them."""
FIELDS_ATTRIBUTE = "_fields"
"""A record attribute holding a dict of fields to write as they are (see JsonFormatter)."""

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


# One encoder for every line: json.dumps with any keyword builds a new encoder per call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":"))
"""Compact: every byte of a line is paid for at ingestion, and nothing reads the spaces."""


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object: time, level, logger, message, extras, traceback."""

    _second: int = -1
    _second_text: str = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once per second, not once per line
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__.get(FIELDS_ATTRIBUTE)
        if fields is not None:  # the request line: its fields come ready, skip the scan
            entry.update(fields)
        else:
            for key, value in record.__dict__.items():
                if key not in _SKIPPED_RECORD_FIELDS and not key.startswith("_"):
                    entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = _ENCODER.encode(entry)
        return line if len(line) <= MAX_LINE_BYTES // 4 else _capped(entry, line)


def _encoded_size(value: object) -> int:
    return len(_ENCODER.encode(value).encode())


def _capped(entry: dict[str, Any], line: str) -> str:
    """`line`, or the entry re-encoded with its long texts shortened to fit MAX_LINE_BYTES.

    Only lines that could exceed the cap get here, so a common short line costs one length
    comparison. The room is shared fairly between the long texts (a short one keeps all it
    needs); a shortened text keeps its head and its tail, where a traceback names the error,
    and the line says `"truncated": true`.
    """
    if len(line.encode()) <= MAX_LINE_BYTES:
        return line
    entry = {
        key: value if isinstance(value, str | int | float | bool | None) else str(value)
        for key, value in entry.items()
    }
    entry["truncated"] = True
    long_keys = [key for key, value in entry.items() if isinstance(value, str) and len(value) > 64]
    sizes = {key: _encoded_size(entry[key]) for key in long_keys}
    room = MAX_LINE_BYTES - 256 - _encoded_size({**entry, **dict.fromkeys(long_keys, "")})
    for index, key in enumerate(sorted(long_keys, key=sizes.__getitem__)):
        share = max(64, room // (len(long_keys) - index))
        value = entry[key]
        if sizes[key] > share:
            keep = max(16, int(share * len(value) / sizes[key]) // 2 - 24)
            entry[key] = (
                f"{value[:keep]} ...[{len(value) - 2 * keep} characters cut]... {value[-keep:]}"
            )
        room -= min(sizes[key], share)
    line = _ENCODER.encode(entry)
    if len(line.encode()) <= MAX_LINE_BYTES:
        return line
    fixed = {key: entry[key] for key in ("time", "level", "logger")}
    return _ENCODER.encode({**fixed, "message": "log line too long", "truncated": True})


class _ExpectedToolErrors(logging.Filter):
    """Demote fastmcp's ERROR line for a ToolError to DEBUG, and name the error's class in
    the request line.

    A ToolError is an answer the tool chose (the caller reads it as `isError`), not a
    fault: the request line already records it once, as `tool_error` with its class (the
    message stays the client's: it may echo what the client sent). Unexpected exceptions
    keep their ERROR line and traceback (they carry exc_info). fastmcp logs these lines in
    the `except` block, so the exception is the one being handled.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(("Error calling tool", "Invalid arguments for tool")):
            handled = sys.exc_info()[1]
            request = current_request.get()
            if request is not None and handled is not None and request.error is None:
                request.error = type(handled).__name__
        if (
            record.levelno >= logging.ERROR
            and not record.exc_info
            and message.startswith("Error calling tool")
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


internal_request: ContextVar[bool] = ContextVar("mcp_internal_request", default=False)
"""Set while the service sends itself requests (priming, lifecycle.py)."""


class _QuietInternalRequests(logging.Filter):
    """Drop what fastmcp logs about the service's own priming requests (each one is
    refused on purpose: "Invalid arguments for tool ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not internal_request.get()


_TOOL_ERRORS_FILTER = _ExpectedToolErrors()
_QUIET_FILTER = _QuietInternalRequests()
_TOOL_LOGGER = "fastmcp.server.server"
"""Where fastmcp logs tool-call outcomes; filters sit on it (a logger's filters see only
the records it emits itself, whatever handlers are attached anywhere)."""
_configured_level: tuple[str, str] | None = None


class TextFormatter(logging.Formatter):
    """A compact line for a person at a terminal (`LOG_FORMAT=text`): time, level, and the
    request line's essentials, or the logger and message. Never for machines: CloudWatch
    and the metrics read JSON."""

    REQUEST_FIELDS = ("tool", "principal", "http_status", "error", "name_excerpt")

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = record.__dict__.get(FIELDS_ATTRIBUTE)
        if fields is not None and record.name == REQUEST_LOGGER:
            extras = " ".join(
                f"{key}={fields[key]}" for key in self.REQUEST_FIELDS[1:] if key in fields
            )
            text = (
                f"{fields.get('service')} {fields.get('mcp_method') or '-'} "
                f"{fields.get('tool') or ''} {fields.get('outcome')} "
                f"{fields.get('duration_ms')}ms {extras}"
            )
        elif fields is not None:
            shown = {key: value for key, value in fields.items() if key != "_aws"}
            text = f"{record.name}: {record.getMessage()} {shown}"
        else:
            text = f"{record.name}: {record.getMessage()}"
        line = f"{stamp} {record.levelname:<7} {_visible(' '.join(text.split()))}"
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join(_visible(part) for part in trace.split("\n"))
        return line


def _visible(text: str) -> str:
    """`text` with every character a terminal would act on shown as an escape (`\\x1b`):
    a client's value must not set a window title, erase a line or forge what a person reads
    (JSON lines escape them already)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def resolve_format(configured: str) -> str:
    """`auto`: readable text at a terminal outside Lambda, JSON lines everywhere else."""
    if configured != "auto":
        return configured
    in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    return "text" if sys.stdout.isatty() and not in_lambda else "json"


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """Send every logger's records to stdout at `level`, as JSON lines (or text for a person
    at a terminal, see resolve_format).

    Idempotent and cheap on repeat calls. fastmcp installs its own (rich)
    handlers at import; they are removed so its records flow through ours.
    """
    global _configured_level
    chosen = resolve_format(log_format)
    if _configured_level == (level, chosen):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TextFormatter() if chosen == "text" else JsonFormatter())
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
    # Fields the JSON line never shows: skip computing them on every record (logging HOWTO,
    # "Optimization").
    logging.logThreads = False
    logging._srcfile = None  # no caller lookup (sys._getframe) per record: lines carry no file
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):
        logging.logAsyncioTasks = False
    tool_logger = logging.getLogger(_TOOL_LOGGER)
    for quieting in (_TOOL_ERRORS_FILTER, _QUIET_FILTER):
        if quieting not in tool_logger.filters:
            tool_logger.addFilter(quieting)
    chatty_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty_level)
    _configured_level = (level, chosen)


@dataclass
class RequestRecord:
    """What is known about one HTTP request to an MCP endpoint, filled in as it is served."""

    service: str
    started: float = field(default_factory=time.perf_counter)
    lambda_request_id: str | None = None
    apigw_request_id: str | None = None
    xray_trace_id: str | None = None
    principal: str | None = None
    method: str | None = None
    tool: str | None = None
    name_excerpt: str | None = None
    outcome: Outcome | None = None
    error: str | None = None
    refusal: str | None = None
    """Why the edge refused the request before MCP saw it: `auth`, `size`, `version`, ..."""
    http_method: str = "POST"
    logged: bool = False

    def fields(self, status: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "mcp_method": self.method,
            "tool": self.tool,
            "name_excerpt": self.name_excerpt,
            "outcome": self.outcome,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "lambda_request_id": self.lambda_request_id,
            "apigw_request_id": self.apigw_request_id,
            "xray_trace_id": self.xray_trace_id,
            "principal": self.principal,
            "error": self.error,
            "http_status": status,
        }
        return {key: value for key, value in data.items() if value is not None}


_request_logger = logging.getLogger(REQUEST_LOGGER)

current_request: ContextVar[RequestRecord | None] = ContextVar("mcp_request_record", default=None)


def json_header(headers: dict[bytes, bytes], name: bytes) -> dict[str, Any]:
    """A header holding a JSON object (as the Web Adapter's are), or {} if absent or not one."""
    return untrusted.json_object(headers.get(name))


_TRACE_ROOT = re.compile(r"(?:^|;)\s*Root=(1-[0-9a-f]{8}-[0-9a-f]{24})(?:;|$)")


def xray_trace_id(headers: dict[bytes, bytes]) -> str | None:
    """The X-Ray trace id (the `Root=` value) of `x-amzn-trace-id`, which the Web Adapter
    forwards; None unless it is well formed."""
    raw = headers.get(b"x-amzn-trace-id")
    if not raw or len(raw) > 256:
        return None
    match = _TRACE_ROOT.search(raw.decode("latin-1"))
    return match.group(1) if match else None


def lambda_request_ids(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """(Lambda request id, API Gateway request id) from the Web Adapter's headers."""
    lambda_ctx = json_header(headers, b"x-amzn-lambda-context")
    request_ctx = json_header(headers, b"x-amzn-request-context")
    lambda_id = lambda_ctx.get("request_id") or lambda_ctx.get("requestId")
    apigw_id = request_ctx.get("requestId") or request_ctx.get("request_id")
    return untrusted.loggable_name(lambda_id), untrusted.loggable_name(apigw_id)


def emit_request_line(
    record: RequestRecord, status: int | None = None, metrics: RequestMetrics | None = None
) -> None:
    """Write the one log line for this MCP request (once).

    With metrics on, the line is written whatever LOG_LEVEL says: it carries the request's
    CloudWatch metrics (EMF), and a dropped line would be a lost datapoint.
    """
    if record.logged:
        return
    record.logged = True
    level = logging.WARNING if record.outcome == "protocol_error" else logging.INFO
    if record.http_method in STREAM_METHODS and status == 405:
        # A client probing for a stream (the MCP Inspector's GET): the protocol's answer for a
        # stateless server, not an error anyone should be paged for. Debug only, no metrics.
        level, metrics = logging.DEBUG, None
    if metrics is None and not _request_logger.isEnabledFor(level):
        return
    fields = record.fields(status)
    created = time.time()
    if metrics is not None:
        known_tool = record.tool is not None and record.tool != UNKNOWN_TOOL
        metrics.add(fields, created, by_tool=known_tool, refusal=record.refusal)
    line = _request_logger.makeRecord(
        REQUEST_LOGGER, level, "", 0, "mcp request", (), None, extra={FIELDS_ATTRIBUTE: fields}
    )
    line.created = created
    _request_logger.handle(line)


_VERSION_REFUSALS = (b'"code":-32022', b'"code":-32020')  # SEP-2575: unsupported, mismatch
JSONRPC_CODES: Final = {
    -32700: "parse error",
    -32600: "invalid request",
    -32601: "method not found",
    -32602: "invalid params",
    -32603: "internal error",
}


def _jsonrpc_error_code(body: bytes) -> str | None:
    """The JSON-RPC error the client received, by its code: the library's message may quote
    what the client sent (a tool name, a value), so the log keeps the code only."""
    error = untrusted.json_object(body).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    name = JSONRPC_CODES.get(code)
    return f"jsonrpc {code}" + (f" ({name})" if name else "")


def classify_response(record: RequestRecord, status: int | None, body: bytes) -> None:
    """Set the record's outcome from the response the client received."""
    if record.outcome is not None:
        return
    head = body[:200]
    if status is None or status >= 400 or b'"error":{' in head:
        record.outcome = "protocol_error"
        if record.refusal is None and any(code in head for code in _VERSION_REFUSALS):
            record.refusal = "version"
        if record.error is None and body:
            record.error = _jsonrpc_error_code(body)
    elif record.tool == UNKNOWN_TOOL:
        # A call of a tool the service does not have is the client's mistake, whatever the
        # library's answer looks like: a protocol error, never a tool error (those page).
        record.outcome = "protocol_error"
        record.error = record.error or "unknown tool"
    elif b'"isError":true' in body:
        record.outcome = "tool_error"
        record.error = record.error or "ToolError"
    else:
        record.outcome = "ok"


class RequestLogASGIMiddleware:
    """One log line per HTTP request to the MCP endpoint, written as its response completes."""

    def __init__(
        self, app: ASGIApp, service: str, mcp_path: str, metrics: RequestMetrics | None = None
    ) -> None:
        self.app = app
        self.service = service
        self.mcp_path = mcp_path
        self.slashed = f"{mcp_path}/"
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if (
            scope["type"] != "http"
            or (path != self.mcp_path and path != self.slashed)
            or scope.get(INTERNAL_SCOPE_KEY)  # the service priming itself: not a client request
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        lambda_id, apigw_id = lambda_request_ids(headers)
        record = RequestRecord(
            service=self.service,
            lambda_request_id=lambda_id,
            apigw_request_id=apigw_id,
            xray_trace_id=xray_trace_id(headers),
            http_method=scope.get("method", "POST"),
        )
        status: int | None = None
        # An SSE answer ends with its result, then maybe keep-alive comments or an empty chunk.
        last_chunk = b""
        completed = ended_early = False

        async def send_and_log(message: Message) -> None:
            nonlocal status, last_chunk, completed
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                stripped = body.strip()
                if stripped and not stripped.startswith(b":"):
                    last_chunk = body
                if not message.get("more_body"):
                    completed = True
                    # Before the last byte leaves, so the line precedes the client's next step.
                    classify_response(record, status, last_chunk)
                    emit_request_line(record, status, self.metrics)
            await send(message)

        token = current_request.set(record)
        try:
            await self.app(scope, receive, send_and_log)
            ended_early = status is not None and not completed
        finally:
            current_request.reset(token)
            if ended_early and record.outcome is None:
                # A stream that ended before its last byte: its client went away mid-answer.
                record.outcome, record.error = "cancelled", record.error or "client disconnected"
            classify_response(record, status, b"")
            emit_request_line(record, status, self.metrics)
