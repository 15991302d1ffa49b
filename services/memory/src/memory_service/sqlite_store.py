"""The local store: one SQLite file, every tenant's graph in it.

Each change is one short `BEGIN IMMEDIATE` transaction (its checks are linear and bounded
before it starts), so concurrent writers take turns for milliseconds and every change is
all-or-nothing. Reads take no write lock: in WAL mode they read a snapshot while a writer
works, so no tenant's change stalls another tenant's read. Calls run on worker threads:
the event loop never waits on the disk. The file holds every local tenant's graph: it is
created 0600, in a 0700 folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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
    check_room,
    entity_bytes,
    merge_observations,
    observations_bytes,
    relation_bytes,
    remove_observations,
    touching,
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
    bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    relation_type TEXT NOT NULL,
    target TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
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
            _private(self.path)
            connection = self._connect()
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
                _count_bytes_of_older_rows(connection)
            finally:
                connection.close()
            self._ready = True

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._prepare()
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        def run() -> T:
            try:
                with self._transaction(write) as connection:
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

    def _bytes(self, db: sqlite3.Connection, tenant: str) -> int:
        """What the tenant's graph counts against MEMORY_MAX_BYTES_PER_TENANT."""
        row = db.execute(
            "SELECT (SELECT COALESCE(SUM(bytes), 0) FROM entities WHERE tenant = ?)"
            " + (SELECT COALESCE(SUM(bytes), 0) FROM relations WHERE tenant = ?)",
            (tenant, tenant),
        ).fetchone()
        return int(row[0])

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
            sizes = [entity_bytes(entity) for entity in new]
            check_room(self._bytes(db, tenant), sum(sizes), self.limits)
            db.executemany(
                "INSERT INTO entities (tenant, name, entity_type, observations, bytes) VALUES (?,?,?,?,?)",
                [
                    (tenant, e.name, e.entityType, json.dumps(e.observations), size)
                    for e, size in zip(new, sizes, strict=True)
                ],
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
            check_room(self._bytes(db, tenant), sum(map(relation_bytes, new)), self.limits)
            db.executemany(
                "INSERT INTO relations (tenant, source, relation_type, target, bytes) VALUES (?,?,?,?,?)",
                [(tenant, *relation.key(), relation_bytes(relation)) for relation in new],
            )
            return new

        return await self._run(work)

    async def add_observations(
        self, tenant: str, additions: Sequence[ObservationAddition]
    ) -> list[AddedObservations]:
        def work(db: sqlite3.Connection) -> list[AddedObservations]:
            existing = self._observations(db, tenant, [a.entityName for a in additions])
            changed, results = merge_observations(existing, additions, self.limits)
            adding = sum(observations_bytes(r.addedObservations) for r in results)
            check_room(self._bytes(db, tenant), adding, self.limits)
            self._store_observations(db, tenant, changed)
            return results

        return await self._run(work)

    def _store_observations(
        self, db: sqlite3.Connection, tenant: str, changed: dict[str, list[str]]
    ) -> None:
        db.executemany(
            "UPDATE entities SET observations = ?, bytes = ? + LENGTH(CAST(name AS BLOB)) "
            "+ LENGTH(CAST(entity_type AS BLOB)) WHERE tenant = ? AND name = ?",
            [
                (json.dumps(observations), observations_bytes(observations), tenant, name)
                for name, observations in changed.items()
            ],
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
            return KnowledgeGraph(
                entities=_entities(db, "tenant = ?", (tenant,)),
                relations=_relations(db, "tenant = ?", (tenant,)),
            )

        return await self._run(work, write=False)

    async def read_nodes(self, tenant: str, names: Sequence[str]) -> KnowledgeGraph:
        def work(db: sqlite3.Connection) -> KnowledgeGraph:
            marks = _marks(len(names))
            entities = _entities(db, f"tenant = ? AND name IN ({marks})", (tenant, *names))
            found = [entity.name for entity in entities]
            if not found:
                return KnowledgeGraph(entities=[], relations=[])
            marks = _marks(len(found))
            relations = _relations(
                db,
                f"tenant = ? AND (source IN ({marks}) OR target IN ({marks}))",
                (tenant, *found, *found),
            )
            return KnowledgeGraph(entities=entities, relations=touching(relations, set(found)))

        return await self._run(work, write=False)


def _private(path: Path) -> None:
    """The file 0600 in a 0700 folder: made so, or tightened if made before this rule. An
    existing folder is tightened only if it is the workspace's own `.fleet` (never, say,
    /tmp or a home folder named in MEMORY_SQLITE_PATH)."""
    from memory_service.settings import default_sqlite_path

    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
    elif folder.resolve() == default_sqlite_path().parent.resolve():
        folder.chmod(0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def _entities(db: sqlite3.Connection, where: str, values: tuple) -> list[Entity]:
    return [
        Entity(name=name, entityType=kind, observations=json.loads(observations))
        for name, kind, observations in db.execute(
            f"SELECT name, entity_type, observations FROM entities WHERE {where} ORDER BY id",  # noqa: S608 - placeholders only
            values,
        )
    ]


def _relations(db: sqlite3.Connection, where: str, values: tuple) -> list[Relation]:
    return [
        Relation(from_=source, relationType=kind, to=target)
        for source, kind, target in db.execute(
            f"SELECT source, relation_type, target FROM relations WHERE {where} ORDER BY id",  # noqa: S608 - placeholders only
            values,
        )
    ]


def _count_bytes_of_older_rows(db: sqlite3.Connection) -> None:
    """A file made before the byte quota: add its `bytes` columns and fill them once."""
    for table in ("entities", "relations"):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "bytes" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0")
    rows = db.execute(
        "SELECT id, name, entity_type, observations FROM entities WHERE bytes = 0"
    ).fetchall()
    db.executemany(
        "UPDATE entities SET bytes = ? WHERE id = ?",
        [
            (entity_bytes(Entity(name=n, entityType=k, observations=json.loads(o))), row_id)
            for row_id, n, k, o in rows
        ],
    )
    rows = db.execute(
        "SELECT id, source, relation_type, target FROM relations WHERE bytes = 0"
    ).fetchall()
    db.executemany(
        "UPDATE relations SET bytes = ? WHERE id = ?",
        [
            (relation_bytes(Relation(from_=s, relationType=k, to=g)), row_id)
            for row_id, s, k, g in rows
        ],
    )
