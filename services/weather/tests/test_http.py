"""The weather service as Lambda runs it (run.sh), against a stand-in Open-Meteo on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastmcp import Client
from mcp.client import Client as SDKClient

from fleet.template import lambda_environment
from fleet.testing import MCP_HEADERS, RunningService, dev_env, loopback_http, start_service

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
DEADLINE = 2.5


SERVICE_DIR = RUN_SH.parent


@pytest.fixture(scope="module")
def weather(fake_provider) -> Iterator[RunningService]:
    _, provider_base = fake_provider
    env = {
        **dev_env(),
        # What the service's own stack sets on Lambda: STREAM, and its tool deadline.
        **lambda_environment(SERVICE_DIR),
        "WEATHER_ARCHIVE_URL": f"{provider_base}/v1/archive",
        "WEATHER_FORECAST_URL": f"{provider_base}/v1/forecast",
        "WEATHER_GEOCODING_URL": f"{provider_base}/v1/search",
        # Every call reaches the provider, so switching its failure mode takes effect at once.
        "WEATHER_GEOCODE_CACHE_SECONDS": "0",
        "WEATHER_FORECAST_CACHE_SECONDS": "0",
        # A shorter deadline than the default 8 s: the bound it proves is the same.
        "WEATHER_DEADLINE_SECONDS": str(DEADLINE),
    }
    with start_service(RUN_SH, "/weather/health", env=env) as service:
        yield service


@pytest.fixture(scope="module")
def weather_url(weather) -> str:
    return f"{weather.base}/weather/mcp"


@pytest.fixture
def provider(fake_provider):
    provider, _ = fake_provider
    provider.mode = "ok"
    yield provider
    provider.mode = "ok"
    provider.archive_delay = 0.0


async def test_each_tool_answers_with_the_providers_values(weather_url, provider):
    async with Client(weather_url) as client:
        places = await client.call_tool("geocode", {"name": "東京", "language": "ja"})
        assert places.structured_content["places"][0]["name"] == "東京"
        current = await client.call_tool("get_current_weather", {"location": "Berlin"})
        assert current.structured_content["temperature"] == 6.4
        assert current.structured_content["location"]["name"] == "Berlin, Land Berlin, Germany"
        forecast = await client.call_tool("get_forecast", {"location": "Berlin", "days": 2})
        assert [day["temperature_max"] for day in forecast.structured_content["days"]] == [7.1, 5.2]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("500", "answered HTTP 500"),
        ("garbage", "returned something unreadable"),
        ("slow", "did not answer in time"),
    ],
)
async def test_each_failure_mode_is_a_tool_error_within_the_deadline(
    weather_url, provider, mode, message
):
    provider.mode = mode
    async with Client(weather_url) as client:
        calls = [
            ("get_current_weather", {"location": "Berlin"}),
            ("get_forecast", {"location": "52.5,13.4"}),
            ("geocode", {"name": "Berlin"}),
        ]
        # A hanging provider costs a full deadline per call: one call shows it.
        for tool, arguments in calls[:1] if mode == "slow" else calls:
            started = time.monotonic()
            result = await client.call_tool(tool, arguments, raise_on_error=False)
            elapsed = time.monotonic() - started
            assert result.is_error, result
            text = result.content[0].text
            assert message in text
            assert "Traceback" not in text
            assert elapsed < DEADLINE + 1, f"{tool} took {elapsed:.1f}s in mode {mode}"
            # Where it gave up, it says how long it really took, not the configured deadline.
            if "gave up" in text:
                reported = float(re.search(r"in (\d+\.\d) s", text).group(1))
                # Never more than the client waited; the rest is HTTP and scheduling.
                assert elapsed - 1.5 <= reported <= elapsed + 0.05, (text, elapsed)


# --- the long tool, streamed --------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_dev_url(fake_provider) -> Iterator[str]:
    """The weather service as `fleet dev` serves it: its own stack's mode and deadline."""
    from fleet.dev import build_fleet_app
    from fleet.testing import serve
    from fleet.workspace import ServiceDir
    from weather_service.client import OpenMeteoClient, set_client
    from weather_service.settings import WeatherSettings

    _, provider_base = fake_provider
    set_client(
        OpenMeteoClient(
            WeatherSettings(
                geocoding_url=f"{provider_base}/v1/search",
                archive_url=f"{provider_base}/v1/archive",
                geocode_cache_seconds=0,
                archive_cache_seconds=0,
            )
        )
    )
    try:
        with serve(build_fleet_app([ServiceDir("weather", SERVICE_DIR)])) as base:
            yield f"{base}/weather/mcp"
    finally:
        set_client(None)


@pytest.fixture(params=["run.sh", "fleet dev"])
def streaming_url(request, weather_url) -> str:
    return weather_url if request.param == "run.sh" else request.getfixturevalue("fleet_dev_url")


YEARS = 8
FIRST_PROGRESS_WITHIN = 5.0
"""Seconds from the call to the first progress: a bound with room for a loaded machine (a CPU
burner per core made 1.1 s of it); that the stream is not buffered is asserted relatively."""


class Timeline:
    """When each progress notification arrived, relative to the call."""

    def __init__(self, wait_for: int = 0) -> None:
        self.started = time.monotonic()
        self.progress: list[tuple[float, float]] = []
        self.wait_for = wait_for
        self.reached = asyncio.Event()

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
        self.progress.append((time.monotonic() - self.started, done))
        if len(self.progress) >= self.wait_for:
            self.reached.set()


async def test_progress_arrives_in_order_before_the_result(streaming_url, provider):
    provider.archive_delay = 0.1  # a slow upstream, shortened
    timeline = Timeline()
    async with Client(streaming_url) as client:
        result = await client.call_tool(
            "get_climate_history", {"location": "Berlin", "years": YEARS}, progress_handler=timeline
        )
    finished = time.monotonic() - timeline.started
    assert len(result.structured_content["years"]) == YEARS
    assert [done for _, done in timeline.progress] == list(range(YEARS + 1))
    assert timeline.progress[0][0] < FIRST_PROGRESS_WITHIN
    # Streamed, not buffered: each year arrived while the later ones were still loading.
    assert timeline.progress[-1][0] <= finished
    assert timeline.progress[1][0] < finished - (YEARS - 2) * provider.archive_delay


async def test_the_official_sdk_client_receives_the_same_stream(streaming_url, provider):
    provider.archive_delay = 0.05
    timeline = Timeline()
    async with SDKClient(streaming_url) as client:
        result = await client.call_tool(
            "get_climate_history",
            {"location": "Berlin", "years": YEARS},
            progress_callback=timeline,
        )
    assert not result.is_error
    assert len(result.structured_content["years"]) == YEARS
    assert [done for _, done in timeline.progress] == list(range(YEARS + 1))


def test_a_client_that_accepts_only_json_gets_one_json_answer(streaming_url, provider):
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "get_climate_history",
            "arguments": {"location": "Berlin", "years": 3},
            "_meta": {"progressToken": "p"},
        },
    }
    headers = {**MCP_HEADERS, "accept": "application/json"}
    response = loopback_http().post(streaming_url, json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["id"] == 7
    assert len(answer["result"]["structuredContent"]["years"]) == 3


@pytest.mark.parametrize("client_kind", ["fastmcp", "mcp"])
async def test_a_cancelled_call_stops_its_work(
    streaming_url, weather, weather_url, provider, client_kind
):
    provider.archive_delay = 0.2
    timeline = Timeline(wait_for=3)  # the start and two years
    arguments = {"location": "Berlin", "years": 40}
    if client_kind == "fastmcp":
        connection = Client(streaming_url)
        options = {"progress_handler": timeline}
    else:
        connection = SDKClient(streaming_url)
        options = {"progress_callback": timeline}

    def cancelled_lines() -> list[dict]:
        return [
            entry
            for entry in weather.request_lines()
            if entry.get("tool") == "get_climate_history" and entry.get("outcome") == "cancelled"
        ]

    before = len(cancelled_lines())
    async with connection as client:
        call = asyncio.create_task(client.call_tool("get_climate_history", arguments, **options))
        await asyncio.wait_for(timeline.reached.wait(), 10)
        call.cancel()
        cancelled_at = time.monotonic()
        requests_then = provider.archive_calls
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await asyncio.sleep(1.0)
    # At most the request in flight finishes: nothing new is asked after the cancel.
    assert provider.archive_calls <= requests_then + 1
    if streaming_url != weather_url:
        return  # fleet dev logs into this process; run.sh's log is read below
    [line] = cancelled_lines()[before:]  # this call's line, cancelled
    stopped_after = line["duration_ms"] / 1000 - (cancelled_at - timeline.started)
    assert stopped_after < 0.5, f"the call ran {stopped_after:.2f} s past its cancellation"
