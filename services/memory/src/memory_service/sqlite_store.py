"""The local store: one SQLite file, every tenant's graph in it.

Each call is one `BEGIN IMMEDIATE` transaction, so concurrent writers (threads or
processes) take turns and every change is all-or-nothing. Calls run on worker threads:
the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from memory_service.graph import (
    AddedObservations,
    Entity,
    KnowledgeGraph,
    LimitExceeded,
    Limits,
    ObservationAddition,
    ObservationDeletion,
    Relation,
    StoreUnavailable,
    merge_observations,
    remove_observations,
)

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    observations TEXT NOT NULL,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    relation_type TEXT NOT NULL,
    target TEXT NOT NULL,
    UNIQUE (tenant, source, relation_type, target)
);
CREATE INDEX IF NOT EXISTS relations_by_target ON relations (tenant, target);
"""


def _marks(count: int) -> str:
    return ",".join("?" * count)


class SQLiteStore:
    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self._ready = False
        self._first_use = threading.Lock()

    def close(self) -> None:
        """Nothing stays open between calls."""
        return

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)

    def _prepare(self) -> None:
        """Create the folder, switch to WAL and create the schema, once per process.

        One thread at a time: concurrent first calls racing to change the journal mode
        get "database is locked" at once, without waiting out the busy timeout.
        """
        with self._first_use:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
            finally:
                connection.close()
            self._ready = True

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._prepare()
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            try:
                with self._transaction() as connection:
                    return work(connection)
            except sqlite3.OperationalError as exc:  # locked past the timeout, disk full, ...
                raise StoreUnavailable(
                    f"the memory store is unavailable ({exc}); try again"
                ) from None

        return await asyncio.to_thread(run)

    def _observations(
        self, db: sqlite3.Connection, tenant: str, names: Sequence[str]
    ) -> dict[str, list[str]]:
        rows = db.execute(
            f"SELECT name, observations FROM entities WHERE tenant = ? AND name IN ({_marks(len(names))})",  # noqa: S608 - placeholders only
            (tenant, *names),
        )
        return {name: json.loads(observations) for name, observations in rows}

    def _count(self, db: sqlite3.Connection, table: str, tenant: str) -> int:
        return db.execute(f"SELECT COUNT(*) FROM {table} WHERE tenant = ?", (tenant,)).fetchone()[0]  # noqa: S608 - a fixed table name

    async def create_entities(self, tenant: str, entities: Sequence[Entity]) -> list[Entity]:
        def work(db: sqlite3.Connection) -> list[Entity]:
            existing = self._observations(db, tenant, [e.name for e in entities])
            new = [entity for entity in entities if entity.name not in existing]
            total = self._count(db, "entities", tenant) + len(new)
            if new and total > self.limits.entities_per_tenant:
                raise LimitExceeded(
                    f"this graph would hold {total} entities; the limit is "
                    f"{self.limits.entities_per_tenant} (MEMORY_MAX_ENTITIES_PER_TENANT)"
                )
            db.executemany(
                "INSERT INTO entities (tenant, name, entity_type, observations) VALUES (?,?,?,?)",
                [(tenant, e.name, e.entityType, json.dumps(e.observations)) for e in new],
            )
            return new

        return await self._run(work)

    async def create_relations(self, tenant: str, relations: Sequence[Relation]) -> list[Relation]:
        def work(db: sqlite3.Connection) -> list[Relation]:
            new = [
                relation
                for relation in relations
                if db.execute(
                    "SELECT 1 FROM relations WHERE tenant=? AND source=? AND relation_type=? AND target=?",
                    (tenant, *relation.key()),
                ).fetchone()
                is None
            ]
            total = self._count(db, "relations", tenant) + len(new)
            if new and total > self.limits.relations_per_tenant:
                raise LimitExceeded(
                    f"this graph would hold {total} relations; the limit is "
                    f"{self.limits.relations_per_tenant} (MEMORY_MAX_RELATIONS_PER_TENANT)"
                )
            db.executemany(
                "INSERT INTO relations (tenant, source, relation_type, target) VALUES (?,?,?,?)",
                [(tenant, *relation.key()) for relation in new],
            )
            return new

        return await self._run(work)

    async def add_observations(
        self, tenant: str, additions: Sequence[ObservationAddition]
    ) -> list[AddedObservations]:
        def work(db: sqlite3.Connection) -> list[AddedObservations]:
            existing = self._observations(db, tenant, [a.entityName for a in additions])
            changed, results = merge_observations(existing, additions, self.limits)
            self._store_observations(db, tenant, changed)
            return results

        return await self._run(work)

    def _store_observations(
        self, db: sqlite3.Connection, tenant: str, changed: dict[str, list[str]]
    ) -> None:
        db.executemany(
            "UPDATE entities SET observations = ? WHERE tenant = ? AND name = ?",
            [(json.dumps(observations), tenant, name) for name, observations in changed.items()],
        )

    async def delete_entities(self, tenant: str, names: Sequence[str]) -> None:
        def work(db: sqlite3.Connection) -> None:
            marks = _marks(len(names))
            db.execute(
                f"DELETE FROM relations WHERE tenant = ? AND (source IN ({marks}) OR target IN ({marks}))",  # noqa: S608
                (tenant, *names, *names),
            )
            db.execute(
                f"DELETE FROM entities WHERE tenant = ? AND name IN ({marks})",  # noqa: S608
                (tenant, *names),
            )

        await self._run(work)

    async def delete_observations(
        self, tenant: str, deletions: Sequence[ObservationDeletion]
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            existing = self._observations(db, tenant, [d.entityName for d in deletions])
            self._store_observations(db, tenant, remove_observations(existing, deletions))

        await self._run(work)

    async def delete_relations(self, tenant: str, relations: Sequence[Relation]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "DELETE FROM relations WHERE tenant=? AND source=? AND relation_type=? AND target=?",
                [(tenant, *relation.key()) for relation in relations],
            )

        await self._run(work)

    async def read_graph(self, tenant: str) -> KnowledgeGraph:
        def work(db: sqlite3.Connection) -> KnowledgeGraph:
            entities = [
                Entity(name=name, entityType=kind, observations=json.loads(observations))
                for name, kind, observations in db.execute(
                    "SELECT name, entity_type, observations FROM entities WHERE tenant = ? ORDER BY id",
                    (tenant,),
                )
            ]
            relations = [
                Relation(from_=source, relationType=kind, to=target)
                for source, kind, target in db.execute(
                    "SELECT source, relation_type, target FROM relations WHERE tenant = ? ORDER BY id",
                    (tenant,),
                )
            ]
            return KnowledgeGraph(entities=entities, relations=relations)

        return await self._run(work)
