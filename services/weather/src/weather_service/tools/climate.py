"""Year-by-year climate history of a place: the service's long-running tool.

Decades of daily history are one archive request per year: each fits the provider's
per-request deadline (WEATHER_DEADLINE_SECONDS), Open-Meteo counts a request's weight by
its days, and the client sees each year's figures as progress while the rest load. Thirty
years take 10-40 s against the real provider, beyond what a buffered service may take, so
the weather service answers with a stream (ResponseTransferMode: STREAM in its infra.yaml).
"""

from __future__ import annotations

import datetime
from typing import Annotated

from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult, tool
from pydantic import Field

from weather_service.client import Deadline, get_client
from weather_service.location import resolve
from weather_service.models import ClimateHistory, ClimateYear
from weather_service.openmeteo import fetch_year
from weather_service.settings import get_settings
from weather_service.tools.places import READ_ONLY
from weather_service.tools.weather import Location, UnitsArg

MAX_YEARS = 80  # the archive starts in 1940


@tool(
    annotations={"title": "Climate history", **READ_ONLY},
    output_schema=ClimateHistory.model_json_schema(),
)
async def get_climate_history(
    location: Location,
    ctx: Context,
    years: Annotated[
        int,
        Field(
            description=f"How many full years back from last year, 1 to {MAX_YEARS}",
            json_schema_extra={"minimum": 1, "maximum": MAX_YEARS},
        ),
    ] = 30,
    units: UnitsArg = "metric",
) -> ToolResult:
    """Climate of a place year by year: mean daily high and low, total precipitation, hottest and coldest day, and how fast the daily highs change per decade. Takes a while (one provider request per year); each year is reported as progress as soon as it is known."""
    if not 1 <= years <= MAX_YEARS:
        raise ToolError(f"years must be between 1 and {MAX_YEARS} (got {years})")
    client, settings = get_client(), get_settings()
    place = await resolve(client, location, "en", Deadline(settings.deadline_seconds))
    last = datetime.datetime.now(datetime.UTC).year - 1
    span = range(last - years + 1, last + 1)
    await ctx.report_progress(0, years, f"{place.name}: {years} years, {span[0]}-{last}")
    summaries: list[ClimateYear] = []
    units_out: dict[str, str] = {}
    for done, year in enumerate(span, start=1):
        # Each request has its own budget; the whole call is bounded by the tool deadline.
        units_out, summary = await fetch_year(
            client,
            place.latitude,
            place.longitude,
            year,
            units,
            Deadline(settings.deadline_seconds),
        )
        summaries.append(summary)
        await ctx.report_progress(done, years, _line(summary, units_out["temperature"]))
    history = ClimateHistory(
        location=place, units=units_out, years=summaries, trend_per_decade=_trend(summaries)
    )
    t = units_out["temperature"]
    lines = [f"Climate of {place.name}, {span[0]}-{last}:"]
    lines += [
        f"- {_line(summary, t)}, precipitation {summary.precipitation_total:g} "
        f"{units_out['precipitation']}"
        for summary in summaries
    ]
    if history.trend_per_decade is not None:
        lines.append(f"Daily highs change by {history.trend_per_decade:+.2f} {t} per decade.")
    return ToolResult(content="\n".join(lines), structured_content=history.model_dump(mode="json"))


def _line(summary: ClimateYear, unit: str) -> str:
    return (
        f"{summary.year}: mean high {summary.mean_temperature_max:g} {unit}, mean low "
        f"{summary.mean_temperature_min:g} {unit}"
    )


def _trend(summaries: list[ClimateYear]) -> float | None:
    """Least-squares slope of the yearly mean high, per decade."""
    if len(summaries) < 2:
        return None
    xs = [summary.year for summary in summaries]
    ys = [summary.mean_temperature_max for summary in summaries]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return round(slope * 10, 3)
