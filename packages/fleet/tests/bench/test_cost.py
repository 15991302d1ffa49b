"""The cost model's arithmetic: every line from a price in PRICES and a measured input."""

from __future__ import annotations

import pytest

from fleet.bench import cost
from mcp_common.metrics import REFUSALS


def test_per_million_calls_is_the_sum_of_priced_lines():
    inputs = cost.Inputs(ms_per_call=4.2, line_bytes=700, compression=0.15)
    lines = dict(cost.per_million_calls(inputs))
    assert lines["API Gateway REST requests"] == pytest.approx(3.50)
    assert lines["Lambda requests"] == pytest.approx(0.20)
    assert lines["Lambda duration (5 ms x 1 GB, arm64)"] == pytest.approx(5e-3 * 0.0000133334e6)
    assert lines["CloudWatch Logs ingestion (700 bytes a call)"] == pytest.approx(0.35)
    with_platform = dict(cost.per_million_calls(inputs, platform_lines=True))
    assert (
        f"CloudWatch Logs ingestion ({700 + cost.PLATFORM_LINES_BYTES} bytes a call)"
        in with_platform
    )


def test_fixed_cost_grows_with_services_and_the_metric_counts_match_the_code():
    by_service = 3 + len(REFUSALS) + 1  # + startup_ms
    assert by_service + 2 == cost.METRICS_PER_SERVICE  # by version: duration_ms, tool_error
    assert cost.METRICS_PER_TOOL == 2
    # Seven alarms a service (four, and the release's three on the new version), one fleet-wide.
    assert (cost.ALARMS_PER_SERVICE, cost.FLEET_ALARMS) == (7, 1)
    month = {name.split(" (")[0]: value for name, value in cost.fixed_per_month(200)}
    assert month["custom metrics"] == pytest.approx(200 * 9 * 0.30)
    assert month["alarm metrics"] == pytest.approx((200 * 7 + 1) * 0.10)
    before = dict(cost.fixed_per_month(200, before=True))
    assert sum(before.values()) > 3 * sum(month.values())


def test_the_report_names_every_price_and_the_date_it_was_read():
    text = "\n".join(cost.report(cost.Inputs(5.0, 700, 0.15)))
    assert cost.PRICES_READ in text
    for services in ("3 services", "50 services", "200 services"):
        assert services in text
    assert "HTTP API" in text


def test_a_request_line_compresses_as_varied_lines_do():
    line = b'{"time": "2026-12-02T20:41:47.123Z", "service": "math", "duration_ms": 1.23}'
    assert 0.05 < cost.compression_of(line) < 0.6
