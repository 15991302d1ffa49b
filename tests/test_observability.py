"""The dashboard, the alarms and the saved queries read what the services really write.

Lines come from a service started as Lambda starts it (run.sh), with the fleet's metrics
namespace; the templates' metric names, dimensions and query fields are checked against them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.template import load_template, transform
from fleet.testing import MCP_HEADERS, RunningService, dev_env, loopback_http, start_service
from fleet.workspace import find_root, service_dirs

pytestmark = pytest.mark.slow

ROOT = find_root(Path(__file__).parent)
SERVICE = next(iter(service_dirs(ROOT)))


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    with start_service(
        SERVICE.path / "run.sh",
        f"/{SERVICE.name}/health",
        dev_env(MCP_METRICS_NAMESPACE="McpFleet/stack"),
    ) as running:
        for name in ("no_such_tool", None):
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            if name:
                body = {**body, "method": "tools/call", "params": {"name": name, "arguments": {}}}
            loopback_http().post(
                f"{running.base}/{SERVICE.name}/mcp",
                json=body,
                headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"},
            )
        yield running


def published(lines: list[dict]) -> set[tuple[tuple[str, ...], str]]:
    """{(dimension set, metric name)} the lines publish."""
    found = set()
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive["Dimensions"]:
                found.update((tuple(dimensions), m["Name"]) for m in directive["Metrics"])
    return found


@pytest.fixture(scope="module")
def cfn() -> dict:
    return transform(load_template(ROOT / "template.yaml"))


def test_every_alarm_watches_a_metric_the_services_publish(service):
    metrics = published(service.log_entries())
    alarms = load_template(ROOT / "infra" / "service.yaml")["Resources"]
    for name in ("ToolErrorRateAlarm", "LatencyAlarm"):
        text = json.dumps(alarms[name])
        [metric] = re.findall(r'"MetricName": "(\w+)"', text)
        assert (("service",), metric) in metrics, name


def test_every_dashboard_search_names_a_published_metric(service, cfn):
    metrics = {name for _, name in published(service.log_entries())}
    [dashboard] = [
        r for r in cfn["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    ours = re.findall(r'McpFleet/\$\{AWS::StackName\},([\w,]+)\}[^"]*MetricName=\\\\\\"(\w+)', body)
    assert ours
    for dimensions, metric in ours:
        assert metric in metrics, metric
        assert dimensions in {"service", "service,tool"}


FIELDS = {
    "logger", "message", "service", "tool", "outcome", "principal", "http_status", "error",
    "mcp_method", "duration_ms", "startup_ms",
}  # fmt: skip
"""The line fields a query may read (Logs Insights' own, @-prefixed, are not ours)."""


def test_every_saved_query_reads_fields_the_lines_carry(service, cfn):
    lines = service.log_entries()
    carried = set().union(*(line.keys() for line in lines))
    queries = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::Logs::QueryDefinition"]
    assert queries
    for query in queries:
        text = query["Properties"]["QueryString"]
        text = text["Fn::Sub"] if isinstance(text, dict) else text
        text = text.split("\n", 1)[1] if text.startswith("SOURCE ") else text  # the groups
        assert "@" not in text  # nothing from Lambda's own lines: WARN drops them
        read = set(re.findall(r"[a-z_]+", text)) & FIELDS
        assert read, query["Properties"]["Name"]
        assert read <= carried, (query["Properties"]["Name"], read - carried)
        for logger in re.findall(r'logger = "([\w.]+)"', text):
            assert any(line["logger"] == logger for line in lines), logger
