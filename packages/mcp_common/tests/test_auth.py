"""The auth matrix over real HTTP: API keys (env, SSM, Secrets Manager) and JWTs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import httpx2 as httpx
import pytest
from joserfc.jwk import RSAKey

from fleet.testing import MCP_HEADERS, JwtIssuer, app_settings, fake_aws, loopback_http, serve
from mcp_common.apikeys import (
    ApiKeyRecord,
    ApiKeyStore,
    KeyStoreUnavailable,
    hash_key,
    parse_records,
)
from mcp_common.app import create_app

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
    return loopback_http().post(
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
        assert loopback_http().get(f"{keyed_url}/sample/health").status_code == 200

    def test_non_bearer_scheme_is_not_a_credential(self, keyed_url):
        response = post(keyed_url, {"authorization": f"Basic {KEYS['alice']}"})
        assert response.status_code == 401

    def test_principal_logged_and_raw_keys_never(self, keyed_url, log_lines):
        post(keyed_url, {"x-api-key": KEYS["alice"]})
        post(keyed_url, {"x-api-key": KEYS["bob"]})
        post(keyed_url, {"authorization": "Bearer mcpk_wrong_guess"})
        lines = log_lines.requests()
        # A refused key that is known is named in the log (never in the response).
        assert [line.get("principal") for line in lines] == ["alice", "bob", None]
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

    @pytest.mark.parametrize(
        "name", ["Łukasz laptop", 'ci", error="forged', "", "a" * 65, "-leading", "sp ace"]
    )
    def test_unsafe_names_are_refused(self, name):
        with pytest.raises(ValueError, match="name"):
            parse_records(json.dumps([{**RECORDS[0], "name": name}]))

    def test_validation_errors_never_quote_a_value(self):
        raw_key = "mcpk_pasted_where_the_hash_belongs_0123456789"
        with pytest.raises(ValueError) as caught:
            parse_records(json.dumps([{**RECORDS[0], "sha256": raw_key}]))
        assert raw_key not in str(caught.value)
        assert "sha256" in str(caught.value)
        with pytest.raises(ValueError) as caught:
            parse_records('[{"name": "x", "sha256": "secret-ish-text-that-is-not-json')
        assert "secret-ish" not in str(caught.value)


class FakeSource:
    """A key source whose answer, failure or hang the test controls."""

    description = "fake store"

    def __init__(self, records: list[dict]) -> None:
        self.text: str | None = json.dumps(records)
        self.release = threading.Event()
        self.release.set()
        self.reads = 0

    def read(self) -> str:
        self.reads += 1
        self.release.wait(30)
        if self.text is None:
            raise OSError("store unreachable")
        return self.text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle(store: ApiKeyStore) -> None:
    """Wait for the store's read in flight, if any, to finish."""
    for _ in range(200):
        if store._inflight is None or store._inflight.done():
            return
        await asyncio.sleep(0.01)


class TestKeyStore:
    async def test_refresh_after_ttl_serves_stale_then_revokes(self):
        source, clock = FakeSource(RECORDS[:1]), Clock()
        store = ApiKeyStore(source, ttl=60, max_stale=3600, clock=clock)
        store.start()
        assert (await store.lookup(KEYS["alice"])).name == "alice"
        source.text = json.dumps(RECORDS[1:2])
        clock.now = 30.0
        assert (await store.lookup(KEYS["alice"])).name == "alice"  # within the TTL
        assert source.reads == 1
        clock.now = 61.0
        assert (await store.lookup(KEYS["alice"])).name == "alice"  # stale while re-reading
        await settle(store)
        assert await store.lookup(KEYS["alice"]) is None  # revoked by the refresh
        assert source.reads == 2

    async def test_failed_refresh_keeps_records_for_max_stale_then_fails_closed(self):
        source, clock = FakeSource(RECORDS[:1]), Clock()
        store = ApiKeyStore(source, ttl=60, max_stale=600, clock=clock)
        store.start()
        source.text = None
        clock.now = 100.0
        assert (await store.lookup(KEYS["alice"])).name == "alice"
        await settle(store)
        clock.now = 599.0
        assert (await store.lookup(KEYS["alice"])).name == "alice"  # last good records
        await settle(store)
        clock.now = 601.0
        with pytest.raises(KeyStoreUnavailable):
            await store.lookup(KEYS["alice"])

    async def test_a_hung_store_answers_every_request_within_the_wait(self):
        source = FakeSource(RECORDS)
        source.release.clear()  # every read hangs
        store = ApiKeyStore(source, ttl=60, max_stale=600, wait=0.3)
        started = time.monotonic()
        store.start(wait=0.2)
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        results = await asyncio.gather(
            *(store.lookup(KEYS["alice"]) for _ in range(20)), return_exceptions=True
        )
        assert time.monotonic() - started < 1.5  # not queued behind one another
        assert all(isinstance(result, KeyStoreUnavailable) for result in results)
        assert source.reads == 1  # one read in flight, shared
        source.release.set()
        await settle(store)
        assert (await store.lookup(KEYS["alice"])).name == "alice"

    async def test_invalidate_forgets_records(self):
        source = FakeSource(RECORDS[:1])
        store = ApiKeyStore(source, ttl=3600, max_stale=3600)
        store.start()
        source.text = json.dumps(RECORDS[1:2])
        store.invalidate()
        assert await store.lookup(KEYS["alice"]) is None
        assert (await store.lookup(KEYS["bob"])).name == "bob"


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

    @pytest.mark.parametrize(
        ("store", "logged", "secret"),
        [
            (
                '[{"name": "\u0141ukasz laptop", "sha256": "%s", "services": ["*"]}]' % ("a" * 64),
                "name",
                "\u0141ukasz",
            ),
            (
                '[{"name": "ci", "sha256": "sk_live_pasted_key_0123", "services": ["*"]}]',
                "sha256",
                "sk_live",
            ),
            (
                '[{"name": "ci", "sha256": "secret-looking-text-that-is-not-json',
                "Invalid JSON",
                "secret-looking",
            ),
        ],
        ids=["non-latin-1-name", "raw-key-as-hash", "invalid-json"],
    )
    def test_bad_records_fail_closed_and_the_log_quotes_no_value(
        self, sample_spec, log_lines, store, logged, secret
    ):
        app = create_app(sample_spec, app_settings(MCP_AUTH="api_key", MCP_API_KEYS=store))
        with serve(app) as base:
            assert post(base, {"x-api-key": "anything"}).status_code == 503
        everything = log_lines.stream.getvalue()
        assert logged in everything
        assert secret not in everything
        assert json.dumps(secret)[1:-1] not in everything  # nor escaped

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
        expected = f'resource_metadata="{jwt_url}/sample/.well-known/oauth-protected-resource/mcp"'
        assert challenge.startswith("Bearer ")
        assert expected in challenge
        assert 'scope="mcp:call"' in challenge

    @pytest.mark.parametrize(
        "path",
        [
            "/sample/.well-known/oauth-protected-resource/mcp",  # advertised: under /<svc>/
            "/.well-known/oauth-protected-resource/sample/mcp",  # RFC 9728's root form
        ],
    )
    def test_resource_metadata_document(self, jwt_url, issuer, path):
        response = loopback_http().get(f"{jwt_url}{path}")
        assert response.status_code == 200
        assert response.json() == {
            "resource": f"{jwt_url}/sample/mcp",
            "authorization_servers": [issuer[0].issuer],
            "scopes_supported": ["mcp:call"],
            "bearer_methods_supported": ["header"],
            "resource_name": "sample",
        }

    def test_a_forged_gateway_context_is_ignored_outside_lambda(self, jwt_url):
        context = json.dumps({"domainName": "attacker.example", "stage": "prod"})
        response = post(jwt_url, {"x-amzn-request-context": context})
        challenge = response.headers["www-authenticate"]
        assert "attacker.example" not in challenge
        assert f'resource_metadata="{jwt_url}/sample/.well-known/' in challenge

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

    @pytest.mark.parametrize(
        "token",
        ["not.a.jwt", "x", "a.b.c.d", "eyJhbGciOiJub25lIn0.e30.", "W1tbW1tb" * 300 + ".e30.x"],
    )
    def test_garbage_token_is_401(self, jwt_url, token):
        assert post(jwt_url, self.bearer(token)).status_code == 401

    @pytest.mark.parametrize("claim", ["nbf", "iat"])
    def test_not_yet_valid_token_is_401(self, jwt_url, issuer, claim):
        future = int(time.time()) + 365 * 86400
        token = issuer[0].token(aud="mcp-fleet", scope="mcp:call", **{claim: future})
        response = post(jwt_url, self.bearer(token))
        assert response.status_code == 401
        assert "not valid yet" in response.json()["error_description"]

    def test_nbf_within_the_clock_skew_is_accepted(self, jwt_url, issuer):
        token = issuer[0].token(aud="mcp-fleet", scope="mcp:call", nbf=int(time.time()) + 10)
        assert post(jwt_url, self.bearer(token)).status_code == 200

    def test_unsigned_token_is_401(self, jwt_url):
        import base64

        def part(data: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        claims = {"iss": "https://issuer.test", "aud": "mcp-fleet", "exp": 9999999999}
        token = f"{part({'alg': 'none', 'kid': 'test-key'})}.{part(claims)}."
        assert post(jwt_url, self.bearer(token)).status_code == 401

    def test_missing_scope_is_403(self, jwt_url, issuer):
        token = issuer[0].token(aud="mcp-fleet", scope="other")
        response = post(jwt_url, self.bearer(token))
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]

    def test_principal_is_the_subject(self, jwt_url, issuer, log_lines):
        post(jwt_url, self.bearer(issuer[0].token(aud="mcp-fleet", scope="mcp:call", sub="svc-42")))
        assert log_lines.requests()[-1]["principal"] == "svc-42"
