"""The knowledge-graph tools, as the reference memory server publishes them.

Names, titles, descriptions, argument shapes, annotations and results (structuredContent
plus the same JSON as text) mirror npm @modelcontextprotocol/server-memory 2026.8.31, so
clients and prompts written for it work unchanged. Each caller (the authenticated
principal) has a graph of its own.
"""

from __future__ import annotations

import json
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
    """The bytes an answer carrying `found` takes in the JSON-RPC result: structuredContent
    (compact JSON) and the indented text, escaped as a JSON string."""
    payload = found.dump()
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()) + len(
        json.dumps(text, ensure_ascii=False).encode()
    )


def _graph_answer(found: KnowledgeGraph) -> ToolResult:
    """`found`, cut to MEMORY_MAX_ANSWER_BYTES if it is larger (and marked truncated)."""
    return _answer(bounded(found, get_store().limits.answer_bytes, answer_bytes).dump())


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
    return _graph_answer(await get_store().read_graph(current_principal()))


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
    return _graph_answer(graph.search(whole, query))


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
    return _graph_answer(await get_store().read_nodes(current_principal(), unique(names)))
