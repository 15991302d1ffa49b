"""Start-up imports only what the configured features need.

One fresh interpreter imports the app factory, then forks a child per configuration:
each child builds the app from the same clean start and reports every module loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mcp_common.apikeys import hash_key

PROBE = """
import json, os, sys
from mcp_common.app import create_app
from math_service import service

results = {}
for name, env in json.loads(sys.argv[1]).items():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.environ.update(env)
        create_app(service)
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(sorted(sys.modules)))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        results[name] = json.loads(pipe.read() or "[]")
    os.waitpid(pid, 0)
print(json.dumps(results))
"""
KEYS = json.dumps([{"name": "k", "sha256": hash_key("k"), "services": ["*"]}])
CONFIGS = {
    "none": {"MCP_AUTH": "none"},
    "api_key-env": {"MCP_AUTH": "api_key", "MCP_API_KEYS": KEYS},
    "jwt": {
        "MCP_AUTH": "jwt",
        "MCP_JWT_JWKS_URI": "http://127.0.0.1:9/jwks.json",
        "MCP_JWT_ISSUER": "https://issuer.test",
        "MCP_JWT_AUDIENCE": "a",
    },
    "api_key-ssm": {
        "MCP_AUTH": "api_key",
        "MCP_API_KEYS_SSM_PARAMETER": "/x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_EC2_METADATA_DISABLED": "true",
        # Nothing leaves the machine: the key store read fails closed against a closed port.
        "AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:9",
        "MCP_AUTH_WAIT_SECONDS": "0.5",
    },
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """{configuration: modules loaded after building the app}, from one fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(CONFIGS)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    return {name: set(modules) for name, modules in reported.items()}


@pytest.mark.parametrize(
    ("config", "absent"),
    [
        ("none", {"mcp_common.apikeys", "mcp_common.tokens", "boto3", "botocore"}),
        ("api_key-env", {"boto3", "botocore", "mcp_common.tokens"}),
        ("jwt", {"boto3", "botocore", "mcp_common.apikeys"}),
    ],
)
def test_features_not_configured_are_not_imported(loaded, config, absent):
    assert loaded[config], "the child reported nothing"
    assert loaded[config] & absent == set()


def test_aws_key_source_imports_boto3(loaded):
    assert "boto3" in loaded["api_key-ssm"]
