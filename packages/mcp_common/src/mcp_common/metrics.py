"""CloudWatch metrics from the log lines the service writes anyway (Embedded Metric Format).

A line carrying an `_aws` block becomes metrics in CloudWatch at no extra cost: no
extra line, no API call. EMF's rules, which every block here follows: at most 100
metrics per directive and 30 dimensions per set; every dimension is a string field of
the line and every metric a number field of the line; `Timestamp` in epoch ms.

- Request line: `duration_ms` (Milliseconds) and the outcome counts `ok`, `tool_error`,
  `protocol_error` (0 or 1, so error rates are metric math), and a count per refusal
  kind (`refused_auth`, `refused_size`, `refused_version`) when the edge refused it;
  by `[service]`, and by `[service, tool]` for calls of a tool the service has (an
  unknown tool name never becomes a dimension value).
- Start-up line: `startup_ms` (Milliseconds), by `[service]`.

Docs: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

from typing import Any, Final

OUTCOMES: Final = ("ok", "tool_error", "protocol_error")
REFUSALS: Final = ("auth", "size", "version")
MAX_METRICS: Final = 100
MAX_DIMENSIONS: Final = 30

_MS = "Milliseconds"
_COUNT = "Count"


def _directive(namespace: str, dimensions: list[list[str]], metrics: list[tuple[str, str]]) -> dict:
    return {
        "Namespace": namespace,
        "Dimensions": dimensions,
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
    }


class RequestMetrics:
    """Adds the `_aws` block, and the count fields it names, to a request line's fields."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        base = [("duration_ms", _MS), *((outcome, _COUNT) for outcome in OUTCOMES)]
        # One directive per shape, built once: the per-request work is a dict copy.
        self._directives = {
            (by_tool, refusal): [
                _directive(
                    namespace,
                    [["service"], ["service", "tool"]] if by_tool else [["service"]],
                    base + ([(f"refused_{refusal}", _COUNT)] if refusal else []),
                )
            ]
            for by_tool in (False, True)
            for refusal in (None, *REFUSALS)
        }

    def add(
        self, fields: dict[str, Any], created: float, by_tool: bool, refusal: str | None
    ) -> None:
        """Make `fields` (a request line about to be written) an EMF document, in place."""
        outcome = fields.get("outcome")
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
