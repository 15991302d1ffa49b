"""CloudWatch metrics from the log lines the service writes anyway (Embedded Metric Format).

A line carrying an `_aws` block becomes metrics in CloudWatch at no extra cost: no
extra line, no API call. EMF's rules, which every block here follows: at most 100
metrics per directive and 30 dimensions per set; every dimension is a string field of
the line and every metric a number field of the line; `Timestamp` in epoch ms.

- Request line, by `[service]`: `duration_ms` (Milliseconds; its SampleCount is the request
  count), the outcome counts `tool_error` and `protocol_error` (0 or 1, so error rates are
  their Average), and a count per refusal kind (`refused_auth`, `refused_size`,
  `refused_version`) when the edge refused it. On a published version, also `duration_ms` and
  `tool_error` by `[service, version]`: what the release's rollback alarms read, nothing more.
- With per-tool metrics on (MCP_METRICS_PER_TOOL, a service's choice), also `duration_ms`
  and `tool_error` by `[service, tool]`, for calls of a tool the service has (an unknown
  tool name never becomes a dimension value).
- Start-up line: `startup_ms` (Milliseconds), by `[service]`.

Every metric that receives data costs a month's fee (~$0.30), so what is published grows
with services, not with tools: at most 7 per service (the 3 always sent, 3 refusal kinds,
startup) and 2 by the version serving, 2 per tool where a service opts in. Everything else about a tool (its p50, its
callers, its errors' classes) is in the request line, for the saved Logs Insights queries.
Counts carry no unit (CloudWatch's default, `None`): a constant fewer in every line.

Docs: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

from typing import Any, Final

OUTCOMES: Final = ("tool_error", "protocol_error")
"""Outcome counts published (0 or 1); `ok` is what neither is: requests minus the two."""
TOOL_METRICS: Final = ("duration_ms", "tool_error")
VERSION_METRICS: Final = ("duration_ms", "tool_error")
"""By `[service, version]`: the release alarms' p99 and error rate (each costs a month's fee)."""
REFUSALS: Final = ("auth", "size", "version")
MAX_METRICS: Final = 100
MAX_DIMENSIONS: Final = 30

_MS = "Milliseconds"


def _directive(
    namespace: str, dimensions: list[list[str]], metrics: list[tuple[str, str | None]]
) -> dict:
    return {
        "Namespace": namespace,
        "Dimensions": dimensions,
        "Metrics": [
            {"Name": name, "Unit": unit} if unit else {"Name": name} for name, unit in metrics
        ],
    }


class RequestMetrics:
    """Adds the `_aws` block, and the count fields it names, to a request line's fields."""

    def __init__(self, namespace: str, per_tool: bool = False, version: str | None = None) -> None:
        self.namespace = namespace
        self.version = version if version and version != "$LATEST" else None
        """The published version serving (AWS_LAMBDA_FUNCTION_VERSION): the request metrics are
        also written by `[service, version]`, which a release's rollback alarms watch, so only
        the version being released can roll it back."""
        base: list[tuple[str, str | None]] = [("duration_ms", _MS), *((o, None) for o in OUTCOMES)]
        units = dict(base)
        tool = _directive(namespace, [["service", "tool"]], [(m, units[m]) for m in TOOL_METRICS])
        by_version = [
            _directive(
                namespace, [["service", "version"]], [(m, units[m]) for m in VERSION_METRICS]
            )
        ]
        # One list of directives per shape, built once: the per-request work is a dict copy.
        self._directives = {
            (by_tool, refusal): [
                _directive(
                    namespace,
                    [["service"]],
                    base + ([(f"refused_{refusal}", None)] if refusal else []),
                ),
                *(by_version if self.version else []),
                *([tool] if by_tool and per_tool else []),
            ]
            for by_tool in (False, True)
            for refusal in (None, *REFUSALS)
        }

    def add(
        self, fields: dict[str, Any], created: float, by_tool: bool, refusal: str | None
    ) -> None:
        """Make `fields` (a request line about to be written) an EMF document, in place."""
        outcome = fields.get("outcome")
        if self.version is not None:
            fields["version"] = self.version
        for name in OUTCOMES:
            fields[name] = 1 if outcome == name else 0
        if refusal not in REFUSALS:
            refusal = None
        if refusal is not None:
            fields[f"refused_{refusal}"] = 1
        fields["_aws"] = {
            "Timestamp": int(created * 1000),
            "CloudWatchMetrics": self._directives[(by_tool, refusal)],
        }


def startup_document(namespace: str, created: float) -> dict[str, Any]:
    """The `_aws` block of the start-up line (its `service` and `startup_ms` fields)."""
    return {
        "Timestamp": int(created * 1000),
        "CloudWatchMetrics": [_directive(namespace, [["service"]], [("startup_ms", _MS)])],
    }


def published_metrics(
    per_tool: bool, version: str | None = None
) -> dict[tuple[str, ...], set[str]]:
    """{dimension set: metric names} over every shape of line a service can write: what a
    month's bill counts, per service, per tool and (on a published `version`) per version (the
    cost model and its test read it)."""
    metrics = RequestMetrics("count", per_tool=per_tool, version=version)
    documents = [startup_document("count", 0.0)]
    for by_tool in (False, True):
        for refusal in (None, *REFUSALS):
            fields: dict[str, Any] = {"outcome": "ok"}
            metrics.add(fields, 0.0, by_tool=by_tool, refusal=refusal)
            documents.append(fields["_aws"])
    found: dict[tuple[str, ...], set[str]] = {}
    for document in documents:
        for directive in document["CloudWatchMetrics"]:
            names = {metric["Name"] for metric in directive["Metrics"]}
            for dimensions in directive["Dimensions"]:
                found.setdefault(tuple(dimensions), set()).update(names)
    return found
