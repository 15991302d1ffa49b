"""What a service declares about itself: its name, tools package and instructions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

SERVICE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ServiceSpec:
    """Identity of one MCP service in the fleet.

    `name` is the URL segment (`/<name>/mcp`) and the Lambda function's stem;
    `tools_package` is the dotted package whose modules hold the service's tools.
    """

    name: str
    tools_package: str
    instructions: str | None = None
    distribution: str | None = None

    def __post_init__(self) -> None:
        if not SERVICE_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"service name {self.name!r} must be a lowercase identifier "
                "(letters, digits, underscores; starting with a letter)"
            )

    @property
    def mcp_path(self) -> str:
        return f"/{self.name}/mcp"

    @property
    def health_path(self) -> str:
        return f"/{self.name}/health"

    @property
    def version(self) -> str:
        """The installed distribution's version, so /health reports what is deployed."""
        dist = self.distribution or f"{self.name}-service"
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "0+unknown"
