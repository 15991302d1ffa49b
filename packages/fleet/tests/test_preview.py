"""`fleet preview`: which services a change republishes, and which locked packages it moves
with the services that import them (the silent starlette downgrade from the report)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fleet.preview import preview
from fleet.testing import copy_workspace
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def workspace(tmp_path) -> Path:
    copy = copy_workspace(ROOT, tmp_path / "repo")
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "base")
    return copy


def test_a_change_inside_one_service_republishes_it_alone(workspace):
    service = service_dirs(workspace)[-1]
    (service.package_dir / "__init__.py").write_text("# changed\n", encoding="utf-8")
    result = preview(workspace, "HEAD")
    assert list(result.republished) == [service.name]
    assert result.moved == {}


def test_a_moved_package_is_named_with_every_service_that_imports_it(workspace):
    lock = workspace / "uv.lock"
    text = lock.read_text(encoding="utf-8")
    old = re.search(r'name = "starlette"\nversion = "([^"]+)"', text)[1]
    lock.write_text(
        text.replace(
            f'name = "starlette"\nversion = "{old}"', 'name = "starlette"\nversion = "1.8.0"'
        )
    )
    result = preview(workspace, "HEAD")
    before, now, users = result.moved["starlette"]
    assert (before, now) == (old, "1.8.0")
    names = [service.name for service in service_dirs(workspace)]
    assert users == sorted(names)  # every service serves through starlette
    assert sorted(result.republished) == sorted(names)
    assert all(
        "the DepsLayer (a locked package moved)" in why for why in result.republished.values()
    )
