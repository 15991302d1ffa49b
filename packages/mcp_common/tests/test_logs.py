"""Structured logs: JSON lines, one per MCP request, tracebacks kept out of responses."""

from __future__ import annotations

import json
import logging

import httpx2 as httpx
import pytest

from fleet.testing import MCP_HEADERS, loopback_http
from mcp_common.logs import JsonFormatter, lambda_request_ids

LAMBDA_HEADERS = {
    "x-amzn-lambda-context": json.dumps({"request_id": "lambda-req-123", "deadline": 1}),
    "x-amzn-request-context": json.dumps({"requestId": "apigw-req-456", "stage": "prod"}),
}


def call(url: str, name: str, arguments: dict, headers: dict | None = None) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    return loopback_http().post(
        f"{url}/sample/mcp", json=body, headers={**MCP_HEADERS, **(headers or {})}
    )


def test_formatter_writes_one_json_object_per_record():
    record = logging.LogRecord("x.y", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.service = "math"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "x.y"
    assert entry["message"] == "hello world"
    assert entry["service"] == "math"
    assert entry["time"].endswith("Z")


def test_formatter_keeps_the_traceback_in_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "Traceback" in entry["exception"]
    assert "ValueError: boom" in entry["exception"]


def test_one_line_per_tool_call_with_lambda_ids(sample_url, log_lines):
    response = call(sample_url, "echo", {"text": "x"}, LAMBDA_HEADERS)
    assert response.status_code == 200
    [line] = log_lines.requests()
    assert line["service"] == "sample"
    assert line["mcp_method"] == "tools/call"
    assert line["tool"] == "echo"
    assert line["outcome"] == "ok"
    assert line["lambda_request_id"] == "lambda-req-123"
    assert line["apigw_request_id"] == "apigw-req-456"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


def test_tool_error_outcome_names_the_error_class_never_the_clients_words(sample_url, log_lines):
    """Regression: the tool's message (which echoes what the client sent, up to 300
    characters) was the log's `error`. The client still reads it; the log keeps the class."""
    answer = call(sample_url, "refuse", {"reason": "SSN 078-05-1120"}).json()["result"]
    assert answer["content"][0]["text"] == "refused: SSN 078-05-1120"
    [line] = log_lines.requests()
    assert line["outcome"] == "tool_error"
    assert line["error"] == "ToolError"
    assert "078-05-1120" not in log_lines.stream.getvalue()


def test_crash_traceback_goes_to_the_log_only(sample_url, log_lines):
    response = call(sample_url, "crash", {})
    assert "hunter2" not in response.text
    [line] = log_lines.requests()
    assert line["outcome"] == "tool_error"
    tracebacks = [entry for entry in log_lines.entries() if "exception" in entry]
    assert tracebacks, "the tool's traceback must be logged"
    assert "RuntimeError" in tracebacks[0]["exception"]


def test_unknown_tool_is_the_clients_mistake_not_a_tool_error(sample_url, log_lines):
    """Regression: a call of a tool the service does not have was logged `tool_error` (the
    README says `protocol_error`) and fed the tool-error-rate alarm."""
    result = call(sample_url, "nope", {}).json()["result"]
    assert result["isError"] is True  # what the library answers, unchanged
    [line] = log_lines.requests()
    assert line["outcome"] == "protocol_error"
    assert (line["tool_error"], line["protocol_error"]) == (0, 1)
    assert line["error"] == "unknown tool"
    assert line["tool"] == "(unknown)"
    assert line["name_excerpt"] == "nope"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_stream_probe_is_not_an_error_and_counts_in_no_metric(sample_url, log_lines, method):
    """Regression: the MCP Inspector's GET (405 from a stateless server) was logged as a
    protocol_error WARNING and counted in the error-rate metrics."""
    response = loopback_http().request(method, f"{sample_url}/sample/mcp", headers=MCP_HEADERS)
    assert response.status_code == 405
    assert log_lines.requests() == []  # DEBUG only: no line at INFO, no metrics


def test_expected_tool_errors_are_not_logged_as_errors(sample_url, log_lines):
    call(sample_url, "refuse", {"reason": "nope"})
    assert [entry["level"] for entry in log_lines.entries()] == ["INFO"]  # the request line


@pytest.mark.parametrize(
    "name",
    ["A" * 900_000, "line\nbreak\u2028" * 30, "\x00\x1b[31mred", "ünïcödé-😀" * 10],
    ids=["huge", "line separators", "control", "non-ascii"],
)
def test_hostile_tool_names_never_reach_the_log_whole(sample_url, log_lines, name):
    call(sample_url, name, {})
    [line] = log_lines.requests()
    assert line["tool"] == "(unknown)"
    assert len(line["name_excerpt"]) <= 43
    assert line["name_excerpt"].isascii()
    assert len(log_lines.stream.getvalue()) < 2000


def test_hostile_method_names_never_reach_the_log_whole(sample_url, log_lines):
    body = {"jsonrpc": "2.0", "id": 1, "method": "A" * 1_000_000}
    loopback_http().post(f"{sample_url}/sample/mcp", json=body, headers=MCP_HEADERS, timeout=10)
    [line] = log_lines.requests()
    assert line["mcp_method"] == "(invalid)"
    assert line["name_excerpt"].startswith("AAAA")
    assert len(log_lines.stream.getvalue()) < 2000


def test_argument_values_never_reach_the_log(sample_url, log_lines):
    secret = "sk_live_0123456789abcdef"
    response = call(sample_url, "echo", {"text": {"nested": secret}})
    assert response.json()["result"]["isError"] is True
    [line] = log_lines.requests()
    assert line["outcome"] == "tool_error"
    assert line["error"] == "ValidationError"
    assert secret not in log_lines.stream.getvalue()


def test_every_line_is_capped_and_still_json():
    from mcp_common.logs import MAX_LINE_BYTES

    try:
        raise ValueError("x" * 50_000)
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "ü" * 100_000, (), sys.exc_info()
        )
    record.detail = "y" * 30_000
    line = JsonFormatter().format(record)
    assert len(line.encode()) <= MAX_LINE_BYTES
    entry = json.loads(line)
    assert entry["truncated"] is True
    assert entry["exception"].endswith("x" * 100)  # the tail names the error
    assert entry["logger"] == "x"


def test_transport_rejections_are_logged_as_protocol_errors(sample_url, log_lines):
    loopback_http().post(f"{sample_url}/sample/mcp", content="{bad", headers=MCP_HEADERS)
    [line] = log_lines.requests()
    assert line["outcome"] == "protocol_error"
    assert line["http_status"] == 400


def test_health_is_not_an_mcp_request(sample_url, log_lines):
    loopback_http().get(f"{sample_url}/sample/health")
    assert log_lines.requests() == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (None, None)),
        ({b"x-amzn-lambda-context": b"not json"}, (None, None)),
        ({b"x-amzn-lambda-context": b"[1, 2]"}, (None, None)),
        ({b"x-amzn-request-context": b'{"requestId": "r"}'}, (None, "r")),
    ],
)
def test_lambda_request_ids_tolerate_odd_headers(headers, expected):
    assert lambda_request_ids(headers) == expected


def test_text_format_is_one_compact_line_per_request_for_a_person():
    from mcp_common.logs import FIELDS_ATTRIBUTE, REQUEST_LOGGER, TextFormatter

    record = logging.LogRecord(REQUEST_LOGGER, logging.INFO, __file__, 1, "mcp request", (), None)
    record.__dict__[FIELDS_ATTRIBUTE] = {
        "service": "math",
        "mcp_method": "tools/call",
        "tool": "divide",
        "outcome": "tool_error",
        "duration_ms": 4.6,
        "principal": "ada",
        "error": "division by zero",
        "_aws": {"Timestamp": 1},
    }
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert "math tools/call divide tool_error 4.6ms" in line
    assert "principal=ada" in line
    assert "error=division by zero" in line
    assert "_aws" not in line
    assert not line.lstrip().startswith("{")


def test_text_lines_show_control_characters_as_escapes():
    """Regression: a client's ESC]0;...BEL (window title) and ESC[2K (erase line) reached a
    developer's terminal raw through LOG_FORMAT=text."""
    from mcp_common.logs import FIELDS_ATTRIBUTE, REQUEST_LOGGER, TextFormatter

    record = logging.LogRecord(REQUEST_LOGGER, logging.WARNING, "", 0, "mcp request", (), None)
    record.__dict__[FIELDS_ATTRIBUTE] = {
        "service": "math",
        "outcome": "protocol_error",
        "duration_ms": 1.0,
        "error": "x\x1b]0;pwned\x07\x1b[2Kfake line\u202e",
    }
    line = TextFormatter().format(record)
    assert line.isprintable()
    assert "\\x1b]0;pwned\\x07\\x1b[2Kfake line\\u202e" in line


@pytest.mark.parametrize(
    ("configured", "tty", "in_lambda", "chosen"),
    [
        ("auto", True, False, "text"),
        ("auto", False, False, "json"),
        ("auto", True, True, "json"),
        ("json", True, False, "json"),
        ("text", False, True, "text"),
    ],
)
def test_log_format_auto_means_text_only_for_a_person_at_a_terminal(
    monkeypatch, configured, tty, in_lambda, chosen
):
    import sys

    from mcp_common.logs import resolve_format

    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    if in_lambda:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "MathFunction")
    else:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert resolve_format(configured) == chosen
