"""Turn a tool's `location` argument into coordinates: 'lat,lon' or a (geocoded) place name."""

from __future__ import annotations

import difflib
import re

from fastmcp.exceptions import ToolError

from weather_service.client import Deadline, OpenMeteoClient
from weather_service.models import Place, ResolvedLocation
from weather_service.openmeteo import search_places

COORDINATES = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*$")
MAX_NAME_LENGTH = 100
CANDIDATES = 10


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """(lat, lon) if `text` is 'lat,lon' in decimal degrees; ToolError if out of range."""
    match = COORDINATES.match(text)
    if match is None:
        return None
    latitude, longitude = float(match.group(1)), float(match.group(2))
    if not -90 <= latitude <= 90:
        raise ToolError(
            f"invalid coordinates {text.strip()!r}: latitude must be between -90 and 90"
        )
    if not -180 <= longitude <= 180:
        raise ToolError(
            f"invalid coordinates {text.strip()!r}: longitude must be between -180 and 180"
        )
    return latitude, longitude


def _matches_qualifier(place: Place, qualifier: str) -> bool:
    wanted = qualifier.casefold()
    return any(
        value and (value.casefold() == wanted or value.casefold().startswith(wanted))
        for value in (place.country, place.country_code, place.admin1)
    )


async def _suggestions(
    client: OpenMeteoClient, name: str, language: str, deadline: Deadline
) -> list[str]:
    """Close matches for a name the provider did not find: search a prefix, rank by similarity."""
    prefix = name[: max(3, (len(name) * 2) // 3)]
    if prefix == name:
        return []
    candidates = await search_places(client, prefix, CANDIDATES, language, deadline)
    labels = {place.name: place.label() for place in candidates}
    close = difflib.get_close_matches(name, list(labels), n=3, cutoff=0.5)
    return [labels[match] for match in close]


async def resolve(
    client: OpenMeteoClient, location: str, language: str, deadline: Deadline
) -> ResolvedLocation:
    """Coordinates as given, or the best geocoding match for a name ('City' or 'City, Country')."""
    text = location.strip()
    if not text:
        raise ToolError("location is empty: give a place name (e.g. 'Paris') or 'lat,lon'")
    if len(text) > MAX_NAME_LENGTH:
        raise ToolError(f"location is too long ({len(text)} characters; at most {MAX_NAME_LENGTH})")
    coordinates = parse_coordinates(text)
    if coordinates is not None:
        latitude, longitude = coordinates
        return ResolvedLocation(
            name=f"{latitude:g},{longitude:g}",
            latitude=latitude,
            longitude=longitude,
            resolved_from="coordinates",
        )
    name, _, qualifier = (part.strip() for part in text.partition(","))
    places = await search_places(client, name, CANDIDATES, language, deadline)
    if qualifier:
        places = [place for place in places if _matches_qualifier(place, qualifier)]
    if not places:
        suggestions = await _suggestions(client, name, language, deadline)
        hint = (
            f"did you mean: {'; '.join(suggestions)}?"
            if suggestions
            else "check the spelling, add the country ('Springfield, US'), or pass 'lat,lon'"
        )
        raise ToolError(f"no place named {text!r} was found; {hint}")
    best = places[0]
    return ResolvedLocation(
        name=best.label(),
        latitude=best.latitude,
        longitude=best.longitude,
        resolved_from="place name",
        place=best,
    )
