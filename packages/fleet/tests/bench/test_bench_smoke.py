"""The benchmark runs end to end on tiny settings (numbers are not asserted: they are measured)."""

from __future__ import annotations

from fleet.cli import main


def test_bench_runs_on_tiny_settings(tmp_path, capsys, host_twins):
    out = tmp_path / "results"
    code = main(
        [
            "bench",
            "--artifact",
            str(host_twins["math"]),
            "--runs",
            "1",
            "--warm-runs",
            "1",
            "--requests",
            "30",
            "--seconds",
            "0.3",
            "--no-sizes",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = (out / "report.md").read_text()
    for section in (
        "## Cold start",
        "## First call after readiness",
        "## Warm path",
        "## Targets",
        "## Slowest imports",
    ):
        assert section in report
    assert "| math artifact (MCP_PRIME=false) |" in report
    assert "| math artifact (MCP_METRICS=false) |" in report
    assert "| warm p50 with metrics vs without |" in report
    for variant in (
        "math artifact",
        "seed (SAM default build)",
        "floor (bare ASGI)",
        "math (dev env)",
    ):
        assert f"| {variant} |" in report
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
