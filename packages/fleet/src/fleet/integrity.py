"""What keeps one team's build out of every other artifact.

`sam build` runs each service's Makefile, so a Makefile is code that runs with the operator's
rights: the only one allowed is the line that includes infra/service.mk. The shared layers
sit on every service's `sys.path` before the standard library, so a file there that Python
runs by itself (`sitecustomize`, `usercustomize`, a `.pth`) or that shadows a standard
module (`hmac.py`) would run inside every tenant's process: none may ship. Cached layers are
verified against the digest of their every file before reuse, and copied, never linked.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Final

CANONICAL_MAKEFILE: Final = (
    "include $(dir $(lastword $(MAKEFILE_LIST)))../../infra/service.mk"  # the one line
)
MAKEFILE_TEXT: Final = (
    "# sam build runs target build-Function (infra/service.mk, shared by every service).\n"
    f"{CANONICAL_MAKEFILE}\n"
)
"""What `fleet new` writes: a service's Makefile, whole."""

AUTO_RUN: Final = frozenset({"sitecustomize", "usercustomize"})
"""Modules the interpreter imports by itself at start-up, from anywhere on the path."""

STDLIB: Final = frozenset(sys.stdlib_module_names) - {"__future__"}
"""Standard-library names: a top-level module of this name on a layer would replace it."""


def makefile_fault(service_path: Path) -> str | None:
    """None if the service's Makefile is the canonical one (comments and blank lines aside)."""
    makefile = service_path / "Makefile"
    if not makefile.is_file() or makefile.is_symlink():
        return f"services/{service_path.name}/Makefile is missing (or a link)"
    lines = [
        line.strip()
        for line in makefile.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if lines != [CANONICAL_MAKEFILE]:
        return (
            f"services/{service_path.name}/Makefile must be the one line `{CANONICAL_MAKEFILE}`: "
            "sam build runs whatever else it says, with the rights of whoever builds the fleet"
        )
    return None


def makefile_faults(root: Path) -> list[str]:
    """Every service Makefile that would add build steps of its own."""
    from fleet.workspace import service_dirs

    return [fault for service in service_dirs(root) if (fault := makefile_fault(service.path))]


def _module_name(entry: Path) -> str | None:
    """The top-level module an entry of a path folder provides, if any."""
    name = entry.name
    if entry.is_dir():
        return None if "." in name or name == "__pycache__" else name
    if name.endswith((".py", ".pyc")):
        return name.rsplit(".", 1)[0]
    if name.endswith((".so", ".pyd")):
        return name.split(".", 1)[0]
    return None


def path_entry_faults(tree: Path, label: str) -> list[str]:
    """What in a folder on `sys.path` would run in, or replace part of, every process that
    puts it there: auto-run modules, `.pth` files, standard-library names."""
    if not tree.is_dir():
        return []
    faults = []
    for entry in sorted(tree.iterdir()):
        module = _module_name(entry)
        if entry.name.endswith(".pth") or module in AUTO_RUN:
            faults.append(f"{label}: {entry.name} would run at every interpreter start")
        elif module in STDLIB:
            faults.append(f"{label}: {entry.name} shadows the standard library's {module!r}")
    return faults


def tree_digest(tree: Path) -> dict[str, str]:
    """sha256 of every file below `tree`, by relative path (links and devices refused)."""
    digests = {}
    for path in sorted(tree.rglob("*")):
        if path.is_symlink():
            digests[str(path.relative_to(tree))] = "symlink"
        elif path.is_file():
            digests[str(path.relative_to(tree))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def content_hash(tree: Path) -> str:
    """One digest of a whole tree: what health reports for each layer."""
    text = json.dumps(tree_digest(tree), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
