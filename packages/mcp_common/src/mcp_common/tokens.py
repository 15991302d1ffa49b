"""JWT bearer tokens: checked against the issuer's JWKS, with every wait bounded.

A token is accepted when its signature verifies with a key from the issuer's JWKS and
its claims hold: `exp` required and not past, `nbf` and `iat` not in the future (both
with the same small clock-skew allowance), `iss` the configured issuer, and either
- `aud` naming one of the configured audiences (a standard OAuth access token), or
- no `aud`, `client_id` naming one of them and `token_use: access` (a Cognito access
  token: Cognito puts the app client in `client_id`, not in `aud`).
A token that says it is not an access token (`token_use: id`, Cognito's id token) is
refused whatever else it carries. Scopes come from `scope` (space-separated) or `scp`;
groups from the configured groups claim (Cognito's `cognito:groups`), a list of strings or
none at all: a claim of any other shape grants no group.
Every claim the checks read must have the type the JWT and OAuth specs give it, or the
token is refused (401): a list where a string belongs never reaches a comparison.

The principal is `sub`; a token without one (a client-credentials token of some issuers) is
the principal `client:<client_id>`, in a namespace of its own, so that no client can pose as
a user whose `sub` equals its id. A `sub` that starts with `client:` is refused.

The JWKS fetch has a total time budget, not only a per-read timeout, and concurrent
requests share one fetch. Known keys keep serving while a refresh fails or runs; a
token whose key cannot be fetched gets 503, never a wait of minutes.

fastmcp's JWTVerifier and AWSCognitoTokenVerifier were the starting point; this differs
where they cannot serve: `nbf` is enforced, `token_use` is checked, the JWKS fetch has
an overall budget, and "the issuer is unreachable" is told apart from "bad token".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import httpx2
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, MissingClaimError
from joserfc.jwk import Key, import_key

from mcp_common import untrusted

logger = logging.getLogger(__name__)

CLOCK_SKEW_SECONDS: Final = 30
ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
JWKS_BUDGET_SECONDS: Final = 5.0
"""Everything one JWKS fetch may take: connecting, every read, the whole body."""
JWKS_TTL_SECONDS: Final = 3600.0
JWKS_MIN_REFRESH_SECONDS: Final = 30.0
"""An unknown `kid` triggers at most one fetch per this many seconds (fails included)."""
JWKS_MAX_BYTES: Final = 256 * 1024


class TokenRejected(Exception):
    """The token is not acceptable (401); the message is safe to send to the client."""


class IssuerUnavailable(Exception):
    """The issuer's signing keys cannot be fetched (503): neither accepted nor refused."""


MACHINE_PREFIX: Final = "client:"
"""The principal of a token without `sub` is `client:<client_id>`."""
STRING_CLAIMS: Final = ("iss", "sub", "client_id", "token_use", "scope")
"""Claims that must be strings when present (RFC 7519, RFC 8693, Cognito)."""
STRING_OR_LIST_CLAIMS: Final = ("aud", "scp")
NUMERIC_CLAIMS: Final = ("exp", "nbf", "iat")


@dataclass(frozen=True)
class VerifiedToken:
    principal: str
    """`sub`, or `client:<client_id>` for a token without one (see the module docstring)."""
    client_id: str | None
    scopes: frozenset[str]
    groups: frozenset[str] = frozenset()
    """The groups claim's names (Cognito user groups): what `services` access is decided by."""


class JwksKeys:
    """The issuer's signing keys by `kid`, fetched within a total budget, shared by requests."""

    def __init__(
        self,
        uri: str,
        budget: float = JWKS_BUDGET_SECONDS,
        ttl: float = JWKS_TTL_SECONDS,
        min_refresh: float = JWKS_MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self.budget = budget
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.clock = clock
        self._keys: dict[str, Key] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._last_failed = False
        self._inflight: asyncio.Task[None] | None = None

    def invalidate(self) -> None:
        """Treat the cached keys as stale (after a snapshot restore): they still serve while
        the next request refreshes them."""
        self._fetched_at = self._attempted_at = float("-inf")

    async def key_for(self, kid: str | None) -> Key:
        key = self._lookup(kid)
        now = self.clock()
        if key is not None:
            if now - self._fetched_at > self.ttl and now - self._attempted_at >= self.min_refresh:
                self._fetch_in_background()
            return key
        if now - self._attempted_at >= self.min_refresh or self._running():
            await self._fetch_within_budget()
            key = self._lookup(kid)
            if key is not None:
                return key
        if self._last_failed:
            raise IssuerUnavailable("the token issuer's signing keys cannot be fetched")
        raise TokenRejected("token is signed with an unknown key")

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _running(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    def _fetch_in_background(self) -> asyncio.Task[None]:
        if not self._running():
            self._attempted_at = self.clock()
            self._inflight = asyncio.get_running_loop().create_task(self._refresh())
        return self._inflight  # type: ignore[return-value]

    async def _fetch_within_budget(self) -> None:
        task = self._fetch_in_background()
        with contextlib.suppress(TimeoutError):  # the fetch ends itself at its budget
            await asyncio.wait_for(asyncio.shield(task), self.budget + 0.5)

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(self.budget):
                keys = _import_keys(await self._fetch())
        except Exception as exc:  # noqa: BLE001 - every failure means "no new keys"
            self._last_failed = True
            reason = "no answer within the budget" if isinstance(exc, TimeoutError) else exc
            logger.error(
                "cannot fetch the JWKS from %s (%s: %s); %s",
                self.uri,
                type(exc).__name__,
                reason,
                f"still using {len(self._keys)} cached key(s)" if self._keys else "no keys yet",
            )
            return
        self._keys, self._fetched_at, self._last_failed = keys, self.clock(), False
        logger.info("loaded %d signing key(s) from %s", len(keys), self.uri)

    async def _fetch(self) -> dict[str, Any]:
        timeout = httpx2.Timeout(3.0, connect=2.0)
        async with (
            httpx2.AsyncClient(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", self.uri, headers={"accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise ValueError(f"JWKS larger than {JWKS_MAX_BYTES} bytes")
        data = untrusted.loads(bytes(body))
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise TypeError("not a JWKS document")
        return data


def _import_keys(jwks: dict[str, Any]) -> dict[str, Key]:
    """Every usable signing key by kid; unusable entries are skipped (RFC 7517 §5)."""
    keys: dict[str, Key] = {}
    for entry in jwks["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = import_key(entry)
        except Exception:  # noqa: BLE001, S112 - one odd key must not reject every token
            continue
        key.ensure_kid()
        keys[key.kid] = key  # type: ignore[index]
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("token is not a JWT")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
    except ValueError:
        raise TokenRejected("token is not a JWT") from None
    header = untrusted.json_object(raw)
    if not header:
        raise TokenRejected("token is not a JWT")
    return header


def _check_types(claims: dict[str, Any]) -> None:
    """Each claim the checks read has its specified type, or the token is refused."""
    for name in STRING_CLAIMS:
        if name in claims and not isinstance(claims[name], str):
            raise TokenRejected(f"token has a malformed {name!r} claim")
    for name in STRING_OR_LIST_CLAIMS:
        value = claims.get(name)
        if value is not None and not (
            isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(item, str) for item in value))
        ):
            raise TokenRejected(f"token has a malformed {name!r} claim")
    for name in NUMERIC_CLAIMS:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenRejected(f"token has a malformed {name!r} claim")


def _principal(claims: dict[str, Any]) -> str:
    """`sub`, or `client:<client_id>` without one: two namespaces that never meet."""
    subject, client = claims.get("sub"), claims.get("client_id")
    if subject:
        if subject.startswith(MACHINE_PREFIX):
            raise TokenRejected(f"token's subject uses the reserved prefix {MACHINE_PREFIX!r}")
        return subject
    if client:
        return f"{MACHINE_PREFIX}{client}"
    raise TokenRejected("token names no subject or client")


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def _groups(claims: dict[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim) if claim else None
    if not isinstance(value, list):
        return frozenset()  # a string is not split into letters, an object grants nothing
    return frozenset(item for item in value if isinstance(item, str) and item)


class TokenVerifier:
    """Verify a bearer JWT as the module docstring says; raise TokenRejected or IssuerUnavailable."""

    def __init__(
        self,
        keys: JwksKeys,
        issuer: str,
        audiences: Iterable[str],
        groups_claim: str = "cognito:groups",
    ) -> None:
        self.keys = keys
        self.groups_claim = groups_claim
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self._registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS,
            exp={"essential": True},
            iss={"essential": True, "value": issuer},
        )

    async def verify(self, token: str) -> VerifiedToken:
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected("token uses an unsupported signing algorithm")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("token is not a JWT")
        key = await self.keys.key_for(kid)
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm]).claims
        except Exception:  # noqa: BLE001 - joserfc raises more than JoseError on hostile input
            raise TokenRejected("token signature or format is invalid") from None
        if not isinstance(claims, dict):
            raise TokenRejected("token signature or format is invalid")
        _check_types(claims)
        self._check_claims(claims)
        self._check_audience(claims)
        client_id = claims.get("client_id")
        return VerifiedToken(
            principal=_principal(claims),
            client_id=client_id,
            scopes=_scopes(claims),
            groups=_groups(claims, self.groups_claim),
        )

    def _check_claims(self, claims: dict[str, Any]) -> None:
        try:
            self._registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("token has expired") from None
        except MissingClaimError as exc:
            raise TokenRejected(f"token lacks the {exc.claim!r} claim") from None
        except InvalidClaimError as exc:
            if exc.claim in {"nbf", "iat"}:  # numbers (checked above), so: in the future
                raise TokenRejected("token is not valid yet") from None
            raise TokenRejected(f"token has a wrong {exc.claim!r} claim") from None
        except Exception:  # noqa: BLE001 - fail closed on whatever else joserfc raises
            raise TokenRejected("token claims are invalid") from None
        token_use = claims.get("token_use")
        if token_use is not None and token_use != "access":  # noqa: S105 - a claim, not a secret
            raise TokenRejected("only access tokens are accepted (this is not one)")

    def _check_audience(self, claims: dict[str, Any]) -> None:
        audience = claims.get("aud")
        if audience is not None:
            named = [audience] if isinstance(audience, str) else audience
            if not isinstance(named, list) or not self.audiences.intersection(
                item for item in named if isinstance(item, str)
            ):
                raise TokenRejected("token is for another audience")
            return
        if claims.get("token_use") == "access" and claims.get("client_id") in self.audiences:
            return  # a Cognito access token of a configured app client
        raise TokenRejected("token is for another audience")
