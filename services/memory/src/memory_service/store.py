"""The storage interface both backends implement, and the process-wide store.

- Lambda: DynamoDB (MEMORY_TABLE_NAME; the template owns the table), see dynamodb_store.py.
- Locally: SQLite (MEMORY_SQLITE_PATH, default .fleet/memory.sqlite), see sqlite_store.py.

Every method works on one tenant's graph only; the tools pass the authenticated
principal, so two principals can never reach each other's data. Each call's change is
all-or-nothing (one transaction), and correct under concurrent writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from memory_service import service
from memory_service.graph import (
    AddedObservations,
    Entity,
    KnowledgeGraph,
    Limits,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)
from memory_service.settings import get_settings


class GraphStore(Protocol):
    limits: Limits

    async def create_entities(self, tenant: str, entities: Sequence[Entity]) -> list[Entity]:
        """Add the entities whose names are new; return those added."""
        ...

    async def create_relations(self, tenant: str, relations: Sequence[Relation]) -> list[Relation]:
        """Add the relations that are new; return those added."""
        ...

    async def add_observations(
        self, tenant: str, additions: Sequence[ObservationAddition]
    ) -> list[AddedObservations]:
        """Add new observations; raise EntityNotFound (changing nothing) for a missing entity."""
        ...

    async def delete_entities(self, tenant: str, names: Sequence[str]) -> None:
        """Delete the entities and every relation touching them; missing names are skipped."""
        ...

    async def delete_observations(
        self, tenant: str, deletions: Sequence[ObservationDeletion]
    ) -> None:
        """Delete observations; missing entities are skipped."""
        ...

    async def delete_relations(self, tenant: str, relations: Sequence[Relation]) -> None:
        """Delete the relations; missing ones are skipped."""
        ...

    async def read_graph(self, tenant: str) -> KnowledgeGraph:
        """The tenant's whole graph, in creation order."""
        ...

    async def read_nodes(self, tenant: str, names: Sequence[str]) -> KnowledgeGraph:
        """The named entities (missing ones skipped) and the relations touching them,
        reading nothing else."""
        ...

    def close(self) -> None:
        """Release connections (before a SnapStart snapshot); the next call reopens them."""
        ...


_store: GraphStore | None = None


def get_store() -> GraphStore:
    """The process-wide store, opened on first use."""
    global _store
    if _store is None:
        settings = get_settings()
        if settings.table_name:
            from memory_service.dynamodb_store import DynamoDBStore

            _store = DynamoDBStore(
                settings.table_name, settings.limits, budget=settings.store_budget_seconds
            )
        else:
            from memory_service.sqlite_store import SQLiteStore

            _store = SQLiteStore(settings.sqlite_path, settings.limits)
    return _store


def set_store(store: GraphStore | None) -> None:
    """Replace the process-wide store (tests)."""
    global _store
    _store = store


@service.before_checkpoint
def close_store() -> None:
    """No connection or credential may be frozen into a SnapStart snapshot."""
    if _store is not None:
        _store.close()
