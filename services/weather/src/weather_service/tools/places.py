"""Find places by name."""

from __future__ import annotations

from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult, tool
from pydantic import Field

from weather_service.client import Deadline, get_client
from weather_service.models import GeocodeResult
from weather_service.openmeteo import search_places
from weather_service.settings import get_settings

READ_ONLY = {
    "readOnlyHint": True,
    "idempotentHint": True,
    "destructiveHint": False,
    "openWorldHint": True,
}
MAX_COUNT = 20


@tool(
    annotations={"title": "Geocode a place name", **READ_ONLY},
    output_schema=GeocodeResult.model_json_schema(),
    meta={"smoke": {"name": "Berlin"}},  # what `fleet smoke` calls after a deploy (goes upstream)
)
async def geocode(
    name: Annotated[str, Field(description="Place name in any script, e.g. 'Berlin' or '東京'")],
    count: Annotated[
        int,
        Field(
            description=f"How many matches to return (1-{MAX_COUNT})",
            json_schema_extra={"minimum": 1, "maximum": MAX_COUNT},
        ),
    ] = 5,
    language: Annotated[
        str, Field(description="Language of the returned names, ISO 639-1 (e.g. 'en', 'ja')")
    ] = "en",
) -> ToolResult:
    """Find places matching a name: country, region, coordinates, timezone and population of each.

    Use it to disambiguate a place (several Springfields) before asking for weather by 'lat,lon'.
    """
    query = name.strip()
    if not query:
        raise ToolError("name is empty")
    if not 1 <= count <= MAX_COUNT:
        raise ToolError(f"count must be between 1 and {MAX_COUNT} (got {count})")
    if not (2 <= len(language) <= 3 and language.isalpha()):
        raise ToolError(
            f"language must be an ISO 639-1 code such as 'en' or 'ja' (got {language!r})"
        )
    places = await search_places(
        get_client(), query, count, language.lower(), Deadline(get_settings().deadline_seconds)
    )
    result = GeocodeResult(query=query, places=places)
    if not places:
        text = f"No place matches {query!r}."
    else:
        lines = [f"{len(places)} place(s) matching {query!r}:"]
        for place in places:
            population = f", population {place.population:,}" if place.population else ""
            lines.append(
                f"- {place.label()} ({place.latitude:.4f}, {place.longitude:.4f}; "
                f"{place.timezone or 'unknown timezone'}{population})"
            )
        text = "\n".join(lines)
    return ToolResult(content=text, structured_content=result.model_dump(mode="json"))
