"""The auth matrix over real HTTP: API keys (env, SSM, Secrets Manager) and JWTs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import httpx2 as httpx
import pytest
from joserfc.jwk import RSAKey

from fleet.testing import MCP_HEADERS, JwtIssuer, app_settings, fake_aws, serve
from mcp_common.app import create_app
from mcp_common.auth import ApiKeyRecord, ApiKeyStore, StaticKeySource, hash_key, parse_records

KEYS = {
    "alice": "mcpk_alice_0123456789abcdef",
    "bob": "mcpk_bob_0123456789abcdef",
    "carol": "mcpk_carol_0123456789abcdef",
    "dave": "mcpk_dave_0123456789abcdef",
}
RECORDS = [
    {"name": "alice", "sha256": hash_key(KEYS["alice"]), "services": ["sample"]},
    {"name": "bob", "sha256": hash_key(KEYS["bob"]), "services": ["math"]},
    {
        "name": "carol",
        "sha256": hash_key(KEYS["carol"]),
        "services": ["*"],
        "expires": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
    },
    {
        "name": "dave",
        "sha256": hash_key(KEYS["dave"]),
        "services": ["*"],
        "expires": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    },
]
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/sample/mcp", json=LIST_TOOLS, headers={**MCP_HEADERS, **(headers or {})}
    )


@pytest.fixture(scope="module")
def keyed_url(sample_spec) -> Iterator[str]:
    app = create_app(
        sample_spec, app_settings(MCP_AUTH="api_key", MCP_API_KEYS=json.dumps(RECORDS))
    )
    with serve(app) as base:
        yield base


class TestApiKeys:
    def test_no_credential_is_401_with_bearer_challenge(self, keyed_url):
        response = post(keyed_url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer ")

    @pytest.mark.parametrize("style", ["authorization", "x-api-key"])
    def test_valid_key_in_either_header_is_200(self, keyed_url, style):
        key = KEYS["alice"]
        headers = (
            {"authorization": f"Bearer {key}"} if style == "authorization" else {"x-api-key": key}
        )
        response = post(keyed_url, headers)
        assert response.status_code == 200
        assert "echo" in response.text

    def test_wildcard_key_is_200(self, keyed_url):
        assert post(keyed_url, {"x-api-key": KEYS["dave"]}).status_code == 200

    def test_unknown_key_is_401_invalid_token(self, keyed_url):
        response = post(keyed_url, {"authorization": "Bearer mcpk_not_a_key"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    def test_expired_key_is_401(self, keyed_url):
        response = post(keyed_url, {"x-api-key": KEYS["carol"]})
        assert response.status_code == 401
        assert "expired" in response.json()["error_description"]

    def test_key_for_another_service_is_403_insufficient_scope(self, keyed_url):
        response = post(keyed_url, {"authorization": f"Bearer {KEYS['bob']}"})
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]

    def test_health_stays_open(self, keyed_url):
        assert httpx.get(f"{keyed_url}/sample/health").status_code == 200

    def test_non_bearer_scheme_is_not_a_credential(self, keyed_url):
        response = post(keyed_url, {"authorization": f"Basic {KEYS['alice']}"})
        assert response.status_code == 401

    def test_principal_logged_and_raw_keys_never(self, keyed_url, log_lines):
        post(keyed_url, {"x-api-key": KEYS["alice"]})
        post(keyed_url, {"x-api-key": KEYS["bob"]})
        post(keyed_url, {"authorization": "Bearer mcpk_wrong_guess"})
        lines = log_lines.requests()
        assert [line.get("principal") for line in lines] == ["alice", None, None]
        assert [line["http_status"] for line in lines] == [200, 403, 401]
        everything = log_lines.stream.getvalue()
        for secret in [*KEYS.values(), "mcpk_wrong_guess"]:
            assert secret not in everything


class TestKeyRecords:
    def test_hashes_are_normalised_and_validated(self):
        [record] = parse_records(
            json.dumps([{**RECORDS[0], "sha256": RECORDS[0]["sha256"].upper()}])
        )
        assert record.sha256 == RECORDS[0]["sha256"]
        with pytest.raises(ValueError, match="sha256"):
            parse_records(json.dumps([{**RECORDS[0], "sha256": "abc"}]))

    def test_duplicate_names_are_refused(self):
        with pytest.raises(ValueError, match="duplicate API key names: alice"):
            parse_records(json.dumps([RECORDS[0], RECORDS[0]]))

    def test_naive_expiry_is_utc(self):
        record = ApiKeyRecord(
            name="x", sha256="0" * 64, services=["*"], expires="2000-01-01T00:00:00"
        )
        assert record.expired()

    async def test_store_refreshes_after_ttl_and_fails_closed(self):
        now = [0.0]
        text = [json.dumps(RECORDS[:1])]

        class FlakySource(StaticKeySource):
            def read(self) -> str:
                if text[0] is None:
                    raise OSError("store unreachable")
                return text[0]

        store = ApiKeyStore(FlakySource(""), ttl=60, clock=lambda: now[0])
        assert (await store.lookup(KEYS["alice"])).name == "alice"
        text[0] = json.dumps(RECORDS[1:2])
        now[0] = 30.0
        assert (await store.lookup(KEYS["alice"])).name == "alice"  # cached within the TTL
        now[0] = 61.0
        assert await store.lookup(KEYS["alice"]) is None  # revoked by the refresh
        text[0] = None
        now[0] = 200.0
        with pytest.raises(RuntimeError, match="unavailable"):
            await store.lookup(KEYS["bob"])


@pytest.fixture
def aws() -> Iterator[None]:
    with fake_aws():
        yield


class TestAwsKeySources:
    def test_ssm_secure_string(self, aws, sample_spec):
        boto3.client("ssm").put_parameter(
            Name="/mcp/keys", Value=json.dumps(RECORDS), Type="SecureString"
        )
        app = create_app(
            sample_spec, app_settings(MCP_AUTH="api_key", MCP_API_KEYS_SSM_PARAMETER="/mcp/keys")
        )
        with serve(app) as base:
            assert post(base, {"x-api-key": KEYS["alice"]}).status_code == 200
            assert post(base, {"x-api-key": KEYS["bob"]}).status_code == 403
            assert post(base).status_code == 401

    def test_secrets_manager(self, aws, sample_spec):
        boto3.client("secretsmanager").create_secret(
            Name="mcp-keys", SecretString=json.dumps(RECORDS)
        )
        app = create_app(
            sample_spec, app_settings(MCP_AUTH="api_key", MCP_API_KEYS_SECRET_ID="mcp-keys")
        )
        with serve(app) as base:
            assert post(base, {"authorization": f"Bearer {KEYS['dave']}"}).status_code == 200
            assert post(base, {"authorization": "Bearer nope"}).status_code == 401

    @pytest.mark.parametrize(
        "env",
        [
            {"MCP_API_KEYS_SSM_PARAMETER": "/does/not/exist"},
            {"MCP_API_KEYS_SECRET_ID": "does-not-exist"},
        ],
    )
    def test_unreadable_store_fails_closed(self, aws, sample_spec, log_lines, env):
        app = create_app(sample_spec, app_settings(MCP_AUTH="api_key", **env))
        with serve(app) as base:
            response = post(base, {"x-api-key": KEYS["alice"]})
            assert response.status_code == 503
            assert response.json()["error"] == "temporarily_unavailable"
            assert response.headers["retry-after"] == "5"
        assert any("cannot read API keys" in entry["message"] for entry in log_lines.entries())

    def test_garbage_in_the_store_fails_closed(self, aws, sample_spec):
        boto3.client("ssm").put_parameter(Name="/mcp/bad", Value="not json", Type="SecureString")
        app = create_app(
            sample_spec, app_settings(MCP_AUTH="api_key", MCP_API_KEYS_SSM_PARAMETER="/mcp/bad")
        )
        with serve(app) as base:
            assert post(base, {"x-api-key": KEYS["alice"]}).status_code == 503


@pytest.fixture(scope="module")
def issuer() -> Iterator[tuple[JwtIssuer, str]]:
    issuer = JwtIssuer()
    with serve(issuer.jwks_app()) as jwks_base:
        yield issuer, f"{jwks_base}/.well-known/jwks.json"


@pytest.fixture(scope="module")
def jwt_url(sample_spec, issuer) -> Iterator[str]:
    jwt_issuer, jwks_uri = issuer
    app = create_app(
        sample_spec,
        app_settings(
            MCP_AUTH="jwt",
            MCP_JWT_JWKS_URI=jwks_uri,
            MCP_JWT_ISSUER=jwt_issuer.issuer,
            MCP_JWT_AUDIENCE="mcp-fleet",
            MCP_JWT_REQUIRED_SCOPES="mcp:call",
        ),
    )
    with serve(app) as base:
        yield base


class TestJwt:
    def bearer(self, token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    def test_valid_token_is_200(self, jwt_url, issuer):
        token = issuer[0].token(aud="mcp-fleet", scope="mcp:call other")
        assert post(jwt_url, self.bearer(token)).status_code == 200

    def test_missing_token_points_to_resource_metadata(self, jwt_url):
        response = post(jwt_url)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        expected = f'resource_metadata="{jwt_url}/.well-known/oauth-protected-resource/sample/mcp"'
        assert challenge.startswith("Bearer ")
        assert expected in challenge
        assert 'scope="mcp:call"' in challenge

    def test_resource_metadata_document(self, jwt_url, issuer):
        response = httpx.get(f"{jwt_url}/.well-known/oauth-protected-resource/sample/mcp")
        assert response.status_code == 200
        assert response.json() == {
            "resource": f"{jwt_url}/sample/mcp",
            "authorization_servers": [issuer[0].issuer],
            "scopes_supported": ["mcp:call"],
            "bearer_methods_supported": ["header"],
            "resource_name": "sample",
        }

    def test_metadata_uses_api_gateway_stage(self, jwt_url):
        context = json.dumps(
            {"domainName": "abc.execute-api.eu-west-1.amazonaws.com", "stage": "prod"}
        )
        response = post(jwt_url, {"x-amzn-request-context": context})
        assert (
            'resource_metadata="https://abc.execute-api.eu-west-1.amazonaws.com/prod/'
            '.well-known/oauth-protected-resource/sample/mcp"'
        ) in response.headers["www-authenticate"]

    @pytest.mark.parametrize(
        "claims",
        [
            pytest.param({"aud": "someone-else", "scope": "mcp:call"}, id="wrong-audience"),
            pytest.param(
                {"aud": "mcp-fleet", "scope": "mcp:call", "iss": "https://evil.test"},
                id="wrong-issuer",
            ),
            pytest.param({"aud": "mcp-fleet", "scope": "mcp:call", "lifetime": -60}, id="expired"),
            pytest.param({"aud": "mcp-fleet", "scope": "mcp:call", "exp": None}, id="no-expiry"),
        ],
    )
    def test_bad_tokens_are_401(self, jwt_url, issuer, claims):
        token = issuer[0].token(**claims)
        response = post(jwt_url, self.bearer(token))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    def test_forged_signature_is_401(self, jwt_url, issuer):
        forger = RSAKey.generate_key(2048, parameters={"kid": issuer[0].kid})
        token = issuer[0].token(aud="mcp-fleet", scope="mcp:call", signing_key=forger)
        assert post(jwt_url, self.bearer(token)).status_code == 401

    def test_garbage_token_is_401(self, jwt_url):
        assert post(jwt_url, self.bearer("not.a.jwt")).status_code == 401

    def test_missing_scope_is_403(self, jwt_url, issuer):
        token = issuer[0].token(aud="mcp-fleet", scope="other")
        response = post(jwt_url, self.bearer(token))
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]

    def test_principal_is_the_subject(self, jwt_url, issuer, log_lines):
        post(jwt_url, self.bearer(issuer[0].token(aud="mcp-fleet", scope="mcp:call", sub="svc-42")))
        assert log_lines.requests()[-1]["principal"] == "svc-42"
