"""Prepare the variants, run them interleaved, and write the report (markdown table + PNG chart).

Every figure that matters is a ratio against a baseline measured in the same run, because
the machines this runs on are shared and noisy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fleet.bench.load import WarmResult, measure
from fleet.bench.probe import (
    ColdStart,
    call_once,
    cold_start,
    free_port,
    read_response,
    request_bytes,
    spawned,
)
from fleet.build import (
    LAYER_PYTHON_DIR,
    LAYERS,
    build_layer,
    build_service,
    install_flags,
    install_requirements,
    locked_requirements,
    run_command,
)
from fleet.workspace import service_dirs
from mcp_common.apikeys import hash_key

HERE = Path(__file__).parent
BENCH_KEY = "bench-key-not-a-secret"
MCP_PATH = "/math/mcp"
LAYERED = "math function + layers (as on Lambda)"
"""The same code as the bundled twin, laid out as Lambda runs it: the function's own folder
first on the path, then the shared layers (/opt/python there; FLEET_LAYERS_DIR here)."""
SERVER_CPU, LOAD_CPU = 0, 1


@dataclass
class Variant:
    name: str
    command: list[str]
    env: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    cold: list[ColdStart] = field(default_factory=list)
    warm1: list[WarmResult] = field(default_factory=list)
    warm16: list[WarmResult] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    runs: int = 7
    warm_runs: int = 3
    requests: int = 2000
    seconds: float = 5.0
    cold_build: bool = True


def _requirements(root: Path, package: str) -> str:
    return locked_requirements(root, package, hashes=False)


def _package_script_app(
    root: Path,
    out: Path,
    source: Path,
    requirements: str,
    compile_bytecode: bool,
    platform_flags: list[str],
) -> Path:
    """A one-file app with its wheels unzipped beside it, started by run.sh like a Lambda artifact."""
    out.mkdir(parents=True)
    reqs = out.parent / f"{out.name}-requirements.txt"
    reqs.write_text(requirements)
    install_requirements(root, out, reqs, platform_flags)
    shutil.copy2(source, out / "app.py")
    run_sh = out / "run.sh"
    run_sh.write_text('#!/bin/sh\ncd "$(dirname "$0")" && exec python app.py\n')
    run_sh.chmod(0o755)
    for cache in list(out.rglob("__pycache__")):
        shutil.rmtree(cache)
    if compile_bytecode:
        run_command([sys.executable, "-m", "compileall", "-q", "-j", "0", str(out)], root)
    return out


def prepare(
    root: Path, work: Path, log, artifact: Path | None = None
) -> tuple[list[Variant], dict[str, Path]]:
    """Build (or take) the math host twin, package the seed and the floor, list the variants."""
    services = {service.name: service for service in service_dirs(root)}
    if artifact is None:
        log("building the math artifact's host twin (same build as Lambda's)")
        math = services["math"]
        artifact = build_service(root, math, work / "math-artifact", "host", log=lambda _: None).out
    else:
        log(f"using the math artifact's host twin in {artifact}")
    log("building the math function and the shared layers apart, as Lambda lays them out")
    layered = work / "math-layered"
    build_service(
        root, services["math"], layered / "function", "host", lambda _: None, bundle=False
    )
    opt = layered / "opt"
    for kind in LAYERS:
        layer = build_layer(root, kind, layered / kind, "host", lambda _: None).out  # type: ignore[arg-type]
        shutil.copytree(
            layer / LAYER_PYTHON_DIR,
            opt / LAYER_PYTHON_DIR,
            dirs_exist_ok=True,
            copy_function=os.link,
        )
    log("packaging the seed design like SAM's default builder (wheels unzipped, no bytecode)")
    seed = _package_script_app(
        root,
        work / "seed",
        HERE / "seed_app.py",
        _requirements(root, "mcp-common"),
        False,
        install_flags("host"),
    )
    log("packaging the floor (bare ASGI JSON-RPC on uvicorn)")
    floor_reqs = "\n".join(
        line
        for line in _requirements(root, "mcp-common").splitlines()
        if line.split("==")[0].strip() in {"uvicorn", "h11", "click", "typing-extensions"}
    )
    floor = _package_script_app(
        root, work / "floor", HERE / "floor_app.py", floor_reqs, True, install_flags("host")
    )
    bare = work / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)

    records = json.dumps([{"name": "bench", "sha256": hash_key(BENCH_KEY), "services": ["*"]}])
    base_env = {
        "PATH": f"{bare / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's code directory is read-only: nothing gets cached
        "HOME": str(work),
        "LANG": "C.UTF-8",
    }
    ours = {
        **base_env,
        "MCP_AUTH": "api_key",
        "MCP_API_KEYS": records,
        "LOG_LEVEL": "INFO",
        "MCP_HOST": "127.0.0.1",
    }
    dev_python = str(root / ".venv" / "bin" / "python")
    dev_env = {**ours, "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    variants = [
        Variant("math artifact", [str(artifact / "run.sh")], ours, {"x-api-key": BENCH_KEY}),
        Variant(
            LAYERED,
            [str(layered / "function" / "run.sh")],
            {**ours, "FLEET_LAYERS_DIR": str(opt)},
            {"x-api-key": BENCH_KEY},
        ),
        Variant("seed (SAM default build)", [str(seed / "run.sh")], base_env),
        Variant("floor (bare ASGI)", [str(floor / "run.sh")], base_env),
        Variant(
            "math (dev env)", [dev_python, "-m", "math_service"], dev_env, {"x-api-key": BENCH_KEY}
        ),
        Variant(
            "seed (dev env)",
            [dev_python, str(HERE / "seed_app.py")],
            {**dev_env, "MCP_AUTH": "none"},
        ),
    ]
    return variants, {"math artifact": artifact, "seed": seed, "floor": floor, "layers": opt}


@dataclass
class FirstCalls:
    """Ready → first tools/call, warm calls, and the first call after the SnapStart hooks."""

    name: str
    first_ms: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    after_hooks_ms: list[float] = field(default_factory=list)


def _timed_call(port: int, headers: dict[str, str]) -> float:
    """Milliseconds for one tools/call on a fresh connection (as the Web Adapter's)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_bytes(MCP_PATH, port, headers=headers))
        status, body, _ = read_response(sock)
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200 or b'"result":42' not in body.replace(b" ", b""):
        raise RuntimeError(f"unexpected answer {status}: {body[:200]!r}")
    return elapsed


def _post(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=70) as sock:
        head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: 0\r\n\r\n"
        sock.sendall(head.encode())
        return read_response(sock)[0]


def run_first_calls(variant: Variant, runs: int, log, prime: bool = True) -> FirstCalls:
    """For each run: spawn, wait until health answers (the adapter's readiness check), time
    the first tools/call, then warm calls; then the SnapStart hooks and the first call after."""
    name = variant.name if prime else f"{variant.name} (MCP_PRIME=false)"
    result = FirstCalls(name)
    env = {**variant.env, "MCP_PRIME": "true" if prime else "false"}
    for _ in range(runs):
        port = free_port()
        with spawned(variant.command, {**env, "PORT": str(port)}, cpu=SERVER_CPU) as process:
            deadline = time.monotonic() + 60
            while not _healthy(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become ready")
                time.sleep(0.002)
            result.first_ms.append(_timed_call(port, variant.headers))
            result.warm_ms.append(median([_timed_call(port, variant.headers) for _ in range(20)]))
            for hook in ("/_lifecycle/before-checkpoint", "/_lifecycle/after-restore"):
                if _post(port, hook) != 200:
                    raise RuntimeError(f"{name}: {hook} failed")
            result.after_hooks_ms.append(_timed_call(port, variant.headers))
    log(
        f"first calls ({name}): ready → first {median(result.first_ms):.1f} ms, "
        f"warm {median(result.warm_ms):.1f} ms, after hooks {median(result.after_hooks_ms):.1f} ms"
    )
    return result


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"GET /math/health HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode())
            return read_response(sock)[0] == 200
    except OSError:
        return False


def run_cold(variants: list[Variant], runs: int, log) -> None:
    for index in range(runs):
        for variant in variants:  # interleaved: noise hits every variant alike
            variant.cold.append(
                cold_start(
                    variant.command, variant.env, MCP_PATH, cpu=SERVER_CPU, headers=variant.headers
                )
            )
        log(
            f"cold start run {index + 1}/{runs}: "
            + ", ".join(f"{v.name} {v.cold[-1].seconds:.2f}s" for v in variants)
        )


def run_warm(variants: list[Variant], settings: Settings, log) -> None:
    for index in range(settings.warm_runs):
        for variant in variants:
            port = free_port()
            with spawned(variant.command, {**variant.env, "PORT": str(port)}, cpu=SERVER_CPU):
                deadline = time.monotonic() + 60
                while not call_once(port, MCP_PATH, headers=variant.headers):
                    if time.monotonic() > deadline:
                        raise TimeoutError(variant.name)
                    time.sleep(0.01)
                warm_up = min(300, settings.requests * 10)
                measure(port, MCP_PATH, 4, warm_up, settings.seconds * 10, variant.headers)
                for concurrency, requests, results in (
                    (1, settings.requests, variant.warm1),
                    (16, 10**9, variant.warm16),
                ):
                    result = measure(
                        port, MCP_PATH, concurrency, requests, settings.seconds, variant.headers
                    )
                    if result.errors:  # timings of refused requests would measure the refusal
                        raise RuntimeError(
                            f"{variant.name}: {result.errors} requests did not answer 200"
                        )
                    results.append(result)
        log(
            f"warm run {index + 1}/{settings.warm_runs}: "
            + ", ".join(
                f"{v.name} p50 {v.warm1[-1].p50_ms:.2f}ms {v.warm16[-1].throughput_rps:.0f} rps"
                for v in variants
            )
        )


def dir_size(path: Path) -> tuple[int, int]:
    """(unzipped bytes, zipped bytes) of a directory, zipped as Lambda receives it."""
    files = [p for p in path.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for p in files:
                archive.write(p, p.relative_to(path))
        handle.seek(0, os.SEEK_END)
        zipped = handle.tell()
    return unzipped, zipped


def build_fleet(root: Path, out: Path, caches: Path) -> float:
    """Seconds to build every service for Lambda with uv's cache and fleet build's
    third-party cache under `caches` (empty: a cold build; used before: a warm one)."""
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(caches / "uv"),
        "FLEET_BUILD_CACHE": str(caches / "fleet-build"),
    }
    started = time.perf_counter()
    command = ["uv", "run", "--frozen", "fleet", "build"]
    for kind, name in LAYERS.items():
        run_command([*command, "--layer", kind, "--out", str(out / name)], root, env)
    for service in service_dirs(root):
        run_command([*command, service.name, "--out", str(out / service.name)], root, env)
    return time.perf_counter() - started


def sizes_and_builds(root: Path, work: Path, settings: Settings, log) -> dict[str, object]:
    caches = work / "build-caches"
    cold_seconds = None
    if settings.cold_build:
        log("building every service for Lambda with empty caches (downloads every wheel)")
        cold_seconds = build_fleet(root, work / "lambda-cold", caches)
    else:
        build_fleet(root, work / "lambda-cold", caches)
    log("building every service for Lambda again, caches warm")
    warm_seconds = build_fleet(root, work / "lambda-warm", caches)
    sizes = {
        f"{service.name} (function)": dir_size(work / "lambda-warm" / service.name)
        for service in service_dirs(root)
    }
    for name in LAYERS.values():
        sizes[f"{name} (shared)"] = dir_size(work / "lambda-warm" / name)
    seed_lambda = _package_script_app(
        root,
        work / "seed-lambda",
        HERE / "seed_app.py",
        _requirements(root, "mcp-common"),
        False,
        [
            "--python-platform",
            "aarch64-manylinux_2_28",
            "--python-version",
            "3.13",
            "--only-binary",
            ":all:",
        ],
    )
    sizes["seed (SAM default build)"] = dir_size(seed_lambda)
    return {"sizes": sizes, "build_warm_s": warm_seconds, "build_cold_s": cold_seconds}


def importtime_top(artifact: Path, python: str, count: int = 12) -> list[tuple[str, float, float]]:
    """(module, self ms, cumulative ms) of the slowest imports when the service starts."""
    code = "from mcp_common.app import create_app; from math_service import service; create_app(service)"
    result = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        cwd=artifact,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(artifact),
            "MCP_AUTH": "none",
            "HOME": str(artifact),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        rows.append((name, int(self_us) / 1000, int(cumulative_us) / 1000))
    rows.sort(key=lambda row: row[2], reverse=True)
    return rows[:count]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median(values: list[float]) -> float:
    return statistics.median(values)


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
