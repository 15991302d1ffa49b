"""A lean HTTP/1.1 keep-alive load generator (asyncio streams), so the client is not the bottleneck."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.bench.probe import parse_head, request_bytes


@dataclass(frozen=True)
class WarmResult:
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    errors: int


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response: a content-length body, or a chunked one (an SSE answer, as the front
    door's)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, length = parse_head(head)
    if b"transfer-encoding: chunked" not in head.lower():
        return status, await reader.readexactly(length)
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        chunk = await reader.readexactly(size + 2)  # the chunk and its CRLF
        if size == 0:
            return status, b"".join(chunks)
        chunks.append(chunk[:-2])


async def _worker(
    port: int,
    request: bytes,
    deadline: float,
    budget: list[int],
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status, _ = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors[0] += 1
    finally:
        writer.close()


async def _run(
    port: int,
    path: str,
    concurrency: int,
    requests: int,
    seconds: float,
    headers: Mapping[str, str] | None,
    body: dict | None = None,
) -> WarmResult:
    request = request_bytes(path, port, body, headers=headers)
    latencies: list[float] = []
    errors = [0]
    budget = [requests]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(port, request, deadline, budget, latencies, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return WarmResult(
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        throughput_rps=len(ordered) / elapsed,
        errors=errors[0],
    )


def measure(
    port: int,
    path: str,
    concurrency: int,
    requests: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    body: dict | None = None,
) -> WarmResult:
    """Send up to `requests` tools/call requests (`body`, math's add by default), or for
    `seconds`, over `concurrency` connections."""
    return asyncio.run(_run(port, path, concurrency, requests, seconds, headers, body))
