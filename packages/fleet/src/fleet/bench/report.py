"""The benchmark's outputs: a markdown report with ratios and targets, and a PNG chart."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from fleet.bench.runner import FirstCalls, Variant, cpu_model, median, today

TARGETS = {
    "cold": ("math artifact", "seed (SAM default build)", 0.35, "≤"),
    "layers": ("math function + layers (as on Lambda)", "math artifact", 1.05, "≤"),
    "dev": ("math (dev env)", "seed (dev env)", 1.15, "≤"),
}


def _cold(variant: Variant) -> float:
    return median([run.seconds for run in variant.cold])


def _warm(variant: Variant, attribute: str, concurrency: int) -> float:
    runs = variant.warm1 if concurrency == 1 else variant.warm16
    return median([getattr(run, attribute) for run in runs])


def _verdict(ratio: float, limit: float, sense: str) -> str:
    ok = ratio <= limit if sense == "≤" else ratio >= limit
    return "met" if ok else "**missed**"


def _first_calls(first_calls: list[FirstCalls]) -> list[str]:
    lines = [
        "",
        "## First call after readiness (health answered → first `tools/call`)",
        "",
        (
            "Fresh connections, as the Web Adapter makes them. Goal: the first call costs at "
            "most 3 x a warm call + 5 ms, after a plain start and after the SnapStart hooks "
            "(before-checkpoint, after-restore)."
        ),
        "",
        "| variant | first call ms | warm call ms | bound ms | first after hooks ms | |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for calls in first_calls:
        first, warm = median(calls.first_ms), median(calls.warm_ms)
        after = median(calls.after_hooks_ms)
        bound = 3 * warm + 5
        verdict = "met" if first <= bound and after <= bound else "**missed**"
        lines.append(
            f"| {calls.name} | {first:.1f} | {warm:.1f} | {bound:.1f} | {after:.1f} | {verdict} |"
        )
    return lines


def _scale(points: list, sizes: dict) -> list[str]:
    """sam build time and deploy uploads, by fleet size."""
    if not points:
        return []
    shared = sum(zipped for name, (_, zipped) in sizes.items() if name.endswith("(shared)"))
    lines = [
        "",
        "## The fleet at scale: `sam build`, and what `sam deploy` uploads",
        "",
        (
            "A copy of the workspace grown with `fleet new`; uploads are `sam package`'s to S3 on "
            "a moto server (it skips every artifact whose content hash is already there)."
        ),
        "",
        "| services | `sam build` s (warm caches) | uploaded on reaching this size, MB | after a one-line `mcp_common` change, KB | if every artifact carried the shared code, MB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for point in points:
        before = f"{point.services * shared / 1e6:.0f}" if shared else "n/a"
        lines.append(
            f"| {point.services} | {point.build_seconds:.1f} | {point.first_upload_bytes / 1e6:.1f} | "
            f"{point.change_upload_bytes / 1e3:.0f} ({len(point.change_uploads)} objects) | {before} |"
        )
    return lines


def render(
    variants: list[Variant],
    extra: dict,
    importtime: list[tuple[str, float, float]],
    settings,
    first_calls: list[FirstCalls] | None = None,
) -> str:
    by_name = {variant.name: variant for variant in variants}
    seed = by_name["seed (SAM default build)"]
    cold = [variant for variant in variants if variant.cold]
    lines = [
        "# Benchmark: cold start, warm path, size and build",
        "",
        f"- date: {today()}",
        f"- machine: {cpu_model()}, {platform.machine()}, Python {platform.python_version()} (host twins)",
        (
            f"- runs: {settings.runs} cold starts per variant (interleaved), {settings.warm_runs} "
            "warm runs per variant; medians. Server pinned to CPU 0, load generator to CPU 1."
        ),
        "- ratios are against the seed design measured in the same run",
        "",
        "## Cold start (spawn → first `tools/call` answered)",
        "",
        "| variant | median s | x seed | startup CPU s | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for variant in cold:
        lines.append(
            f"| {variant.name} | {_cold(variant):.3f} | {_cold(variant) / _cold(seed):.2f} | "
            f"{median([r.cpu_seconds for r in variant.cold]):.2f} | {median([r.peak_rss_mb for r in variant.cold]):.0f} |"
        )
    lines += _first_calls(first_calls or [])
    warm = [v for v in variants if v.warm1]
    if warm:
        lines += [
            "",
            (
                "## Warm path (one process; ours with the JSON request line, its CloudWatch "
                "metrics (EMF) and API-key auth on; the MCP_METRICS=false row: the same, no metrics)"
            ),
            "",
            "| variant | p50 ms (c=1) | p99 ms (c=1) | rps (c=16) | p50 x seed | rps x seed |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for variant in warm:
            lines.append(
                f"| {variant.name} | {_warm(variant, 'p50_ms', 1):.2f} | {_warm(variant, 'p99_ms', 1):.2f} | "
                f"{_warm(variant, 'throughput_rps', 16):.0f} | {_warm(variant, 'p50_ms', 1) / _warm(seed, 'p50_ms', 1):.2f} | "
                f"{_warm(variant, 'throughput_rps', 16) / _warm(seed, 'throughput_rps', 16):.2f} |"
            )
    sizes = extra.get("sizes", {})
    if sizes:
        lines += [
            "",
            "## Artifact size (Lambda arm64 / Python 3.13)",
            "",
            "| artifact | unzipped MB | zipped MB |",
            "| --- | ---: | ---: |",
        ]
        for name, (unzipped, zipped) in sizes.items():
            lines.append(f"| {name} | {unzipped / 1e6:.1f} | {zipped / 1e6:.1f} |")
    if extra.get("build_warm_s") is not None:
        cold = extra.get("build_cold_s")
        lines += [
            "",
            "## Fleet build time (every service, `fleet build` as `sam build` runs it)",
            "",
            f"- warm caches (uv wheels, compiled third-party layer): {extra['build_warm_s']:.1f} s",
            f"- empty caches: {cold:.1f} s"
            if cold is not None
            else "- empty caches: not measured (--no-cold-build)",
        ]
    lines += _scale(extra.get("scale") or [], sizes)
    lines += extra.get("cost") or []
    lines += extra.get("streaming") or []
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | limit | |",
        "| --- | ---: | ---: | --- |",
    ]
    for label, (ours, base, limit, sense) in {
        "math artifact cold start vs seed (SAM default build)": TARGETS["cold"],
        "cold start, function + shared layers vs one bundled artifact": TARGETS["layers"],
        "math (dev env) cold start vs seed (dev env)": TARGETS["dev"],
    }.items():
        if not (ours in by_name and base in by_name):
            lines.append(f"| {label} | not measured | {sense} {limit}x | |")
            continue
        ratio = _cold(by_name[ours]) / _cold(by_name[base])
        lines.append(
            f"| {label} | {ratio:.2f}x | {sense} {limit}x | {_verdict(ratio, limit, sense)} |"
        )
    if warm:
        ours = by_name["math artifact"]
        p50 = _warm(ours, "p50_ms", 1) / _warm(seed, "p50_ms", 1)
        rps = _warm(ours, "throughput_rps", 16) / _warm(seed, "throughput_rps", 16)
        lines.append(f"| warm p50 vs seed | {p50:.2f}x | ≤ 1.10x | {_verdict(p50, 1.10, '≤')} |")
        lines.append(
            f"| warm throughput vs seed | {rps:.2f}x | ≥ 0.90x | {_verdict(rps, 0.90, '≥')} |"
        )
        quiet = by_name.get("math artifact (MCP_METRICS=false)")
        if quiet is not None and quiet.warm1:
            cost = _warm(ours, "p50_ms", 1) / _warm(quiet, "p50_ms", 1)
            lines.append(
                f"| warm p50 with metrics vs without | {cost:.2f}x | ≤ 1.05x | "
                f"{_verdict(cost, 1.05, '≤')} |"
            )
    if importtime:
        lines += [
            "",
            "## Slowest imports at service start (`python -X importtime`, the pruned artifact)",
            "",
            "| module | self ms | cumulative ms |",
            "| --- | ---: | ---: |",
        ]
        lines += [
            f"| {name} | {self_ms:.1f} | {cumulative:.1f} |"
            for name, self_ms, cumulative in importtime
        ]
    lines.append("")
    return "\n".join(lines)


def chart(variants: list[Variant], path: Path) -> bool:
    """Cold start and throughput bars; False if matplotlib is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return False
    cold = [variant for variant in variants if variant.cold]
    names = [variant.name for variant in cold]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.barh(names, [_cold(v) for v in cold], color="#4C72B0")
    left.set_xlabel("seconds to first tools/call (median)")
    left.set_title("Cold start")
    left.invert_yaxis()
    warm = [v for v in variants if v.warm16]
    right.barh(
        [v.name for v in warm], [_warm(v, "throughput_rps", 16) for v in warm], color="#55A868"
    )
    right.set_xlabel("requests/s at concurrency 16 (median)")
    right.set_title("Warm throughput")
    right.invert_yaxis()
    figure.suptitle(f"MCP fleet benchmark, {today()}, {cpu_model()}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
