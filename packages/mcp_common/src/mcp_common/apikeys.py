"""API key records and the stores they are read from, with every wait bounded.

- Keys are never stored in clear: a record holds the SHA-256 of its key, and a
  presented key is hashed and compared in constant time against every record.
- Records come from MCP_API_KEYS, an SSM SecureString or a Secrets Manager secret.
  AWS reads have explicit connect/read timeouts and bounded retries, and run on a
  worker thread: neither a request nor start-up ever waits behind a hung read for
  more than MCP_AUTH_WAIT_SECONDS.
- Records are re-read after a TTL, in the background (requests keep using the last
  good records meanwhile). A failed read keeps the last good records for at most
  `max_stale` seconds, then requests are refused (fail closed), never let through.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from mcp_common.settings import AuthSettings

logger = logging.getLogger(__name__)

ALL_SERVICES: Final = "*"
KEY_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"
"""Key names: 1-64 ASCII letters, digits and `. _ @ + -`, starting with a letter or digit.
The name is the principal in logs and the memory service's tenant; it never goes into a
response, so no name can forge a header."""
WAIT_SECONDS: Final = 5.0
"""Default longest wait (MCP_AUTH_WAIT_SECONDS) for a read, by a request with no usable
records cached, or by start-up (which then starts anyway and keeps trying)."""
RETRY_AFTER_FAILURE_SECONDS: Final = 5.0
"""Pause between reads after a failed one, so an outage is not hammered."""
AWS_CONNECT_TIMEOUT_SECONDS: Final = 2.0
AWS_READ_TIMEOUT_SECONDS: Final = 3.0
AWS_MAX_ATTEMPTS: Final = 2
"""botocore's total attempts per read: worst case about 2 x (2 + 3) s plus backoff."""


def hash_key(key: str) -> str:
    """Hex SHA-256 of an API key: what a key record stores instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyRecord(BaseModel):
    """One API key, as stored: its name (the principal in logs), hash, services and expiry."""

    name: str = Field(pattern=KEY_NAME_PATTERN)
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


class InvalidKeyRecords(ValueError):
    """The records text is not a valid list of key records; the message quotes no value."""


def parse_records(text: str) -> list[ApiKeyRecord]:
    """Validate the JSON list of key records; names must be unique.

    Errors name the record and field and the reason, never a value: a store may hold a
    raw key pasted where its hash belongs.
    """
    try:
        records = _RECORDS.validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'records'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        )
        raise InvalidKeyRecords(f"invalid key records: {problems}") from None
    names = [record.name for record in records]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidKeyRecords(f"duplicate API key names: {', '.join(duplicates)}")
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


def aws_client(service: str, region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 client whose every call is bounded: explicit timeouts, few retries.

    botocore's defaults (60 s read timeout, several retries) turn a hung endpoint into
    minutes of waiting; these turn it into seconds.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS,
        read_timeout=AWS_READ_TIMEOUT_SECONDS,
        retries={"total_max_attempts": AWS_MAX_ATTEMPTS, "mode": "standard"},
    )
    session = boto3.session.Session(profile_name=profile) if profile else boto3
    return session.client(service, region_name=region, config=config)


class SsmKeySource:
    def __init__(self, parameter: str) -> None:
        self.parameter = parameter
        self.description = f"SSM parameter {parameter}"
        self._client: Any = None

    def read(self) -> str:
        if self._client is None:
            self._client = aws_client("ssm")
        response = self._client.get_parameter(Name=self.parameter, WithDecryption=True)
        return response["Parameter"]["Value"]

    def forget_client(self) -> None:
        """Drop the client and its credentials and connections (before a snapshot)."""
        self._client = None


class SsmParameterBatch:
    """Many SSM parameters of key records read together, for one reader of them all (the
    front door, which checks a credential against every service's own records): one client,
    and GetParameters with ten names a call, so 200 services cost 20 calls, not 200 clients
    and 200 calls. One read runs at a time; reads asked within COALESCE_SECONDS of the last
    one's end share its outcome, a failure included (the services' stores start, expire and
    retry together). A batch that fails fails its own ten names only."""

    COALESCE_SECONDS: Final = 5.0
    BATCH: Final = 10
    """GetParameters' limit of names a call."""

    def __init__(
        self, names: list[str], clock: Callable[[], float] = time.monotonic, client: Any = None
    ) -> None:
        self.names = sorted(set(names))
        self.clock = clock
        self._outcomes: dict[str, str | Exception] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self._client = client

    def source(self, name: str) -> KeySource:
        """The key source of one parameter of the batch."""
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of the batch's parameters")
        return _BatchedParameter(self, name)

    def read(self, name: str) -> str:
        with self._lock:
            if self._read_at is None or self.clock() - self._read_at > self.COALESCE_SECONDS:
                self._outcomes = self._read_all()
                self._read_at = self.clock()  # when the read ended: a slow one still coalesces
            outcome = self._outcomes.get(name, LookupError(f"SSM parameter {name} does not exist"))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _read_all(self) -> dict[str, str | Exception]:
        outcomes: dict[str, str | Exception] = {}
        for start in range(0, len(self.names), self.BATCH):
            names = self.names[start : start + self.BATCH]
            try:
                if self._client is None:
                    self._client = aws_client("ssm")
                answer = self._client.get_parameters(Names=names, WithDecryption=True)
            except Exception as exc:  # noqa: BLE001 - this batch's names report it
                outcomes.update(dict.fromkeys(names, exc))
                continue
            outcomes.update({p["Name"]: p["Value"] for p in answer.get("Parameters", [])})
        return outcomes

    def forget_client(self) -> None:
        """Drop the client, its credentials and connections, and what was read."""
        with self._lock:
            self._client, self._outcomes, self._read_at = None, {}, None


class _BatchedParameter:
    def __init__(self, batch: SsmParameterBatch, name: str) -> None:
        self.batch = batch
        self.name = name
        self.description = f"SSM parameter {name}"

    def read(self) -> str:
        return self.batch.read(self.name)

    def forget_client(self) -> None:
        self.batch.forget_client()


class SecretsManagerKeySource:
    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        self.description = f"Secrets Manager secret {secret_id}"
        self._client: Any = None

    def read(self) -> str:
        if self._client is None:
            self._client = aws_client("secretsmanager")
        return self._client.get_secret_value(SecretId=self.secret_id)["SecretString"]

    def forget_client(self) -> None:
        """Drop the client and its credentials and connections (before a snapshot)."""
        self._client = None


def key_source(settings: AuthSettings) -> KeySource:
    if settings.api_keys is not None:
        return StaticKeySource(settings.api_keys.get_secret_value())
    if settings.api_keys_ssm_parameter:
        return SsmKeySource(settings.api_keys_ssm_parameter)
    if settings.api_keys_secret_id:
        return SecretsManagerKeySource(settings.api_keys_secret_id)
    raise ValueError("no API key source configured")  # AuthSettings already refuses this


class KeyStoreUnavailable(RuntimeError):
    """No usable key records: the request is refused (503) until they can be read."""


class ApiKeyStore:
    """Key records, re-read after `ttl` seconds on a worker thread, never waited on for long.

    A read that fails keeps the last good records for at most `max_stale` seconds. With no
    usable records, a request waits for the read in flight for at most `wait` seconds and
    is then refused. `invalidate` forgets everything (a snapshot's clock cannot be trusted
    after a restore).
    """

    def __init__(
        self,
        source: KeySource,
        ttl: float,
        max_stale: float,
        wait: float = WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.max_stale = max_stale
        self.wait = wait
        self.clock = clock
        self._records: list[ApiKeyRecord] | None = None
        self._loaded_at = 0.0
        self._next_read = 0.0  # no read before this time (TTL, or pause after a failure)
        self._generation = 0
        self._inflight: Future[None] | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-key-store")

    def start(self, wait: float | None = None) -> None:
        """Begin a read now and wait for it at most `wait` seconds (default: the store's)."""
        wait = self.wait if wait is None else wait
        future = self._read_soon(force=True)
        try:
            future.result(timeout=wait)
        except TimeoutError:
            logger.error(
                "reading API keys from %s takes longer than %g s; starting anyway and "
                "refusing requests (503) until it answers",
                self.source.description,
                wait,
            )

    def refresh(self) -> None:
        """Read the records now, on this thread; raise KeyStoreUnavailable on failure."""
        generation = self._generation
        try:
            records = parse_records(self.source.read())
        except Exception as exc:  # noqa: BLE001 - any failure to read means "no new records"
            self._failed(exc, generation)
            raise KeyStoreUnavailable("API key store unavailable") from None
        if generation == self._generation:
            self._records = records
            self._loaded_at = self.clock()
            self._next_read = self._loaded_at + self.ttl
        logger.info("loaded %d API key record(s) from %s", len(records), self.source.description)

    def invalidate(self) -> None:
        """Forget every record and any read in flight: the next request reads afresh."""
        with self._lock:
            self._generation += 1
            self._records = None
            self._next_read = 0.0
            self._inflight = None
        forget = getattr(self.source, "forget_client", None)
        if forget is not None:
            forget()

    async def records(self) -> list[ApiKeyRecord]:
        """The current records; stale ones while a refresh runs, within `max_stale`."""
        now = self.clock()
        if now < self._next_read and self._usable(now):
            return self._records  # type: ignore[return-value]  # _usable checked it
        future = self._read_soon()
        if not self._usable(now):
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.wait)
            except TimeoutError:
                logger.error(
                    "API key store %s did not answer within %g s; refusing the request",
                    self.source.description,
                    self.wait,
                )
            except Exception:  # noqa: BLE001, S110 - logged by the read itself; refused below
                pass
        if not self._usable(self.clock()):
            raise KeyStoreUnavailable("API key store unavailable")
        return self._records  # type: ignore[return-value]

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        """The record whose hash matches `key`, compared in constant time against all records."""
        digest = hash_key(key)
        match = None
        for record in await self.records():
            if hmac.compare_digest(digest, record.sha256):
                match = record
        return match

    def _usable(self, now: float) -> bool:
        return self._records is not None and now - self._loaded_at <= self.max_stale

    def _read_soon(self, force: bool = False) -> Future[None]:
        """The read in flight, or a new one if none runs and none is due to wait."""
        with self._lock:
            inflight = self._inflight
            if inflight is not None and not inflight.done():
                return inflight
            if not force and self.clock() < self._next_read and inflight is not None:
                return inflight  # paused after a failure: report that failure, do not re-read
            self._inflight = self._executor.submit(self._refresh_quietly)
            return self._inflight

    def _refresh_quietly(self) -> None:
        with contextlib.suppress(KeyStoreUnavailable):  # logged by refresh()
            self.refresh()

    def _failed(self, exc: Exception, generation: int) -> None:
        if generation != self._generation:
            return
        now = self.clock()
        self._next_read = now + RETRY_AFTER_FAILURE_SECONDS
        kept = self._usable(now)
        logger.error(
            "cannot read API keys from %s: %s: %s; %s",
            self.source.description,
            type(exc).__name__,
            exc if isinstance(exc, InvalidKeyRecords) else _aws_error_summary(exc),
            f"keeping the last good records ({now - self._loaded_at:.0f} s old)"
            if kept
            else "refusing requests until they can be read",
        )


def _aws_error_summary(exc: Exception) -> str:
    """What an AWS or network error says, without echoing a stored value."""
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "the stored value is not JSON text"
    return str(exc)[:300]
