"""`python -m <svc>_service` (what run.sh execs): how a service that cannot start says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fleet.testing import refused_start

MAIN = """
from mcp_common import ServiceSpec
from mcp_common.entrypoint import serve

serve(ServiceSpec(name="broken", tools_package="broken_tools"))
"""


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_tools_module_that_fails_to_import_is_one_critical_line(tmp_path, level):
    package = tmp_path / "broken_tools"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from fastmcp.tools import tool\n\n@tool\ndef ok() -> str:\n    return 'ok'\n"
    )
    (package / "bad.py").write_text("import not_a_module_anyone_has  # noqa\n")
    result = subprocess.run(
        [sys.executable, "-c", MAIN],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(tmp_path),
            "MCP_AUTH": "none",
            "LOG_LEVEL": level,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]  # JSON only
    [critical] = [line for line in lines if line["level"] == "CRITICAL"]
    assert "broken_tools.bad" in critical["message"]
    assert "ModuleNotFoundError" in critical["message"]
    tracebacks = [line for line in lines if "exception" in line]
    if level == "DEBUG":
        assert tracebacks  # the whole story, when asked for
    else:
        assert tracebacks == []
        assert "Traceback" not in result.stdout + result.stderr


SETTINGS_MAIN = """
import sys

from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_common import ServiceSpec
from mcp_common.entrypoint import serve


class ProbeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_")
    retries: int


try:
    serve(ServiceSpec(name="probe", tools_package="probe_tools", settings=ProbeSettings))
finally:
    print("fastmcp imported:", "fastmcp" in sys.modules, file=sys.stderr)
"""


def test_the_services_own_settings_are_checked_first_and_never_echoed():
    """A service's invalid settings stop it before fastmcp is imported (a fraction of a
    second, not the ~2 s of a full start), in one CRITICAL line without the value."""
    secret = "sk_live_pasted_in_the_wrong_variable"
    env = {"PATH": "/usr/bin:/bin", "MCP_AUTH": "none", "PROBE_RETRIES": secret}
    refusal = refused_start([sys.executable, "-c", SETTINGS_MAIN], env)
    assert refusal.critical["message"].startswith("invalid configuration: retries: ")
    assert secret not in refusal.output
    assert "fastmcp imported: False" in refusal.output
