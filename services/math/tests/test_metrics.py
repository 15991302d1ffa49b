"""CloudWatch metrics (EMF) in the real stdout of run.sh, checked against the EMF rules.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from fleet.testing import MCP_HEADERS, RunningService, dev_env, loopback_http, start_service
from mcp_common.apikeys import hash_key

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
KEY = "mcpk_metrics_0123456789abcdef"
TRACE_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def emf_problems(line: dict[str, Any]) -> list[str]:
    """Every way `line` breaks the EMF specification (empty: a valid EMF document)."""
    problems = []
    aws = line.get("_aws")
    if not isinstance(aws, dict):
        return ["no _aws object"]
    timestamp = aws.get("Timestamp")
    if not isinstance(timestamp, int) or abs(timestamp / 1000 - time.time()) > 3600:
        problems.append(f"Timestamp {timestamp!r} is not recent epoch milliseconds")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "CloudWatchMetrics is not a non-empty list"]
    for directive in directives:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
            problems.append(f"bad Namespace {namespace!r}")
        for dimension_set in directive.get("Dimensions", []):
            if not isinstance(dimension_set, list) or len(dimension_set) > 30:
                problems.append(f"dimension set {dimension_set!r} is not a list of at most 30")
                continue
            for name in dimension_set:
                if not isinstance(line.get(name), str):
                    problems.append(f"dimension {name!r} is not a string field of the line")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or not 1 <= len(metrics) <= 100:
            problems.append("Metrics is not a list of 1 to 100")
            continue
        for metric in metrics:
            name, unit = metric.get("Name"), metric.get("Unit", "None")
            value = line.get(name)
            numbers = value if isinstance(value, list) else [value]
            if not numbers or not all(isinstance(v, int | float) for v in numbers):
                problems.append(f"metric {name!r} has no numeric value in the line")
            if unit not in UNITS:
                problems.append(f"metric {name!r} has unit {unit!r}")
    return problems


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    records = json.dumps(
        [{"name": "metrics-client", "sha256": hash_key(KEY), "services": ["math"]}]
    )
    settings = dev_env(
        MCP_AUTH="api_key",
        MCP_API_KEYS=records,
        MCP_METRICS_NAMESPACE="McpFleet/test",
        MCP_METRICS_PER_TOOL="true",  # what a service opts into; off by default
        MCP_MAX_BODY_BYTES="4096",
    )
    with start_service(RUN_SH, "/math/health", settings) as running:
        yield running


def post(base: str, body: object, key: str | None = KEY, **headers: str) -> httpx.Response:
    merged = {**MCP_HEADERS, **({"x-api-key": key} if key else {}), **headers}
    return loopback_http().post(f"{base}/math/mcp", json=body, headers=merged, timeout=20)


def call(name: str, arguments: dict) -> dict:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


@pytest.fixture(scope="module")
def lines(service) -> dict[str, dict]:
    """One request of each kind, and the request line each one wrote."""
    requests = {
        "ok": lambda: post(
            service.base,
            call("add", {"a": 1, "b": 2}),
            **{"x-amzn-trace-id": f"Root={TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"},
        ),
        "tool_error": lambda: post(service.base, call("divide", {"a": 1, "b": 0})),
        "list": lambda: post(service.base, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        "unauthenticated": lambda: post(service.base, call("add", {"a": 1, "b": 2}), key=None),
        "too_large": lambda: post(service.base, call("evaluate", {"expression": "1" * 8000})),
        "unknown_tool": lambda: post(service.base, call("no_such_tool", {})),
        "version": lambda: post(
            service.base,
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/list",
                "params": {
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "v999.0.0",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    }
                },
            },
            **{"mcp-protocol-version": "v999.0.0", "mcp-method": "tools/list"},
        ),
    }
    written = {}
    for kind, send in requests.items():
        before = len(service.request_lines())
        send()
        deadline = time.monotonic() + 5
        while len(service.request_lines()) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        [written[kind]] = service.request_lines()[before:]
    return written


def test_every_request_line_is_a_valid_emf_document(lines):
    for kind, line in lines.items():
        assert emf_problems(line) == [], kind


def test_outcome_counts_and_refusals(lines):
    expected = {
        "ok": ("ok", None),
        "tool_error": ("tool_error", None),
        "list": ("ok", None),
        "unauthenticated": ("protocol_error", "auth"),
        "too_large": ("protocol_error", "size"),
        "unknown_tool": ("protocol_error", None),
        "version": ("protocol_error", "version"),
    }
    for kind, (outcome, refusal) in expected.items():
        line = lines[kind]
        assert {name: line[name] for name in ("tool_error", "protocol_error")} == {
            name: int(name == outcome) for name in ("tool_error", "protocol_error")
        }, kind
        assert "ok" not in line  # requests minus the two: no field, no metric
        refusals = {key for key in line if key.startswith("refused_")}
        assert refusals == ({f"refused_{refusal}"} if refusal else set()), kind
        assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "McpFleet/test"


def test_tool_dimension_only_for_the_services_own_tools(lines):
    def published(line: dict) -> list[tuple[list[list[str]], list[str]]]:
        return [
            (directive["Dimensions"], [metric["Name"] for metric in directive["Metrics"]])
            for directive in line["_aws"]["CloudWatchMetrics"]
        ]

    assert published(lines["ok"]) == [
        ([["service"]], ["duration_ms", "tool_error", "protocol_error"]),
        ([["service", "tool"]], ["duration_ms", "tool_error"]),
    ]
    assert lines["ok"]["tool"] == "add"
    assert [dims for dims, _ in published(lines["unknown_tool"])] == [[["service"]]]
    assert "no_such_tool" not in json.dumps(lines["unknown_tool"]["_aws"])
    assert [dims for dims, _ in published(lines["list"])] == [[["service"]]]


def test_request_line_carries_the_xray_trace_id(lines):
    assert lines["ok"]["xray_trace_id"] == TRACE_ROOT
    assert "xray_trace_id" not in lines["list"]


def test_startup_line_is_one_valid_emf_document_with_phases(service):
    [ready] = [entry for entry in service.log_entries() if entry.get("message") == "service ready"]
    assert emf_problems(ready) == []
    assert ready["service"] == "math"
    assert ready["startup_ms"] > sum(ready["phases_ms"].values()) * 0.5
    assert set(ready["phases_ms"]) == {"imports", "discovery", "auth", "app", "priming"}
    [directive] = ready["_aws"]["CloudWatchMetrics"]
    assert directive["Metrics"] == [{"Name": "startup_ms", "Unit": "Milliseconds"}]
