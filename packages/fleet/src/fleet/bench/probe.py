"""Measuring one server process: time to first answered tools/call, startup CPU and peak RSS."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.testing import stop

CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 40, "b": 2}},
}


def request_bytes(
    path: str, port: int, body: dict | None = None, headers: Mapping[str, str] | None = None
) -> bytes:
    payload = json.dumps(body or CALL).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: 127.0.0.1:{port}",
        "content-type: application/json",
        "accept: application/json, text/event-stream",
        "mcp-protocol-version: 2025-11-25",
        f"content-length: {len(payload)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def parse_head(head: bytes) -> tuple[int, int]:
    """(status, content-length) of an HTTP/1.1 response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, length


def read_response(sock: socket.socket, buffer: bytes = b"") -> tuple[int, bytes, bytes]:
    """(status, body, leftover) of one HTTP/1.1 response with a content-length."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status, length = parse_head(head)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return status, rest[:length], rest[length:]


def call_once(
    port: int, path: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None
) -> bool:
    """True when one tools/call is answered with the right sum."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request_bytes(path, port, headers=headers))
            status, body, _ = read_response(sock)
    except OSError:
        return False
    return status == 200 and b'"result":42' in body.replace(b" ", b"")


@dataclass(frozen=True)
class ColdStart:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def _proc_cpu_and_rss(pid: int) -> tuple[float, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def spawned(
    command: list[str], env: Mapping[str, str], cpu: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` (pinned to `cpu` when given); stop it on exit."""
    process = subprocess.Popen(
        command, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    try:
        yield process
    finally:
        stop(process)


def cold_start(
    command: list[str],
    env: Mapping[str, str],
    path: str,
    cpu: int | None = None,
    timeout: float = 60.0,
    headers: Mapping[str, str] | None = None,
) -> ColdStart:
    """Spawn, then poll tools/call until answered: the time a client waits on a cold start."""
    port = free_port()
    full_env = {**env, "PORT": str(port)}
    started = time.perf_counter()
    with spawned(command, full_env, cpu) as process:
        while not call_once(port, path, timeout=1.0, headers=headers):
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode} before answering")
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{command} did not answer within {timeout}s")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        cpu_seconds, rss = _proc_cpu_and_rss(process.pid)
    return ColdStart(elapsed, cpu_seconds, rss)
