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
