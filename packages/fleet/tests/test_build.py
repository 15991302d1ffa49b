"""Artifacts: arm64-only for Lambda, and a host twin that starts exactly as Lambda starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastmcp import Client

from fleet.build import LAMBDA_PYTHON, build_service, find_python
from fleet.check import ELF_AARCH64, check_artifacts, elf_machine
from fleet.testing import run_script
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = {service.name: service for service in service_dirs(ROOT)}


@pytest.fixture(scope="module")
def lambda_build(tmp_path_factory) -> Path:
    """Every service built for Lambda (arm64, Python 3.13), as `sam build` lays them out."""
    build_dir = tmp_path_factory.mktemp("aws-sam-build")
    for name, service in SERVICES.items():
        build_service(
            ROOT, service, build_dir / f"{name.capitalize()}Function", "lambda", log=lambda _: None
        )
    return build_dir


def test_every_shared_object_is_aarch64(lambda_build):
    objects = list(lambda_build.rglob("*.so"))
    assert objects, "expected compiled extensions (pydantic-core, ...)"
    assert {elf_machine(path) for path in objects} == {ELF_AARCH64}
    assert check_artifacts(lambda_build) == []


def test_artifact_holds_only_what_lambda_runs(lambda_build):
    artifact = lambda_build / "MathFunction"
    assert os.access(artifact / "run.sh", os.X_OK)
    assert (artifact / "math_service" / "__main__.py").is_file()
    assert (artifact / "mcp_common" / "app.py").is_file()
    for absent in (
        "bin",
        "fleet",
        "pytest",
        "_pytest",
        "moto",
        "ruff",
        "samcli",
        "tests",
        "weather_service",
    ):
        assert not (artifact / absent).exists(), absent
    assert not list(artifact.glob("*.pth"))


def test_workspace_code_is_always_fresh(tmp_path):
    """A changed source file shows up in the next build, though the version did not change."""
    marker = ROOT / "packages" / "mcp_common" / "src" / "mcp_common" / "_build_probe.py"
    try:
        marker.write_text("VALUE = 1\n")
        build_service(ROOT, SERVICES["math"], tmp_path / "a", "host", log=lambda _: None)
        marker.write_text("VALUE = 2\n")
        build_service(ROOT, SERVICES["math"], tmp_path / "b", "host", log=lambda _: None)
    finally:
        marker.unlink()
    assert (tmp_path / "a" / "mcp_common" / "_build_probe.py").read_text() == "VALUE = 1\n"
    assert (tmp_path / "b" / "mcp_common" / "_build_probe.py").read_text() == "VALUE = 2\n"


@pytest.mark.skipif(find_python(LAMBDA_PYTHON) is None, reason="no Python 3.13 interpreter here")
def test_bytecode_is_precompiled_for_the_lambda_interpreter(lambda_build):
    compiled = list((lambda_build / "MathFunction" / "mcp_common").rglob("*.cpython-313.pyc"))
    assert compiled


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A virtual environment with nothing installed: only the artifact can supply packages."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin"


@pytest.fixture(scope="module")
def host_twin(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("host-twin") / "MathFunction"
    build_service(ROOT, SERVICES["math"], out, "host", log=lambda _: None)
    return out


def test_host_twin_serves_mcp_started_as_lambda_starts_it(host_twin, bare_python):
    env = {
        "PATH": f"{bare_python}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYTHONPATH": "",
        "AWS_LAMBDA_FUNCTION_NAME": "MathFunction",  # as in Lambda: binds 0.0.0.0, auth defaults to api_key
        "MCP_AUTH": "none",
    }
    clean = {
        key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    with run_script(host_twin / "run.sh", "/math/health", env={**clean, **env}) as (base, _):
        result = _call_add(f"{base}/math/mcp")
    assert result == 42


def _call_add(url: str) -> object:
    import asyncio

    async def call() -> object:
        async with Client(url) as client:
            return (await client.call_tool("add", {"a": 40, "b": 2})).data

    return asyncio.run(call())
