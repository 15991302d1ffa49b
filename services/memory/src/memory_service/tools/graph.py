"""The knowledge-graph tools, as the reference memory server publishes them.

Names, titles, descriptions, argument shapes, annotations and results (structuredContent
plus the same JSON as text) mirror npm @modelcontextprotocol/server-memory 2026.8.31, so
clients and prompts written for it work unchanged. Each caller (the authenticated
principal) has a graph of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastmcp.tools import ToolResult, tool
from pydantic import BaseModel, Field

from mcp_common.auth import current_principal
from memory_service import graph
from memory_service.graph import (
    AddedObservations,
    Entity,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
    bounded,
    check_additions,
    check_call_size,
    check_deletions,
    check_entity,
    check_relation,
    unique,
)
from memory_service.settings import get_settings
from memory_service.store import get_store

get_settings()  # at start-up (tool discovery): a misconfigured service must not start

WRITE = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False}
DELETE = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True}
READ = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True}
CLOSED = {"openWorldHint": False}


class CreatedEntities(BaseModel):
    entities: list[Entity]


class CreatedRelations(BaseModel):
    relations: list[Relation]


class AddedResults(BaseModel):
    results: list[AddedObservations]


class Done(BaseModel):
    success: bool
    message: str


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)


def _answer(payload: dict[str, Any], text: str | None = None) -> ToolResult:
    """structuredContent, and the same JSON as text (2-space indent, as the reference)."""
    shown = text if text is not None else json.dumps(payload, indent=2, ensure_ascii=False)
    return ToolResult(content=shown, structured_content=payload)


def answer_bytes(found: KnowledgeGraph) -> int:
    """The bytes an answer carrying `found` takes in the JSON-RPC result, at every protocol
    revision: structuredContent (compact JSON) and the indented text as a JSON string, both
    with non-ASCII escaped (the 2026-07-28 transport escapes it: 12 bytes for a 4-byte
    character, where UTF-8 takes 4). Serialises the whole answer: for tests and checks."""
    payload = found.dump()
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    compact = json.dumps(payload, separators=(",", ":"))
    return len(compact) + len(json.dumps(text))


def _escaped(text: str) -> int:
    """Bytes of `text` inside a JSON string, non-ASCII escaped."""
    return len(json.dumps(text)) - 2


def _text_cost(value: Any, level: int) -> int:
    """Bytes of `value` in the indented text (json.dumps(indent=2)) at nesting `level`, once
    that text is itself escaped as a JSON string (a newline is 2 bytes there)."""
    if isinstance(value, str):
        return _escaped(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict | list):
        if not value:
            return 2
        pairs = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        inner = 0
        for key, item in pairs:
            inner += 2 * (level + 1) + _text_cost(item, level + 1)
            if key is not None:
                inner += _escaped(json.dumps(key, ensure_ascii=False)) + 2  # `"key": `
        return 1 + 2 + inner + 3 * (len(value) - 1) + 2 + 2 * level + 1
    return len(json.dumps(value))


EMPTY_STRING = len(json.dumps("")) + _text_cost("", 0)
"""What `""` takes in both renderings: a shape is measured with empty strings."""


class WireCosts:
    """`answer_bytes`, item by item (graph.bounded sums them). An item's cost is its shape's
    (measured once, with empty strings) plus each of its strings' (measured once per distinct
    string: a hub's name is measured once, not once per relation)."""

    def __init__(self) -> None:
        self._strings: dict[str, int] = {}
        self._shapes: dict[int, int] = {}
        self._relation_shape = self._item({"from": "", "to": "", "relationType": ""})

    @staticmethod
    def _item(item: dict[str, Any]) -> int:
        compact = len(json.dumps(item, separators=(",", ":"))) + 1  # and its comma
        return compact + _text_cost(item, 2) + 4 + 3  # its indent, its ",\n"

    def _string(self, text: str) -> int:
        """What a string adds beyond an empty one, in both renderings."""
        cost = self._strings.get(text)
        if cost is None:
            cost = len(json.dumps(text)) + _text_cost(text, 0) - EMPTY_STRING
            if len(self._strings) < 100_000:
                self._strings[text] = cost
        return cost

    def entity(self, entity: Entity) -> int:
        count = len(entity.observations)
        shape = self._shapes.get(count)
        if shape is None:
            shape = self._shapes[count] = self._item(
                {"name": "", "entityType": "", "observations": [""] * count}
            )
        strings = self._string(entity.name) + self._string(entity.entityType)
        return shape + strings + sum(self._string(o) for o in entity.observations)

    def relation(self, relation: Relation) -> int:
        strings = self._string(relation.from_) + self._string(relation.relationType)
        return self._relation_shape + strings + self._string(relation.to)

    def total(self, entities: Sequence[int], relations: Sequence[int], message: str | None) -> int:
        """Both renderings of {"entities": [...], "relations": [...][, "truncated", "message"]}:
        a list's brackets, newlines and closing indent add 6 bytes to its items' (4 if empty)."""
        entries = [
            ("entities", sum(entities) + 6 if entities else 4),
            ("relations", sum(relations) + 6 if relations else 4),
        ]
        if message is not None:
            entries += [
                ("truncated", 4 + 4),
                ("message", len(json.dumps(message)) + _text_cost(message, 1)),
            ]
        keys = sum(len(json.dumps(k)) + 1 + _escaped(json.dumps(k)) + 4 for k, _ in entries)
        return 10 + 4 * (len(entries) - 1) + keys + sum(value for _, value in entries)


def _bounded_answer(found: KnowledgeGraph) -> ToolResult:
    return _answer(bounded(found, get_store().limits.answer_bytes, WireCosts()).dump())


async def _graph_answer(found: KnowledgeGraph) -> ToolResult:
    """`found`, cut to MEMORY_MAX_ANSWER_BYTES if it is larger (and marked truncated),
    measured and serialised in a worker thread: the event loop keeps serving everyone."""
    return await asyncio.to_thread(_bounded_answer, found)


def _done(message: str) -> ToolResult:
    return _answer({"success": True, "message": message}, text=message)


@tool(
    title="Create Entities",
    description="Create multiple new entities in the knowledge graph",
    annotations={"title": "Create Entities", **WRITE, **CLOSED},
    output_schema=_schema(CreatedEntities),
)
async def create_entities(entities: list[Entity]) -> ToolResult:
    """Add entities whose names are new (to this caller's graph); return those added."""
    check_call_size(len(entities), get_store().limits)
    fresh = unique(entities, key=lambda entity: entity.name)
    fresh = [
        entity.model_copy(update={"observations": unique(entity.observations)}) for entity in fresh
    ]
    for entity in fresh:
        check_entity(entity, get_store().limits)
    created = await get_store().create_entities(current_principal(), fresh)
    return _answer({"entities": [entity.model_dump() for entity in created]})


@tool(
    title="Create Relations",
    description=(
        "Create multiple new relations between entities in the knowledge graph. "
        "Relations should be in active voice"
    ),
    annotations={"title": "Create Relations", **WRITE, **CLOSED},
    output_schema=_schema(CreatedRelations),
)
async def create_relations(relations: list[Relation]) -> ToolResult:
    """Add relations that are new; return those added."""
    check_call_size(len(relations), get_store().limits)
    fresh = unique(relations, key=Relation.key)
    for relation in fresh:
        check_relation(relation)
    created = await get_store().create_relations(current_principal(), fresh)
    return _answer({"relations": [relation.dump() for relation in created]})


@tool(
    title="Add Observations",
    description="Add new observations to existing entities in the knowledge graph",
    annotations={"title": "Add Observations", **WRITE, **CLOSED},
    output_schema=_schema(AddedResults),
)
async def add_observations(observations: list[ObservationAddition]) -> ToolResult:
    """Add new observations; a missing entity is an error and nothing changes."""
    check_additions(observations, get_store().limits)
    results = await get_store().add_observations(current_principal(), observations)
    return _answer({"results": [result.model_dump() for result in results]})


@tool(
    title="Delete Entities",
    description="Delete multiple entities and their associated relations from the knowledge graph",
    annotations={"title": "Delete Entities", **DELETE, **CLOSED},
    output_schema=_schema(Done),
)
async def delete_entities(
    entityNames: Annotated[list[str], Field(description="An array of entity names to delete")],
) -> ToolResult:
    """Delete the entities and every relation touching them; missing names are skipped."""
    check_call_size(len(entityNames), get_store().limits)
    await get_store().delete_entities(current_principal(), unique(entityNames))
    return _done("Entities deleted successfully")


@tool(
    title="Delete Observations",
    description="Delete specific observations from entities in the knowledge graph",
    annotations={"title": "Delete Observations", **DELETE, **CLOSED},
    output_schema=_schema(Done),
)
async def delete_observations(deletions: list[ObservationDeletion]) -> ToolResult:
    """Delete the observations; missing entities are skipped."""
    check_deletions(deletions, get_store().limits)
    await get_store().delete_observations(current_principal(), deletions)
    return _done("Observations deleted successfully")


@tool(
    title="Delete Relations",
    description="Delete multiple relations from the knowledge graph",
    annotations={"title": "Delete Relations", **DELETE, **CLOSED},
    output_schema=_schema(Done),
)
async def delete_relations(
    relations: Annotated[list[Relation], Field(description="An array of relations to delete")],
) -> ToolResult:
    """Delete the relations; missing ones are skipped."""
    check_call_size(len(relations), get_store().limits)
    await get_store().delete_relations(current_principal(), unique(relations, key=Relation.key))
    return _done("Relations deleted successfully")


@tool(
    title="Read Graph",
    description="Read the entire knowledge graph",
    annotations={"title": "Read Graph", **READ, **CLOSED},
    output_schema=_schema(KnowledgeGraph),
)
async def read_graph() -> ToolResult:
    """This caller's whole graph (cut to the answer limit, and marked so, if larger)."""
    return await _graph_answer(await get_store().read_graph(current_principal()))


@tool(
    title="Search Nodes",
    description="Search for nodes in the knowledge graph based on a query",
    annotations={"title": "Search Nodes", **READ, **CLOSED},
    output_schema=_schema(KnowledgeGraph),
)
async def search_nodes(
    query: Annotated[
        str,
        Field(
            description="The search query to match against entity names, types, and observation content"
        ),
    ],
) -> ToolResult:
    """Entities matching `query` (case-insensitive) and the relations touching them."""
    whole = await get_store().read_graph(current_principal())
    return await _graph_answer(await asyncio.to_thread(graph.search, whole, query))


@tool(
    title="Open Nodes",
    description="Open specific nodes in the knowledge graph by their names",
    annotations={"title": "Open Nodes", **READ, **CLOSED},
    output_schema=_schema(KnowledgeGraph),
)
async def open_nodes(
    names: Annotated[list[str], Field(description="An array of entity names to retrieve")],
) -> ToolResult:
    """The named entities (missing ones skipped) and the relations touching them."""
    check_call_size(len(names), get_store().limits)
    return await _graph_answer(await get_store().read_nodes(current_principal(), unique(names)))
