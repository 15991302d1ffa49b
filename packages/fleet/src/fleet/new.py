"""`fleet new <name>`: a working service in one command, wired into the workspace and template."""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from fleet.template import function_id, insert_service, makefile
from fleet.workspace import FleetError, service_dirs
from mcp_common.service import SERVICE_NAME_PATTERN

RESERVED = {
    "mcp",
    "fleet",
    "common",
    "mcp_common",
    "test",
    "tests",
    "services",
    "packages",
    "well_known",
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
    clashes = [other for other in existing if function_id(other) == function_id(name)]
    if clashes:
        raise FleetError(
            f"service {name!r} would share the function id {function_id(name)} with {clashes[0]!r}"
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
        "run.sh": f"""\
#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) and
# locally alike: serve the {name} service with uvicorn on $PORT (default 8080).
# The script's own folder goes first on the path so a built artifact runs as is.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
export PYTHONPATH="$here${{PYTHONPATH:+:$PYTHONPATH}}"
exec python -m {package} "$@"
""",
        "Makefile": makefile(name),
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
"""An example tool: replace it with your own (any module in this package is published)."""

from __future__ import annotations

from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import tool
from pydantic import Field


@tool(annotations={"title": "Greet", "readOnlyHint": True, "idempotentHint": True})
def greet(name: Annotated[str, Field(description="Who to greet")]) -> str:
    """Return a greeting for `name`."""
    if not name.strip():
        raise ToolError("name is empty")
    return f"Hello, {name.strip()}!"
''',
        "tests/test_tools.py": f'''\
"""The {name} tools through fastmcp's in-memory client."""

from __future__ import annotations

from fastmcp import Client

{_first_party(f"from {package} import service", "from mcp_common.app import build_server")}


async def test_greet():
    async with Client(build_server(service)) as client:
        result = await client.call_tool("greet", {{"name": "Ada"}})
        assert result.data == "Hello, Ada!"


async def test_greet_refuses_an_empty_name():
    async with Client(build_server(service)) as client:
        result = await client.call_tool("greet", {{"name": " "}}, raise_on_error=False)
        assert result.is_error
        assert result.content[0].text == "name is empty"
''',
    }


def _add_to_root_pyproject(text: str, name: str) -> str:
    """Add `<name>-service` to the dev group and the workspace sources (text edit, order kept)."""
    dist = f"{name}-service"
    group = re.search(r"(?ms)^dev = \[\n(.*?)^\]", text)
    sources = re.search(r"(?m)^\[tool\.uv\.sources\]\n", text)
    if group is None or sources is None:
        raise FleetError(
            "pyproject.toml: cannot find [dependency-groups] dev = [...] or [tool.uv.sources]"
        )
    text = text[: group.end(1)] + f'    "{dist}",\n' + text[group.end(1) :]
    sources = re.search(r"(?m)^\[tool\.uv\.sources\]\n", text)
    assert sources is not None
    text = text[: sources.end()] + f"{dist} = {{ workspace = true }}\n" + text[sources.end() :]
    data = tomllib.loads(text)  # the edit must leave valid TOML that says what we meant
    if dist not in data["dependency-groups"]["dev"] or dist not in data["tool"]["uv"]["sources"]:
        raise FleetError("pyproject.toml: the edit did not take; add the service by hand")
    return text


def create_service(root: Path, name: str, lock: bool = True, log=print) -> Path:
    """Create services/<name>, wire it into pyproject.toml and template.yaml, update uv.lock."""
    validate_name(root, name)
    pyproject, template = root / "pyproject.toml", root / "template.yaml"
    originals = {
        path: path.read_text(encoding="utf-8") for path in (pyproject, template, root / "uv.lock")
    }
    new_pyproject = _add_to_root_pyproject(originals[pyproject], name)
    new_template = insert_service(originals[template], name)
    target = root / "services" / name
    try:
        log(f"creating services/{name}/")
        for relative, content in _files(name).items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        (target / "run.sh").chmod(0o755)
        log("adding it to pyproject.toml (workspace sources, dev group)")
        pyproject.write_text(new_pyproject, encoding="utf-8")
        log(f"adding {function_id(name)}, its routes and output to template.yaml")
        template.write_text(new_template, encoding="utf-8")
        if lock:
            log("updating uv.lock (uv lock)")
            result = subprocess.run(
                ["uv", "lock"], cwd=root, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise FleetError(f"uv lock failed:\n{result.stderr.strip()}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        for path, content in originals.items():
            path.write_text(content, encoding="utf-8")
        raise
    return target
