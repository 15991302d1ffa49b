"""The math service started as Lambda starts it, with auth on: 401 / 200 / 403 over HTTP."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from fleet.testing import MCP_HEADERS, JwtIssuer, run_script, serve
from mcp_common.apikeys import hash_key

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
}


def env(**values: str) -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **values}


def status(base: str, **headers: str) -> int:
    return httpx.post(f"{base}/math/mcp", json=CALL, headers={**MCP_HEADERS, **headers}).status_code


def test_api_keys_from_the_environment():
    records = [
        {"name": "math-client", "sha256": hash_key("key-math"), "services": ["math"]},
        {"name": "weather-client", "sha256": hash_key("key-weather"), "services": ["weather"]},
        {"name": "ops", "sha256": hash_key("key-ops"), "services": ["*"]},
    ]
    with run_script(
        RUN_SH, "/math/health", env(MCP_AUTH="api_key", MCP_API_KEYS=json.dumps(records))
    ) as (
        base,
        _,
    ):
        assert status(base) == 401
        assert status(base, authorization="Bearer key-wrong") == 401
        assert status(base, authorization="Bearer key-math") == 200
        assert status(base, **{"x-api-key": "key-ops"}) == 200
        assert status(base, **{"x-api-key": "key-weather"}) == 403


def test_jwt_against_a_jwks_on_loopback():
    issuer = JwtIssuer()
    with serve(issuer.jwks_app()) as jwks_base:
        settings = env(
            MCP_AUTH="jwt",
            MCP_JWT_JWKS_URI=f"{jwks_base}/.well-known/jwks.json",
            MCP_JWT_ISSUER=issuer.issuer,
            MCP_JWT_AUDIENCE="math-api",
            MCP_JWT_REQUIRED_SCOPES="math:use",
        )
        with run_script(RUN_SH, "/math/health", settings) as (base, _):
            good = issuer.token(aud="math-api", scope="math:use")
            assert status(base) == 401
            assert (
                status(base, authorization=f"Bearer {issuer.token(aud='other', scope='math:use')}")
                == 401
            )
            assert status(base, authorization=f"Bearer {good}") == 200
            assert (
                status(base, authorization=f"Bearer {issuer.token(aud='math-api', scope='x')}")
                == 403
            )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"MCP_AUTH": "api_key"}, "needs exactly one key source"),
        ({"MCP_AUTH": "jwt", "MCP_JWT_ISSUER": "https://i"}, "MCP_JWT_JWKS_URI"),
        ({"MCP_AUTH": "sometimes"}, "MCP_AUTH"),
    ],
)
def test_misconfiguration_refuses_to_start_with_a_clear_message(values, message):
    import subprocess

    result = subprocess.run(
        [str(RUN_SH)], env=env(PORT="1", **values), capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 2
    line = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert line["level"] == "CRITICAL"
    assert message in line["message"]
