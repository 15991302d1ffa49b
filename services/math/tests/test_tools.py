"""Each math tool through fastmcp's in-memory Client: values, errors and annotations."""

from __future__ import annotations

import math

import pytest

EXPECTED_TOOLS = {
    "add",
    "subtract",
    "multiply",
    "divide",
    "power",
    "sqrt",
    "mean",
    "median",
    "stdev",
    "evaluate",
}


async def call(client, name: str, **arguments):
    return await client.call_tool(name, arguments, raise_on_error=False)


async def value(client, name: str, **arguments):
    result = await call(client, name, **arguments)
    assert not result.is_error, result.content
    return result.data


async def error(client, name: str, **arguments) -> str:
    result = await call(client, name, **arguments)
    assert result.is_error, f"{name}({arguments}) should fail, got {result.data!r}"
    return result.content[0].text


async def test_every_tool_is_published_with_annotations_and_description(client):
    """Every discovered tool, including one a team adds tomorrow."""
    tools = await client.list_tools()
    assert tools
    for tool in tools:
        assert tool.annotations is not None, tool.name
        assert tool.annotations.read_only_hint is True, tool.name  # math changes nothing
        assert len(tool.description) > 20, tool.name


async def test_the_shipped_tools_are_all_there_pure_and_idempotent(client):
    """The contract of the tools math ships (a subset: adding a module adds tools)."""
    tools = {tool.name: tool for tool in await client.list_tools()}
    assert set(EXPECTED_TOOLS) <= set(tools)
    for name in EXPECTED_TOOLS:
        assert tools[name].annotations.idempotent_hint is True, name
        assert tools[name].annotations.destructive_hint is False, name


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("add", {"a": 2, "b": 3}, 5),
        ("add", {"a": 0.1, "b": 0.2}, 0.1 + 0.2),
        ("subtract", {"a": 2, "b": 5}, -3),
        ("multiply", {"a": -4, "b": 2.5}, -10.0),
        ("divide", {"a": 7, "b": 2}, 3.5),
        ("power", {"base": 2, "exponent": 10}, 1024),
        ("power", {"base": 4, "exponent": 0.5}, 2.0),
        ("power", {"base": 2, "exponent": -2}, 0.25),
        ("sqrt", {"x": 81}, 9.0),
        ("mean", {"values": [1, 2, 3, 4]}, 2.5),
        ("median", {"values": [5, 1, 3]}, 3),
        ("median", {"values": [4, 1, 3, 2]}, 2.5),
        ("stdev", {"values": [2, 4, 4, 4, 5, 5, 7, 9]}, 2.138089935299395),
        ("evaluate", {"expression": "(2 + 3) * 4 ** 2 / sqrt(16)"}, 20.0),
    ],
)
async def test_values(client, name, arguments, expected):
    assert await value(client, name, **arguments) == pytest.approx(expected)


async def test_integers_stay_exact(client):
    assert await value(client, "power", base=3, exponent=40) == 3**40
    assert await value(client, "add", a=2**60, b=1) == 2**60 + 1


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("divide", {"a": 1, "b": 0}, "division by zero"),
        ("sqrt", {"x": -4}, "square root of a negative number"),
        ("stdev", {"values": [1]}, "stdev needs at least 2 value(s), got 1"),
        ("mean", {"values": []}, "mean needs at least 1 value(s), got 0"),
        ("median", {"values": []}, "median needs at least 1 value(s)"),
        ("power", {"base": 9, "exponent": 10**9}, "too large"),
        ("power", {"base": 0, "exponent": -1}, "zero to a negative power"),
        ("power", {"base": -8, "exponent": 0.5}, "not a real number"),
        ("power", {"base": 10.0, "exponent": 400}, "too large to represent"),
        ("multiply", {"a": 1e308, "b": 10}, "too large to represent"),
        ("evaluate", {"expression": "1/0"}, "division by zero"),
    ],
)
async def test_errors_are_clear_tool_errors(client, name, arguments, message):
    assert message in await error(client, name, **arguments)


async def test_invalid_arguments_are_rejected(client):
    text = await error(client, "add", a="two", b=2)
    assert "a" in text
    assert "validation" in text.lower()


async def test_results_are_always_finite(client):
    assert await value(client, "mean", values=[1e308, 1e308]) == 1e308
    assert math.isfinite(await value(client, "stdev", values=[-1e308, 1e308]))
