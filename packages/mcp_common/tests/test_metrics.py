"""How many custom metrics the fleet publishes, computed from the EMF directives themselves.

Each metric that receives data costs a monthly fee, so these numbers are pinned: a change
that multiplies them fails here, and is seen in review.
"""

from __future__ import annotations

import pytest

from mcp_common.metrics import RequestMetrics
from mcp_common.metrics import published_metrics as published

PER_SERVICE = 7
"""duration_ms, tool_error, protocol_error, refused_{auth,size,version}, startup_ms."""
PER_TOOL = 2
"""duration_ms and tool_error by [service, tool], where a service opts in."""


@pytest.mark.parametrize("per_tool", [False, True])
def test_the_metrics_per_service_and_per_tool_are_pinned(per_tool):
    found = published(per_tool)
    assert len(found[("service",)]) == PER_SERVICE
    assert len(found.get(("service", "tool"), set())) == (PER_TOOL if per_tool else 0)
    assert set(found) <= {("service",), ("service", "tool")}


def test_the_monthly_count_grows_with_services_not_with_tools():
    def metrics(services: int, tools_each: int, per_tool: bool) -> int:
        found = published(per_tool)
        return services * (
            len(found[("service",)]) + tools_each * len(found.get(("service", "tool"), ()))
        )

    assert metrics(200, 8, per_tool=False) == metrics(200, 1, per_tool=False) == 1400
    assert metrics(200, 8, per_tool=True) == 200 * (PER_SERVICE + 8 * PER_TOOL)


def test_counts_carry_no_unit_and_durations_carry_milliseconds():
    fields = {"service": "s", "tool": "t", "outcome": "tool_error"}
    RequestMetrics("ns", per_tool=True).add(fields, 0.0, by_tool=True, refusal=None)
    for directive in fields["_aws"]["CloudWatchMetrics"]:
        for metric in directive["Metrics"]:
            assert metric.get("Unit") == (
                "Milliseconds" if metric["Name"] == "duration_ms" else None
            )
    assert (fields["tool_error"], fields["protocol_error"]) == (1, 0)
    assert "ok" not in fields


def test_a_published_version_is_also_a_dimension_for_its_release_alarms():
    """The release's rollback alarms read `[service, version]`: only the new version's own
    calls can roll it back."""
    fields = {"outcome": "tool_error", "service": "svc"}
    RequestMetrics("ns", version="7").add(fields, 0.0, by_tool=False, refusal="auth")
    by_service, by_version = fields["_aws"]["CloudWatchMetrics"]
    assert by_service["Dimensions"] == [["service"]]
    assert "refused_auth" in {metric["Name"] for metric in by_service["Metrics"]}
    # By version only what the release alarms read: each metric is a month's fee.
    assert by_version["Dimensions"] == [["service", "version"]]
    assert [m["Name"] for m in by_version["Metrics"]] == ["duration_ms", "tool_error"]
    assert fields["version"] == "7"
    for unpublished in (None, "$LATEST"):
        fields = {"outcome": "ok", "service": "svc"}
        RequestMetrics("ns", version=unpublished).add(fields, 0.0, by_tool=False, refusal=None)
        assert fields["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
        assert "version" not in fields
