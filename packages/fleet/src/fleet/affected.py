"""`fleet affected [BASE]`: what a change since BASE can break, so CI runs only that.

A change inside `services/<svc>/` selects that service's own tests and the fleet-level tests
for that service (`FLEET_TEST_SERVICES`, which the root conftest reads to leave out the
other services' parametrized cases). Anything else (`mcp_common`, `infra/`, `template.yaml`,
the lock, the fleet tooling, CI) can reach every service: everything runs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleet.workspace import FleetError, service_dirs

FLEET_TESTS = ("tests", "packages/fleet/tests")
"""Fleet-level tests that hold cases per service: run for the changed services only."""
INERT = (".md", ".png")
"""Paths no test reads as code (the README's code blocks are read by CI's scaffold check)."""


@dataclass(frozen=True)
class Affected:
    everything: bool
    services: tuple[str, ...]
    reasons: tuple[str, ...]

    def pytest_args(self) -> list[str]:
        if self.everything:
            return []
        return [*(f"services/{s}/tests" for s in self.services), *FLEET_TESTS]

    def environment(self) -> dict[str, str]:
        return {} if self.everything else {"FLEET_TEST_SERVICES": ",".join(self.services)}


def _git(root: Path, *args: str) -> list[str]:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise FleetError(f"`git {' '.join(args)}` failed: {result.stderr.strip()}")
    return [line for line in result.stdout.splitlines() if line]


def merge_base(root: Path, branch: str = "main") -> str:
    return _git(root, "merge-base", "HEAD", branch)[0]


def changed_paths(root: Path, base: str) -> list[str]:
    """Every path that differs from `base`: commits since, staged, unstaged and new files."""
    changed = _git(root, "diff", "--name-only", base)
    changed += _git(root, "ls-files", "--others", "--exclude-standard")
    return sorted(set(changed))


def affected(root: Path, paths: list[str]) -> Affected:
    known = {service.name for service in service_dirs(root)}
    services: set[str] = set()
    reasons: list[str] = []
    for path in paths:
        parts = path.split("/")
        if parts[0] == "services" and len(parts) > 2:
            services.add(parts[1])  # a removed service: its own tests are gone with it
        elif not path.endswith(INERT):
            reasons.append(path)
    if reasons:
        return Affected(True, tuple(sorted(known)), tuple(reasons))
    return Affected(False, tuple(sorted(services & known)), ())
