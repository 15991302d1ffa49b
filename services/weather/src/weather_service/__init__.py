"""Weather MCP service: places, current conditions and forecasts from Open-Meteo (no key needed)."""

from mcp_common import ServiceSpec

service = ServiceSpec(
    name="weather",
    tools_package="weather_service.tools",
    instructions=(
        "Weather from Open-Meteo. `location` is a place name (optionally 'City, Country') "
        "or 'lat,lon' in decimal degrees. Use `geocode` to disambiguate places first."
    ),
)
