"""The math service started as Lambda starts it, with auth on, attacked as an outsider would.

Every defect found by the security review has its regression test here, over real HTTP
through run.sh. Hung and dripping dependencies are stand-ins on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest

from fleet.testing import (
    AWS_TEST_ENV,
    MCP_HEADERS,
    JwtIssuer,
    RunningService,
    dev_env,
    loopback_http,
    refused_start,
    serve,
    start_service,
)
from mcp_common.apikeys import hash_key

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
}
RECORDS = [
    {"name": "math-client", "sha256": hash_key("key-math"), "services": ["math"]},
    {"name": "weather-client", "sha256": hash_key("key-weather"), "services": ["weather"]},
    {"name": "ops", "sha256": hash_key("key-ops"), "services": ["*"]},
    {
        "name": "old-laptop",
        "sha256": hash_key("key-old"),
        "services": ["*"],
        "expires": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
    },
]


def post(base: str, body: object = CALL, **headers: str) -> httpx.Response:
    return loopback_http().post(
        f"{base}/math/mcp", json=body, headers={**MCP_HEADERS, **headers}, timeout=30
    )


def status(base: str, **headers: str) -> int:
    return post(base, **headers).status_code


@pytest.fixture(scope="module")
def keyed() -> Iterator[RunningService]:
    settings = dev_env(MCP_AUTH="api_key", MCP_API_KEYS=json.dumps(RECORDS))
    with start_service(RUN_SH, "/math/health", settings) as service:
        yield service


class TestApiKeys:
    def test_status_matrix(self, keyed):
        assert status(keyed.base) == 401
        assert status(keyed.base, authorization="Bearer key-wrong") == 401
        assert status(keyed.base, authorization="Bearer key-math") == 200
        assert status(keyed.base, **{"x-api-key": "key-ops"}) == 200
        assert status(keyed.base, **{"x-api-key": "key-weather"}) == 403
        assert status(keyed.base, **{"x-api-key": "key-old"}) == 401

    def test_unauthenticated_request_learns_only_401(self, keyed):
        """Regression: `{}` without a credential got 400 Invalid Request (body parsed first)."""
        response = post(keyed.base, {})
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert (
            f'resource_metadata="{keyed.base}/math/.well-known/oauth-protected-resource/mcp"'
            in challenge
        )
        metadata = loopback_http().get(
            f"{keyed.base}/math/.well-known/oauth-protected-resource/mcp"
        )
        assert metadata.json()["resource"] == f"{keyed.base}/math/mcp"

    def test_an_unauthenticated_body_is_never_buffered(self, keyed):
        """A body far over MCP_MAX_BODY_BYTES, sent without a credential, is refused by auth
        (401), not read and measured (413)."""
        big = b'{"jsonrpc": "2.0", "id": 1, "method": "' + b"A" * 3_000_000 + b'"}'
        response = loopback_http().post(f"{keyed.base}/math/mcp", content=big, headers=MCP_HEADERS)
        assert response.status_code == 401

    def test_refusals_name_no_key_in_a_header(self, keyed):
        for key in ("key-old", "key-weather"):
            response = post(keyed.base, **{"x-api-key": key})
            assert "laptop" not in response.headers["www-authenticate"]
            assert "weather-client" not in response.headers["www-authenticate"]
            assert "laptop" not in response.text
            assert "weather-client" not in response.text
        principals = {line.get("principal") for line in keyed.request_lines()}
        assert {"old-laptop", "weather-client"} <= principals  # the log has the names

    @pytest.mark.parametrize(
        ("body", "headers"),
        [
            ({"jsonrpc": "2.0", "id": 1, "method": "A" * 1_000_000}, {}),
            (
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": ("x\u2028\n" * 300_000), "arguments": {}},
                },
                {},
            ),
            ({"jsonrpc": "2.0", "id": 1, "method": "A" * 1_000_000}, {"x-api-key": "key-ops"}),
        ],
        ids=["huge-method", "huge-tool-name", "huge-method-authenticated"],
    )
    def test_one_hostile_request_adds_at_most_16_kib_to_the_log(self, keyed, body, headers):
        before = keyed.log_size()
        response = post(keyed.base, body, **headers)
        assert response.status_code in (200, 400, 401, 404)  # 200: a JSON-RPC error (legacy)
        time.sleep(0.2)  # the line is written before the response's last byte; let it flush
        assert keyed.log_size() - before <= 16 * 1024

    def test_argument_values_never_reach_the_log(self, keyed):
        secret = "sk_live_0123456789abcdef0123"
        body = {**CALL, "params": {"name": "add", "arguments": {"a": secret, "b": 1}}}
        response = post(keyed.base, body, **{"x-api-key": "key-ops"})
        assert response.json()["result"]["isError"] is True
        assert secret not in keyed.output()

    def test_forged_gateway_context_and_host_are_refused(self, keyed):
        context = json.dumps({"domainName": "attacker.example", "stage": "prod"})
        response = post(keyed.base, **{"x-amzn-request-context": context})
        assert "attacker.example" not in response.headers["www-authenticate"]
        forged = post(keyed.base, host='[::1]", error="forged', **{"x-api-key": "key-ops"})
        assert forged.status_code == 421


def test_the_gateway_context_is_trusted_under_the_web_adapter():
    settings = dev_env(
        MCP_AUTH="api_key",
        MCP_API_KEYS=json.dumps(RECORDS),
        AWS_LAMBDA_FUNCTION_NAME="MathFunction",  # as in Lambda
        MCP_HOST="127.0.0.1",
    )
    with start_service(RUN_SH, "/math/health", settings) as service:
        context = json.dumps(
            {"domainName": "abc.execute-api.eu-west-1.amazonaws.com", "stage": "prod"}
        )
        challenge = post(service.base, **{"x-amzn-request-context": context}).headers[
            "www-authenticate"
        ]
    assert (
        'resource_metadata="https://abc.execute-api.eu-west-1.amazonaws.com/prod/'
        'math/.well-known/oauth-protected-resource/mcp"'
    ) in challenge


def test_an_empty_env_source_does_not_shadow_the_real_one():
    settings = dev_env(
        MCP_AUTH="api_key", MCP_API_KEYS="", MCP_API_KEYS_SSM_PARAMETER="/p", **AWS_TEST_ENV
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "from mcp_common.settings import AuthSettings; "
                "s = AuthSettings(); print(s.api_keys, s.api_keys_ssm_parameter)"
            ),
        ],
        env=settings,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.split() == ["None", "/p"]


@pytest.fixture(scope="module")
def issuer() -> JwtIssuer:
    return JwtIssuer()


@pytest.fixture(scope="module")
def jwt_service(issuer) -> Iterator[RunningService]:
    with serve(issuer.jwks_app()) as jwks_base:
        settings = dev_env(
            MCP_AUTH="jwt",
            MCP_JWT_JWKS_URI=f"{jwks_base}/.well-known/jwks.json",
            MCP_JWT_ISSUER=issuer.issuer,
            MCP_JWT_AUDIENCE="math-api",
            MCP_JWT_REQUIRED_SCOPES="math:use",
        )
        with start_service(RUN_SH, "/math/health", settings) as service:
            yield service


class TestJwt:
    def test_status_matrix(self, jwt_service, issuer):
        base = jwt_service.base
        good = issuer.token(aud="math-api", scope="math:use")
        assert status(base) == 401
        other = issuer.token(aud="other", scope="math:use")
        assert status(base, authorization=f"Bearer {other}") == 401
        assert status(base, authorization=f"Bearer {good}") == 200
        unscoped = issuer.token(aud="math-api", scope="x")
        assert status(base, authorization=f"Bearer {unscoped}") == 403

    def test_nbf_is_enforced(self, jwt_service, issuer):
        """Regression: a signed token with nbf a year ahead was accepted."""
        future = int(time.time()) + 365 * 86400
        token = issuer.token(aud="math-api", scope="math:use", nbf=future)
        response = post(jwt_service.base, authorization=f"Bearer {token}")
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"MCP_AUTH": "api_key"}, "needs exactly one key source"),
        ({"MCP_AUTH": "jwt", "MCP_JWT_ISSUER": "https://i"}, "MCP_JWT_JWKS_URI"),
        ({"MCP_AUTH": "sometimes"}, "MCP_AUTH"),
    ],
)
def test_misconfiguration_refuses_to_start_with_a_clear_message(values, message):
    refusal = refused_start([str(RUN_SH)], dev_env(PORT="1", **values))
    assert message in refusal.critical["message"]


COGNITO_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TESTPOOL"
PEOPLE, MACHINES, STRANGER = "people-client-id", "machine-client-id", "someone-elses-client"


@pytest.fixture(scope="module")
def cognito() -> JwtIssuer:
    return JwtIssuer(issuer=COGNITO_ISSUER, kid="cognito-key")


@pytest.fixture(scope="module")
def cognito_service(cognito) -> Iterator[RunningService]:
    """The math service as template.yaml wires it when EnableCognito=true."""
    with serve(cognito.jwks_app()) as jwks_base:
        settings = dev_env(
            MCP_AUTH="jwt",
            MCP_JWT_JWKS_URI=f"{jwks_base}/.well-known/jwks.json",
            MCP_JWT_ISSUER=COGNITO_ISSUER,
            MCP_JWT_AUDIENCE=f"{PEOPLE},{MACHINES}",
            MCP_JWT_RESOURCE_SERVER="mcp-fleet",
        )
        with start_service(RUN_SH, "/math/health", settings) as service:
            yield service


class TestCognito:
    """Regression: every Cognito access token was refused (they carry no `aud`)."""

    def bearer(self, token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    def test_access_token_of_a_configured_client_with_the_service_scope(
        self, cognito_service, cognito
    ):
        token = cognito.cognito_token(PEOPLE, "openid mcp-fleet/math", sub="ada")
        assert post(cognito_service.base, **self.bearer(token)).status_code == 200
        assert cognito_service.request_lines()[-1]["principal"] == "ada"

    def test_id_token_is_refused(self, cognito_service, cognito):
        token = cognito.cognito_token(PEOPLE, token_use="id")
        response = post(cognito_service.base, **self.bearer(token))
        assert response.status_code == 401
        assert "only access tokens" in response.json()["error_description"]

    def test_another_clients_token_is_refused(self, cognito_service, cognito):
        token = cognito.cognito_token(STRANGER, "mcp-fleet/math")
        assert post(cognito_service.base, **self.bearer(token)).status_code == 401

    def test_missing_scope_is_403_insufficient_scope(self, cognito_service, cognito):
        token = cognito.cognito_token(PEOPLE, "openid mcp-fleet/weather")
        response = post(cognito_service.base, **self.bearer(token))
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert 'scope="mcp-fleet/services"' in response.headers["www-authenticate"]

    @pytest.mark.parametrize(
        ("scopes", "groups"),
        [
            pytest.param("openid mcp-fleet/services", ["math"], id="its-group"),
            pytest.param("openid mcp-fleet/services", ["weather", "all"], id="group-all"),
            pytest.param("mcp-fleet/all", None, id="machine-scope-all"),
        ],
    )
    def test_one_sign_in_reaches_the_services_the_groups_name(
        self, cognito_service, cognito, scopes, groups
    ):
        """Two scopes for any number of services: Cognito's 50 per app client never binds."""
        claims = {} if groups is None else {"cognito:groups": groups}
        token = cognito.cognito_token(PEOPLE, scopes, **claims)
        assert post(cognito_service.base, **self.bearer(token)).status_code == 200

    @pytest.mark.parametrize(
        ("scopes", "claims"),
        [
            pytest.param("openid mcp-fleet/services", {"cognito:groups": ["weather"]}, id="other"),
            pytest.param("openid mcp-fleet/services", {}, id="no-groups"),
            pytest.param("openid", {"cognito:groups": ["math"]}, id="group-without-scope"),
            pytest.param("openid mcp-fleet/services", {"cognito:groups": "math"}, id="string"),
            pytest.param("openid mcp-fleet/services", {"cognito:groups": "all"}, id="string-all"),
            pytest.param("openid mcp-fleet/services", {"groups": ["math"]}, id="other-claim"),
            pytest.param("openid mcp-fleet/services", {"cognito:groups": ["Math"]}, id="case"),
            pytest.param("openid services all", {"cognito:groups": ["math"]}, id="unprefixed"),
            pytest.param("openid other/all", {}, id="other-server"),
        ],
    )
    def test_groups_and_scopes_that_do_not_name_the_service_are_403(
        self, cognito_service, cognito, scopes, claims
    ):
        """The attacks on the group rule: another team's group, a string claim (never split
        into letters), a group without the scope, a look-alike claim or scope."""
        token = cognito.cognito_token(PEOPLE, scopes, **claims)
        response = post(cognito_service.base, **self.bearer(token))
        assert response.status_code == 403, response.text
        assert "the group 'math'" in response.json()["error_description"]

    @pytest.mark.parametrize("sub", [None, ""])
    def test_a_token_without_sub_is_its_client_in_a_namespace_of_its_own(
        self, cognito_service, cognito, sub
    ):
        """Regression: an empty `sub` with `client_id: victim-user` read victim-user's graph."""
        token = cognito.cognito_token(MACHINES, "mcp-fleet/math", sub=sub)
        assert post(cognito_service.base, **self.bearer(token)).status_code == 200
        assert cognito_service.request_lines()[-1]["principal"] == f"client:{MACHINES}"
        # A person whose sub happens to equal the client's id is another principal.
        token = cognito.cognito_token(MACHINES, "mcp-fleet/math", sub=MACHINES)
        assert post(cognito_service.base, **self.bearer(token)).status_code == 200
        assert cognito_service.request_lines()[-1]["principal"] == MACHINES

    def test_a_sub_in_the_client_namespace_is_refused(self, cognito_service, cognito):
        token = cognito.cognito_token(PEOPLE, "mcp-fleet/math", sub=f"client:{MACHINES}")
        response = post(cognito_service.base, **self.bearer(token))
        assert response.status_code == 401
        assert "reserved prefix" in response.json()["error_description"]

    @pytest.mark.parametrize(
        "claims",
        [
            pytest.param({"client_id": [MACHINES]}, id="client_id-list"),
            pytest.param({"client_id": {"id": MACHINES}}, id="client_id-object"),
            pytest.param({"iss": [COGNITO_ISSUER]}, id="iss-array"),
            pytest.param({"sub": 42}, id="sub-number"),
            pytest.param({"token_use": ["access"]}, id="token_use-list"),
            pytest.param({"scope": ["mcp-fleet/math"]}, id="scope-list"),
            pytest.param({"exp": "tomorrow"}, id="exp-string"),
            pytest.param({"aud": {"x": 1}}, id="aud-object"),
        ],
    )
    def test_a_signed_token_with_a_claim_of_the_wrong_type_is_401(
        self, cognito_service, cognito, claims
    ):
        """Regression: a `client_id` list (no `aud`) got HTTP 500 and a traceback."""
        token = cognito.token(
            **{"client_id": MACHINES, "token_use": "access", "scope": "mcp-fleet/math", **claims}
        )
        response = post(cognito_service.base, **self.bearer(token))
        assert response.status_code == 401
        assert "malformed" in response.json()["error_description"]
        assert "Traceback" not in cognito_service.output()

    def test_scopes_come_from_scp_too(self, cognito_service, cognito):
        token = cognito.token(aud=MACHINES, scp=["mcp-fleet/math"])
        assert post(cognito_service.base, **self.bearer(token)).status_code == 200

    def test_resource_metadata_leads_to_the_pool_and_the_scope(self, cognito_service):
        metadata = (
            loopback_http()
            .get(f"{cognito_service.base}/math/.well-known/oauth-protected-resource/mcp")
            .json()
        )
        assert metadata["authorization_servers"] == [COGNITO_ISSUER]
        assert metadata["scopes_supported"] == ["mcp-fleet/services"]
        assert metadata["resource"] == f"{cognito_service.base}/math/mcp"
