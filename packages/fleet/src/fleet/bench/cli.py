"""`fleet bench`: one command for the whole benchmark."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fleet.workspace import find_root


def run(args: argparse.Namespace) -> int:
    from fleet.bench import cost, report, runner

    root = find_root()
    settings = runner.Settings(
        runs=args.runs,
        warm_runs=args.warm_runs,
        requests=args.requests,
        seconds=args.seconds,
        cold_build=not args.no_cold_build,
    )
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    log = lambda message: print(f"[bench] {message}", flush=True)
    try:
        prebuilt = Path(args.artifact).resolve() if args.artifact else None
        variants, artifacts = runner.prepare(root, work, log, prebuilt)
        if args.no_dev_env:
            variants = [v for v in variants if "dev env" not in v.name]
        runner.run_cold(variants, settings.runs, log)
        ours = variants[0]
        first_calls = [
            runner.run_first_calls(ours, settings.runs, log),
            runner.run_first_calls(ours, settings.runs, log, prime=False),
        ]
        warm_variants = [v for v in variants if "dev env" not in v.name]
        # The request line's CloudWatch metrics (EMF), measured against the same service
        # without them, in the same run.
        quiet = runner.Variant(
            f"{ours.name} (MCP_METRICS=false)",
            ours.command,
            {**ours.env, "MCP_METRICS": "false"},
            ours.headers,
        )
        if not args.no_warm:
            runner.run_warm([*warm_variants, quiet], settings, log)
        extra = {} if args.no_sizes else runner.sizes_and_builds(root, work, settings, log)
        if not args.no_scale:
            from fleet.bench.scale import measure_scale

            extra["scale"] = measure_scale(root, work, log)
        inputs = _cost_inputs(ours, first_calls, log)
        extra["cost"] = cost.report(inputs)
        if not (args.no_warm or args.no_front_door):  # a warm measurement too
            from fleet.bench import frontdoor

            door = frontdoor.measure_front_door(
                root,
                work,
                ours,
                artifacts["layers"],
                settings.warm_runs,
                settings.requests,
                settings.seconds,
                runner.SERVER_CPU,
                log,
            )
            door_cost = cost.front_door_report(inputs, door.through_ms)
            extra["cost"] += frontdoor.report(door, door_cost)
        from fleet.bench.streaming import measure_streaming

        extra["streaming"] = measure_streaming(root, log, args.long_tool_years)
        importtime = runner.importtime_top(
            artifacts["math artifact"], str(work / "bare-venv" / "bin" / "python")
        )
        text = report.render([*variants, quiet], extra, importtime, settings, first_calls)
        (out / "report.md").write_text(text)
        charted = report.chart(variants, out / "chart.png")
        print(text)
        print(
            f"[bench] wrote {out / 'report.md'}" + (f" and {out / 'chart.png'}" if charted else "")
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _cost_inputs(ours: Any, first_calls: list[Any], log: Any) -> Any:
    """The cost model's inputs: this run's warm milliseconds and a measured request line."""
    from fleet.bench import cost, runner

    warm = [result.p50_ms for result in ours.warm1] or first_calls[0].warm_ms
    line = cost.measure_request_line(ours.command, ours.env, ours.headers)
    inputs = cost.Inputs(runner.median(warm), len(line), cost.compression_of(line))
    log(f"cost inputs: {inputs.ms_per_call:.2f} ms a call, {inputs.line_bytes} bytes a line")
    return inputs


def _at_least_four(text: str) -> int:
    """The long tool's years: the cancelled call is cancelled after its 4th progress."""
    years = int(text)
    if years < 4:
        raise argparse.ArgumentTypeError("must be 4 or more")
    return years


def add_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="benchmark cold start, warm path, size and build time"
    )
    bench.add_argument("--out", default="bench/results", help="where report.md and chart.png go")
    bench.add_argument("--runs", type=int, default=7, help="cold starts per variant (default 7)")
    bench.add_argument(
        "--warm-runs", type=int, default=3, help="warm-path runs per variant (default 3)"
    )
    bench.add_argument(
        "--requests", type=int, default=2000, help="requests at concurrency 1 (default 2000)"
    )
    bench.add_argument(
        "--seconds", type=float, default=5.0, help="time limit per warm measurement (default 5)"
    )
    bench.add_argument(
        "--artifact",
        help="a math host twin already built (`fleet build math --platform host --out DIR`)",
    )
    bench.add_argument(
        "--long-tool-years",
        type=_at_least_four,
        default=20,
        help="years of history the long tool is asked for, 4 or more (default 20)",
    )
    bench.add_argument("--no-warm", action="store_true", help="skip the warm-path measurements")
    bench.add_argument(
        "--no-dev-env",
        action="store_true",
        help="skip the cold starts from the dev environment (math and seed, not built)",
    )
    bench.add_argument(
        "--no-front-door",
        action="store_true",
        help="skip the warm call through the front door against the direct one (--no-warm does)",
    )
    bench.add_argument("--no-sizes", action="store_true", help="skip sizes and build times")
    bench.add_argument("--no-cold-build", action="store_true", help="skip the empty-cache build")
    bench.add_argument(
        "--no-scale",
        action="store_true",
        help="skip sam build at 3 and 50 services and the upload after a one-line change",
    )
    bench.set_defaults(handler=run)
