"""The Lambda store: one DynamoDB table (single-table design), partitioned by tenant.

Items, all under partition key `pk = "T#<tenant>"`:
- entity:   sk = "E#<name>"; name, entityType, observations (a list), version, created
- relation: sk = "R#" + JSON [from, type, to]; tk = "R#" + JSON [to, type, from] (the
  `by_target` local index finds the relations pointing at an entity); created
- counter:  sk = "#META"; entities, relations, bytes (the per-tenant limits)
JSON keeps composite keys unambiguous whatever the names hold.

No call ever scans: every read is a GetItem, BatchGetItem or a Query of one tenant's
partition, which the byte quota bounds; open_nodes reads only the named entities and the
relations that touch them. Every change is one TransactWriteItems (at most 100 writes: 99 items and
the counter), with conditions (the entity's version, `attribute_not_exists`, the
counter's room), so concurrent writers never lose each other's changes: a conflict
re-reads and tries again. Deleting entities with many relations takes several
transactions, relations first, so an interrupted delete never leaves a dangling one.
Throttling and transient errors are retried by botocore with backoff, within explicit
timeouts; what still fails is a StoreUnavailable tool error, never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

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
    entity_bytes,
    merge_observations,
    observations_bytes,
    relation_bytes,
    remove_observations,
    touching,
    unique,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
ATTEMPTS = 6
"""Tries of one change when concurrent writers keep winning the race."""
BUDGET_SECONDS = 15.0
"""The longest one store operation may spend on DynamoDB calls, all of them: under the tool's
deadline (MCP_TOOL_TIMEOUT_SECONDS, 20 s for memory), so a graph with a hub entity of 50,000
relations ends in a clear error, never in minutes of calls."""
TRANSACTION_ITEMS = 99
META = "#META"
TARGET_INDEX = "by_target"


class _Conflict(Exception):
    """The transaction lost a race (a condition no longer held): read again, retry."""


def _json(*parts: str) -> str:
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))


def entity_key(name: str) -> str:
    return f"E#{name}"


def relation_key(relation: Relation) -> str:
    return "R#" + _json(relation.from_, relation.relationType, relation.to)


def target_key(relation: Relation) -> str:
    return "R#" + _json(relation.to, relation.relationType, relation.from_)


def end_prefix(name: str) -> str:
    """The start of the keys of every relation with `name` at the indexed end."""
    return "R#[" + json.dumps(name, ensure_ascii=False) + ","


class _Budget(threading.local):
    """The running operation's deadline and stop flag, per worker thread."""

    deadline: float = float("inf")
    stop: threading.Event | None = None


class OutOfTime(Exception):
    """The operation's budget ran out, or its call was cancelled: no further DynamoDB call."""


class DynamoDBStore:
    def __init__(
        self, table: str, limits: Limits, client: Any = None, budget: float = BUDGET_SECONDS
    ) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.table = table
        self.limits = limits
        self.budget = budget
        self._budget = _Budget()
        self._client = client
        if client is not None:
            client.meta.events.register("before-send.dynamodb", self._in_budget)
        self._to_dynamo = TypeSerializer().serialize
        self._from_dynamo = TypeDeserializer().deserialize

    # -- plumbing ---------------------------------------------------------------------

    def _db(self) -> Any:
        """The client, for one more call: refused once the operation is out of time or its
        tool call was cancelled (a thread cannot be stopped; it stops calling)."""
        self._in_budget()
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=2,
                read_timeout=5,
                retries={"total_max_attempts": 5, "mode": "standard"},  # backoff on throttling
            )
            self._client = boto3.client("dynamodb", config=config)
            # Every attempt botocore sends, its own retries included, checks the budget.
            self._client.meta.events.register("before-send.dynamodb", self._in_budget)
        return self._client

    def _in_budget(self, **_: Any) -> None:
        stop = self._budget.stop
        if (stop is not None and stop.is_set()) or time.monotonic() > self._budget.deadline:
            raise OutOfTime

    def close(self) -> None:
        """Drop the client: its connections and credentials (before a snapshot)."""
        self._client = None

    async def _run(self, work: Callable[[], T]) -> T:
        stop = threading.Event()

        def run() -> T:
            from botocore.exceptions import BotoCoreError, ClientError

            self._budget.deadline = time.monotonic() + self.budget
            self._budget.stop = stop
            try:
                return work()
            except OutOfTime:
                if stop.is_set():
                    raise StoreUnavailable("the call was cancelled") from None
                logger.error("DynamoDB: an operation ran past its %.0f s budget", self.budget)
                raise StoreUnavailable(
                    f"the memory store did not finish within {self.budget:.0f} s (a very "
                    "connected entity?); what is done is kept: try again"
                ) from None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                logger.error("DynamoDB %s on table %s: %s", code, self.table, exc)
                raise StoreUnavailable(
                    f"the memory store is unavailable right now ({code}); try again shortly"
                ) from None
            except BotoCoreError as exc:
                logger.error("DynamoDB unreachable (table %s): %s", self.table, exc)
                raise StoreUnavailable(
                    "the memory store could not be reached; try again shortly"
                ) from None
            finally:
                self._budget.deadline, self._budget.stop = float("inf"), None

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            stop.set()  # the deadline or the client's cancel: the thread makes no further call
            raise

    def _key(self, tenant: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": f"T#{tenant}"}, "sk": {"S": sk}}

    def _item(self, tenant: str, sk: str, **attributes: Any) -> dict[str, Any]:
        item = self._key(tenant, sk)
        item.update({name: self._to_dynamo(value) for name, value in attributes.items()})
        return item

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: self._from_dynamo(value) for name, value in item.items()}

    def _get_many(self, tenant: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{sk: item} of the keys that exist (consistent reads)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            request = {
                self.table: {
                    "Keys": [self._key(tenant, sk) for sk in unique(keys[start : start + 100])],
                    "ConsistentRead": True,
                }
            }
            while request:
                answer = self._db().batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self.table, []):
                    plain = self._plain(item)
                    found[plain["sk"]] = plain
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _query(self, tenant: str, prefix: str | None = None, index: bool = False) -> list[dict]:
        """Every item of the tenant's partition (with an sk, or tk, prefix)."""
        key = "tk" if index else "sk"
        condition = "pk = :pk" + (f" AND begins_with({key}, :prefix)" if prefix else "")
        values = {":pk": {"S": f"T#{tenant}"}}
        if prefix:
            values[":prefix"] = {"S": prefix}
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if index:
            arguments["IndexName"] = TARGET_INDEX
        else:
            arguments["ConsistentRead"] = True
        items = []
        while True:
            answer = self._db().query(**arguments)
            items.extend(self._plain(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return items
            arguments["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _counter(
        self, tenant: str, entities: int = 0, relations: int = 0, size: int = 0
    ) -> dict[str, Any]:
        """The transaction's update of the tenant's counts, refused past the limits.

        (A graph written before the byte quota has no `bytes` yet: it counts from there.)"""
        values: dict[str, Any] = {":zero": {"N": "0"}}
        updates, conditions = [], []
        for field, delta, limit in (
            ("entities", entities, self.limits.entities_per_tenant),
            ("relations", relations, self.limits.relations_per_tenant),
            ("bytes", size, self.limits.bytes_per_tenant),
        ):
            if delta:
                updates.append(f"{field} = if_not_exists({field}, :zero) + :d_{field}")
                values[f":d_{field}"] = {"N": str(delta)}
                if delta > 0:
                    conditions.append(
                        f"(attribute_not_exists({field}) OR {field} <= :room_{field})"
                    )
                    values[f":room_{field}"] = {"N": str(limit - delta)}
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(tenant, META),
            "UpdateExpression": "SET " + ", ".join(updates),
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

    def _transact(self, actions: list[dict[str, Any]], counter_last: bool = False) -> None:
        """Run the writes as one transaction; raise _Conflict or LimitExceeded if refused."""
        db = self._db()
        try:
            db.transact_write_items(TransactItems=actions)
        except db.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if (
                counter_last
                and reasons
                and reasons[-1] == "ConditionalCheckFailed"
                and all(code in (None, "None") for code in reasons[:-1])
            ):
                raise LimitExceeded(
                    "this graph is full: it holds the most entities, relations or bytes "
                    "allowed (MEMORY_MAX_ENTITIES_PER_TENANT, MEMORY_MAX_RELATIONS_PER_TENANT, "
                    "MEMORY_MAX_BYTES_PER_TENANT): delete what is no longer needed first"
                ) from None
            raise _Conflict(reasons) from None

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for tries in range(ATTEMPTS):
            try:
                return attempt()
            except _Conflict:
                time.sleep(0.02 * 2**tries * (0.5 + random.random()))  # noqa: S311 - jitter
        raise StoreUnavailable("too many concurrent changes to this graph; try again")

    def _check_room(self, what: str, count: int, limit: int) -> None:
        if count > limit:
            raise LimitExceeded(f"{count} new {what} exceed the limit of {limit} for this graph")

    # -- the store ----------------------------------------------------------------------

    async def create_entities(self, tenant: str, entities: Sequence[Entity]) -> list[Entity]:
        self._check_room("entities", len(entities), self.limits.entities_per_tenant)

        def attempt() -> list[Entity]:
            existing = self._get_many(tenant, [entity_key(e.name) for e in entities])
            new = [e for e in entities if entity_key(e.name) not in existing]
            if not new:
                return []
            created = f"{time.time_ns():020d}"
            actions = [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self._item(
                            tenant,
                            entity_key(e.name),
                            name=e.name,
                            entityType=e.entityType,
                            observations=e.observations,
                            version=0,
                            created=f"{created}.{index:03d}",
                        ),
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
                for index, e in enumerate(new)
            ]
            counter = self._counter(tenant, entities=len(new), size=sum(map(entity_bytes, new)))
            self._transact([*actions, counter], counter_last=True)
            return new

        return await self._run(lambda: self._retrying(attempt))

    async def create_relations(self, tenant: str, relations: Sequence[Relation]) -> list[Relation]:
        self._check_room("relations", len(relations), self.limits.relations_per_tenant)

        def attempt() -> list[Relation]:
            existing = self._get_many(tenant, [relation_key(r) for r in relations])
            new = [r for r in relations if relation_key(r) not in existing]
            if not new:
                return []
            created = f"{time.time_ns():020d}"
            actions = [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self._item(
                            tenant,
                            relation_key(r),
                            tk=target_key(r),
                            **r.dump(),
                            created=f"{created}.{index:03d}",
                        ),
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
                for index, r in enumerate(new)
            ]
            counter = self._counter(tenant, relations=len(new), size=sum(map(relation_bytes, new)))
            self._transact([*actions, counter], counter_last=True)
            return new

        return await self._run(lambda: self._retrying(attempt))

    def _update_observations(
        self, tenant: str, found: dict[str, dict], changed: dict[str, list[str]]
    ) -> None:
        """Write the changed lists, each only if its entity is still the version read, and
        count the change of size against the tenant's byte quota, in one transaction."""
        actions = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(tenant, entity_key(name)),
                    "UpdateExpression": "SET observations = :observations, version = :next",
                    "ConditionExpression": "version = :read",
                    "ExpressionAttributeValues": {
                        ":observations": self._to_dynamo(observations),
                        ":next": {"N": str(int(found[entity_key(name)]["version"]) + 1)},
                        ":read": {"N": str(int(found[entity_key(name)]["version"]))},
                    },
                }
            }
            for name, observations in changed.items()
        ]
        if actions:
            size = sum(
                observations_bytes(observations)
                - observations_bytes(found[entity_key(name)]["observations"])
                for name, observations in changed.items()
            )
            self._transact([*actions, self._counter(tenant, size=size)], counter_last=size > 0)

    async def add_observations(
        self, tenant: str, additions: Sequence[ObservationAddition]
    ) -> list[AddedObservations]:
        def attempt() -> list[AddedObservations]:
            found = self._get_many(tenant, [entity_key(a.entityName) for a in additions])
            existing = {item["name"]: list(item["observations"]) for item in found.values()}
            changed, results = merge_observations(existing, additions, self.limits)
            self._update_observations(tenant, found, changed)
            return results

        return await self._run(lambda: self._retrying(attempt))

    async def delete_observations(
        self, tenant: str, deletions: Sequence[ObservationDeletion]
    ) -> None:
        def attempt() -> None:
            found = self._get_many(tenant, [entity_key(d.entityName) for d in deletions])
            existing = {item["name"]: list(item["observations"]) for item in found.values()}
            self._update_observations(tenant, found, remove_observations(existing, deletions))

        await self._run(lambda: self._retrying(attempt))

    def _delete_keys(
        self, tenant: str, present: dict[str, dict], entities: int, relations: int, size: int
    ) -> None:
        """Delete existing items in one transaction, and count them off the tenant's totals.

        An entity is deleted only if it is still the version read: its size is what is
        counted off, so a concurrent change to its observations must not be counted twice
        (a delete racing delete_observations drove the byte count below zero: a quota
        bypass). A relation never changes once written."""
        actions = []
        for sk, item in present.items():
            delete: dict[str, Any] = {
                "TableName": self.table,
                "Key": self._key(tenant, sk),
                "ConditionExpression": "attribute_exists(sk)",
            }
            if "version" in item:
                delete["ConditionExpression"] = "version = :read"
                delete["ExpressionAttributeValues"] = {":read": {"N": str(int(item["version"]))}}
            actions.append({"Delete": delete})
        counter = self._counter(tenant, entities=-entities, relations=-relations, size=-size)
        self._transact([*actions, counter])

    def _delete_relations_now(self, tenant: str, keys: list[str]) -> None:
        for start in range(0, len(keys), TRANSACTION_ITEMS):
            chunk = keys[start : start + TRANSACTION_ITEMS]
            self._retrying(lambda chunk=chunk: self._delete_existing(tenant, chunk, "relations"))

    def _delete_existing(self, tenant: str, keys: list[str], kind: str) -> None:
        present = self._get_many(tenant, keys)
        if present:
            count = len(present)
            self._delete_keys(
                tenant,
                present,
                entities=count if kind == "entities" else 0,
                relations=count if kind == "relations" else 0,
                size=sum(_item_bytes(item) for item in present.values()),
            )

    async def delete_entities(self, tenant: str, names: Sequence[str]) -> None:
        def work() -> None:
            touching: list[str] = []
            for name in unique(names):
                touching += [item["sk"] for item in self._query(tenant, end_prefix(name))]
                touching += [item["sk"] for item in self._query(tenant, end_prefix(name), True)]
            self._delete_relations_now(tenant, unique(touching))
            keys = [entity_key(name) for name in unique(names)]
            self._retrying(lambda: self._delete_existing(tenant, keys, "entities"))

        await self._run(work)

    async def delete_relations(self, tenant: str, relations: Sequence[Relation]) -> None:
        await self._run(
            lambda: self._delete_relations_now(tenant, unique(relation_key(r) for r in relations))
        )

    async def read_graph(self, tenant: str) -> KnowledgeGraph:
        def work() -> KnowledgeGraph:
            items = sorted(self._query(tenant), key=lambda item: item.get("created", ""))
            return KnowledgeGraph(
                entities=[_entity(i) for i in items if i["sk"].startswith("E#")],
                relations=[_relation(i) for i in items if i["sk"].startswith("R#")],
            )

        return await self._run(work)

    async def read_nodes(self, tenant: str, names: Sequence[str]) -> KnowledgeGraph:
        """The named entities and the relations touching them: nothing else is read."""

        def work() -> KnowledgeGraph:
            found = self._get_many(tenant, [entity_key(name) for name in names])
            entities = sorted(found.values(), key=lambda item: item.get("created", ""))
            outgoing: list[dict] = []
            incoming: list[str] = []
            for item in entities:
                outgoing += self._query(tenant, end_prefix(item["name"]))
                incoming += [i["sk"] for i in self._query(tenant, end_prefix(item["name"]), True)]
            relations = {item["sk"]: item for item in outgoing}
            missing = [sk for sk in unique(incoming) if sk not in relations]
            relations.update(self._get_many(tenant, missing))
            ordered = sorted(relations.values(), key=lambda item: item.get("created", ""))
            kept = {item["name"] for item in entities}
            return KnowledgeGraph(
                entities=[_entity(item) for item in entities],
                relations=touching(map(_relation, ordered), kept),
            )

        return await self._run(work)


def _entity(item: dict[str, Any]) -> Entity:
    return Entity(
        name=item["name"], entityType=item["entityType"], observations=list(item["observations"])
    )


def _relation(item: dict[str, Any]) -> Relation:
    return Relation.model_validate(
        {"from": item["from"], "to": item["to"], "relationType": item["relationType"]}
    )


def _item_bytes(item: dict[str, Any]) -> int:
    """What a stored entity or relation counts against the tenant's byte quota."""
    if item["sk"].startswith("E#"):
        return entity_bytes(_entity(item))
    return relation_bytes(_relation(item))
