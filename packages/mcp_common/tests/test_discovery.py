"""Tool discovery: every marked function is found; anything ambiguous stops startup."""

from __future__ import annotations

import itertools

import pytest

from fleet.testing import write_tools_package
from mcp_common.discovery import ToolDiscoveryError, discover_tools

_counter = itertools.count()

TOOL_A = """
from fastmcp.tools import tool

@tool
def alpha(x: int) -> int:
    '''Return x.'''
    return x

def helper() -> None:
    '''Not a tool: unmarked.'''
"""

TOOL_B = """
from fastmcp.tools import tool

@tool(name="beta")
def renamed(x: int) -> int:
    '''Return x + 1.'''
    return x + 1
"""


@pytest.fixture
def make_package(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(modules: dict[str, str]) -> str:
        return write_tools_package(tmp_path, f"tools_pkg_{next(_counter)}", modules)

    return make


def test_finds_every_marked_function_across_modules(make_package):
    package = make_package({"a": TOOL_A, "b": TOOL_B})
    found = discover_tools(package)
    assert [(d.tool.name, d.module) for d in found] == [
        ("alpha", f"{package}.a"),
        ("beta", f"{package}.b"),
    ]


def test_reimported_tool_is_registered_once(make_package):
    package = make_package({"a": TOOL_A})
    reexport = f"from {package}.a import alpha\n"
    (__import__("pathlib").Path(__import__(package).__path__[0]) / "z.py").write_text(reexport)
    assert [d.tool.name for d in discover_tools(package)] == ["alpha"]


def test_import_error_names_the_module(make_package):
    package = make_package({"a": TOOL_A, "broken": "import does_not_exist_anywhere\n"})
    with pytest.raises(ToolDiscoveryError, match=rf"'{package}\.broken'.*does_not_exist_anywhere"):
        discover_tools(package)


def test_exception_at_import_names_the_module(make_package):
    package = make_package({"boom": "raise ValueError('bad config')\n"})
    with pytest.raises(ToolDiscoveryError, match=rf"'{package}\.boom'.*ValueError: bad config"):
        discover_tools(package)


def test_duplicate_name_names_the_tool_and_both_modules(make_package):
    clash = TOOL_B.replace('name="beta"', 'name="alpha"')
    package = make_package({"a": TOOL_A, "b": clash})
    with pytest.raises(ToolDiscoveryError) as excinfo:
        discover_tools(package)
    message = str(excinfo.value)
    assert "duplicate tool name 'alpha'" in message
    assert f"{package}.a" in message
    assert f"{package}.b" in message


def test_empty_package_is_an_error(make_package):
    package = make_package({"nothing": "X = 1\n"})
    with pytest.raises(ToolDiscoveryError, match="defines no @tool functions"):
        discover_tools(package)


def test_missing_package_is_an_error():
    with pytest.raises(ToolDiscoveryError, match="'no_such_tools_package'"):
        discover_tools("no_such_tools_package")


BARE = """
from fastmcp.tools import tool

@tool
def bare(x, y):
    return x
"""

KEPT = """
from fastmcp.tools import tool

@tool(annotations={"readOnlyHint": True})
def kept(x: int) -> int:
    '''Return x.'''
    return x
"""


def test_a_tool_that_breaks_the_contract_is_named_with_what_to_do(make_package):
    """Regression: a tool with no docstring, no type hints and no annotations passed fleet
    check and the default tests; only the conformance suite said "missing description"."""
    from mcp_common.discovery import contract_faults

    [bare] = discover_tools(make_package({"m": BARE}))
    faults = contract_faults(bare)
    assert any("has no description: give the function a docstring" in f for f in faults)
    assert any("parameter(s) x, y have no type hint" in f for f in faults)
    assert any("has no return type hint" in f for f in faults)
    assert any("has no annotations: say at least readOnlyHint" in f for f in faults)
    assert all(f.startswith("tool 'bare' (") for f in faults)
    [kept] = discover_tools(make_package({"m": KEPT}))
    assert contract_faults(kept) == []


UNSCHEMABLE = """
import threading
from fastmcp.tools import tool

@tool(annotations={"readOnlyHint": True})
def lock(guard: threading.Lock) -> str:
    '''Not a JSON type.'''
    return "x"
"""


def test_a_type_without_a_json_schema_says_which_type_and_what_to_use(make_package):
    """Regression: the error ended with pydantic's "Set `arbitrary_types_allowed=True`"."""
    with pytest.raises(ToolDiscoveryError) as refused:
        discover_tools(make_package({"m": UNSCHEMABLE}))
    message = str(refused.value)
    assert "cannot build tool 'lock'" in message
    assert "has no JSON schema" in message
    assert "pydantic model or a TypedDict" in message
    assert "arbitrary_types_allowed" not in message
