"""What the fleet costs to run: per million calls, and fixed per month, at 3, 50 and 200 services.

Inputs come from what the benchmark measures (milliseconds per warm call, bytes of one
request line with Lambda's request and trace ids, how well log lines compress); prices come
from one table, PRICES, with the date they were read, so anyone can update them. Counts of
metrics and alarms come from the code and templates themselves.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.bench.probe import free_port, read_response, request_bytes
from fleet.testing import stop, wait_for_http
from fleet.workspace import find_root
from mcp_common.metrics import published_metrics

PRICES_READ = "2026-12-02"
PRICES: Mapping[str, tuple[float, str]] = {
    # name: (USD, what it is per) - AWS list prices, us-east-1, first pricing tier.
    "apigw_rest_request": (3.50e-6, "REST API request (first 333 M a month)"),
    "apigw_http_request": (1.00e-6, "HTTP API request (first 300 M a month), for comparison"),
    "lambda_request": (0.20e-6, "Lambda request"),
    "lambda_arm_gb_second": (0.0000133334, "Lambda arm64 GB-second (first 7.5 B a month)"),
    "logs_ingest_gb": (0.50, "CloudWatch Logs standard ingestion, GB"),
    "logs_store_gb_month": (0.03, "CloudWatch Logs storage, GB-month (compressed)"),
    "custom_metric_month": (0.30, "CloudWatch custom metric, a month (first 10,000)"),
    "alarm_metric_month": (0.10, "CloudWatch standard-resolution alarm metric, a month"),
    "dashboard_month": (3.00, "CloudWatch dashboard, a month (an account's first 3 are free)"),
    "dynamodb_write_unit": (0.625e-6, "DynamoDB on-demand write request unit"),
    "dynamodb_read_unit": (0.125e-6, "DynamoDB on-demand read request unit"),
    "snapstart_cache_gb_second": (0.0000015046, "Lambda SnapStart (Python) cache, GB-second"),
    "snapstart_restore_gb": (0.0001397998, "Lambda SnapStart (Python) restore, GB"),
}
"""Sources: aws.amazon.com/api-gateway/pricing, /lambda/pricing, /cloudwatch/pricing,
/dynamodb/pricing/on-demand (read on PRICES_READ). Update a line, rerun `fleet bench`."""

MEMORY_GB = 1.0
"""Every function's default memory (1024 MB; a service's infra.yaml may say otherwise)."""
SECONDS_A_MONTH = 30 * 24 * 3600


def alarm_metrics(template: Path) -> int:
    """Alarm metrics a template's alarms are billed for: one per alarm on a metric, one per
    metric an alarm's math reads."""
    from fleet.template import load_template

    total = 0
    for resource in load_template(template).get("Resources", {}).values():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        queries = resource["Properties"].get("Metrics") or []
        total += sum(1 for query in queries if "MetricStat" in query) or 1
    return total


_ROOT = find_root(Path(__file__).parent)
ALARMS_PER_SERVICE = alarm_metrics(_ROOT / "infra" / "service.yaml")
FLEET_ALARMS = alarm_metrics(_ROOT / "template.yaml")
"""Read from the templates: the release's rollback alarms on the new version included."""
_PUBLISHED = published_metrics(per_tool=True, version="1")
METRICS_PER_SERVICE = len(_PUBLISHED[("service",)]) + len(_PUBLISHED[("service", "version")])
"""By service, and by [service, version] for the version serving (a release runs two for its
canary's minutes; a metric is billed by the hour it receives data)."""
METRICS_PER_TOOL = len(_PUBLISHED[("service", "tool")])
"""Read from the EMF directives themselves (pinned by mcp_common's test_metrics.py)."""
BEFORE_METRICS_PER_SERVICE, BEFORE_METRICS_PER_TOOL, BEFORE_ALARMS_PER_SERVICE = 8, 4, 4
"""What the EMF block published until 2026-12-02 (`ok` as well, and 4 metrics per tool), and
the 4 alarms a service had then."""
TOOLS_PER_SERVICE = 8
PLATFORM_LINES_BYTES = 330
"""Lambda's START, END and REPORT lines of one invocation in JSON (LambdaSystemLogLevel=INFO;
the default, WARN, drops them): an estimate from their documented shape."""
MEMORY_CALL_UNITS = (4, 1)
"""(write, read) request units of memory's typical call: a one-entity write reads it
(BatchGetItem, 1 unit) and writes it and the tenant's counter in one transaction (2 items x
2 units)."""


@dataclass(frozen=True)
class Inputs:
    ms_per_call: float
    line_bytes: int
    compression: float
    """Compressed size / raw size of request lines (CloudWatch stores logs compressed)."""


def measure_request_line(command: list[str], env: dict[str, str], headers: dict[str, str]) -> bytes:
    """The request line a service writes for one tools/call made as API Gateway and the Web
    Adapter make it (their request-context, Lambda-context and trace headers)."""
    port = free_port()
    lambda_headers = {
        **headers,
        "x-amzn-request-context": json.dumps({"requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}),
        "x-amzn-lambda-context": json.dumps({"request_id": "e1f6b2b8-3f4e-4f0b-9b1a-2d9f7c3e5a10"}),
        "x-amzn-trace-id": "Root=1-6743a9f2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "stdout"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, env={**env, "PORT": str(port), "LOG_FORMAT": "json"}, stdout=out
            )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/math/health", timeout=60, process=process)
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request_bytes("/math/mcp", port, headers=lambda_headers))
                read_response(sock)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                lines = [
                    line
                    for line in log.read_bytes().splitlines()
                    if b'"mcp_common.request"' in line
                ]
                if lines:
                    return lines[0]
                time.sleep(0.02)
        finally:
            stop(process)
    raise RuntimeError("the service wrote no request line")


def compression_of(line: bytes, lines: int = 2000) -> float:
    """How small `lines` request lines shaped like `line` compress (gzip): every digit drawn
    at random, as ids, times and durations differ from line to line."""
    if not line:
        return 1.0
    rng = random.Random(7)  # noqa: S311 - sample data, not secrets
    digits = b"0123456789"
    varied = [
        bytes(rng.choice(digits) if chr(c).isdigit() else c for c in line) for _ in range(lines)
    ]
    raw = b"\n".join(varied)
    return len(gzip.compress(raw)) / len(raw)


def per_million_calls(inputs: Inputs, platform_lines: bool = False) -> list[tuple[str, float]]:
    """USD per million buffered tools/call requests, line by line."""
    price = {name: value for name, (value, _) in PRICES.items()}
    logged = inputs.line_bytes + (PLATFORM_LINES_BYTES if platform_lines else 0)
    gigabytes = logged * 1e6 / 1e9
    billed_ms = max(1, math.ceil(inputs.ms_per_call))  # Lambda bills whole milliseconds
    return [
        ("API Gateway REST requests", price["apigw_rest_request"] * 1e6),
        ("Lambda requests", price["lambda_request"] * 1e6),
        (
            f"Lambda duration ({billed_ms} ms x {MEMORY_GB:g} GB, arm64)",
            billed_ms / 1000 * MEMORY_GB * price["lambda_arm_gb_second"] * 1e6,
        ),
        (f"CloudWatch Logs ingestion ({logged} bytes a call)", gigabytes * price["logs_ingest_gb"]),
        (
            f"CloudWatch Logs storage (a month, {inputs.compression:.0%} compressed)",
            gigabytes * inputs.compression * price["logs_store_gb_month"],
        ),
    ]


def through_front_door(inputs: Inputs, front_door_ms: float) -> list[tuple[str, float]]:
    """USD per million calls through the front door: a direct call's lines, and the front
    door's own invocation, billed for the whole call (it waits for the service); no second
    API Gateway request (it invokes the service's function itself)."""
    price = {name: value for name, (value, _) in PRICES.items()}
    billed_ms = max(1, math.ceil(front_door_ms))
    return [
        ("a direct call (above)", sum(value for _, value in per_million_calls(inputs))),
        ("the front door's Lambda request", price["lambda_request"] * 1e6),
        (
            f"the front door's duration ({billed_ms} ms x {MEMORY_GB:g} GB, arm64)",
            billed_ms / 1000 * MEMORY_GB * price["lambda_arm_gb_second"] * 1e6,
        ),
    ]


def front_door_report(inputs: Inputs, front_door_ms: float) -> list[str]:
    """The price per million calls through the front door (markdown)."""
    lines = through_front_door(inputs, front_door_ms)
    total = sum(value for _, value in lines)
    return [
        "",
        "### Per million calls through the front door",
        "",
        "| item | USD |",
        "| --- | ---: |",
        *(f"| {name} | {value:.3f} |" for name, value in lines),
        f"| **total** | **{total:.2f}** |",
    ]


def memory_call_extra() -> float:
    """USD per million of memory's typical call, on top of any call: DynamoDB on-demand."""
    writes, reads = MEMORY_CALL_UNITS
    return (
        writes * PRICES["dynamodb_write_unit"][0] + reads * PRICES["dynamodb_read_unit"][0]
    ) * 1e6


def fixed_per_month(
    services: int, tools_per_service: int = TOOLS_PER_SERVICE, before: bool = False
) -> list[tuple[str, float]]:
    """USD a month before a single call: custom metrics, alarms, the dashboard."""
    price = {name: value for name, (value, _) in PRICES.items()}
    if before:
        metrics = services * (
            BEFORE_METRICS_PER_SERVICE + tools_per_service * BEFORE_METRICS_PER_TOOL
        )
        label = f"custom metrics ({metrics:,}: 8 per service + 4 per tool, as before)"
    else:
        metrics = services * METRICS_PER_SERVICE
        label = (
            f"custom metrics ({metrics:,}: {METRICS_PER_SERVICE} per service, by service and by "
            "version; per-tool off)"
        )
    alarms = services * (BEFORE_ALARMS_PER_SERVICE if before else ALARMS_PER_SERVICE) + FLEET_ALARMS
    return [
        (label, metrics * price["custom_metric_month"]),
        (f"alarm metrics ({alarms:,})", alarms * price["alarm_metric_month"]),
        ("dashboard (1)", price["dashboard_month"]),
    ]


def snapstart_per_month(services: int) -> float:
    """The live version's cached snapshot of every function (EnableSnapStart=true); versions
    left from earlier deploys cost the same until deleted."""
    return services * MEMORY_GB * SECONDS_A_MONTH * PRICES["snapstart_cache_gb_second"][0]


def report(inputs: Inputs, before_line_bytes: int | None = None) -> list[str]:
    """The benchmark report's cost section (markdown)."""
    calls = per_million_calls(inputs)
    total = sum(value for _, value in calls)
    lines = [
        "",
        "## What the fleet costs (AWS list prices, us-east-1, read " + PRICES_READ + ")",
        "",
        (
            f"Inputs measured in this run: {inputs.ms_per_call:.2f} ms per warm call (the math "
            "artifact's p50 on this host; in Lambda add the Web Adapter's local hop), "
            f"{inputs.line_bytes} bytes of request line per call (with Lambda's "
            f"request and trace ids), compressed to {inputs.compression:.0%}. Prices: "
            "`packages/fleet/src/fleet/bench/cost.py`, PRICES."
        ),
        "",
        "### Per million calls",
        "",
        "| item | USD |",
        "| --- | ---: |",
        *(f"| {name} | {value:.3f} |" for name, value in calls),
        f"| **total** | **{total:.2f}** |",
        (
            f"| memory's typical call adds DynamoDB on-demand ({MEMORY_CALL_UNITS[0]} WRU + "
            f"{MEMORY_CALL_UNITS[1]} RRU) | {memory_call_extra():.3f} |"
        ),
        (
            "| Lambda's START/END/REPORT lines, if kept (LambdaSystemLogLevel=INFO) | "
            f"{PLATFORM_LINES_BYTES * 1e6 / 1e9 * PRICES['logs_ingest_gb'][0]:.3f} |"
        ),
    ]
    if before_line_bytes:
        lines.append(
            f"| log bytes per call, before 2026-12-02: {before_line_bytes} + Lambda's "
            f"{PLATFORM_LINES_BYTES} (now {inputs.line_bytes}) | "
            f"{(before_line_bytes + PLATFORM_LINES_BYTES) * 1e-3 * PRICES['logs_ingest_gb'][0]:.3f} |"
        )
    lines += [
        "",
        (
            f"An HTTP API would cost {PRICES['apigw_http_request'][0] * 1e6:.2f} USD per million "
            "instead of 3.50 (see the README: streaming, WAF, usage plans and private endpoints "
            "are REST-only)."
        ),
        "",
        f"### Fixed, a month ({TOOLS_PER_SERVICE} tools a service)",
        "",
        "| item | 3 services | 50 services | 200 services |",
        "| --- | ---: | ---: | ---: |",
    ]
    sizes = (3, 50, 200)
    for index, (name, _) in enumerate(fixed_per_month(3)):
        values = [fixed_per_month(n)[index][1] for n in sizes]
        lines.append(f"| {name.split(' (')[0]} | " + " | ".join(f"{v:,.2f}" for v in values) + " |")
    totals = [sum(v for _, v in fixed_per_month(n)) for n in sizes]
    befores = [sum(v for _, v in fixed_per_month(n, before=True)) for n in sizes]
    lines += [
        "| **total** | " + " | ".join(f"**{v:,.2f}**" for v in totals) + " |",
        "| total before 2026-12-02 (4 metrics per tool) | "
        + " | ".join(f"{v:,.2f}" for v in befores)
        + " |",
        "| per-tool metrics on in every service (+2 per tool) | "
        + " | ".join(
            f"+{n * TOOLS_PER_SERVICE * METRICS_PER_TOOL * PRICES['custom_metric_month'][0]:,.2f}"
            for n in sizes
        )
        + " |",
        "| SnapStart (EnableSnapStart=true): the live versions' snapshots | "
        + " | ".join(f"+{snapstart_per_month(n):,.2f}" for n in sizes)
        + " |",
        "",
        (
            f"SnapStart also charges {PRICES['snapstart_restore_gb'][0]:.7f} USD per GB restored "
            "(each cold start), and for the snapshot of every published version still present: "
            "delete old versions. Custom metrics past 10,000 cost less (0.10 USD)."
        ),
    ]
    return lines
