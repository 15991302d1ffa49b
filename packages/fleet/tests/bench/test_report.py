"""The report's arithmetic: ratios against the seed of the same run, and the verdicts."""

from __future__ import annotations

from fleet.bench import report
from fleet.bench.load import WarmResult
from fleet.bench.probe import ColdStart
from fleet.bench.runner import FirstCalls, Settings, Variant


def measured(name: str, cold: list[float], p50: float | None = None, rps: float = 0) -> Variant:
    variant = Variant(name, ["true"], {})
    variant.cold = [ColdStart(seconds, seconds, 90.0) for seconds in cold]
    if p50 is not None:
        variant.warm1 = [WarmResult(p50, p50 * 2, 0.0, 0)]
        variant.warm16 = [WarmResult(p50, p50 * 2, rps, 0)]
    return variant


def rendered() -> str:
    variants = [
        measured(
            "math artifact", [0.4, 0.5, 9.0], p50=2.1, rps=400
        ),  # a median ignores the outlier
        measured("seed (SAM default build)", [2.0, 2.0, 2.0], p50=2.0, rps=500),
        measured("math (dev env)", [1.2]),
        measured("seed (dev env)", [1.0]),
        measured("math artifact (MCP_METRICS=false)", [], p50=1.9, rps=420),
    ]
    first = FirstCalls("math artifact", first_ms=[3.0], warm_ms=[2.0], after_hooks_ms=[20.0])
    return report.render(variants, {}, [("fastmcp", 1.0, 300.0)], Settings(), [first])


def test_cold_start_ratios_are_medians_against_the_seed():
    text = rendered()
    assert "| math artifact | 0.500 | 0.25 |" in text
    assert (
        "| math artifact cold start vs seed (SAM default build) | 0.25x | ≤ 0.35x | met |" in text
    )
    assert "| math (dev env) cold start vs seed (dev env) | 1.20x | ≤ 1.15x | **missed** |" in text


def test_warm_targets_and_the_cost_of_metrics():
    text = rendered()
    assert "| warm p50 vs seed | 1.05x | ≤ 1.10x | met |" in text
    assert "| warm throughput vs seed | 0.80x | ≥ 0.90x | **missed** |" in text
    assert "| warm p50 with metrics vs without | 1.11x | ≤ 1.05x | **missed** |" in text


def test_a_slow_first_call_after_the_hooks_misses_its_bound():
    # bound = 3 x warm + 5 ms = 11 ms: the first call meets it, the one after the hooks not
    assert "| math artifact | 3.0 | 2.0 | 11.0 | 20.0 | **missed** |" in rendered()


def test_without_warm_runs_there_is_no_warm_section():
    variants = [measured("math artifact", [0.5]), measured("seed (SAM default build)", [2.0])]
    variants += [measured("math (dev env)", [1.0]), measured("seed (dev env)", [1.0])]
    text = report.render(variants, {}, [], Settings())
    assert "## Warm path" not in text
    assert "warm p50 vs seed" not in text


def test_the_scale_section_compares_uploads_with_one_artifact_per_service():
    from fleet.bench.scale import ScalePoint

    variants = [measured("math artifact", [0.5]), measured("seed (SAM default build)", [2.0])]
    variants.append(measured("math function + layers (as on Lambda)", [0.51]))
    sizes = {"math (function)": (90_000, 30_000), "DepsLayer (shared)": (55e6, 19e6)}
    sizes["CommonLayer (shared)"] = (400_000, 140_000)
    points = [ScalePoint(3, 8.0, 19_500_000, 180_000, [("layer", 140_000), ("tpl", 40_000)])]
    points.append(ScalePoint(50, 45.0, 21_000_000, 900_000, [("layer", 140_000)]))
    text = report.render(variants, {"sizes": sizes, "scale": points}, [], Settings())
    assert "| 3 | 8.0 | 19.5 | 180 (2 objects) | 57 |" in text
    assert "| 50 | 45.0 | 21.0 | 900 (1 objects) | 957 |" in text
    assert (
        "| cold start, function + shared layers vs one bundled artifact | 1.02x | ≤ 1.05x | met |"
        in text
    )
