"""What a service declares about itself: its name, tools package and instructions."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Literal

Hook = Callable[[], Awaitable[None] | None]
Phase = Literal["before_checkpoint", "after_restore"]

SERVICE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ServiceSpec:
    """Identity of one MCP service in the fleet.

    `name` is the URL segment (`/<name>/mcp`) and the Lambda function's stem;
    `tools_package` is the dotted package whose modules hold the service's tools;
    `settings` reads the service's own settings (its cached `get_settings`): start-up calls
    it right after the fleet's, before fastmcp is imported, so a misconfigured service stops
    in a fraction of a second with one CRITICAL line naming the setting, never its value.
    """

    name: str
    tools_package: str
    instructions: str | None = None
    distribution: str | None = None
    settings: Callable[[], object] | None = None
    _hooks: dict[str, list[Hook]] = field(
        default_factory=lambda: {"before_checkpoint": [], "after_restore": []},
        init=False,
        repr=False,
        compare=False,
    )

    def __post_init__(self) -> None:
        if not SERVICE_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"service name {self.name!r} must be a lowercase identifier "
                "(letters, digits, underscores; starting with a letter)"
            )

    def before_checkpoint(self, hook: Hook) -> Hook:
        """Register `hook` (sync or async) to run before a SnapStart snapshot is taken.

        For resources that must not be frozen into the snapshot: close connection pools,
        drop credentials. Hooks run after the service is primed, in registration order.
        Use as a decorator: `@service.before_checkpoint`.
        """
        self._hooks["before_checkpoint"].append(hook)
        return hook

    def after_restore(self, hook: Hook) -> Hook:
        """Register `hook` (sync or async) to run when a snapshot is restored.

        For state a snapshot makes stale or shared: time-based caches (monotonic clocks do
        not count the time a snapshot sat in storage), per-instance randomness. Keep it
        short: Lambda allows the whole restore 10 s. Recreate pools lazily, on first use.
        """
        self._hooks["after_restore"].append(hook)
        return hook

    def hooks(self, phase: Phase) -> tuple[Hook, ...]:
        return tuple(self._hooks[phase])

    @property
    def mcp_path(self) -> str:
        return f"/{self.name}/mcp"

    @property
    def health_path(self) -> str:
        return f"/{self.name}/health"

    @property
    def metadata_path(self) -> str:
        """Where the service's RFC 9728 protected-resource metadata is served and advertised.

        Under the service's own prefix, as if the service were mounted at `/<name>`: behind
        API Gateway only `/<name>/...` reaches the service, and every 401 points here."""
        return f"/{self.name}/.well-known/oauth-protected-resource/mcp"

    def build(self) -> dict[str, str]:
        """Which code is live: the source commit `fleet build` stamped into the service's
        package and into mcp_common (`-dirty` when the tree held uncommitted changes), and
        Lambda's function version; in development, the working tree's commit
        (MCP_SOURCE_COMMIT, which `fleet dev` sets); the digests of the lock the service was
        built with and of each shared layer's content. Only what is known is listed."""
        import os

        package = self.tools_package.split(".", 1)[0]
        found = {
            "commit": _stamp(package),
            "common_commit": _stamp("mcp_common"),
            "lock": _stamp(package, "lock"),
            "deps_layer": _layer_stamp("deps"),
            "common_layer": _layer_stamp("common"),
            "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        }
        if found["commit"] is None:
            found["commit"] = os.environ.get("MCP_SOURCE_COMMIT")
        return {key: value for key, value in found.items() if value}

    @property
    def version(self) -> str:
        """The installed distribution's version, so /health reports what is deployed."""
        dist = self.distribution or f"{self.name}-service"
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "0+unknown"


BUILD_STAMP = "build.json"
"""Written by `fleet build` into each package it builds: {"source": "<commit>[-dirty]",
"lock": "<uv.lock digest>"}."""
LAYER_STAMP = ".fleet-layer-{kind}.json"
"""Written by `fleet build` at the top of each shared layer: {"content": ..., "lock": ...}."""


def _layer_stamp(kind: str) -> str | None:
    """The content digest of shared layer `kind`, from the first path entry that holds it."""
    import json
    import sys
    from pathlib import Path

    for entry in sys.path:
        stamp = Path(entry or ".") / LAYER_STAMP.format(kind=kind)
        try:
            content = json.loads(stamp.read_text(encoding="utf-8")).get("content")
        except (OSError, ValueError, AttributeError):
            continue
        return content if isinstance(content, str) else None
    return None


def _stamp(package: str, key: str = "source") -> str | None:
    """The source commit stamped into `package` by `fleet build`, if it was built."""
    import importlib.util
    import json
    from pathlib import Path

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    stamp = Path(spec.origin).parent / BUILD_STAMP
    try:
        source = json.loads(stamp.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) else None
