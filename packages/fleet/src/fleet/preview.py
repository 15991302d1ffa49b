"""`fleet preview [BASE]`: before a deploy, which services a change republishes (and so
releases through their canaries), and every locked package whose version it moves, with the
services that import it.

A service republishes when its own folder changes, or when anything every function receives
changes: either shared layer (`mcp_common`, or a moved package in the DepsLayer), what every
service has (`infra/service.yaml`), or the fleet-wide parameters (`template.yaml`).
"""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from fleet.affected import changed_paths
from fleet.workspace import service_dirs

SHARED = {
    "packages/mcp_common/": "the CommonLayer (mcp_common)",
    "infra/service.yaml": "what every service has (infra/service.yaml)",
    "infra/response-mode.yaml": "what every service has (infra/response-mode.yaml)",
    "template.yaml": "the fleet's parameters (template.yaml)",
}


@dataclass
class Preview:
    republished: dict[str, list[str]] = field(default_factory=dict)
    """{service: why}"""
    moved: dict[str, tuple[str | None, str | None, list[str]]] = field(default_factory=dict)
    """{package: (version before, version now, services that import it)}"""


def locked_versions(text: str) -> dict[str, str]:
    """{package: version} of a uv.lock's text."""
    if not text:
        return {}
    packages = tomllib.loads(text).get("package", [])
    return {p["name"]: str(p.get("version")) for p in packages if "name" in p}


def _lock_at(root: Path, base: str) -> str:
    shown = subprocess.run(
        ["git", "show", f"{base}:uv.lock"], cwd=root, capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else ""


def closure(lock_text: str, distribution: str) -> set[str]:
    """Every package `distribution` depends on in a uv.lock, directly or not."""
    packages = {p["name"]: p for p in tomllib.loads(lock_text).get("package", []) if "name" in p}
    seen: set[str] = set()
    pending = [distribution]
    while pending:
        name = pending.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        pending += [d["name"] for d in packages[name].get("dependencies", []) if "name" in d]
    return seen - {distribution}


def preview(root: Path, base: str) -> Preview:
    result = Preview()
    services = service_dirs(root)
    lock_text = (root / "uv.lock").read_text(encoding="utf-8")
    before, now = locked_versions(_lock_at(root, base)), locked_versions(lock_text)
    members = {s.distribution for s in services} | {"mcp-common", "fleet"}
    moved = sorted(
        name
        for name in set(before) | set(now)
        if before.get(name) != now.get(name) and name not in members
    )
    imports: dict[str, set[str]] = {}
    for service in services:
        uses = closure(lock_text, service.distribution)
        for name in moved:
            if name in uses:
                imports.setdefault(name, set()).add(service.name)
    for name in moved:
        users = sorted(imports.get(name, set()))
        result.moved[name] = (before.get(name), now.get(name), users)
    shared_reasons = []
    for path in changed_paths(root, base):
        shared_reasons += [why for prefix, why in SHARED.items() if path.startswith(prefix)]
        parts = path.split("/")
        if parts[0] == "services" and len(parts) > 2:
            result.republished.setdefault(parts[1], []).append("its own folder")
    if any(users for _, _, users in result.moved.values()):
        shared_reasons.append("the DepsLayer (a locked package moved)")
    for service in services:
        for why in dict.fromkeys(shared_reasons):
            result.republished.setdefault(service.name, []).append(why)
    known = {s.name for s in services}
    result.republished = {k: v for k, v in sorted(result.republished.items()) if k in known}
    return result
