"""Fixtures shared by every test folder: artifacts are built once per test run.

Builds are the slowest thing the suite does, so each artifact is built by whichever
pytest-xdist worker asks first and reused by all others (fleet.testing.once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from fleet.build import build_service
from fleet.testing import once, shared_dir
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)


def pytest_configure(config: pytest.Config) -> None:
    """Let Python cache bytecode for this run and every server it starts.

    With PYTHONDONTWRITEBYTECODE set and a virtualenv installed without bytecode (uv's
    default), each of the suite's many server starts would compile fastmcp and its
    dependencies from source again: about 1 s of CPU each. Built artifacts are unaffected:
    they ship their bytecode, and the benchmark sets the variable for its own processes.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `slow` run first (longest first is what keeps parallel workers
    finishing together); otherwise collection order, each module's tests together.
    pytest-xdist hands out whole files in this order (`--no-loadscope-reorder`)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _build_all(platform: str):
    def make(target: Path) -> None:
        for service in service_dirs(ROOT):
            out = target / f"{service.name.capitalize()}Function"
            build_service(ROOT, service, out, platform, log=lambda _: None)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def host_twins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every service's artifact built for this machine (`fleet build --platform host`):
    it starts exactly as Lambda starts the real one, through its run.sh."""
    built = once(shared_dir(tmp_path_factory), "host-twins", _build_all("host"))
    return {s.name: built / f"{s.name.capitalize()}Function" for s in service_dirs(ROOT)}


@pytest.fixture(scope="session")
def lambda_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every service built for Lambda (arm64, Python 3.13), laid out as `sam build` does."""
    return once(shared_dir(tmp_path_factory), "aws-sam-build", _build_all("lambda"))


@pytest.fixture(scope="session")
def lambda_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of an interpreter shaped like Lambda's Python runtime: nothing but
    boto3 (which the runtime provides, so artifacts do not ship it). Everything else must
    come from the artifact."""

    def make(target: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
        pins = [f"{name}=={version(name)}" for name in ("boto3", "botocore")]
        python = str(target / "bin" / "python")
        subprocess.run(["uv", "pip", "install", "--quiet", "--python", python, *pins], check=True)

    return once(shared_dir(tmp_path_factory), "lambda-runtime", make) / "bin"
