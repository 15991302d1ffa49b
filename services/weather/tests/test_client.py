"""The provider client's resilience: retries, timeouts, deadlines, unreadable answers, caching."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx2 as httpx
import pytest

from weather_service.cache import TTLCache
from weather_service.client import Deadline, OpenMeteoClient, ProviderError
from weather_service.settings import WeatherSettings

URL = "https://api.open-meteo.com/v1/forecast"


def client_with(handler: Callable[[httpx.Request], object], **settings: float) -> OpenMeteoClient:
    async def handle(request: httpx.Request) -> httpx.Response:
        result = handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return OpenMeteoClient(WeatherSettings(**settings), transport=httpx.MockTransport(handle))


async def get(client: OpenMeteoClient, seconds: float = 5.0) -> object:
    return await client.get_json(URL, {"latitude": 1}, ttl=0, deadline=Deadline(seconds))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(status):
    statuses = [status, 200]

    def handler(request):
        return httpx.Response(statuses.pop(0), json={"ok": True})

    assert await get(client_with(handler)) == {"ok": True}
    assert statuses == []


async def test_gives_up_after_the_configured_retries():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503, text="busy")

    with pytest.raises(ProviderError, match=r"answered HTTP 503; gave up after 3 attempts in"):
        await get(client_with(handler, retries=2))
    assert len(calls) == 3


async def test_client_errors_are_not_retried_and_carry_the_reason():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(400, json={"error": True, "reason": "Latitude must be in range"})

    with pytest.raises(
        ProviderError, match="refused the request \\(HTTP 400\\): Latitude must be in range"
    ):
        await get(client_with(handler))
    assert len(calls) == 1


async def test_read_timeouts_are_retried_then_reported():
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ProviderError, match="did not answer in time"):
        await get(client_with(handler, retries=1))


async def test_connection_failures_are_reported():
    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderError, match=r"could not be reached \(ConnectError\)"):
        await get(client_with(handler, retries=0))


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="<html>maintenance</html>"), "not JSON"),
        (httpx.Response(200, json=[1, 2]), "not a JSON object"),
        (httpx.Response(200, content=b"\xff\xfe\x00"), "unreadable"),
    ],
)
async def test_unreadable_answers(response, message):
    with pytest.raises(ProviderError, match=message):
        await get(client_with(lambda request: response))


async def test_the_deadline_bounds_a_hanging_provider():
    async def handler(request):
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"gave up after 1 attempt in 0\.\d s"):
        await get(client_with(handler, read_timeout_seconds=10), seconds=0.6)
    assert time.monotonic() - started < 1.5


async def test_the_error_says_how_long_it_really_took():
    """Regression: a refused connection failed in 0.5 s but said "giving up after 8 s"."""

    def handler(request):
        raise httpx.ConnectError("refused")

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await get(client_with(handler), seconds=8)
    elapsed = time.monotonic() - started
    assert elapsed < 3
    message = str(caught.value)
    assert "could not be reached (ConnectError)" in message
    stated = re.search(r"gave up after 3 attempts in (\d+\.\d) s", message)
    assert stated, message
    assert float(stated.group(1)) <= elapsed + 0.05  # what it took, not the 8 s budget


async def test_successful_answers_are_cached_for_their_ttl():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(200, json={"n": len(calls)})

    client = client_with(handler)
    first = await client.get_json(URL, {"a": 1}, ttl=60, deadline=Deadline(5))
    second = await client.get_json(URL, {"a": 1}, ttl=60, deadline=Deadline(5))
    other = await client.get_json(URL, {"a": 2}, ttl=60, deadline=Deadline(5))
    assert first == second == {"n": 1}
    assert other == {"n": 2}


def test_ttl_cache_expires_and_stays_bounded():
    now = [0.0]
    cache: TTLCache[str] = TTLCache(max_entries=2, clock=lambda: now[0])
    cache.put("a", "A", ttl=10)
    cache.put("b", "B", ttl=10)
    assert cache.get("a") == "A"  # now most recently used
    cache.put("c", "C", ttl=10)  # evicts b, the least recently used
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    now[0] = 10.0
    assert cache.get("a") is None
    cache.put("d", "D", ttl=0)
    assert cache.get("d") is None


async def test_snapstart_hooks_close_the_pool_and_forget_cached_answers():
    """Before a snapshot the pool is closed (a restored instance opens a new one); after a
    restore the cache is empty (its monotonic clock did not count the time in storage)."""
    from weather_service import service
    from weather_service.client import set_client

    client = client_with(lambda request: httpx.Response(200, json={"ok": True}))
    set_client(client)
    try:
        await client.get_json(URL, {"latitude": 1}, ttl=60, deadline=Deadline(5))
        assert client._http is not None
        assert len(client.cache) == 1
        for hook in service.hooks("before_checkpoint"):
            await hook()
        assert client._http is None
        for hook in service.hooks("after_restore"):
            hook()
        assert len(client.cache) == 0
        assert await get(client) == {"ok": True}  # a new pool, opened on first use
    finally:
        set_client(None)
