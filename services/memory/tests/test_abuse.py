"""The memory service under abuse, started as Lambda starts it (run.sh), over real HTTP.

One tenant's worst allowed calls must finish fast, stay within a memory bound and never stall
another tenant; every answer must stay within its size bound, saying when it was cut. The
bounds asserted here are stated in the README's memory table.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import pytest
from fastmcp import Client

from fleet.testing import dev_env, loopback_http, start_service
from mcp_common.apikeys import hash_key

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
KEYS = {"mallory": "mcpk_memory_mallory_0123456789", "victim": "mcpk_memory_victim_0123456789"}
KEYS |= {f"victim{n}": f"mcpk_memory_victim{n}_0123456789" for n in range(2, 6)}
VICTIMS = ("victim", "victim2", "victim3", "victim4", "victim5")
"""Other tenants, in turn on an open loop: each stays under the per-principal bound of calls
in flight (MCP_MAX_CALLS_PER_PRINCIPAL) unless its latency alone would fail the test."""
WORST_CALL_SECONDS = 2.0
OTHER_TENANT_P99_SECONDS = 1.0
PEAK_RSS_MB = 512
HUB_VICTIM_P99_SECONDS = 2.5
"""Another tenant's p99 while four hub-graph reads share two cores: 0.35 s measured alone,
1.5 s with a CPU burner per core (the bound holds there); the report saw 11.8 s."""


def env(store: Path, **values: str) -> dict[str, str]:
    records = [
        {"name": name, "sha256": hash_key(key), "services": ["memory"]}
        for name, key in KEYS.items()
    ]
    return dev_env(
        MCP_AUTH="api_key",
        MCP_API_KEYS=json.dumps(records),
        MEMORY_SQLITE_PATH=str(store),
        **values,
    )


def rpc(base: str, who: str, tool: str, arguments: dict) -> tuple[float, dict, int]:
    """(seconds, JSON-RPC response, response bytes) of one tools/call, as a client sends it."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    headers = {
        "authorization": f"Bearer {KEYS[who]}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-06-18",
    }
    started = time.perf_counter()
    response = loopback_http().post(f"{base}/memory/mcp", json=body, headers=headers, timeout=60)
    return time.perf_counter() - started, response.json(), len(response.content)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def text_of(answer: dict) -> str:
    return answer["result"]["content"][0]["text"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    store = tmp_path_factory.mktemp("abuse") / "memory.sqlite"
    with start_service(RUN_SH, "/memory/health", env(store)) as running:
        yield running


def test_the_reported_quadratic_call_is_refused_before_any_work(service):
    """Regression: 100 additions to one entity, 800 distinct strings each (a 574 KB body),
    burned 25 s of CPU under the store's write lock; every other tenant got "database is
    locked". Now the call is measured before any work and refused (99 additions here: the
    most a call may carry, so the per-entity bound is what refuses it)."""
    rpc(
        service.base,
        "mallory",
        "create_entities",
        {"entities": [{"name": "target", "entityType": "thing", "observations": []}]},
    )
    additions = [
        {"entityName": "target", "contents": [f"s{i}-{j}" for j in range(800)]} for i in range(99)
    ]
    seconds, answer, _ = rpc(
        service.base, "mallory", "add_observations", {"observations": additions}
    )
    assert seconds < WORST_CALL_SECONDS
    assert answer["result"]["isError"] is True
    assert "MEMORY_MAX_OBSERVATIONS_PER_ENTITY" in text_of(answer)


async def test_worst_allowed_calls_are_fast_bounded_and_never_stall_another_tenant(service):
    """Mallory's heaviest allowed writes, while the victim reads and searches its own graph."""
    victim_latencies: list[float] = []
    stop = asyncio.Event()

    async def victim() -> None:
        async with Client(f"{service.base}/memory/mcp", auth=KEYS["victim"]) as client:
            await client.call_tool(
                "create_entities",
                {"entities": [{"name": "mine", "entityType": "note", "observations": ["hello"]}]},
            )
            while not stop.is_set():
                for tool, arguments in (("read_graph", {}), ("search_nodes", {"query": "hel"})):
                    started = time.perf_counter()
                    result = await client.call_tool(tool, arguments)
                    victim_latencies.append(time.perf_counter() - started)
                    assert [e["name"] for e in result.structured_content["entities"]] == ["mine"]

    def worst_calls() -> list[float]:
        """Each of the largest calls the limits allow, one after the other."""
        timings = []
        big = "x" * 4000  # near MEMORY_MAX_OBSERVATION_BYTES
        entities = [
            {"name": f"bulk-{i}", "entityType": "thing", "observations": [f"{i}-{big}"[:4096]]}
            for i in range(99)
        ]
        timings.append(rpc(service.base, "mallory", "create_entities", {"entities": entities})[0])
        additions = [
            {"entityName": f"bulk-{i}", "contents": [f"more {i} {big}"[:4096]]} for i in range(99)
        ]
        timings.append(
            rpc(service.base, "mallory", "add_observations", {"observations": additions})[0]
        )
        for tool, arguments in (
            ("read_graph", {}),
            ("search_nodes", {"query": "x"}),
            ("open_nodes", {"names": [f"bulk-{i}" for i in range(99)]}),
            ("delete_observations", {"deletions": [
                {"entityName": f"bulk-{i}", "observations": [f"more {i} {big}"[:4096]]}
                for i in range(99)
            ]}),
        ):  # fmt: skip
            timings.append(rpc(service.base, "mallory", tool, arguments)[0])
        return timings

    reader = asyncio.create_task(victim())
    await asyncio.sleep(0.5)
    timings = await asyncio.to_thread(worst_calls)
    stop.set()
    await reader
    assert max(timings) < WORST_CALL_SECONDS, timings
    ordered = sorted(victim_latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    assert len(ordered) >= 10
    assert p99 < OTHER_TENANT_P99_SECONDS, (p99, statistics.median(ordered))
    assert peak_rss_mb(service.process.pid) < PEAK_RSS_MB
    assert "database is locked" not in service.output()


def test_a_full_graph_is_refused_more_and_answers_within_its_bound(tmp_path):
    """The byte quota holds; read_graph on a graph larger than an answer says it was cut."""
    limits = {"MEMORY_MAX_BYTES_PER_TENANT": "400000", "MEMORY_MAX_ANSWER_BYTES": "300000"}
    with start_service(RUN_SH, "/memory/health", env(tmp_path / "m.sqlite", **limits)) as running:
        page = "q" * 4000
        refused = None
        for call in range(20):
            entities = [
                {"name": f"e{call}-{i}", "entityType": "t", "observations": [f"{i}{page}"[:4096]]}
                for i in range(20)
            ]
            _, answer, _ = rpc(running.base, "mallory", "create_entities", {"entities": entities})
            assert "result" in answer, answer  # a protocol error here says why in the report
            if answer["result"].get("isError"):
                refused = text_of(answer)
                break
        assert refused is not None
        assert "MEMORY_MAX_BYTES_PER_TENANT" in refused
        _, graph, size = rpc(running.base, "mallory", "read_graph", {})
        structured = graph["result"]["structuredContent"]
        assert structured["truncated"] is True
        assert "search_nodes" in structured["message"]
        assert 0 < len(structured["entities"]) < 100
        assert size <= 300_000 + 2_000  # the bound, and the JSON-RPC envelope
        _, opened, _ = rpc(running.base, "mallory", "open_nodes", {"names": ["e0-0", "nope"]})
        assert [e["name"] for e in opened["result"]["structuredContent"]["entities"]] == ["e0-0"]


HUB_ENTITIES, HUB_RELATIONS = 10_000, 50_000


def hub_graph(path: Path, tenant: str) -> None:
    """A legal graph of the worst shape the report found: the most entities, the most
    relations, all of them on 99 hub entities (built in-process: the same store)."""
    from memory_service.graph import Entity, Relation
    from memory_service.settings import get_settings
    from memory_service.sqlite_store import SQLiteStore

    store = SQLiteStore(path, get_settings().limits)
    names = [f"e{i:05d}" for i in range(HUB_ENTITIES)]
    relations = [
        Relation.model_validate(
            {"from": hub, "to": names[(k * 7 + j) % HUB_ENTITIES], "relationType": "r"}
        )
        for j, hub in enumerate(names[:99])
        for k in range(HUB_RELATIONS // 99)
    ]

    async def fill() -> None:
        await store.create_entities(
            tenant, [Entity(name=n, entityType="t", observations=[]) for n in names]
        )
        await store.create_relations(tenant, relations)

    asyncio.run(fill())
    store.close()


async def test_a_hub_shaped_graph_never_stalls_another_tenant(tmp_path):
    """The report: with a legal hub-shaped graph, read_graph took 10.8 s, 12 concurrent reads
    answered at 47.6 s and peaked at 518 MB, and another tenant reading at 10 requests/s saw a
    p99 of 11.8 s. The victim here arrives at a fixed rate (an open loop: a stall shows as a
    queue, not as fewer samples) while mallory's heavy reads run 12 at a time."""
    store = tmp_path / "hub.sqlite"
    await asyncio.to_thread(hub_graph, store, "mallory")
    with start_service(RUN_SH, "/memory/health", env(store)) as running:
        base = running.base
        mine = {"entities": [{"name": "mine", "entityType": "n", "observations": ["hi"]}]}
        for who in VICTIMS:
            rpc(base, who, "create_entities", mine)
        victim: list[float] = []
        turn = iter(range(1_000_000))

        async def one_victim_read() -> None:
            who = VICTIMS[next(turn) % len(VICTIMS)]
            seconds, answer, _ = await asyncio.to_thread(rpc, base, who, "read_graph", {})
            assert not answer["result"].get("isError"), answer
            names = [e["name"] for e in answer["result"]["structuredContent"]["entities"]]
            assert names == ["mine"]
            victim.append(seconds)

        async def open_loop(rate: float, seconds: float) -> None:
            calls = [asyncio.create_task(one_victim_read())]
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                await asyncio.sleep(max(0.0, len(calls) / rate - elapsed))
                calls.append(asyncio.create_task(one_victim_read()))
            await asyncio.gather(*calls)

        heavy = [
            ("read_graph", {}),
            ("search_nodes", {"query": "e0"}),
            ("open_nodes", {"names": [f"e{i:05d}" for i in range(99)]}),
        ]

        alone = [rpc(base, "mallory", tool, arguments)[0] for tool, arguments in heavy]

        def mallory() -> list[tuple[float, dict]]:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(12) as pool:
                calls = [pool.submit(rpc, base, "mallory", *heavy[i % 3]) for i in range(12)]
                return [call.result()[:2] for call in calls]

        reader = asyncio.create_task(open_loop(rate=10, seconds=4))
        together = await asyncio.to_thread(mallory)
        await reader
        peak = peak_rss_mb(running.process.pid)
    ordered = sorted(victim)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ran = [seconds for seconds, answer in together if not answer["result"].get("isError")]
    refused = [seconds for seconds, answer in together if answer["result"].get("isError")]
    print(
        f"hub graph: alone {alone}, 12 at once: {sorted(ran)} ran, {len(refused)} refused; "
        f"victim p99 {p99:.3f} s over {len(ordered)} reads, peak {peak:.0f} MB"
    )
    assert max(alone) < WORST_CALL_SECONDS, alone
    # One principal runs MCP_MAX_CALLS_PER_PRINCIPAL (4) at once; the rest are refused at once.
    assert len(ran) == 4
    assert max(refused) < WORST_CALL_SECONDS
    assert max(ran) < 4 * WORST_CALL_SECONDS, ran  # four sharing two cores
    assert p99 < HUB_VICTIM_P99_SECONDS, (p99, statistics.median(ordered))
    assert peak < PEAK_RSS_MB


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def test_the_answer_cap_holds_on_the_wire_at_every_revision(tmp_path):
    """The report: entities of 4-byte characters made a 3.4 MB answer at 2025-06-18 but
    7.2 MB at 2026-07-28, where the transport escapes non-ASCII (12 bytes an emoji) while the
    cap measured UTF-8. The cap now measures the escaped form."""
    cap = 40_000
    limits = {"MEMORY_MAX_ANSWER_BYTES": str(cap)}
    with start_service(RUN_SH, "/memory/health", env(tmp_path / "m.sqlite", **limits)) as running:
        for call in range(3):
            entities = [
                {"name": f"😀{call}-{i}", "entityType": "😀", "observations": ["😀" * 500]}
                for i in range(20)
            ]
            rpc(running.base, "mallory", "create_entities", {"entities": entities})
        for version in ("2025-06-18", "2026-07-28"):
            params: dict = {"name": "read_graph", "arguments": {}}
            headers = {
                "authorization": f"Bearer {KEYS['mallory']}",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": version,
            }
            if version == "2026-07-28":
                params["_meta"] = MODERN_META
                headers |= {"mcp-method": "tools/call", "mcp-name": "read_graph"}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
            response = loopback_http().post(
                f"{running.base}/memory/mcp", json=body, headers=headers
            )
            text = response.text
            data = text.split("data: ", 1)[1] if text.startswith(("event:", "data:")) else text
            assert json.loads(data)["result"]["structuredContent"]["truncated"] is True
            assert len(response.content) <= cap + 2_000, version  # the cap, and the envelope
