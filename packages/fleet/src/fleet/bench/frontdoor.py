"""The front door on the warm path: one tools/call through it against the same call made
directly, in one run, interleaved, and what a million calls through it cost.

Both are real processes as Lambda starts them: the math artifact's run.sh, and the front
door's run.sh (its catalog built by `fleet build --frontdoor`, the shared layers on its path)
forwarding to that artifact over loopback, where Lambda's Invoke would carry it. The
difference in p50 is the front door's own cost: its edge, its MCP layer and one more hop.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.bench.load import WarmResult, measure
from fleet.bench.probe import CALL, call_once, free_port, spawned

THROUGH = {**CALL, "params": {**CALL["params"], "name": "math_add"}}
"""The same call as the direct one (math's add), under its front-door name."""
TARGET_MS = 2.0
"""Issue 31: at most +2 ms p50 locally."""


@dataclass
class FrontDoorResult:
    direct: list[WarmResult] = field(default_factory=list)
    through: list[WarmResult] = field(default_factory=list)

    @property
    def direct_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.direct)

    @property
    def through_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.through)


def _ready(port: int, path: str, headers: dict[str, str], body: dict | None = None) -> bool:
    if body is None:
        return call_once(port, path, headers=headers)
    try:
        return measure(port, path, 1, 1, 5.0, headers, body).errors == 0
    except OSError:
        return False


def _wait(port: int, path: str, headers: dict[str, str], body: dict | None, name: str) -> None:
    deadline = time.monotonic() + 60
    while not _ready(port, path, headers, body):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not answer a tools/call")
        time.sleep(0.05)


def measure_front_door(
    root: Path,
    work: Path,
    service: Any,
    layers: Path | None,
    runs: int,
    requests: int,
    seconds: float,
    cpu: int,
    log: Any,
) -> FrontDoorResult:
    """p50 at concurrency 1, direct to the math artifact and through the front door in front
    of it, alternating `runs` times."""
    from fleet.build import build_frontdoor

    out = build_frontdoor(root, work / "frontdoor", lambda _: None, force=True)
    result = FrontDoorResult()
    service_port, door_port = free_port(), free_port()
    door_env = {
        **service.env,
        "MCP_FRONTDOOR_UPSTREAM": f"http://127.0.0.1:{service_port}",
        "PORT": str(door_port),
    }
    if layers is not None:  # the shared layers, as Lambda lays them out (else the interpreter's)
        door_env["FLEET_LAYERS_DIR"] = str(layers)
    with (
        spawned(service.command, {**service.env, "PORT": str(service_port)}, cpu=cpu),
        spawned([str(out / "run.sh")], door_env, cpu=cpu),
    ):
        _wait(service_port, "/math/mcp", service.headers, None, "the math artifact")
        _wait(door_port, "/mcp", service.headers, THROUGH, "the front door")
        warm_up = min(300, requests)
        measure(service_port, "/math/mcp", 1, warm_up, seconds, service.headers)
        measure(door_port, "/mcp", 1, warm_up, seconds, service.headers, THROUGH)
        for index in range(runs):
            direct = measure(service_port, "/math/mcp", 1, requests, seconds, service.headers)
            through = measure(door_port, "/mcp", 1, requests, seconds, service.headers, THROUGH)
            if direct.errors or through.errors:
                raise RuntimeError(
                    f"front door run: {direct.errors} direct and {through.errors} "
                    "front-door requests did not answer 200"
                )
            result.direct.append(direct)
            result.through.append(through)
            log(
                f"front door run {index + 1}/{runs}: direct p50 {direct.p50_ms:.2f} ms, "
                f"through it {through.p50_ms:.2f} ms"
            )
    return result


def report(result: FrontDoorResult, cost_lines: list[str]) -> list[str]:
    """The report's front-door section (markdown)."""
    added = result.through_ms - result.direct_ms
    met = "met" if added <= TARGET_MS else "**missed**"
    return [
        "",
        "## The front door on the warm path",
        "",
        (
            "One tools/call (math's add) at concurrency 1: direct to the math artifact's run.sh, "
            "and through the front door's run.sh in front of it (its built catalog, its calls "
            "over loopback where Lambda's Invoke would carry them), alternating in one run."
        ),
        "",
        "| | p50 (ms) | p99 (ms) | requests/s |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {name} | {statistics.median(r.p50_ms for r in runs):.2f} | "
            f"{statistics.median(r.p99_ms for r in runs):.2f} | "
            f"{statistics.median(r.throughput_rps for r in runs):.0f} |"
            for name, runs in (
                ("direct", result.direct),
                ("through the front door", result.through),
            )
        ),
        "",
        (
            f"Added by the front door: {added:+.2f} ms p50 ({result.through_ms / result.direct_ms:.2f}x); "
            f"target at most +{TARGET_MS:g} ms: {met}. Deployed, a call through it is one API "
            "Gateway request and two Lambda invocations (the front door's and the service's): "
            "no second API Gateway request."
        ),
        *cost_lines,
    ]
