"""Authentication for every service, checked before anything reads the request body.

Modes (MCP_AUTH): `api_key` (hashed key records, see apikeys.py), `jwt` (bearer tokens
from an OIDC issuer such as Cognito, see tokens.py) or `none` (local development: every
request is the principal `local`).

Statuses: no or bad credential → 401 with `WWW-Authenticate: Bearer ...` pointing to the
service's RFC 9728 metadata; a good credential without access to this service → 403
`insufficient_scope`; a credential that cannot be checked because a key store or the
token issuer is unreachable → 503 with `Retry-After` (fail closed). No response ever
carries a key name, a claim value or a store's name: the log does.

Tools learn who is calling from `current_principal()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Protocol

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_common.logs import INTERNAL_SCOPE_KEY, current_request, json_header
from mcp_common.settings import AuthSettings, running_in_lambda

if TYPE_CHECKING:
    from mcp_common.apikeys import KeySource

logger = logging.getLogger(__name__)

PROTECTED_RESOURCE_PREFIX: Final = "/.well-known/oauth-protected-resource"
LOCAL_PRINCIPAL: Final = "local"
"""The principal of every request when MCP_AUTH=none (local development)."""
INTERNAL_PRINCIPAL: Final = "(service)"
"""The principal of the service's own in-process requests (priming); never a tenant."""

RETRY_AFTER_SECONDS: Final = 5

_principal: ContextVar[str | None] = ContextVar("mcp_principal", default=None)


def current_principal() -> str:
    """Who is calling: the API key record's `name`, the JWT's `sub` (or `client:<client_id>`
    for a token without one: a namespace no `sub` and no key name can enter), or `local`
    when MCP_AUTH=none.

    For tools that keep data per caller (one tenant per principal). Raises RuntimeError
    outside an authenticated request, so a tool can never fall back to a shared tenant.
    """
    principal = _principal.get()
    if principal is None:
        raise RuntimeError("no authenticated principal: not inside an MCP request")
    return principal


def principal_or_none() -> str | None:
    """The authenticated principal of the current request, None outside one."""
    return _principal.get()


@contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """Run the enclosed code as `principal`, as an authenticated request would: for callers
    inside the process, such as a tool's tests (`fleet.testing.client_as`), and the front
    door's edge, which authenticates as the services do. No request chooses it: a request's
    principal is set by AuthMiddleware (or that edge) from its credential only."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


class Denied(Exception):
    """An authentication outcome that ends the request with `status`.

    `description` is sent to the client, so it never holds a name or a value from a
    credential; `principal` (when known) goes to the log only.
    """

    def __init__(
        self, status: int, error: str, description: str, principal: str | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.principal = principal


def _unavailable() -> Denied:
    return Denied(
        503, "temporarily_unavailable", "credentials cannot be checked now; retry shortly"
    )


class Authenticator(Protocol):
    async def authenticate(self, credential: str | None, service: str) -> str:
        """Return the principal's name, or raise Denied."""
        ...

    def invalidate(self) -> None:
        """Forget cached credentials and key material (a snapshot is about to be taken)."""
        ...

    def reload(self, wait: float) -> None:
        """Re-read key sources now, waiting at most `wait` seconds (after a snapshot restore)."""
        ...


def _missing() -> Denied:
    return Denied(401, "", "credential required: Authorization: Bearer <token> or x-api-key")


class OpenAuthenticator:
    """MCP_AUTH=none: every request is the principal `local`."""

    async def authenticate(self, credential: str | None, service: str) -> str:
        return LOCAL_PRINCIPAL

    def invalidate(self) -> None:
        return None

    def reload(self, wait: float) -> None:
        return None


class ApiKeyAuthenticator:
    def __init__(self, store: Any) -> None:
        self.store = store

    async def authenticate(self, credential: str | None, service: str) -> str:
        from mcp_common.apikeys import KeyStoreUnavailable

        if credential is None:
            raise _missing()
        try:
            record = await self.store.lookup(credential)
        except KeyStoreUnavailable:
            raise _unavailable() from None
        if record is None:
            raise Denied(401, "invalid_token", "unknown API key")
        if record.expired():
            raise Denied(401, "invalid_token", "API key has expired", record.name)
        if not record.allows(service):
            raise Denied(
                403, "insufficient_scope", "API key is not allowed for this service", record.name
            )
        return record.name

    def invalidate(self) -> None:
        self.store.invalidate()

    def reload(self, wait: float) -> None:
        self.store.start(wait)


class JwtAuthenticator:
    def __init__(self, verifier: Any, settings: AuthSettings) -> None:
        self.verifier = verifier
        self.settings = settings

    async def authenticate(self, credential: str | None, service: str) -> str:
        from mcp_common.tokens import IssuerUnavailable, TokenRejected

        if credential is None:
            raise _missing()
        try:
            token = await self.verifier.verify(credential)
        except TokenRejected as rejected:
            raise Denied(401, "invalid_token", str(rejected)) from None
        except IssuerUnavailable:
            raise _unavailable() from None
        except Exception:  # a token no check foresaw: refused (fail closed), never a 500
            logger.exception("token verification failed unexpectedly; the token is refused")
            raise Denied(401, "invalid_token", "token signature or format is invalid") from None
        if not self.settings.grants(service, token.scopes, token.groups):
            needed = " ".join(self.settings.scopes_for(service))
            raise Denied(
                403,
                "insufficient_scope",
                f"token grants no access to service {service!r} (it needs {needed}"
                f"{' and the group ' + repr(service) if self._by_groups else ''})",
                token.principal,
            )
        return token.principal

    @property
    def _by_groups(self) -> bool:
        return bool(self.settings.jwt_resource_server and not self.settings.jwt_required_scopes)

    def invalidate(self) -> None:
        self.verifier.keys.invalidate()

    def reload(self, wait: float) -> None:
        return None  # stale keys are re-fetched by the next request, within their budget


def build_authenticator(
    settings: AuthSettings, service: str, source: KeySource | None = None
) -> Authenticator:
    """The authenticator for the configured mode; in api_key mode the first key read starts
    now (from `source`, else the settings' key source) and is waited on for a bounded time
    only."""
    mode = settings.effective_mode
    if mode == "none":
        return OpenAuthenticator()
    if mode == "api_key":
        from mcp_common.apikeys import ApiKeyStore, key_source

        store = ApiKeyStore(
            source or key_source(settings),
            ttl=settings.api_keys_ttl_seconds,
            max_stale=settings.api_keys_max_stale_seconds,
            wait=settings.wait_seconds,
        )
        store.start()
        return ApiKeyAuthenticator(store)
    from mcp_common.tokens import JwksKeys, TokenVerifier

    verifier = TokenVerifier(
        JwksKeys(settings.jwt_jwks_uri or "", budget=settings.wait_seconds),
        issuer=settings.jwt_issuer or "",
        audiences=settings.jwt_audience,
        groups_claim=settings.jwt_groups_claim,
    )
    return JwtAuthenticator(verifier, settings)


def request_credential(headers: dict[bytes, bytes]) -> str | None:
    """The bearer token, else the API key, a request carries (the front door reads it too)."""
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return api_key or None


def public_base_url(
    scope: Scope, headers: dict[bytes, bytes], configured: str | None, trust_gateway: bool
) -> str:
    """The URL prefix clients use: MCP_PUBLIC_BASE_URL, else API Gateway's domain and stage
    (only under the Web Adapter, whose request context no client can forge), else Host
    (already checked against the allow-list)."""
    if configured:
        return configured.rstrip("/")
    if trust_gateway:
        context = json_header(headers, b"x-amzn-request-context")
        domain, stage = context.get("domainName"), context.get("stage")
        if isinstance(domain, str) and isinstance(stage, str) and domain and stage:
            return f"https://{domain}/{stage}"
    host = headers.get(b"host", b"localhost").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}"


def refusal_response(denied: Denied, metadata_url: str, scopes: list[str]) -> JSONResponse:
    """The answer to a refused credential (a service's, the front door's alike): a 503 with
    Retry-After, or a 401/403 whose RFC 6750 challenge names the error, the scopes to ask
    for, and the RFC 9728 metadata to follow."""
    headers: dict[str, str] = {}
    if denied.status == 503:
        headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    else:
        challenge = ['realm="mcp"']
        if denied.error:
            challenge.append(f'error="{denied.error}"')
            challenge.append(f'error_description="{_quoted(denied.description)}"')
        if scopes:
            challenge.append(f'scope="{_quoted(" ".join(scopes))}"')
        challenge.append(f'resource_metadata="{_quoted(metadata_url)}"')
        headers["www-authenticate"] = "Bearer " + ", ".join(challenge)
    body = {"error": denied.error or "invalid_request", "error_description": denied.description}
    return JSONResponse(body, status_code=denied.status, headers=headers)


def _quoted(text: str) -> str:
    """A header parameter value: printable ASCII without quotes or backslashes."""
    return "".join(c for c in text if c.isascii() and c.isprintable() and c not in '"\\')


class AuthMiddleware:
    """Require a credential on every path of the service except its open paths (health,
    lifecycle hooks), its RFC 9728 metadata and CORS preflights; set the principal."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        service: str,
        mcp_path: str,
        metadata_path: str,
        open_paths: tuple[str, ...],
        settings: AuthSettings,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.service = service
        self.mcp_path = mcp_path
        self.open_paths = frozenset(open_paths)
        self.settings = settings
        # Advertised in every 401: under the service's own prefix, the only paths API Gateway
        # routes to it. The RFC 9728 well-known form (`/.well-known/...<mcp path>`) is served
        # too, for clients that probe it where the service is hosted at a domain's root.
        self.metadata_path = metadata_path
        self.metadata_paths = frozenset({metadata_path, f"{PROTECTED_RESOURCE_PREFIX}{mcp_path}"})
        self.jwt = settings.effective_mode == "jwt"
        self.open = settings.effective_mode == "none"
        self.scopes = settings.scopes_for(service)
        self.trust_gateway = running_in_lambda()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self.open_paths
            or scope["method"] == "OPTIONS"  # CORS preflights carry no credentials by design
        ):
            await self.app(scope, receive, send)
            return
        if scope.get(INTERNAL_SCOPE_KEY):  # the service priming itself, in-process
            token = _principal.set(INTERNAL_PRINCIPAL)
            try:
                await self.app(scope, receive, send)
            finally:
                _principal.reset(token)
            return
        headers = dict(scope["headers"])
        if scope["path"] in self.metadata_paths and not self.open:
            await JSONResponse(self._metadata(scope, headers))(scope, receive, send)
            return
        try:
            principal = await self.authenticator.authenticate(
                request_credential(headers), self.service
            )
        except Denied as denied:
            await self._deny(scope, receive, send, headers, denied)
            return
        record = current_request.get()
        if record is not None:
            record.principal = principal
        token = _principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            _principal.reset(token)

    def _metadata(self, scope: Scope, headers: dict[bytes, bytes]) -> dict[str, Any]:
        """RFC 9728 protected-resource metadata for this service's MCP endpoint."""
        base = self._base_url(scope, headers)
        metadata: dict[str, Any] = {
            "resource": f"{base}{self.mcp_path}",
            "bearer_methods_supported": ["header"],
            "resource_name": self.service,
        }
        if self.jwt:
            # An MCP client follows this to the issuer's OAuth/OIDC metadata (Cognito serves
            # it at <issuer>/.well-known/openid-configuration) and asks for these scopes.
            metadata["authorization_servers"] = [self.settings.jwt_issuer]
            metadata["scopes_supported"] = self.scopes
        return metadata

    def _base_url(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        return public_base_url(scope, headers, self.settings.public_base_url, self.trust_gateway)

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
            record.principal = denied.principal
            record.refusal = "auth"
        metadata_url = f"{self._base_url(scope, headers)}{self.metadata_path}"
        scopes = self.scopes if self.jwt else []
        await refusal_response(denied, metadata_url, scopes)(scope, receive, send)
