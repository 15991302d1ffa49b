"""Start-up imports only what the configured features need (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mcp_common.apikeys import hash_key

PROBE = """
import json, sys
from mcp_common.app import create_app
from math_service import service
create_app(service)
print(json.dumps(sorted(sys.modules)))
"""
KEYS = json.dumps([{"name": "k", "sha256": hash_key("k"), "services": ["*"]}])


def modules_after_start(env: dict[str, str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("env", "absent"),
    [
        (
            {"MCP_AUTH": "none"},
            {"mcp_common.apikeys", "mcp_common.tokens", "boto3", "botocore"},
        ),
        (
            {"MCP_AUTH": "api_key", "MCP_API_KEYS": KEYS},
            {"boto3", "botocore", "mcp_common.tokens"},
        ),
        (
            {
                "MCP_AUTH": "jwt",
                "MCP_JWT_JWKS_URI": "http://127.0.0.1:9/jwks.json",
                "MCP_JWT_ISSUER": "https://issuer.test",
                "MCP_JWT_AUDIENCE": "a",
            },
            {"boto3", "botocore", "mcp_common.apikeys"},
        ),
    ],
    ids=["none", "api_key-env", "jwt"],
)
def test_features_not_configured_are_not_imported(env, absent):
    assert modules_after_start(env) & absent == set()


def test_aws_key_source_imports_boto3():
    modules = modules_after_start(
        {
            "MCP_AUTH": "api_key",
            "MCP_API_KEYS_SSM_PARAMETER": "/x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_EC2_METADATA_DISABLED": "true",
            # Nothing leaves the machine: the key store read fails closed against a closed local port.
            "AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:9",
            "AWS_MAX_ATTEMPTS": "1",
        }
    )
    assert "boto3" in modules
