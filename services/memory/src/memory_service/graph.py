"""The knowledge graph: its shapes and rules, as the reference memory server defines them.

Reference: npm @modelcontextprotocol/server-memory 2026.8.31 (dist/index.js). Shapes and
semantics are mirrored so that clients and prompts written for it work unchanged; where
it is silent or loose, the choice made here is noted:
- Duplicates are ignored, within one call too (the reference adds a name twice if one
  call repeats it).
- Search is a case-insensitive substring match over name, type and observations; search
  and open return the relations that touch any entity they return.
- Names, types and observations must be non-empty and free of control characters, and
  every limit is a clear tool error (the reference has none: one file per user).
- A graph holds at most MEMORY_MAX_BYTES_PER_TENANT bytes of names, types and observations,
  and an answer at most MEMORY_MAX_ANSWER_BYTES: a larger one is cut, in creation order,
  and says so (`truncated`, `message`), so an agent narrows it with search_nodes or
  open_nodes (the reference returns the whole file, whatever its size).

Every check runs before any work, and all work is linear in what the call carries: no
membership test walks a list.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastmcp.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

MAX_NAME_BYTES = 160
"""Entity names (UTF-8): two names and a relation type form one DynamoDB sort key, which
may hold at most 1,024 bytes."""
MAX_TYPE_BYTES = 64


class Entity(BaseModel):
    name: str = Field(description="The name of the entity")
    entityType: str = Field(description="The type of the entity")
    observations: list[str] = Field(
        description="An array of observation contents associated with the entity"
    )


class Relation(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    from_: str = Field(alias="from", description="The name of the entity where the relation starts")
    to: str = Field(description="The name of the entity where the relation ends")
    relationType: str = Field(description="The type of the relation")

    def key(self) -> tuple[str, str, str]:
        return (self.from_, self.relationType, self.to)

    def dump(self) -> dict[str, str]:
        return self.model_dump(by_alias=True)


class ObservationAddition(BaseModel):
    entityName: str = Field(description="The name of the entity to add the observations to")
    contents: list[str] = Field(description="An array of observation contents to add")


class ObservationDeletion(BaseModel):
    entityName: str = Field(description="The name of the entity containing the observations")
    observations: list[str] = Field(description="An array of observations to delete")


class AddedObservations(BaseModel):
    entityName: str
    addedObservations: list[str]


class KnowledgeGraph(BaseModel):
    entities: list[Entity]
    relations: list[Relation]
    truncated: bool | None = Field(
        default=None,
        description="Present (true) when the answer was cut to its size limit: narrow the "
        "request with search_nodes or open_nodes",
    )
    message: str | None = Field(default=None, description="Why and where the answer was cut")

    def dump(self) -> dict[str, Any]:
        dumped: dict[str, Any] = {
            "entities": [entity.model_dump() for entity in self.entities],
            "relations": [relation.dump() for relation in self.relations],
        }
        if self.truncated:
            dumped.update(truncated=True, message=self.message)
        return dumped


class EntityNotFound(ToolError):
    """add_observations on an entity that does not exist: nothing is changed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Entity with name {name} not found")  # the reference's words


class LimitExceeded(ToolError):
    """A request over one of the service's limits (MEMORY_MAX_*)."""


class StoreUnavailable(ToolError):
    """The store could not be used after retries; the caller may try again."""


@dataclass(frozen=True)
class Limits:
    items_per_call: int
    observation_bytes: int
    observations_per_entity: int
    entities_per_tenant: int
    relations_per_tenant: int
    bytes_per_tenant: int = 1_000_000
    answer_bytes: int = 4_000_000


def _utf8(text: str) -> int:
    return len(text.encode())


def entity_bytes(entity: Entity) -> int:
    """What an entity counts against its graph's byte quota: name, type, observations."""
    return _utf8(entity.name) + _utf8(entity.entityType) + observations_bytes(entity.observations)


def observations_bytes(observations: Iterable[str]) -> int:
    return sum(_utf8(observation) for observation in observations)


def relation_bytes(relation: Relation) -> int:
    return _utf8(relation.from_) + _utf8(relation.relationType) + _utf8(relation.to)


def check_room(used: int, adding: int, limits: Limits) -> None:
    """Refuse a change that would take the graph past its byte quota."""
    if adding > 0 and used + adding > limits.bytes_per_tenant:
        raise LimitExceeded(
            f"this graph would hold {used + adding} bytes; the limit is "
            f"{limits.bytes_per_tenant} (MEMORY_MAX_BYTES_PER_TENANT): delete what is no "
            "longer needed first"
        )


def unique(items: Iterable, key=lambda item: item) -> list:
    """`items` without repeats (by `key`), first occurrence kept, order kept."""
    seen: set = set()
    kept = []
    for item in items:
        marker = key(item)
        if marker not in seen:
            seen.add(marker)
            kept.append(item)
    return kept


def _check_text(kind: str, value: str, max_bytes: int | None = None) -> None:
    if not value or not value.strip():
        raise ToolError(f"{kind} must not be empty")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ToolError(f"{kind} {value[:40]!r} contains control characters")
    if max_bytes is not None and len(value.encode()) > max_bytes:
        raise LimitExceeded(f"{kind} {value[:40]!r}... is longer than {max_bytes} bytes")


def check_name(name: str) -> None:
    _check_text("entity name", name, MAX_NAME_BYTES)


def check_observations(entity: str, observations: Sequence[str], limits: Limits) -> None:
    for observation in observations:
        _check_text(f"an observation of {entity!r}", observation, limits.observation_bytes)
    if len(observations) > limits.observations_per_entity:
        raise LimitExceeded(
            f"entity {entity!r} would hold {len(observations)} observations; the limit is "
            f"{limits.observations_per_entity} (MEMORY_MAX_OBSERVATIONS_PER_ENTITY)"
        )


def check_entity(entity: Entity, limits: Limits) -> None:
    check_name(entity.name)
    _check_text("entity type", entity.entityType, MAX_TYPE_BYTES)
    check_observations(entity.name, unique(entity.observations), limits)


def check_relation(relation: Relation) -> None:
    check_name(relation.from_)
    check_name(relation.to)
    _check_text("relation type", relation.relationType, MAX_TYPE_BYTES)


def check_additions(additions: Sequence[ObservationAddition], limits: Limits) -> None:
    """Everything an add_observations call carries, checked before any work: each entity
    name and observation, no addition larger than an entity may hold, and at most
    MEMORY_MAX_ITEMS_PER_CALL observations in all."""
    check_call_size(len(additions), limits)
    total = 0
    for addition in additions:
        check_name(addition.entityName)
        contents = unique(addition.contents)
        if len(contents) > limits.observations_per_entity:
            raise LimitExceeded(
                f"{len(contents)} observations for {addition.entityName[:40]!r}; an entity holds "
                f"at most {limits.observations_per_entity} (MEMORY_MAX_OBSERVATIONS_PER_ENTITY)"
            )
        for content in contents:
            _check_text(
                f"an observation of {addition.entityName[:40]!r}", content, limits.observation_bytes
            )
        total += len(contents)
    if total > limits.items_per_call:
        raise LimitExceeded(
            f"{total} observations in one call; the limit is {limits.items_per_call} "
            "(MEMORY_MAX_ITEMS_PER_CALL): split the call"
        )


def check_deletions(deletions: Sequence[ObservationDeletion], limits: Limits) -> None:
    check_call_size(len(deletions), limits)
    check_call_size(sum(len(deletion.observations) for deletion in deletions), limits)


def check_call_size(count: int, limits: Limits) -> None:
    if count > limits.items_per_call:
        raise LimitExceeded(
            f"{count} items in one call; the limit is {limits.items_per_call} "
            "(MEMORY_MAX_ITEMS_PER_CALL): split the call"
        )


def touching(relations: Iterable[Relation], names: set[str] | frozenset[str]) -> list[Relation]:
    """The relations with at least one end in `names` (what search and open return)."""
    return [r for r in relations if r.from_ in names or r.to in names]


def search(graph: KnowledgeGraph, query: str) -> KnowledgeGraph:
    """Entities whose name, type or an observation contains `query`, case-insensitively."""
    needle = query.lower()
    entities = [
        entity
        for entity in graph.entities
        if needle in entity.name.lower()
        or needle in entity.entityType.lower()
        or any(needle in observation.lower() for observation in entity.observations)
    ]
    names = {entity.name for entity in entities}
    return KnowledgeGraph(entities=entities, relations=touching(graph.relations, names))


class AnswerCosts(Protocol):
    """What an answer costs on the wire, item by item (tools/graph.py knows the format)."""

    def entity(self, entity: Entity) -> int: ...

    def relation(self, relation: Relation) -> int: ...

    def total(self, entities: Sequence[int], relations: Sequence[int], message: str | None) -> int:
        """The whole answer's bytes, given its items' costs (and its cut message, if cut)."""
        ...


def cut_message(kept: int, whole: int) -> str:
    return (
        f"The answer is cut to its size limit: {kept} of {whole} entities and the relations "
        "touching them. Narrow it: search_nodes with a query, or open_nodes with the names you "
        "need."
    )


def bounded(graph: KnowledgeGraph, limit: int, costs: AnswerCosts) -> KnowledgeGraph:
    """`graph`, or the longest prefix of its entities (with the relations touching them)
    whose answer fits `limit` bytes, marked truncated.

    One pass, stopping at the limit: each item is measured once, when it would join the
    answer (a relation joins with the first of its ends), and a prefix's size is a running
    sum, so the work is linear in what the answer holds, whatever the graph's shape (a hub
    entity with thousands of relations included)."""
    position = {entity.name: index for index, entity in enumerate(graph.entities)}
    whole = len(graph.entities)
    joins: list[list[int]] = [[] for _ in range(whole + 1)]  # the last: touching no entity
    for index, relation in enumerate(graph.relations):
        first = min(position.get(relation.from_, whole), position.get(relation.to, whole))
        joins[first].append(index)
    entity_costs: list[int] = []
    relation_costs: list[int] = []
    kept = 0
    for index, entity in enumerate(graph.entities):
        entity_costs.append(costs.entity(entity))
        relation_costs.extend(costs.relation(graph.relations[r]) for r in joins[index])
        if (
            kept == index
            and costs.total(entity_costs, relation_costs, cut_message(index + 1, whole)) <= limit
        ):
            kept = index + 1  # a prefix that fits, cut message and all
        elif costs.total(entity_costs, relation_costs, None) > limit:
            break  # not even uncut: the answer is the prefix found
    if len(entity_costs) == whole:  # every entity measured: does the whole, uncut, fit?
        relation_costs.extend(costs.relation(graph.relations[r]) for r in joins[whole])
        if costs.total(entity_costs, relation_costs, None) <= limit:
            return graph
    included = sorted(r for index in range(kept) for r in joins[index])
    return KnowledgeGraph.model_construct(
        entities=graph.entities[:kept],
        relations=[graph.relations[r] for r in included],
        truncated=True,
        message=cut_message(kept, whole),
    )


def open_nodes(graph: KnowledgeGraph, names: Sequence[str]) -> KnowledgeGraph:
    """The named entities (missing names skipped) and the relations touching them."""
    wanted = set(names)
    entities = [entity for entity in graph.entities if entity.name in wanted]
    found = {entity.name for entity in entities}
    return KnowledgeGraph(entities=entities, relations=touching(graph.relations, found))


def merge_observations(
    existing: dict[str, list[str]], additions: Sequence[ObservationAddition], limits: Limits
) -> tuple[dict[str, list[str]], list[AddedObservations]]:
    """Apply `additions` to the entities' current observations, as the reference does.

    Raises EntityNotFound for the first entity that does not exist, and LimitExceeded as
    soon as an entity would hold too many (nothing is applied). Linear in the call's size.
    Returns the changed entities' new lists and, per addition, what it really added.
    """
    lists = {name: list(observations) for name, observations in existing.items()}
    present = {name: set(observations) for name, observations in existing.items()}
    results = []
    changed: dict[str, list[str]] = {}
    for addition in additions:
        if addition.entityName not in lists:
            raise EntityNotFound(addition.entityName)
        current, known = lists[addition.entityName], present[addition.entityName]
        added = []
        for content in addition.contents:
            if content not in known:
                known.add(content)
                added.append(content)
        if len(current) + len(added) > limits.observations_per_entity:
            raise LimitExceeded(
                f"entity {addition.entityName!r} would hold {len(current) + len(added)} "
                f"observations; the limit is {limits.observations_per_entity} "
                "(MEMORY_MAX_OBSERVATIONS_PER_ENTITY)"
            )
        current.extend(added)
        if added:
            changed[addition.entityName] = current
        results.append(AddedObservations(entityName=addition.entityName, addedObservations=added))
    for name, observations in changed.items():
        check_observations(name, observations, limits)
    return changed, results


def remove_observations(
    existing: dict[str, list[str]], deletions: Sequence[ObservationDeletion]
) -> dict[str, list[str]]:
    """The changed entities' lists after `deletions`; entities that do not exist are skipped."""
    changed: dict[str, list[str]] = {}
    for deletion in deletions:
        current = changed.get(deletion.entityName, existing.get(deletion.entityName))
        if current is None:
            continue
        doomed = set(deletion.observations)
        remaining = [o for o in current if o not in doomed]
        if remaining != current:
            changed[deletion.entityName] = remaining
    return changed
