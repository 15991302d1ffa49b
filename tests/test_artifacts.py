"""Every service's pruned artifact, started as Lambda starts it: nothing it needs is missing.

`fleet build` leaves out distributions no service imports (a reviewed list) and ships
third-party code as bytecode only. This is the safety net under that list: each host
twin starts with nothing but the artifact on its path, lists its tools and answers one
call of every tool, and its log holds no import error and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest
from fastmcp import Client

from fleet.template import lambda_environment
from fleet.testing import start_service, tool_arguments
from fleet.workspace import find_root, service_dirs

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

ROOT = find_root(Path(__file__).parent)
SERVICES = [service.name for service in service_dirs(ROOT)]


def twin_env(lambda_runtime: Path, **values: str) -> dict[str, str]:
    """Only the artifact supplies packages: Lambda's interpreter (Python and boto3), no
    PYTHONPATH, no venv. Each service uses its local defaults (no AWS resources here);
    tests/test_lifecycle.py runs a twin with Lambda's own environment."""
    clean = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    return {
        **clean,
        "PATH": f"{lambda_runtime}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYTHONPATH": "",
        "MCP_AUTH": "none",
        **values,
    }


async def call_every_tool(url: str) -> dict[str, bool]:
    """{tool: answered as a tool error?} for one call of every listed tool."""
    answers = {}
    async with Client(url) as client:
        for tool in await client.list_tools():
            arguments = tool_arguments(tool)  # its declared example, as fleet smoke calls it
            result = await client.call_tool(tool.name, arguments, raise_on_error=False)
            answers[tool.name] = result.is_error
    return answers


@pytest.mark.parametrize("service", SERVICES)
def test_pruned_artifact_starts_lists_and_answers_every_tool(
    host_twins, lambda_runtime, tmp_path, service
):
    artifact = host_twins[service]
    # The service's own deadline and response mode, as its stack gives them on Lambda.
    own = lambda_environment(ROOT / "services" / service)
    env = twin_env(lambda_runtime, MEMORY_SQLITE_PATH=str(tmp_path / "memory.sqlite"), **own)
    with start_service(artifact / "run.sh", f"/{service}/health", env) as running:
        answers = asyncio.run(call_every_tool(f"{running.base}/{service}/mcp"))
        output = running.output()
    assert answers, "no tools listed"
    for marker in ("ModuleNotFoundError", "ImportError", "Traceback"):
        assert marker not in output, output[-3000:]


def test_tracebacks_from_our_own_code_keep_their_source_lines(host_twins, lambda_runtime):
    artifact = host_twins[SERVICES[0]]
    result = subprocess.run(
        [
            str(lambda_runtime / "python"),
            "-c",
            "from mcp_common import ServiceSpec; ServiceSpec('Bad', 'x')",
        ],
        env={**twin_env(lambda_runtime), "PYTHONPATH": str(artifact)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "mcp_common/service.py" in result.stderr
    assert "raise ValueError(" in result.stderr  # the source line, not just file and number


def test_an_artifact_reports_the_source_it_was_built_from(host_twins, lambda_runtime, tmp_path):
    """Regression: /health said only "0.1.0" (pyproject.toml): nobody could tell which code
    was live. Now the build stamps the commit that last changed the service's folder and
    mcp_common (-dirty with uncommitted changes), and health adds Lambda's function version."""
    from fleet.build import lock_hash, source_commit
    from fleet.testing import loopback_http

    service = SERVICES[0]
    env = twin_env(
        lambda_runtime,
        AWS_LAMBDA_FUNCTION_VERSION="7",
        MEMORY_SQLITE_PATH=str(tmp_path / "memory.sqlite"),
    )
    with start_service(host_twins[service] / "run.sh", f"/{service}/health", env) as running:
        health = loopback_http().get(f"{running.base}/{service}/health").json()
        ready = next(line for line in running.log_entries() if line["message"] == "service ready")
    expected = {
        "commit": source_commit(ROOT, f"services/{service}"),
        "common_commit": source_commit(ROOT, "packages/mcp_common"),
        "function_version": "7",
    }
    assert {key: health.get(key) for key in expected} == expected
    assert {key: ready.get(key) for key in expected} == expected
    # Which lock and which layers: digests of their content, stamped by the build.
    assert health["lock"] == lock_hash(ROOT)
    assert re.fullmatch(r"[0-9a-f]{16}", health["deps_layer"])
    assert re.fullmatch(r"[0-9a-f]{16}", health["common_layer"])
