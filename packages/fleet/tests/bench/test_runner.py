"""The warm-path measurement against real servers on loopback (the floor: it starts in 0.1 s)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fleet.bench import runner

FLOOR = Path(runner.__file__).parent / "floor_app.py"
TINY = runner.Settings(runs=1, warm_runs=2, requests=20, seconds=0.2)


def variant(name: str, script: Path) -> runner.Variant:
    return runner.Variant(name, [sys.executable, str(script)], {**os.environ})


def test_warm_runs_measure_latency_and_throughput_per_run():
    floor = variant("floor", FLOOR)
    logged: list[str] = []
    runner.run_warm([floor], TINY, logged.append)
    assert len(floor.warm1) == len(floor.warm16) == TINY.warm_runs
    for result in (*floor.warm1, *floor.warm16):
        assert result.errors == 0
        assert 0 < result.p50_ms <= result.p99_ms
        assert result.throughput_rps > 0
    assert [line.split(":")[0] for line in logged] == ["warm run 1/2", "warm run 2/2"]


FAILING_AFTER_READINESS = """
import os

import uvicorn

answered = 0


async def app(scope, receive, send):
    global answered
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    answered += 1
    ok = answered == 1  # the readiness probe succeeds, every measured request fails
    body = b'{"jsonrpc":"2.0","id":1,"result":42}' if ok else b"{}"
    await send({
        "type": "http.response.start",
        "status": 200 if ok else 503,
        "headers": [(b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
"""


def test_a_warm_run_with_failed_requests_is_refused(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_AFTER_READINESS)
    with pytest.raises(RuntimeError, match=r"failing: \d+ requests did not answer 200"):
        runner.run_warm([variant("failing", script)], TINY, lambda _: None)


def test_the_front_door_is_measured_against_the_direct_call_in_one_run(host_twins, tmp_path):
    """Both through run.sh, as Lambda starts them; every request answered (an error fails the
    run), and the report says what the front door adds against the target."""
    import json

    from fleet.bench import cost, frontdoor
    from fleet.testing import dev_env
    from fleet.workspace import find_root
    from mcp_common.apikeys import hash_key

    records = json.dumps([{"name": "b", "sha256": hash_key(runner.BENCH_KEY), "services": ["*"]}])
    env = dev_env(MCP_AUTH="api_key", MCP_API_KEYS=records, MCP_PRIME="false")
    math = runner.Variant(
        "math artifact", [str(host_twins["math"] / "run.sh")], env, {"x-api-key": runner.BENCH_KEY}
    )
    logged: list[str] = []
    result = frontdoor.measure_front_door(
        find_root(), tmp_path, math, None, 2, 20, 1.0, runner.SERVER_CPU, logged.append
    )
    assert len(result.direct) == len(result.through) == 2
    assert all(r.errors == 0 and r.p50_ms > 0 for r in (*result.direct, *result.through))
    assert [line.split(":")[0] for line in logged] == ["front door run 1/2", "front door run 2/2"]
    inputs = cost.Inputs(result.direct_ms, 600, 0.2)
    section = "\n".join(frontdoor.report(result, cost.front_door_report(inputs, result.through_ms)))
    assert f"Added by the front door: {result.through_ms - result.direct_ms:+.2f} ms p50" in section
    assert "### Per million calls through the front door" in section
