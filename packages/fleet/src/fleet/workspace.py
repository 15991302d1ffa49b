"""Where the fleet lives on disk and which services it has."""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mcp_common.service import ServiceSpec


class FleetError(RuntimeError):
    """A problem the CLI reports as a message and a non-zero exit, not a traceback."""


def find_root(start: Path | None = None) -> Path:
    """The workspace root: $FLEET_ROOT, or the nearest parent whose pyproject declares the uv workspace."""
    if env_root := os.environ.get("FLEET_ROOT"):
        return Path(env_root).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            if "workspace" in data.get("tool", {}).get("uv", {}):
                return candidate
    raise FleetError(f"no uv workspace found at or above {here}; run from the repository")


@dataclass(frozen=True)
class ServiceDir:
    """A folder under services/: `services/<name>/src/<name>_service/`."""

    name: str
    path: Path

    @property
    def package(self) -> str:
        return f"{self.name}_service"

    @property
    def distribution(self) -> str:
        """Its name in uv.lock (normalized: `order_history` → `order-history-service`)."""
        return f"{self.name.replace('_', '-')}-service"

    @property
    def package_dir(self) -> Path:
        return self.path / "src" / self.package

    def load_spec(self) -> ServiceSpec:
        """Import the service package and return its `service` declaration."""
        try:
            module = importlib.import_module(self.package)
        except ImportError as exc:
            raise FleetError(
                f"service {self.name!r}: cannot import {self.package!r} ({exc}); "
                "is it a workspace member? run `uv sync`"
            ) from exc
        spec = getattr(module, "service", None)
        if not isinstance(spec, ServiceSpec):
            raise FleetError(f"service {self.name!r}: {self.package}.service is not a ServiceSpec")
        if spec.name != self.name:
            raise FleetError(
                f"service folder {self.name!r} declares name {spec.name!r}; they must match"
            )
        return spec


def service_dirs(root: Path) -> list[ServiceDir]:
    """Every folder under services/ that holds a pyproject.toml, sorted by name."""
    services = root / "services"
    if not services.is_dir():
        return []
    return [
        ServiceDir(name=path.name, path=path)
        for path in sorted(services.iterdir())
        if (path / "pyproject.toml").is_file()
    ]
