"""Authentication for every service: API keys or JWTs, checked before MCP sees a request.

- API keys are never stored in clear: a record holds the SHA-256 of its key, and a
  presented key is hashed and compared in constant time against every record.
- Key records come from MCP_API_KEYS, an SSM SecureString or a Secrets Manager
  secret; AWS sources are re-read after a TTL. When the store cannot be read,
  requests are refused (fail closed), never let through.
- JWTs are verified by fastmcp's JWTVerifier (signature against the JWKS, expiry,
  issuer, audience); scopes are checked here so a missing scope is a 403, not a 401.

Statuses: no or bad credential → 401 with `WWW-Authenticate: Bearer ...`; a good
credential without access to this service → 403 `insufficient_scope`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from pydantic import BaseModel, Field, TypeAdapter, field_validator
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_common.logs import current_request, json_header
from mcp_common.settings import AuthSettings

if TYPE_CHECKING:
    from fastmcp.server.auth.providers.jwt import JWTVerifier

logger = logging.getLogger(__name__)

ALL_SERVICES = "*"
PROTECTED_RESOURCE_PREFIX = "/.well-known/oauth-protected-resource"


def hash_key(key: str) -> str:
    """Hex SHA-256 of an API key: what a key record stores instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyRecord(BaseModel):
    """One API key, as stored: its name (the principal in logs), hash, services and expiry."""

    name: str = Field(min_length=1, max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    services: list[str] = Field(min_length=1)
    expires: datetime | None = None

    @field_validator("sha256", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def allows(self, service: str) -> bool:
        return ALL_SERVICES in self.services or service in self.services

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or datetime.now(UTC))


_RECORDS = TypeAdapter(list[ApiKeyRecord])


def parse_records(text: str) -> list[ApiKeyRecord]:
    """Validate the JSON list of key records; names must be unique."""
    records = _RECORDS.validate_json(text)
    names = [record.name for record in records]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate API key names: {', '.join(duplicates)}")
    return records


def dump_records(records: list[ApiKeyRecord]) -> str:
    return json.dumps(
        [record.model_dump(mode="json", exclude_none=True) for record in records], indent=2
    )


class KeySource(Protocol):
    """Where key records live; `read` returns their JSON text or raises."""

    description: str

    def read(self) -> str: ...


class StaticKeySource:
    def __init__(self, text: str) -> None:
        self.text = text
        self.description = "MCP_API_KEYS"

    def read(self) -> str:
        return self.text


def _boto3_client(service: str) -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - boto3 ships with the Lambda runtime
        raise RuntimeError(
            "reading API keys from AWS needs boto3 (part of the Lambda Python runtime; "
            "locally: `uv sync`)"
        ) from exc
    return boto3.client(service)


class SsmKeySource:
    def __init__(self, parameter: str) -> None:
        self.parameter = parameter
        self.description = f"SSM parameter {parameter}"
        self._client: Any = None

    def read(self) -> str:
        if self._client is None:
            self._client = _boto3_client("ssm")
        response = self._client.get_parameter(Name=self.parameter, WithDecryption=True)
        return response["Parameter"]["Value"]


class SecretsManagerKeySource:
    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        self.description = f"Secrets Manager secret {secret_id}"
        self._client: Any = None

    def read(self) -> str:
        if self._client is None:
            self._client = _boto3_client("secretsmanager")
        return self._client.get_secret_value(SecretId=self.secret_id)["SecretString"]


def key_source(settings: AuthSettings) -> KeySource:
    if settings.api_keys is not None:
        return StaticKeySource(settings.api_keys.get_secret_value())
    if settings.api_keys_ssm_parameter:
        return SsmKeySource(settings.api_keys_ssm_parameter)
    if settings.api_keys_secret_id:
        return SecretsManagerKeySource(settings.api_keys_secret_id)
    raise ValueError("no API key source configured")  # AuthSettings already refuses this


class KeyStoreUnavailable(RuntimeError):
    """The key records could not be read: every request is refused until they can."""


class ApiKeyStore:
    """Key records cached for `ttl` seconds; a failed read refuses requests (fail closed)."""

    RETRY_AFTER_FAILURE = 5.0

    def __init__(
        self, source: KeySource, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.clock = clock
        self._records: list[ApiKeyRecord] | None = None
        self._fresh_until = 0.0
        self._lock = anyio.Lock()

    def refresh(self) -> None:
        """Read the records now (blocking); on failure, drop the cache and raise."""
        try:
            records = parse_records(self.source.read())
        except Exception as exc:
            self._records = None
            self._fresh_until = self.clock() + self.RETRY_AFTER_FAILURE
            logger.error(
                "cannot read API keys from %s: %s: %s; refusing requests",
                self.source.description,
                type(exc).__name__,
                exc,
            )
            raise KeyStoreUnavailable(
                f"API key store unavailable ({self.source.description})"
            ) from exc
        self._records = records
        self._fresh_until = self.clock() + self.ttl
        logger.info("loaded %d API key record(s) from %s", len(records), self.source.description)

    async def records(self) -> list[ApiKeyRecord]:
        if self.clock() >= self._fresh_until:
            async with self._lock:
                if self.clock() >= self._fresh_until:
                    await anyio.to_thread.run_sync(self._refresh_quietly)
        if self._records is None:
            raise KeyStoreUnavailable(f"API key store unavailable ({self.source.description})")
        return self._records

    def _refresh_quietly(self) -> None:
        with contextlib.suppress(KeyStoreUnavailable):
            self.refresh()

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        """The record whose hash matches `key`, compared in constant time against all records."""
        digest = hash_key(key)
        match = None
        for record in await self.records():
            if hmac.compare_digest(digest, record.sha256):
                match = record
        return match


class Denied(Exception):
    """An authentication outcome that ends the request with `status`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class Authenticator(Protocol):
    async def authenticate(self, credential: str, service: str) -> str:
        """Return the principal's name, or raise Denied."""
        ...


class ApiKeyAuthenticator:
    def __init__(self, store: ApiKeyStore) -> None:
        self.store = store

    async def authenticate(self, credential: str, service: str) -> str:
        try:
            record = await self.store.lookup(credential)
        except KeyStoreUnavailable as exc:
            raise Denied(503, "temporarily_unavailable", str(exc)) from None
        if record is None:
            raise Denied(401, "invalid_token", "unknown API key")
        if record.expired():
            raise Denied(401, "invalid_token", f"API key {record.name!r} has expired")
        if not record.allows(service):
            raise Denied(
                403, "insufficient_scope", f"API key {record.name!r} is not allowed for {service!r}"
            )
        return record.name


class JwtAuthenticator:
    def __init__(self, verifier: JWTVerifier, required_scopes: list[str]) -> None:
        self.verifier = verifier
        self.required_scopes = required_scopes

    async def authenticate(self, credential: str, service: str) -> str:
        token = await self.verifier.verify_token(credential)
        if token is None:
            raise Denied(
                401, "invalid_token", "token is invalid, expired, or not for this audience"
            )
        if token.expires_at is None:
            raise Denied(401, "invalid_token", "token has no expiry")
        missing = [scope for scope in self.required_scopes if scope not in token.scopes]
        if missing:
            raise Denied(403, "insufficient_scope", f"token lacks scope: {' '.join(missing)}")
        return token.subject or token.client_id


def build_authenticator(settings: AuthSettings) -> Authenticator | None:
    """The authenticator for the configured mode (None for `none`); loads keys now."""
    mode = settings.effective_mode
    if mode == "none":
        return None
    if mode == "api_key":
        store = ApiKeyStore(key_source(settings), settings.api_keys_ttl_seconds)
        with contextlib.suppress(KeyStoreUnavailable):
            store.refresh()  # read at startup; a failure is logged and requests fail closed
        return ApiKeyAuthenticator(store)
    from fastmcp.server.auth.providers.jwt import JWTVerifier

    verifier = JWTVerifier(
        jwks_uri=settings.jwt_jwks_uri,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    return JwtAuthenticator(verifier, settings.jwt_required_scopes)


def _credential(headers: dict[bytes, bytes]) -> str | None:
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return api_key or None


def public_base_url(scope: Scope, headers: dict[bytes, bytes], configured: str | None) -> str:
    """The URL prefix clients use: configured, else API Gateway's domain and stage, else Host."""
    if configured:
        return configured.rstrip("/")
    context = json_header(headers, b"x-amzn-request-context")
    if context.get("domainName") and context.get("stage"):
        return f"https://{context['domainName']}/{context['stage']}"
    host = headers.get(b"host", b"localhost").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}"


class AuthMiddleware:
    """Require a credential on every path of the service except health and discovery metadata."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        service: str,
        mcp_path: str,
        open_paths: tuple[str, ...],
        settings: AuthSettings,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.service = service
        self.mcp_path = mcp_path
        self.open_paths = frozenset(open_paths)
        self.settings = settings
        self.metadata_path = f"{PROTECTED_RESOURCE_PREFIX}{mcp_path}"
        self.jwt = settings.effective_mode == "jwt"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.jwt and scope["path"] == self.metadata_path:
            await JSONResponse(self._metadata(scope, headers))(scope, receive, send)
            return
        credential = _credential(headers)
        try:
            if credential is None:
                raise Denied(
                    401, "", "credential required: Authorization: Bearer <token> or x-api-key"
                )
            principal = await self.authenticator.authenticate(credential, self.service)
        except Denied as denied:
            await self._deny(scope, receive, send, headers, denied)
            return
        record = current_request.get()
        if record is not None:
            record.principal = principal
        await self.app(scope, receive, send)

    def _metadata(self, scope: Scope, headers: dict[bytes, bytes]) -> dict[str, Any]:
        """RFC 9728 protected-resource metadata for this service's MCP endpoint."""
        base = public_base_url(scope, headers, self.settings.public_base_url)
        return {
            "resource": f"{base}{self.mcp_path}",
            "authorization_servers": [self.settings.jwt_issuer],
            "scopes_supported": self.settings.jwt_required_scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": self.service,
        }

    async def _deny(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        denied: Denied,
    ) -> None:
        record = current_request.get()
        if record is not None:
            record.error = denied.error or "missing_credential"
        challenge = ['realm="mcp"']
        if denied.error:
            challenge.append(f'error="{denied.error}"')
            challenge.append(f'error_description="{denied.description}"')
        if self.jwt:
            if self.settings.jwt_required_scopes:
                challenge.append(f'scope="{" ".join(self.settings.jwt_required_scopes)}"')
            base = public_base_url(scope, headers, self.settings.public_base_url)
            challenge.append(f'resource_metadata="{base}{self.metadata_path}"')
        response_headers = {"www-authenticate": "Bearer " + ", ".join(challenge)}
        if denied.status == 503:
            response_headers["retry-after"] = "5"
        body = {"error": denied.error or "invalid_request", "error_description": denied.description}
        response = JSONResponse(body, status_code=denied.status, headers=response_headers)
        await response(scope, receive, send)
