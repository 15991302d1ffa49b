"""Two teams add a service each, on two branches: git merges them with, at most, a conflict
in uv.lock that `uv lock` resolves (template.yaml merges with the union driver)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleet.check import _registration_faults
from fleet.new import create_service
from fleet.template import load_template, registered_services
from fleet.testing import copy_workspace
from fleet.workspace import find_root, service_dirs

pytestmark = pytest.mark.slow  # three `uv lock`s: scheduled first (see conftest.py)

ROOT = find_root(Path(__file__).parent)


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=check,
    )


def test_two_branches_that_each_add_a_service_merge(tmp_path, monkeypatch):
    repo = copy_workspace(ROOT, tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    # Two names that sort together: both registrations land at the same places.
    for branch, name in (("team-a", "alpha_desk"), ("team-b", "alpha_docs")):
        git(repo, "checkout", "-q", "-b", branch, "main")
        create_service(repo, name, lock=True, log=lambda _: None)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"fleet new {name}")

    merge = git(repo, "merge", "-q", "--no-edit", "team-a", check=False)
    conflicted = git(repo, "diff", "--name-only", "--diff-filter=U").stdout.split()
    assert conflicted in ([], ["uv.lock"]), merge.stdout + merge.stderr
    if conflicted:
        git(repo, "checkout", "--ours", "uv.lock")
        subprocess.run(["uv", "lock", "--quiet"], cwd=repo, check=True)
        subprocess.run(["uv", "lock", "--check", "--quiet"], cwd=repo, check=True)
        git(repo, "add", "uv.lock")
        git(repo, "commit", "-qm", "merge team-a")

    registered = registered_services(load_template(repo / "template.yaml"))
    assert {"alpha_desk", "alpha_docs"} <= set(registered)
    for name in ("alpha_desk", "alpha_docs"):
        monkeypatch.syspath_prepend(str(repo / "services" / name / "src"))
        assert f'name = "{name.replace("_", "-")}-service"' in (repo / "uv.lock").read_text()
    # Every service registered in every place, nothing twice (a duplicate key fails the load):
    # the part of fleet check a merge can break.
    services = [folder.name for folder in service_dirs(repo)]
    assert _registration_faults(load_template(repo / "template.yaml"), services) == []
