"""Auth through run.sh when what it depends on fails: a hung key store, a dripping JWKS, a
key store holding bad records. Every wait is bounded and every failure closed, and the log
names the cause without echoing a value.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from fleet.testing import (
    AWS_TEST_ENV,
    MCP_HEADERS,
    JwtIssuer,
    dev_env,
    dripping_server,
    loopback_http,
    silent_listener,
    start_service,
)

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
}


def post(base: str, body: object = CALL, **headers: str) -> httpx.Response:
    return loopback_http().post(
        f"{base}/math/mcp", json=body, headers={**MCP_HEADERS, **headers}, timeout=30
    )


def test_a_bad_key_store_fails_closed_and_logs_no_value():
    """Regression: a raw key pasted where its hash belongs was logged by pydantic's
    input_value. (Other bad stores, in-process: packages/mcp_common/tests/test_auth.py.)"""
    store = '[{"name": "ci", "sha256": "mcpk_raw_key_pasted_here_0123456789", "services": ["*"]}]'
    settings = dev_env(MCP_AUTH="api_key", MCP_API_KEYS=store)
    with start_service(RUN_SH, "/math/health", settings) as service:
        response = post(service.base, **{"x-api-key": "anything"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        output = service.output()
    assert "sha256" in output  # the log names the field and the reason
    assert "mcpk_raw_key" not in output


def test_a_hung_key_store_never_hangs_the_service():
    """Regression: readiness took 3 min, requests 180 s, and the tool deadline answered 200
    for an unauthenticated tools/call."""
    with silent_listener() as hung:
        settings = dev_env(
            MCP_AUTH="api_key",
            MCP_API_KEYS_SSM_PARAMETER="/mcp-fleet/api-keys/math",
            AWS_ENDPOINT_URL_SSM=hung,
            MCP_TOOL_TIMEOUT_SECONDS="1",
            MCP_AUTH_WAIT_SECONDS="1",  # the budget (default 5 s); without one it hung for minutes
            **AWS_TEST_ENV,
        )
        started = time.monotonic()
        with start_service(RUN_SH, "/math/health", settings, timeout=60) as service:
            ready = time.monotonic() - started
            answers: list[tuple[float, httpx.Response]] = []

            def request(**headers: str) -> None:
                began = time.monotonic()
                response = post(service.base, **headers)
                answers.append((time.monotonic() - began, response))

            threads = [
                threading.Thread(target=request, kwargs={"x-api-key": "key-math"}) for _ in range(3)
            ]
            threads.append(threading.Thread(target=request))  # no credential at all
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            output = service.output()
    # Bounds with room for a CPU burner per core (17-19 s seen there); the defect was minutes.
    assert ready <= 45, ready
    assert len(answers) == 4
    for seconds, response in answers:
        assert seconds <= 20, seconds
        assert response.status_code in (401, 503), response.text  # never a 200 tool error
        if response.status_code == 503:
            assert response.headers["retry-after"] == "5"
            assert "/mcp-fleet" not in response.text
    assert sorted(response.status_code for _, response in answers) == [401, 503, 503, 503]
    assert "SSM parameter /mcp-fleet/api-keys/math" in output  # the log names the store


@pytest.fixture(scope="module")
def issuer() -> JwtIssuer:
    return JwtIssuer()


def test_a_dripping_jwks_is_cut_off_by_its_budget(issuer):
    """Regression: a JWKS sending one byte every 3 s held requests for 200 s."""
    jwks = json.dumps(issuer.jwks()).encode()
    with dripping_server(jwks, seconds_per_byte=3) as drip:
        settings = dev_env(
            MCP_AUTH="jwt",
            MCP_JWT_JWKS_URI=f"{drip}/.well-known/jwks.json",
            MCP_JWT_ISSUER=issuer.issuer,
            MCP_JWT_AUDIENCE="math-api",
            MCP_TOOL_TIMEOUT_SECONDS="1",
            MCP_AUTH_WAIT_SECONDS="1",  # the budget under test (default 5 s)
        )
        with start_service(RUN_SH, "/math/health", settings) as service:
            answers: list[tuple[float, int]] = []

            def request() -> None:
                token = issuer.token(aud="math-api", scope="math:use")
                began = time.monotonic()
                code = post(service.base, authorization=f"Bearer {token}").status_code
                answers.append((time.monotonic() - began, code))

            threads = [threading.Thread(target=request) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    assert len(answers) == 3
    for seconds, code in answers:
        assert code == 503  # neither accepted, nor a tool error, nor a 401 for a good token
        assert seconds <= 6, seconds  # the 1 s budget (plus a loaded machine), not 3 s a byte
