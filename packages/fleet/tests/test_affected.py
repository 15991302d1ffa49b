"""`fleet affected`: a change inside one service runs that service's tests and the fleet's
cases for it; anything shared runs everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fleet.affected import affected
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = [service.name for service in service_dirs(ROOT)]


def test_a_change_inside_one_service_selects_it_alone():
    service = SERVICES[-1]
    result = affected(ROOT, [f"services/{service}/src/x.py", f"services/{service}/infra.yaml"])
    assert not result.everything
    assert result.services == (service,)
    assert result.pytest_args() == [f"services/{service}/tests", "tests", "packages/fleet/tests"]
    assert result.environment() == {"FLEET_TEST_SERVICES": service}


def test_anything_shared_selects_everything():
    for path in (
        "packages/mcp_common/src/mcp_common/auth.py",
        "infra/service.yaml",
        "uv.lock",
        "template.yaml",
        ".ci/run",
    ):
        result = affected(ROOT, [f"services/{SERVICES[0]}/x.py", path])
        assert result.everything, path
        assert result.pytest_args() == []
    assert not affected(ROOT, ["README.md"]).everything


def test_the_fleet_tests_leave_out_the_other_services_cases():
    service = SERVICES[0]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n0", "tests/test_template.py"],
        cwd=ROOT,
        env={**os.environ, "FLEET_TEST_SERVICES": service},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ids = [line for line in collected.splitlines() if "::" in line]
    assert any(f"[{service}]" in line for line in ids)
    for other in SERVICES:
        if other != service:
            assert not [line for line in ids if f"[{other}]" in line], other
