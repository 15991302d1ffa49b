"""The Open-Meteo client: one HTTP connection pool per process, every call bounded.

Each call has connect/read timeouts, a small retry with backoff (timeouts,
connection failures, 429, 5xx) and an absolute deadline shared by everything a
tool call does, so a tool answers well inside API Gateway's 29 s even when the
provider hangs. Failures become ProviderError with a message a person can act on.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx2 as httpx
from fastmcp.exceptions import ToolError

from weather_service import service
from weather_service.cache import TTLCache
from weather_service.settings import WeatherSettings, get_settings

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_SECONDS = 0.2


class ProviderError(ToolError):
    """The weather provider could not give an answer; the message is for the caller.

    A ToolError, so the caller receives it as `isError: true` with this message.
    """


class Deadline:
    """An absolute point in time shared by all provider calls of one tool call."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()


class OpenMeteoClient:
    def __init__(
        self, settings: WeatherSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.cache: TTLCache[Any] = TTLCache(settings.cache_max_entries)
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        """Close the connection pool; the next call opens a new one."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        # A pool belongs to one event loop: uvicorn has one per process, tests may have several.
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                transport=self.transport,
                headers={"user-agent": "mcp-fleet-weather/1", "accept": "application/json"},
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
                follow_redirects=False,
            )
            self._loop = loop
        return self._http

    async def get_json(
        self, url: str, params: Mapping[str, str | int | float], *, ttl: float, deadline: Deadline
    ) -> Any:
        """GET `url` and return its JSON, from the cache when fresh; raise ProviderError on failure."""
        key = (url, tuple(sorted(params.items())))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = await self._fetch(url, params, deadline)
        self.cache.put(key, data, ttl)
        return data

    async def _fetch(
        self, url: str, params: Mapping[str, str | int | float], deadline: Deadline
    ) -> Any:
        attempts = self.settings.retries + 1
        problem = "was not asked: no time was left"
        made = 0
        started = time.monotonic()
        for attempt in range(attempts):
            remaining = deadline.remaining()
            if remaining <= 0.05:
                break
            timeout = httpx.Timeout(
                min(self.settings.read_timeout_seconds, remaining),
                connect=min(self.settings.connect_timeout_seconds, remaining),
            )
            made += 1
            try:
                response = await asyncio.wait_for(
                    self._client().get(url, params=params, timeout=timeout), timeout=remaining
                )
            except (TimeoutError, httpx.TimeoutException):
                problem = "did not answer in time"
            except httpx.TransportError as exc:
                problem = f"could not be reached ({type(exc).__name__})"
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return _decode(response)
                problem = f"answered HTTP {response.status_code}"
                if response.status_code == 429:
                    problem += " (rate limited)"
            if attempt + 1 < attempts:
                pause = BACKOFF_BASE_SECONDS * 2**attempt * (0.5 + random.random())  # noqa: S311
                if pause >= deadline.remaining():
                    break
                await asyncio.sleep(pause)
        elapsed = time.monotonic() - started
        tries = f"{made} attempt{'s' if made != 1 else ''}"
        raise ProviderError(
            f"the weather provider {problem}; gave up after {tries} in {elapsed:.1f} s. "
            "Try again shortly."
        )


def _decode(response: httpx.Response) -> Any:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise ProviderError(
            f"the weather provider returned something unreadable (HTTP {response.status_code}, not JSON)"
        ) from None
    if response.status_code >= 400:
        reason = data.get("reason") if isinstance(data, dict) else None
        raise ProviderError(
            f"the weather provider refused the request (HTTP {response.status_code})"
            + (f": {reason}" if reason else "")
        )
    if not isinstance(data, dict):
        raise ProviderError(
            "the weather provider returned something unreadable (not a JSON object)"
        )
    return data


_client: OpenMeteoClient | None = None


def get_client() -> OpenMeteoClient:
    """The process-wide client: connections and cache survive across warm invocations."""
    global _client
    if _client is None:
        _client = OpenMeteoClient(get_settings())
    return _client


def set_client(client: OpenMeteoClient | None) -> None:
    """Replace the process-wide client (tests point it at recorded or fake providers)."""
    global _client
    _client = client


@service.before_checkpoint
async def close_pool() -> None:
    """Connections frozen into a SnapStart snapshot would be dead in every restored
    instance: close them; the first call after a restore opens new ones."""
    if _client is not None:
        await _client.close()


@service.after_restore
def forget_cached_answers() -> None:
    """Cache lifetimes run on the monotonic clock, which does not count the time a
    snapshot sat in storage: a cached forecast may be days old."""
    if _client is not None:
        _client.cache.clear()
