"""The long tool's timeline: weather's get_climate_history streamed through run.sh.

A stand-in Open-Meteo on loopback answers each archive (one year) request after a fixed
delay, the slow upstream the tool exists for, so the figures are the service's own: when the
first progress arrives, how many arrive before the result, and how soon a cancelled call stops
asking the provider for more.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleet.template import lambda_environment
from fleet.testing import dev_env, serve, start_service

UPSTREAM_DELAY = 0.2  # seconds per archive request


@dataclass
class Timeline:
    first_progress_ms: float
    progress_count: int
    result_ms: float
    cancel_to_stop_ms: float
    requests_after_cancel: int


class StandInProvider:
    """Geocoding for one place and an archive that answers each year after UPSTREAM_DELAY."""

    def __init__(self) -> None:
        self.archive_requests: list[float] = []

    async def search(self, _: Request) -> JSONResponse:
        place = {
            "id": 2950159,
            "name": "Berlin",
            "latitude": 52.52437,
            "longitude": 13.41053,
            "country_code": "DE",
            "country": "Germany",
            "admin1": "Land Berlin",
            "timezone": "Europe/Berlin",
        }
        return JSONResponse({"results": [place]})

    async def archive(self, request: Request) -> JSONResponse:
        self.archive_requests.append(time.monotonic())
        await asyncio.sleep(UPSTREAM_DELAY)
        start = datetime.date.fromisoformat(request.query_params["start_date"])
        days = [start + datetime.timedelta(days=n) for n in range(365)]
        return JSONResponse(
            {
                "daily_units": {"temperature_2m_max": "°C", "precipitation_sum": "mm"},
                "daily": {
                    "time": [day.isoformat() for day in days],
                    "temperature_2m_max": [15.0] * len(days),
                    "temperature_2m_min": [7.0] * len(days),
                    "precipitation_sum": [1.0] * len(days),
                },
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/v1/search", self.search), Route("/v1/archive", self.archive)]
        )


async def _timeline(url: str, years: int, provider: StandInProvider, log_lines: Any) -> Timeline:
    from fastmcp import Client

    arrivals: list[float] = []
    enough = asyncio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        arrivals.append(time.monotonic())
        if len(arrivals) >= 4:
            enough.set()

    arguments = {"location": "Berlin", "years": years}
    async with Client(url) as client:
        started = time.monotonic()
        await client.call_tool("get_climate_history", arguments, progress_handler=on_progress)
        result_ms = (time.monotonic() - started) * 1000
        first_ms, count = (arrivals[0] - started) * 1000, len(arrivals)

        arrivals.clear()
        call = asyncio.create_task(
            client.call_tool("get_climate_history", arguments, progress_handler=on_progress)
        )
        await asyncio.wait_for(enough.wait(), 30)
        cancelled_at, cancelled_wall = time.monotonic(), time.time()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await asyncio.sleep(2 * UPSTREAM_DELAY + 0.5)
    after = [at for at in provider.archive_requests if at > cancelled_at]
    # The cancelled call's request line is written when its tool has stopped.
    line = next(entry for entry in reversed(log_lines()) if entry.get("outcome") == "cancelled")
    written = datetime.datetime.fromisoformat(line["time"]).timestamp()
    return Timeline(first_ms, count, result_ms, (written - cancelled_wall) * 1000, len(after))


def measure_streaming(root: Path, log: Any, years: int) -> list[str]:
    """The report's section on the long tool, asked for `years` of history (at least 4:
    the cancelled call is cancelled after its fourth progress notification)."""
    weather = root / "services" / "weather"
    provider = StandInProvider()
    with serve(provider.app()) as provider_base:
        env = {
            **dev_env(),
            **lambda_environment(weather),
            "LOG_FORMAT": "json",
            "MCP_AUTH": "none",
            "WEATHER_GEOCODING_URL": f"{provider_base}/v1/search",
            "WEATHER_ARCHIVE_URL": f"{provider_base}/v1/archive",
            "WEATHER_ARCHIVE_CACHE_SECONDS": "0",
        }
        with start_service(weather / "run.sh", "/weather/health", env=env) as service:
            url = f"{service.base}/weather/mcp"
            timeline = asyncio.run(_timeline(url, years, provider, service.request_lines))
    log(
        f"long tool: first progress {timeline.first_progress_ms:.0f} ms, "
        f"{timeline.progress_count} progress, cancel-to-stop {timeline.cancel_to_stop_ms:.0f} ms"
    )
    return [
        "",
        "## Long-running tool (streaming)",
        "",
        (
            f"weather's `get_climate_history` for {years} years through run.sh "
            "(`AWS_LWA_INVOKE_MODE=response_stream`), against a stand-in archive that answers "
            f"each year after {UPSTREAM_DELAY * 1000:.0f} ms:"
        ),
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| first progress after the call | {timeline.first_progress_ms:.0f} ms |",
        f"| progress notifications before the result | {timeline.progress_count} |",
        f"| result after the call | {timeline.result_ms:.0f} ms |",
        (
            "| cancel to stop (the cancelled call's request line, after the client cancelled) | "
            f"{timeline.cancel_to_stop_ms:.0f} ms |"
        ),
        f"| archive requests begun after the cancel | {timeline.requests_after_cancel} |",
    ]
