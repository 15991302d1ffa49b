"""The Lambda lifecycle, emulated against a built host twin through its run.sh.

The Web Adapter starts run.sh, waits for /<svc>/health, and under SnapStart POSTs to the
before-checkpoint path, snapshots, restores, POSTs to the after-restore path and checks
readiness again. Here: the same requests, in the same order, with key records in a moto
SSM server on loopback.

"The first call is fast" is checked through its cause, without timing a single request
on a shared machine: the twin runs with PYTHONPROFILEIMPORTTIME, and the first tools/call
after readiness (and after the hooks) imports no module at all. A count, not a sum of
microseconds: one lazy import measured 0.3 ms here and 38 ms on a loaded CI machine.
Unprimed, that first call imports some 430 modules (about 300 ms). The latency figures
themselves come from `fleet bench` (ready → first call, plain and after the hooks).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator

import boto3
import httpx2 as httpx
import pytest

from fleet.testing import (
    AWS_TEST_ENV,
    MCP_HEADERS,
    RunningService,
    loopback_http,
    moto_server,
    start_service,
)
from mcp_common.apikeys import hash_key

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

BEFORE, AFTER = "/_lifecycle/before-checkpoint", "/_lifecycle/after-restore"
PARAMETER = "/mcp-fleet/api-keys/math"
KEYS = {"alice": "mcpk_alice_lifecycle_0123456789", "bob": "mcpk_bob_lifecycle_0123456789"}


def records(*names: str) -> str:
    return json.dumps(
        [{"name": n, "sha256": hash_key(KEYS[n]), "services": ["math"]} for n in names]
    )


def call(base: str, key: str, arguments: dict | None = None) -> tuple[float, httpx.Response]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "add", "arguments": arguments or {"a": 40, "b": 2}},
    }
    started = time.perf_counter()
    response = loopback_http().post(
        f"{base}/math/mcp", json=body, headers={**MCP_HEADERS, "x-api-key": key}, timeout=20
    )
    return time.perf_counter() - started, response


def imports_logged(output: str) -> list[tuple[str, int]]:
    """(module, self microseconds) of every import the twin logged, in order."""
    found = re.findall(r"^import time:\s+(\d+) \|\s+\d+ \|\s+(\S+)", output, flags=re.MULTILINE)
    return [(module, int(micros)) for micros, module in found]


def imported_since(before: list, output: str) -> list[str]:
    """The modules imported since `before` was read."""
    return [module for module, _ in imports_logged(output)[len(before) :]]


@pytest.fixture(scope="module")
def ssm() -> Iterator[tuple[str, object]]:
    with moto_server() as endpoint:
        client = boto3.client("ssm", endpoint_url=endpoint, **_credentials())
        client.put_parameter(
            Name=PARAMETER, Value=records("alice", "bob"), Type="SecureString", Overwrite=True
        )
        yield endpoint, client


def _credentials() -> dict[str, str]:
    return {
        "region_name": AWS_TEST_ENV["AWS_DEFAULT_REGION"],
        "aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def twin(host_twins, lambda_runtime, ssm) -> Iterator[RunningService]:
    endpoint, _ = ssm
    clean = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env = {
        **clean,
        **AWS_TEST_ENV,
        "PATH": f"{lambda_runtime}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYTHONPATH": "",
        "PYTHONPROFILEIMPORTTIME": "1",  # every import is written to the log
        "AWS_LAMBDA_FUNCTION_NAME": "MathFunction",
        "MCP_HOST": "127.0.0.1",
        "MCP_AUTH": "api_key",
        "MCP_API_KEYS_SSM_PARAMETER": PARAMETER,
        "MCP_API_KEYS_TTL_SECONDS": "3600",  # a revocation must not wait for the TTL
        "AWS_ENDPOINT_URL_SSM": endpoint,
        "AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH": BEFORE,
        "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH": AFTER,
    }
    artifact = host_twins["math"]
    with start_service(artifact / "run.sh", "/math/health", env) as running:
        yield running


def test_the_first_call_after_readiness_imports_nothing(twin):
    before = imports_logged(twin.output())
    _, response = call(twin.base, KEYS["alice"])
    assert response.json()["result"]["structuredContent"] == {"result": 42}
    assert imported_since(before, twin.output()) == []


def test_snapstart_hooks_then_a_revoked_key_is_refused(twin, ssm):
    _, client = ssm
    assert call(twin.base, KEYS["bob"])[1].status_code == 200

    checkpoint = loopback_http().post(f"{twin.base}{BEFORE}", timeout=60)
    assert checkpoint.status_code == 200, checkpoint.text
    # While "in storage", bob's key is revoked.
    client.put_parameter(
        Name=PARAMETER, Value=records("alice"), Type="SecureString", Overwrite=True
    )
    started = time.monotonic()
    restore = loopback_http().post(f"{twin.base}{AFTER}", timeout=10)
    assert restore.status_code == 200, restore.text
    assert time.monotonic() - started < 10  # Lambda allows the whole restore 10 s
    assert (
        loopback_http().get(f"{twin.base}/math/health").status_code == 200
    )  # the readiness re-check

    imports = imports_logged(twin.output())
    _, first = call(twin.base, KEYS["alice"])
    assert first.status_code == 200
    assert imported_since(imports, twin.output()) == []  # primed before the snapshot
    assert call(twin.base, KEYS["bob"])[1].status_code == 401  # revoked, TTL not expired

    lines = [json.loads(line) for line in twin.output().splitlines() if line.startswith("{")]
    phases = [line["message"] for line in lines if line["logger"] == "mcp_common.lifecycle"]
    assert any("before_checkpoint done" in message for message in phases)
    assert any("after_restore done" in message for message in phases)


def test_hooks_answer_only_post(twin):
    assert loopback_http().get(f"{twin.base}{BEFORE}").status_code == 405
    assert loopback_http().get(f"{twin.base}{AFTER}").status_code == 405


def test_startup_is_a_single_ready_line_with_phases(twin):
    lines = [json.loads(line) for line in twin.output().splitlines() if line.startswith("{")]
    [ready] = [line for line in lines if line.get("message") == "service ready"]
    assert ready["startup_ms"] > 0
    assert set(ready["phases_ms"]) >= {"imports", "discovery", "app", "priming"}
