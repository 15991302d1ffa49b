"""The benchmark runs end to end on tiny settings (numbers are not asserted: they are measured).

The warm path is left out here (it is the slowest part and has tests of its own in
test_runner.py and test_report.py), so this stays a smoke test of the whole command.
"""

from __future__ import annotations

import pytest

from fleet.cli import main

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py


def test_bench_runs_on_tiny_settings(tmp_path, capsys, host_twins):
    out = tmp_path / "results"
    code = main(
        [
            "bench",
            "--artifact",
            str(host_twins["math"]),
            "--runs",
            "1",
            "--no-warm",
            "--no-dev-env",
            "--no-sizes",
            "--no-scale",
            "--long-tool-years",
            "4",  # the least it takes (its cancelled call waits for a 4th progress)
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = (out / "report.md").read_text()
    for section in (
        "## Cold start",
        "## First call after readiness",
        "## Targets",
        "## Slowest imports",
        "## Long-running tool (streaming)",
    ):
        assert section in report
    assert "## Warm path" not in report  # --no-warm
    assert "| math (dev env) cold start vs seed (dev env) | not measured |" in report
    assert "| math artifact (MCP_PRIME=false) |" in report
    for variant in (
        "math artifact",
        "seed (SAM default build)",
        "floor (bare ASGI)",
        "math function + layers (as on Lambda)",
    ):
        assert f"| {variant} |" in report
    assert "| math (dev env) |" not in report  # --no-dev-env
    assert "`get_climate_history` for 4 years" in report
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[bench] wrote" in capsys.readouterr().out


def test_the_long_tool_needs_four_years_to_be_cancelled_after_its_fourth_progress(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--long-tool-years", "3"])
    assert exited.value.code == 2
    assert "--long-tool-years: must be 4 or more" in capsys.readouterr().err
