"""Tool discovery: every `@tool` function in every module of a tools package.

Publishing a tool is adding a module; nothing is registered by hand, so nothing
can be forgotten. Anything ambiguous stops startup with a message that names the
module or the tool, because a silently missing tool is worse than a crash.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

from fastmcp.decorators import get_fastmcp_meta
from fastmcp.tools import FunctionTool
from fastmcp.tools.function_tool import ToolMeta


class ToolDiscoveryError(RuntimeError):
    """A tools package cannot be loaded completely and unambiguously."""


@dataclass(frozen=True)
class DiscoveredTool:
    """A tool and the module it was defined in (for error messages and catalogs)."""

    tool: FunctionTool
    module: str


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise ToolDiscoveryError(
            f"cannot import tools module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _tool_modules(package_name: str) -> list[ModuleType]:
    """The package itself and every module below it, in a stable order."""
    package = _import(package_name)
    modules = [package]
    search_path = getattr(package, "__path__", None)
    if search_path is None:
        return modules
    names = sorted(
        info.name for info in pkgutil.walk_packages(search_path, prefix=f"{package_name}.")
    )
    modules.extend(_import(name) for name in names)
    return modules


def _marked_functions(module: ModuleType) -> list[tuple[object, ToolMeta]]:
    """Functions defined in `module` that carry fastmcp's `@tool` metadata."""
    found = []
    for _, obj in inspect.getmembers(module, inspect.isfunction):
        if obj.__module__ != module.__name__:
            continue  # imported from elsewhere; registered where it is defined
        meta = get_fastmcp_meta(obj)
        if isinstance(meta, ToolMeta):
            found.append((obj, meta))
    found.sort(key=lambda item: item[0].__code__.co_firstlineno)  # type: ignore[attr-defined]
    return found


_NO_SCHEMA = re.compile(r"Unable to generate pydantic-core schema for (.+?)\. ")


def _what_to_do(error: Exception) -> str:
    """pydantic's advice ("Set `arbitrary_types_allowed=True`") is for pydantic's users; a
    tool's author needs to know which type to change, and to what."""
    text = str(error)
    found = _NO_SCHEMA.search(text)
    if found is None:
        return text
    return (
        f"its arguments or result use the type {found[1]}, which has no JSON schema: MCP "
        "clients send and read JSON. Use str, int, float, bool, a list or dict of them, a "
        "pydantic model or a TypedDict (convert inside the function)"
    )


def contract_faults(discovered: DiscoveredTool) -> list[str]:
    """How a tool breaks the fleet's contract (empty: it keeps it): one typed, documented
    function whose annotations tell clients what calling it does."""
    tool, where = discovered.tool, f"tool {discovered.tool.name!r} ({discovered.module})"
    faults = []
    if not (tool.description or "").strip():
        faults.append(f"{where} has no description: give the function a docstring")
    signature = inspect.signature(tool.fn)
    untyped = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.annotation is inspect.Parameter.empty
    ]
    if untyped:
        faults.append(f"{where}: parameter(s) {', '.join(untyped)} have no type hint")
    if signature.return_annotation is inspect.Signature.empty:
        faults.append(f"{where} has no return type hint")
    hints = tool.annotations
    if hints is None or hints.read_only_hint is None:
        faults.append(
            f"{where} has no annotations: say at least readOnlyHint, e.g. "
            '@tool(annotations={"readOnlyHint": True, "idempotentHint": True})'
        )
    return faults


def discover_tools(package_name: str) -> list[DiscoveredTool]:
    """Import every module of `package_name` and build each `@tool` function.

    Raises ToolDiscoveryError naming the module on an import or build failure,
    and naming the tool and both modules on a duplicate name.
    """
    discovered: dict[str, DiscoveredTool] = {}
    for module in _tool_modules(package_name):
        for fn, meta in _marked_functions(module):
            try:
                tool = FunctionTool.from_function(fn, metadata=meta)  # type: ignore[arg-type]
            except Exception as exc:
                raise ToolDiscoveryError(
                    f"cannot build tool {fn.__name__!r} in module {module.__name__!r}: "  # type: ignore[attr-defined]
                    f"{_what_to_do(exc)}"
                ) from exc
            previous = discovered.get(tool.name)
            if previous is not None:
                raise ToolDiscoveryError(
                    f"duplicate tool name {tool.name!r}: defined in module "
                    f"{previous.module!r} and in module {module.__name__!r}"
                )
            discovered[tool.name] = DiscoveredTool(tool=tool, module=module.__name__)
    if not discovered:
        raise ToolDiscoveryError(f"tools package {package_name!r} defines no @tool functions")
    return list(discovered.values())
