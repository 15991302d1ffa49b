"""The memory tools over real HTTP, against the reference server's published contract.

The contract below is copied from npm @modelcontextprotocol/server-memory 2026.8.31
(dist/index.js): clients and prompts written for it must work unchanged here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from fastmcp import Client

from fleet.testing import app_settings, serve
from mcp_common.app import create_app
from memory_service import service
from memory_service.sqlite_store import SQLiteStore
from memory_service.store import set_store

WRITE = (False, False, False)  # readOnly, destructive, idempotent
DELETE = (False, True, True)
READ = (True, False, True)
CONTRACT = {
    "create_entities": ("Create Entities", "Create multiple new entities in the knowledge graph", WRITE, ["entities"]),
    "create_relations": (
        "Create Relations",
        "Create multiple new relations between entities in the knowledge graph. Relations should be in active voice",
        WRITE,
        ["relations"],
    ),
    "add_observations": ("Add Observations", "Add new observations to existing entities in the knowledge graph", WRITE, ["observations"]),
    "delete_entities": ("Delete Entities", "Delete multiple entities and their associated relations from the knowledge graph", DELETE, ["entityNames"]),
    "delete_observations": ("Delete Observations", "Delete specific observations from entities in the knowledge graph", DELETE, ["deletions"]),
    "delete_relations": ("Delete Relations", "Delete multiple relations from the knowledge graph", DELETE, ["relations"]),
    "read_graph": ("Read Graph", "Read the entire knowledge graph", READ, []),
    "search_nodes": ("Search Nodes", "Search for nodes in the knowledge graph based on a query", READ, ["query"]),
    "open_nodes": ("Open Nodes", "Open specific nodes in the knowledge graph by their names", READ, ["names"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def url(tmp_path_factory, limits) -> Iterator[str]:
    set_store(SQLiteStore(tmp_path_factory.mktemp("memory") / "memory.sqlite", limits))
    try:
        with serve(create_app(service, app_settings(MCP_AUTH="none", MCP_PRIME="false"))) as base:
            yield f"{base}/memory/mcp"
    finally:
        set_store(None)


@pytest.fixture
async def client(url) -> AsyncIterator[Client]:
    async with Client(url) as connected:
        yield connected


def _properties(schema: dict) -> dict:
    return schema.get("properties", {})


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


async def test_every_reference_tool_is_published_as_the_reference_publishes_it(client):
    tools = {tool.name: tool for tool in await client.list_tools()}
    assert set(CONTRACT) <= set(tools)
    for name, (
        title,
        description,
        (read_only, destructive, idempotent),
        arguments,
    ) in CONTRACT.items():
        tool = tools[name]
        assert tool.title == title, name
        assert tool.description == description, name
        hints = tool.annotations
        assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (
            read_only,
            destructive,
            idempotent,
        ), name
        assert hints.open_world_hint is False, name
        assert list(_properties(tool.input_schema)) == arguments, name
        assert tool.output_schema is not None, name


async def test_argument_shapes_match_the_reference(client):
    tools = {tool.name: tool for tool in await client.list_tools()}

    def item_fields(tool: str, argument: str) -> set[str]:
        schema = tools[tool].input_schema
        item = _resolve(schema, _properties(schema)[argument]["items"])
        return set(_properties(item))

    assert item_fields("create_entities", "entities") == {"name", "entityType", "observations"}
    assert item_fields("create_relations", "relations") == {"from", "to", "relationType"}
    assert item_fields("delete_relations", "relations") == {"from", "to", "relationType"}
    assert item_fields("add_observations", "observations") == {"entityName", "contents"}
    assert item_fields("delete_observations", "deletions") == {"entityName", "observations"}


async def test_results_are_structured_content_and_the_same_json_as_text(client):
    created = await client.call_tool(
        "create_entities",
        {"entities": [{"name": "Ada", "entityType": "person", "observations": ["first program"]}]},
    )
    payload = {
        "entities": [{"name": "Ada", "entityType": "person", "observations": ["first program"]}]
    }
    assert created.structured_content == payload
    assert created.content[0].text == json.dumps(payload, indent=2)
    related = await client.call_tool(
        "create_relations", {"relations": [{"from": "Ada", "to": "Ada", "relationType": "is"}]}
    )
    assert related.structured_content == {
        "relations": [{"from": "Ada", "to": "Ada", "relationType": "is"}]
    }
    deleted = await client.call_tool(
        "delete_relations", {"relations": [{"from": "Ada", "to": "Ada", "relationType": "is"}]}
    )
    assert deleted.structured_content == {
        "success": True,
        "message": "Relations deleted successfully",
    }
    assert deleted.content[0].text == "Relations deleted successfully"
    found = await client.call_tool("search_nodes", {"query": "FIRST"})
    assert [e["name"] for e in found.structured_content["entities"]] == ["Ada"]
    assert json.loads(found.content[0].text) == found.structured_content


async def test_errors_are_tool_errors_the_model_can_read(client):
    missing = await client.call_tool(
        "add_observations",
        {"observations": [{"entityName": "Nobody", "contents": ["x"]}]},
        raise_on_error=False,
    )
    assert missing.is_error
    assert missing.content[0].text == "Entity with name Nobody not found"
    too_many = await client.call_tool(
        "open_nodes", {"names": [f"n{i}" for i in range(100)]}, raise_on_error=False
    )
    assert too_many.is_error
    assert "MEMORY_MAX_ITEMS_PER_CALL" in too_many.content[0].text
    control = await client.call_tool(
        "create_entities",
        {"entities": [{"name": "bad\nname", "entityType": "x", "observations": []}]},
        raise_on_error=False,
    )
    assert control.is_error
    assert "control characters" in control.content[0].text
