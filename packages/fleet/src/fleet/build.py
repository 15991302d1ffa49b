"""Build a service's Lambda artifact: locked wheels for arm64/3.13, fresh workspace code, bytecode.

`sam build` runs this through each service's Makefile (BuildMethod: makefile), and
the same code builds a host-platform twin that starts locally exactly as Lambda
starts the real one (`run.sh` with only the artifact on the path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet.workspace import FleetError, ServiceDir

Platform = Literal["lambda", "host"]
LAMBDA_PYTHON = "3.13"
LAMBDA_PLATFORM = "aarch64-manylinux_2_28"
WORKSPACE_LIBRARIES = ("mcp-common",)


@dataclass(frozen=True)
class BuildResult:
    service: str
    out: Path
    seconds: float
    files: int
    bytes: int
    bytecode_by: str | None


def run_command(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FleetError(
            f"`{' '.join(command)}` failed:\n{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def _python_version(executable: str) -> tuple[int, int] | None:
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    major, minor = result.stdout.split()
    return int(major), int(minor)


def find_python(version: str) -> str | None:
    """An interpreter of exactly `version` (e.g. "3.13"): $FLEET_PYTHON313, PATH, pyenv, /usr."""
    wanted = tuple(int(part) for part in version.split("."))
    env_name = "FLEET_PYTHON" + version.replace(".", "")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        os.environ.get(env_name),
        shutil.which(f"python{version}"),
        *map(
            str,
            sorted((pyenv_root / "versions").glob(f"{version}*/bin/python{version}"), reverse=True),
        ),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _python_version(candidate) == wanted:
            return candidate
    return None


def locked_requirements(root: Path, package: str, hashes: bool = True) -> str:
    """`package`'s third-party run-time dependencies, pinned from uv.lock (requirements.txt)."""
    command = ["uv", "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-header"]
    command += ["--package", package, "--format", "requirements.txt"]
    return run_command(command if hashes else [*command, "--no-hashes"], root)


def install_requirements(root: Path, target: Path, requirements: Path, flags: list[str]) -> None:
    """Install exactly the listed (locked, pinned) wheels into `target`, nothing else."""
    run_command(
        [
            "uv",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--no-deps",
            "-r",
            str(requirements),
            *flags,
        ],
        root,
    )


def install_flags(platform: Platform) -> list[str]:
    if platform == "lambda":
        return [
            "--python-platform",
            LAMBDA_PLATFORM,
            "--python-version",
            LAMBDA_PYTHON,
            "--only-binary",
            ":all:",
        ]
    return ["--python", sys.executable, "--only-binary", ":all:"]


def _prune(out: Path) -> None:
    """Drop what Lambda never runs: console scripts, .pth links, caches from the install."""
    shutil.rmtree(out / "bin", ignore_errors=True)
    for pth in out.glob("*.pth"):
        pth.unlink()
    for cache in list(out.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _compile(out: Path, platform: Platform, log: callable) -> str | None:
    """Precompile bytecode with the interpreter that will run it; Lambda's code dir is read-only."""
    python = find_python(LAMBDA_PYTHON) if platform == "lambda" else sys.executable
    if python is None:
        log(
            "WARNING: no Python 3.13 interpreter found (set FLEET_PYTHON313 or install python3.13): "
            "the artifact ships WITHOUT bytecode, so every cold start compiles every module "
            "(about twice as slow)."
        )
        return None
    run_command(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(out),
        ],
        out,
    )
    return python


def build_service(
    root: Path, service: ServiceDir, out: Path, platform: Platform = "lambda", log=print
) -> BuildResult:
    """Build `service`'s artifact into `out` (emptied first)."""
    started = time.perf_counter()
    if not (service.path / "run.sh").is_file():
        raise FleetError(f"service {service.name!r} has no run.sh")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    flags = install_flags(platform)
    with tempfile.TemporaryDirectory(prefix=f"fleet-build-{service.name}-") as scratch_dir:
        scratch = Path(scratch_dir)
        log(f"[{service.name}] exporting locked dependencies")
        requirements = scratch / "requirements.txt"
        requirements.write_text(locked_requirements(root, f"{service.name}-service"))
        log(f"[{service.name}] installing third-party wheels ({platform})")
        install_requirements(root, out, requirements, flags)
        log(f"[{service.name}] building workspace members from source")
        wheels = scratch / "wheels"
        for package in (*WORKSPACE_LIBRARIES, f"{service.name}-service"):
            run_command(
                [
                    "uv",
                    "build",
                    "--quiet",
                    "--wheel",
                    "--package",
                    package,
                    "--out-dir",
                    str(wheels),
                ],
                root,
            )
        # --no-cache: same name and version as last time must never mean last time's code.
        run_command(
            [
                "uv",
                "pip",
                "install",
                "--quiet",
                "--no-cache",
                "--reinstall",
                "--target",
                str(out),
                "--no-deps",
                *map(str, sorted(wheels.glob("*.whl"))),
                *flags,
            ],
            root,
        )
    run_sh = out / "run.sh"
    shutil.copy2(service.path / "run.sh", run_sh)
    run_sh.chmod(0o755)
    _prune(out)
    log(f"[{service.name}] precompiling bytecode")
    compiled_by = _compile(out, platform, log)
    files = [path for path in out.rglob("*") if path.is_file()]
    result = BuildResult(
        service=service.name,
        out=out,
        seconds=time.perf_counter() - started,
        files=len(files),
        bytes=sum(path.stat().st_size for path in files),
        bytecode_by=compiled_by,
    )
    log(
        f"[{service.name}] done in {result.seconds:.1f}s: {result.files} files, {result.bytes / 1e6:.1f} MB"
    )
    return result
