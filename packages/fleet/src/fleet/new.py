"""`fleet new <name>`: a working service in one command, registered in template.yaml.

Everything the service owns goes into its folder, services/<name>: its code, tests, run.sh,
Makefile and infra.yaml (its own resources and settings). Outside it, only template.yaml's
registration lines (fleet.template.registration) and uv.lock change: the workspace root is
virtual, so the new folder is a member as soon as it exists.
"""

from __future__ import annotations

import keyword
import shutil
import subprocess
import sys
from pathlib import Path

from fleet.integrity import MAKEFILE_TEXT
from fleet.template import (
    OWN_TEMPLATE,
    TEMPLATE,
    insert_service,
    logical_id,
    parse_template,
    registered_services,
)
from fleet.template import remove_service as unregister
from fleet.workspace import FleetError, service_dirs
from mcp_common.service import SERVICE_NAME_PATTERN

MAX_NAME_LENGTH = 30
RESERVED = {
    "mcp",
    "fleet",
    "common",
    "mcp_common",
    "test",
    "tests",
    "services",  # and "all": Cognito's scopes mcp-fleet/services and mcp-fleet/all, the group all
    "all",
    "packages",
    "well_known",
    "health",  # the API's own /health (Route 53's check of a region)
    "search",  # the front door's search endpoint (issue 31)
}


def validate_name(root: Path, name: str) -> None:
    """Refuse names that are not identifiers, exist already, or would shadow a stdlib module."""
    if not SERVICE_NAME_PATTERN.fullmatch(name):
        raise FleetError(
            f"invalid service name {name!r}: use a lowercase identifier (letters, digits, underscores, "
            "starting with a letter), e.g. billing or order_history"
        )
    if keyword.iskeyword(name):
        raise FleetError(f"invalid service name {name!r}: it is a Python keyword")
    if name in sys.stdlib_module_names:
        raise FleetError(
            f"invalid service name {name!r}: it would shadow Python's standard library module"
        )
    if name in RESERVED:
        raise FleetError(f"invalid service name {name!r}: reserved by the fleet")
    existing = {service.name for service in service_dirs(root)}
    if name in existing or (root / "services" / name).exists():
        raise FleetError(f"service {name!r} already exists (services/{name})")
    clashes = [other for other in existing if logical_id(other) == logical_id(name)]
    if clashes:
        raise FleetError(
            f"service {name!r} would share the stack id {logical_id(name)} with {clashes[0]!r}"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise FleetError(
            f"invalid service name {name!r}: at most {MAX_NAME_LENGTH} characters (its function "
            "is named <stack>-<service>, and Lambda allows 64)"
        )


def _first_party(*imports: str) -> str:
    """First-party imports as ruff's isort writes them: one block, sorted by module."""
    return "\n".join(sorted(imports, key=lambda line: line.split()[1]))


def _files(name: str) -> dict[str, str]:
    package = f"{name}_service"
    return {
        "pyproject.toml": f'''\
[project]
name = "{name}-service"
version = "0.1.0"
description = "{name} MCP service."
requires-python = ">=3.11"
dependencies = ["mcp-common"]

[tool.uv.sources]
mcp-common = {{ workspace = true }}

[build-system]
requires = ["uv_build>=0.13,<0.14"]
build-backend = "uv_build"
''',
        "run.sh": run_sh(name),
        "Makefile": MAKEFILE,
        OWN_TEMPLATE: own_template(name),
        f"src/{package}/__init__.py": f'''\
"""{name} MCP service."""

from mcp_common import ServiceSpec

service = ServiceSpec(
    name="{name}",
    tools_package="{package}.tools",
    instructions="Describe here what the {name} tools are for, for the model choosing them.",
)
''',
        f"src/{package}/__main__.py": f'''\
"""`python -m {package}`: what run.sh starts."""

{_first_party(f"from {package} import service", "from mcp_common.entrypoint import serve")}

if __name__ == "__main__":
    serve(service)
''',
        f"src/{package}/tools/__init__.py": '"""Every module in this package is scanned for `@tool` functions at startup."""\n',
        f"src/{package}/tools/greeting.py": '''\
"""Example tools: replace them with your own (any module in this package is published)."""

from __future__ import annotations

from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import tool
from pydantic import Field

from mcp_common.auth import current_principal


@tool(annotations={"title": "Greet", "readOnlyHint": True, "idempotentHint": True})
def greet(name: Annotated[str, Field(description="Who to greet")]) -> str:
    """Return a greeting for `name`."""
    if not name.strip():
        raise ToolError("name is empty")
    return f"Hello, {name.strip()}!"


@tool(annotations={"title": "Who am I", "readOnlyHint": True, "idempotentHint": True})
def whoami() -> str:
    """The principal this call is made as: what a tool that keeps data per caller keys it by."""
    return current_principal()
''',
        "tests/test_tools.py": f'''\
"""The {name} tools through fastmcp's in-memory client."""

from __future__ import annotations

from fastmcp import Client

{_first_party(f"from {package} import service", "from mcp_common.app import build_server", "from fleet.testing import client_as")}


async def test_greet():
    async with Client(build_server(service)) as client:
        result = await client.call_tool("greet", {{"name": "Ada"}})
        assert result.data == "Hello, Ada!"


async def test_greet_refuses_an_empty_name():
    async with Client(build_server(service)) as client:
        result = await client.call_tool("greet", {{"name": " "}}, raise_on_error=False)
        assert result.is_error
        assert result.content[0].text == "name is empty"


async def test_a_per_caller_tool_sees_who_calls():
    """A tool that keeps data per caller calls current_principal(): test it as a caller."""
    for caller in ("ada", "grace"):
        async with client_as(service, caller) as client:
            assert (await client.call_tool("whoami", {{}})).data == caller
''',
    }


MAKEFILE = MAKEFILE_TEXT


def run_sh(name: str) -> str:
    """The service's run.sh: what the Web Adapter starts in Lambda, and `fleet` locally."""
    return f"""\
#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) and
# locally alike: serve the {name} service with uvicorn on $PORT (default 8080).
# The path: this folder first (the service's code; a host twin bundles everything here),
# then, inside Lambda, the fleet's layers in /opt/python (FLEET_LAYERS_DIR elsewhere).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
layers=${{FLEET_LAYERS_DIR:-${{LAMBDA_TASK_ROOT:+/opt}}}}
export PYTHONPATH="$here${{layers:+:$layers/python}}${{PYTHONPATH:+:$PYTHONPATH}}"
exec python -m {name}_service "$@"
"""


def own_template(name: str) -> str:
    """The service's infra.yaml: nothing of its own yet, the fleet's default settings."""
    return f"""\
AWSTemplateFormatVersion: "2010-09-09"
Description: >-
  The {name} service's own infrastructure and settings: the one place its team changes
  it (sizing, timeouts, environment, resources and the IAM statements its code needs).
Metadata:
  cfn-lint:
    config:
      ignore_checks: [W2001]  # every service's stack gets Fleet, Service and Role; use what you need

Parameters:
  Fleet:
    Type: String
    Description: The fleet's stack name; start the names of named resources with it.
  Service:
    Type: String
    Description: This service's name.
  Role:
    Type: String
    Description: The name of the service function's execution role; attach your resources' policies to it.
  ReservedConcurrency:
    Type: Number
    Description: The fleet's default reserved concurrency (output ReservedConcurrency passes it on).
  ThrottlingRateLimit:
    Type: Number
    Description: The fleet's default requests per second for this service's route.
  ThrottlingBurstLimit:
    Type: Number
    Description: The fleet's default burst for this service's route.
  PrimaryRegion:
    Type: String
    Description: The fleet's primary region, or empty (one region); a global table's home.
  ReplicaRegions:
    Type: String
    Description: The fleet's other regions, comma-separated, or empty (README "Several regions").

Resources:
  # Nothing of its own yet (a stack needs one resource; this one costs nothing). Add tables,
  # queues or secrets here, with an AWS::IAM::RolePolicy on Role for what the code calls.
  # Name them ${{AWS::StackName}}-... (or let CloudFormation name them): the role's
  # permissions boundary reaches only this stack's resources (README "What a team can and
  # cannot do").
  Nothing:
    Type: AWS::CloudFormation::WaitConditionHandle

Outputs:
  # infra/service.yaml (what every service has) reads these: keep every name.
  MemorySize:
    Description: Lambda memory (MB)
    Value: "1024"
  ResponseTransferMode:
    Description: >-
      BUFFERED (one JSON body; Timeout at most 29 s) or STREAM (long tools: SSE with progress,
      Timeout up to 900 s); README "Long-running tools"
    Value: BUFFERED
  Timeout:
    Description: Lambda timeout (s), above ToolTimeout; at most 29 when BUFFERED, 900 when STREAM
    Value: "29"
  ToolTimeout:
    Description: MCP_TOOL_TIMEOUT_SECONDS, the deadline of one tool call (s)
    Value: "20"
  ReservedConcurrency:
    Description: >-
      Concurrent executions reserved for (and capping) this service; the fleet's default, or a
      number of your own within what fleet check allows (README "What a team can and cannot do")
    Value: !Ref ReservedConcurrency
  ThrottlingRateLimit:
    Description: Requests per second API Gateway lets through to this service (the fleet's default, or your own)
    Value: !Ref ThrottlingRateLimit
  ThrottlingBurstLimit:
    Description: Burst API Gateway lets through to this service (the fleet's default, or your own)
    Value: !Ref ThrottlingBurstLimit
  Environment:
    Description: The service's own environment variables, a JSON object of strings
    Value: "{{}}"
"""


def _lock(root: Path, log) -> None:
    log("updating uv.lock (uv lock)")
    result = subprocess.run(["uv", "lock"], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FleetError(f"uv lock failed:\n{result.stderr.strip()}")


def create_service(root: Path, name: str, lock: bool = True, log=print) -> Path:
    """Create services/<name>, register it in template.yaml, update uv.lock (see create_services)."""
    [target] = create_services(root, [name], lock=lock, log=log)
    return target


def create_services(root: Path, names: list[str], lock: bool = True, log=print) -> list[Path]:
    """Create services/<name> for each name, register them in template.yaml, update uv.lock
    once: many services cost one quota check and one lock (a fleet grown to 200 in minutes).

    Refused before anything is written when a name is invalid or the fleet would cross
    a limit (fleet.limits); a failure half-way restores every file it touched."""
    from fleet.limits import over_limits

    if len(set(names)) != len(names):
        raise FleetError(f"a name is given twice: {' '.join(names)}")
    stems = [logical_id(name) for name in names]
    if len(set(stems)) != len(stems):
        raise FleetError(
            f"two names make one stack name ({', '.join(stems)}): they differ only in underscores"
        )
    for name in names:
        validate_name(root, name)
    template = root / TEMPLATE
    originals = {path: path.read_text(encoding="utf-8") for path in (template, root / "uv.lock")}
    new_template = originals[template]
    for name in names:
        new_template = insert_service(new_template, name)
    if crossed := over_limits(root, new_template, extra_services=len(names)):
        which = repr(names[0]) if len(names) == 1 else f"{len(names)} services"
        raise FleetError(f"adding {which} would cross a limit: {'; '.join(crossed)}")
    targets = [root / "services" / name for name in names]
    try:
        for name, target in zip(names, targets, strict=True):
            log(f"creating services/{name}/ (code, tests, run.sh, Makefile, {OWN_TEMPLATE})")
            for relative, content in _files(name).items():
                path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
            (target / "run.sh").chmod(0o755)
        log(f"registering {', '.join(names)} in {TEMPLATE} (nested stack, route, throttle)")
        template.write_text(new_template, encoding="utf-8")
        if lock:
            _lock(root, log)
    except BaseException:
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)
        for path, content in originals.items():
            path.write_text(content, encoding="utf-8")
        raise
    return targets


def _uncommitted(root: Path, folder: Path) -> list[str]:
    """Files under `folder` that git would lose: changed, or never committed."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", str(folder)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:  # not a git checkout: nothing to compare with
        return []
    return [line[3:] for line in result.stdout.splitlines() if line.strip()]


def remove_service(root: Path, name: str, lock: bool = True, force: bool = False, log=print) -> int:
    """The inverse of `create_service`: delete services/<name> and its registration lines,
    update uv.lock. Returns the number of template lines removed.

    Works on a folder already deleted by hand (it cleans up what is left). Refuses to delete
    work git does not have, unless `force`."""
    template = root / TEMPLATE
    original = template.read_text(encoding="utf-8")
    target = root / "services" / name
    registered = name in registered_services(parse_template(original))
    if not registered and not target.exists():
        raise FleetError(f"no service {name!r}: no services/{name} and nothing in {TEMPLATE}")
    if target.exists() and not force and (lost := _uncommitted(root, target)):
        raise FleetError(
            f"services/{name} holds work git does not have ({', '.join(lost[:3])}"
            f"{', ...' if len(lost) > 3 else ''}): commit it, or pass --force to delete it anyway"
        )
    text, removed = unregister(original, name)
    lock_before = (root / "uv.lock").read_text(encoding="utf-8")
    try:
        if removed:
            log(f"removing {removed} lines that register {name!r} from {TEMPLATE}")
            template.write_text(text, encoding="utf-8")
        if target.exists():
            log(f"deleting services/{name}/")
            shutil.rmtree(target)
        if lock:
            _lock(root, log)
    except BaseException:
        template.write_text(original, encoding="utf-8")
        (root / "uv.lock").write_text(lock_before, encoding="utf-8")
        raise
    return removed
