"""Fixtures shared by every test folder: artifacts are built once per test run.

Builds are the slowest thing the suite does, so each artifact is built by whichever
pytest-xdist worker asks first and reused by all others (fleet.testing.once).
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import pytest

from fleet.build import LAYERS, build_layer, build_service
from fleet.template import logical_id
from fleet.testing import once, shared_dir
from fleet.workspace import ServiceDir, find_root, service_dirs

ROOT = find_root(Path(__file__).parent)


def pytest_configure(config: pytest.Config) -> None:
    """Let Python cache bytecode for this run and every server it starts.

    With PYTHONDONTWRITEBYTECODE set and a virtualenv installed without bytecode (uv's
    default), each of the suite's many server starts would compile fastmcp and its
    dependencies from source again: about 1 s of CPU each. Built artifacts are unaffected:
    they ship their bytecode, and the benchmark sets the variable for its own processes.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


_sweeper: list[threading.Thread] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """Delete older runs' temporary folders now, beside the tests, not after the last one.

    pytest keeps the newest `tmp_path_retention_count` runs' folders and deletes the older
    ones as the session ends; a run's folder holds ~26,000 files (six built artifacts), and
    that deletion took 1.5-4 s of wall time after the last test. These are the same folders
    (numbered, unlocked, older than the ones kept), deleted in a thread while tests run.
    """
    config = session.config
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None or hasattr(config, "workerinput") or config.option.basetemp:
        return  # an xdist worker, or a --basetemp pytest empties itself
    current = factory.getbasetemp()
    number = re.compile(r"pytest-(\d+)")
    if (this_run := number.fullmatch(current.name)) is None:
        return
    oldest_kept = int(this_run[1]) - int(config.getini("tmp_path_retention_count")) + 1
    old = [
        path
        for path in current.parent.iterdir()
        if (match := number.fullmatch(path.name))
        and int(match[1]) < oldest_kept
        and not (path / ".lock").exists()  # another session still running
    ]
    if old:
        _sweeper.append(threading.Thread(target=_remove, args=(old,), daemon=True))
        _sweeper[-1].start()


def _remove(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """pytest's own clean-up of the same folders comes next: let the sweep finish first."""
    for thread in _sweeper:
        thread.join()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The cyclic collector as each service tunes it once started (mcp_common.entrypoint):
    what collection built (every imported module, every test item) lives as long as the run
    and is frozen out of its scans, and the young generation is collected less often. The
    objects tests make are still collected; moto- and fastmcp-heavy modules spend about a
    fifth less CPU."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than there are usable cores. A good part of the suite
    waits on servers it started (readiness, hung and dripping dependencies, deadlines), and
    the extra worker runs tests in those gaps."""
    return usable_cores() + 1


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota.

    `os.cpu_count()` counts the host's cores; in a container limited to two of them, a
    worker per host core would make every timed test race a dozen others for two cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    cores = cores or os.cpu_count() or 1
    for quota_file, period_file in (
        ("/sys/fs/cgroup/cpu.max", None),  # cgroup v2: "<quota> <period>" or "max <period>"
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ):
        try:
            fields = Path(quota_file).read_text().split()
            if period_file is not None:
                fields.append(Path(period_file).read_text().strip())
            quota, period = int(fields[0]), int(fields[1])
        except (OSError, ValueError, IndexError):
            continue  # no such file, or "max": no quota
        if quota > 0 and period > 0:
            return max(1, min(cores, -(-quota // period)))
    return cores


SHARED_BUILDS = ("host_twins", "lambda_build")
"""Session fixtures that build artifacts once per run (see `once`): a module's first such
fixture decides which build it waits for."""


def _only_the_selected_services(config: pytest.Config, items: list[pytest.Item]) -> None:
    """FLEET_TEST_SERVICES (set by `fleet affected`): leave out the cases a fleet-level test
    holds for any other service, and the other services' own test folders."""
    selected = {s for s in os.environ.get("FLEET_TEST_SERVICES", "").split(",") if s}
    if not selected:
        return
    others = {service.name for service in service_dirs(ROOT)} - selected
    kept, dropped = [], []
    for item in items:
        parts = item.nodeid.split("/")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (parts[0] == "services" and parts[1] in others) or others & {
            value for value in params.values() if isinstance(value, str)
        }:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules marked `slow` run first, so the workers finish together; among them,
    those waiting for different builds alternate, so the first two modules start both
    builds at once instead of one worker idling behind the other's build. Otherwise
    collection order, each module's tests together (pytest-xdist hands out whole files in
    this order: `--no-loadscope-reorder`)."""
    _only_the_selected_services(config, items)
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def build_of(module: list[pytest.Item]) -> str:
        needed = set().union(*(item.fixturenames for item in module))
        return next((name for name in SHARED_BUILDS if name in needed), "")

    queues: dict[str, list[list[pytest.Item]]] = {}
    rest: list[list[pytest.Item]] = []
    for module in modules.values():
        if module[0].get_closest_marker("slow") is None:
            rest.append(module)
        else:
            queues.setdefault(build_of(module), []).append(module)
    slow: list[list[pytest.Item]] = []
    while any(queues.values()):  # round robin: one module from each build's queue in turn
        slow += [queue.pop(0) for queue in queues.values() if queue]
    items[:] = [item for module in (*slow, *rest) for item in module]


def _build_all(platform: str):
    """Every service's artifact, built side by side: a build is mostly waiting on uv and
    the compiler in subprocesses, and the workers that need the artifacts wait meanwhile.

    For Lambda, laid out as `sam build` lays it out: `<Stack>/Function` per service and the
    shared layers beside them; for the host, one bundled twin per service."""

    def make(target: Path) -> None:
        def build(service: ServiceDir) -> None:
            out = target / (
                f"{logical_id(service.name)}/Function" if platform == "lambda" else service.name
            )
            build_service(ROOT, service, out, platform, log=lambda _: None)  # type: ignore[arg-type]

        def layer(kind: str) -> None:
            out = target / LAYERS[kind]  # type: ignore[index]
            build_layer(ROOT, kind, out, platform, log=lambda _: None)  # type: ignore[arg-type]

        with ThreadPoolExecutor() as pool:
            jobs = [pool.submit(build, service) for service in service_dirs(ROOT)]
            if platform == "lambda":
                jobs += [pool.submit(layer, kind) for kind in LAYERS]
            for job in jobs:
                job.result()  # re-raises a failed build

    return make


@pytest.fixture(scope="session")
def host_twins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every service's artifact built for this machine (`fleet build --platform host`), with
    the layers bundled in: it starts exactly as Lambda starts the real one, through its run.sh."""
    built = once(shared_dir(tmp_path_factory), "host-twins", _build_all("host"))
    return {s.name: built / s.name for s in service_dirs(ROOT)}


@pytest.fixture(scope="session")
def lambda_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every service and both shared layers built for Lambda (arm64, Python 3.13), laid out
    as `sam build` lays them out."""
    return once(shared_dir(tmp_path_factory), "aws-sam-build", _build_all("lambda"))


@pytest.fixture(scope="session")
def lambda_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of an interpreter shaped like Lambda's Python runtime: nothing but
    boto3 (which the runtime provides, so artifacts do not ship it). Everything else must
    come from the artifact."""

    def make(target: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
        pins = [f"{name}=={version(name)}" for name in ("boto3", "botocore")]
        python = str(target / "bin" / "python")
        subprocess.run(["uv", "pip", "install", "--quiet", "--python", python, *pins], check=True)

    return once(shared_dir(tmp_path_factory), "lambda-runtime", make) / "bin"
