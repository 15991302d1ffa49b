"""Both stores behind one fixture: SQLite, and DynamoDB through moto with the template's table.

The service's modules (fastmcp) and boto3 are imported inside the fixtures: pytest loads
every conftest in the xdist controller too, which runs no test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet.template import load_template
from fleet.testing import fake_aws

if TYPE_CHECKING:
    from memory_service.graph import Limits

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def limits() -> Limits:
    """Limits small enough for a test to reach each of them."""
    from memory_service.graph import Limits

    return Limits(
        items_per_call=99,
        observation_bytes=4096,
        observations_per_entity=64,
        entities_per_tenant=50,
        relations_per_tenant=50,
        bytes_per_tenant=20_000,
    )


def memory_table_properties() -> dict:
    """The Table of services/memory/infra.yaml."""
    own = load_template(ROOT / "services" / "memory" / "infra.yaml")
    return own["Resources"]["Table"]["Properties"]


def create_memory_table(name: str = "memory") -> str:
    """The table exactly as the memory service's own stack declares it (keys, index), in moto."""
    import boto3

    properties = memory_table_properties()
    boto3.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        LocalSecondaryIndexes=properties["LocalSecondaryIndexes"],
        BillingMode=properties["BillingMode"],
    )
    return name


class AtomicCalls:
    """A boto3 client whose calls moto applies one at a time.

    DynamoDB applies each call atomically (a transaction's conditions and writes at once);
    moto, called from several threads, interleaves them inside one call. The races between
    calls (read, then a conditional write) stay: those are what the store must survive.
    """

    def __init__(self, client: object) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._client, name)
        if name == "exceptions" or not callable(attribute):
            return attribute

        def call(*args: object, **kwargs: object) -> object:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, limits):
    if request.param == "sqlite":
        from memory_service.sqlite_store import SQLiteStore

        yield SQLiteStore(tmp_path / "memory.sqlite", limits)
        return
    import boto3

    from memory_service.dynamodb_store import DynamoDBStore

    with fake_aws():
        client = AtomicCalls(boto3.client("dynamodb"))
        yield DynamoDBStore(create_memory_table(), limits, client=client)


@pytest.fixture
def aws() -> Iterator[None]:
    with fake_aws():
        yield


class CountingSlowCalls:
    """A DynamoDB client whose every call takes `delay` seconds and is counted."""

    def __init__(self, client: object, delay: float) -> None:
        self._client, self.delay, self.calls = client, delay, 0

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._client, name)
        if name == "exceptions" or not callable(attribute):
            return attribute

        def call(*args: object, **kwargs: object) -> object:
            import time

            self.calls += 1
            time.sleep(self.delay)
            return attribute(*args, **kwargs)

        return call


@pytest.fixture
def hub_store():
    """A DynamoDB store (moto) holding a hub: one entity that 200 others point at, so that
    opening or deleting it takes a page of its index and a batch read per 100 relations."""
    import boto3

    from memory_service.dynamodb_store import DynamoDBStore
    from memory_service.settings import MemorySettings

    with fake_aws():
        client = CountingSlowCalls(boto3.client("dynamodb"), delay=0.0)
        store = DynamoDBStore(create_memory_table(), MemorySettings().limits, client=client)
        asyncio.run(_fill_hub(store, [f"spoke-{i:03d}" for i in range(200)]))
        yield store, client


async def _fill_hub(store, spokes: list[str]) -> None:
    from memory_service.graph import Entity, Relation

    def entity(name: str) -> Entity:
        return Entity(name=name, entityType="thing", observations=[])

    await store.create_entities("ada", [entity("Hub")])
    for start in range(0, len(spokes), 99):
        chunk = spokes[start : start + 99]
        await store.create_entities("ada", [entity(name) for name in chunk])
        links = [
            Relation.model_validate({"from": n, "relationType": "links", "to": "Hub"})
            for n in chunk
        ]
        await store.create_relations("ada", links)
