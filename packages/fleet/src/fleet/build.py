"""Build what Lambda runs: one shared third-party layer, one shared `mcp_common` layer, and per
service an artifact of its own code only.

Third-party code is what most of the bytes are, and every service pins the same versions (one
uv.lock), so it is built once per fleet build and shipped once, as the `DepsLayer`; the fleet's
shared library is the `CommonLayer`. A change to a service's code uploads that service's small
artifact, and a change to `mcp_common` uploads one small layer. What never runs stays out:
distributions no service imports (a reviewed list), console scripts, and third-party sources
(their bytecode ships instead).

`sam build` runs these through Makefiles (BuildMethod: makefile): `infra/layers/*/Makefile`
for the layers, each service's Makefile for its function. For a host twin (`--platform host`)
the same code bundles all three into one folder, which starts locally exactly as Lambda starts
the real function: `run.sh` puts its own folder first on the path, then the layers' (/opt/python).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

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


def _interpreter(executable: str) -> tuple[tuple[int, int], str] | None:
    """`executable`'s (major, minor) version and the real interpreter behind it (a pyenv
    shim costs ~100 ms of shell on every start; the interpreter it picks does not)."""
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    major, minor, *real = result.stdout.strip().split(maxsplit=2)
    return (int(major), int(minor)), real[0] if real else executable  # sys.executable may be ""


def _is_script(path: str) -> bool:
    """Whether `path` is a script (`#!`) rather than an executable of its own."""
    try:
        with Path(path).open("rb") as file:
            return file.read(2) == b"#!"
    except OSError:
        return False


@functools.cache
def find_python(version: str) -> str | None:
    """An interpreter of exactly `version` (e.g. "3.13"): $FLEET_PYTHON313, PATH, pyenv, /usr.

    Looked up once per process, and resolved to the interpreter itself rather than a shim.
    A script on PATH (a pyenv shim: ~0.25 s of shell a start, in every per-service build of a
    `sam build`) is tried last, after the interpreters that start as themselves."""
    wanted = tuple(int(part) for part in version.split("."))
    env_name = "FLEET_PYTHON" + version.replace(".", "")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    on_path = shutil.which(f"python{version}")
    wrapper = on_path if on_path is not None and _is_script(on_path) else None
    candidates = [
        os.environ.get(env_name),
        None if wrapper else on_path,
        *map(
            str,
            sorted((pyenv_root / "versions").glob(f"{version}*/bin/python{version}"), reverse=True),
        ),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
        wrapper,
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            found = _interpreter(candidate)
            if found is not None and found[0] == wanted:
                return found[1]
    return None


def locked_requirements(root: Path, *packages: str, hashes: bool = True) -> str:
    """The third-party run-time dependencies of `packages` (together), pinned from uv.lock
    (requirements.txt)."""
    command = ["uv", "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-header"]
    for package in packages:
        command += ["--package", package]
    command += ["--format", "requirements.txt"]
    return run_command(command if hashes else [*command, "--no-hashes"], root)


def fleet_requirements(root: Path, hashes: bool = True) -> str:
    """What the shared third-party layer holds: every service's locked dependencies."""
    from fleet.workspace import service_dirs

    services = [service.distribution for service in service_dirs(root)]
    if not services:
        raise FleetError("no services under services/: nothing to build a layer for")
    return locked_requirements(root, *services, hashes=hashes)


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
            "--link-mode",
            "copy",  # never hard links into uv's cache: editing the layer must not edit it
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


UNUSED_DISTRIBUTIONS: Final[dict[str, str]] = {
    # Installed because a dependency declares them, never imported by a running service.
    # Evidence (2026-11-23): every module imported by the math and weather host twins,
    # recorded with PYTHONPROFILEIMPORTTIME across start-up in each auth mode (none,
    # api_key, jwt) and a call of every tool in both protocol eras. Every CI run checks
    # it again: tests/test_artifacts.py starts each pruned artifact, lists its tools and
    # calls every one of them, and fails on any import error. Review before adding.
    "aiofile": "fastmcp's file-backed key-value stores; stateless services keep none",
    "caio": "aiofile's async I/O backend",
    "authlib": "fastmcp's OAuth proxy server; services verify tokens with joserfc",
    "pyjwt": "fastmcp's OAuth proxy; services verify tokens with joserfc",
    "cyclopts": "the fastmcp command line",
    "rich-rst": "the fastmcp command line's help rendering",
    "docstring-parser": "the fastmcp command line's help",
    "markdown-it-py": "rich's Markdown rendering (a terminal feature)",
    "mdurl": "markdown-it-py's URL helpers",
    "pyperclip": "the fastmcp command line's clipboard support",
    "keyring": "the fastmcp client's token storage",
    "jeepney": "keyring's Linux Secret Service backend",
    "secretstorage": "keyring's Linux Secret Service backend",
    "jaraco.classes": "keyring",
    "jaraco-context": "keyring",
    "jaraco-functools": "keyring",
    "more-itertools": "jaraco's helpers",
    "email-validator": "pydantic's EmailStr, which no model uses",
    "dnspython": "email-validator's deliverability checks",
    "openapi-pydantic": "fastmcp's OpenAPI-to-MCP server generator",
    "jsonschema": "OpenAPI and client-side output validation; servers validate with pydantic",
    "jsonschema-path": "jsonschema's OpenAPI support",
    "jsonschema-specifications": "jsonschema's meta-schemas",
    "referencing": "jsonschema's $ref resolution",
    "rpds-py": "referencing's persistent data structures",
    "pathable": "jsonschema-path",
    "pycparser": "cffi's C parser, used when building cffi modules, never at run time",
    "websockets": "uvicorn's WebSocket protocol; entrypoint.serve runs uvicorn with ws='none'",
}
"""Distributions `fleet build` leaves out of every artifact, each with the reason it is safe."""


def _remove_distribution(out: Path, name: str) -> bool:
    """Delete every file a distribution installed (its RECORD), and its metadata."""
    normalized = re.sub(r"[-_.]+", "_", name).lower()
    for info in out.glob("*.dist-info"):
        project = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        if re.sub(r"[-_.]+", "_", project).lower() != normalized:
            continue
        record = info / "RECORD"
        for row in csv.reader(record.read_text(encoding="utf-8").splitlines()):
            if row and not row[0].startswith(".."):
                (out / row[0]).unlink(missing_ok=True)
        shutil.rmtree(info)
        return True
    return False


def _prune(out: Path) -> list[str]:
    """Drop what Lambda never runs: unused distributions, console scripts, .pth links, caches.

    Returns the distributions removed."""
    removed = [name for name in UNUSED_DISTRIBUTIONS if _remove_distribution(out, name)]
    shutil.rmtree(out / "bin", ignore_errors=True)
    (out / ".lock").unlink(missing_ok=True)  # uv's install lock
    for pth in out.glob("*.pth"):
        pth.unlink()
    for cache in list(out.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()  # left empty by a removed distribution
    return removed


def compile_interpreter(platform: Platform) -> str | None:
    """The interpreter that compiles the bytecode: the one that will run it."""
    return find_python(LAMBDA_PYTHON) if platform == "lambda" else sys.executable


def _compile_all(python: str, base: Path, *targets: str, options: tuple[str, ...] = ()) -> None:
    """Compile `targets` under `base`. Paths are recorded relative to `base` (`-s`) and the
    bytecode carries no timestamps, so the same code always compiles to the same bytes: an
    unchanged artifact is not uploaded again. (Imports fix each code object's file name.)"""
    command = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    run_command([*command, "-s", str(base), *options, *targets], base)


def compile_third_party(tree: Path, python: str) -> None:
    """Ship third-party packages as bytecode only: a sourceless `.pyc` where each `.py` was.

    The sources roughly double the zipped size and no service reads them; Lambda's code
    folder is read-only, so bytecode compiled now is the only bytecode there will be.
    """
    _compile_all(python, tree, str(tree), options=("-b",))
    for source in tree.rglob("*.py"):
        if source.with_suffix(".pyc").exists():
            source.unlink()


def compile_own(out: Path, own: tuple[str, ...], python: str) -> None:
    """The fleet's own packages keep their sources, so their tracebacks show lines."""
    _compile_all(python, out, *(str(out / name) for name in own))


BUILD_CACHE_ENTRIES: Final = 6
LAYER_FORMAT: Final = "layer-2: bytecode paths relative to the layer"
"""Part of every cached layer's key: change it when the way layers are made changes."""


def build_cache_dir() -> Path:
    """Where compiled third-party layers are kept: $FLEET_BUILD_CACHE, else the user cache."""
    configured = os.environ.get("FLEET_BUILD_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mcp-fleet" / "build"


def layer_key(requirements: str, platform: Platform, interpreter_version: str) -> str:
    """The third-party layer's cache key: the pinned requirements (with their hashes), the
    platform flags, the compiling interpreter's exact version and the prune list.

    The host interpreter counts by its version, not by the path of the virtual environment
    it sits in: every clone of the workspace shares one host layer."""
    pins = sorted(line for line in requirements.splitlines() if line and line[0] not in "# ")
    pins += [
        line.strip() for line in requirements.splitlines() if line.strip().startswith("--hash")
    ]
    flags = [flag for flag in install_flags(platform) if flag != sys.executable]
    key_text = "\n".join([LAYER_FORMAT, *pins, *flags, interpreter_version, *UNUSED_DISTRIBUTIONS])
    return hashlib.sha256(key_text.encode()).hexdigest()[:24]


def cache_disabled() -> bool:
    """FLEET_BUILD_CACHE=off: a release build that trusts nothing a previous build left."""
    return os.environ.get("FLEET_BUILD_CACHE", "").lower() in {"off", "0", "none", "false"}


def _manifest_path(layer: Path) -> Path:
    return layer.with_name(layer.name + ".sha256.json")


def _verified(layer: Path, log: Callable) -> bool:
    """A cached layer is used only if every file is the one its build wrote: anything added,
    removed or edited since (by another build's steps, a test, a person) throws it away."""
    from fleet.integrity import tree_digest

    manifest = _manifest_path(layer)
    try:
        expected = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        expected = None
    if expected == tree_digest(layer):
        return True
    log("the cached third-party layer changed after it was built: building it again")
    shutil.rmtree(layer, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    return False


def third_party_layer(
    root: Path,
    requirements: str,
    platform: Platform,
    python: str | None,
    log: Callable,
    cache: Path | None = None,
) -> Path:
    """The service's third-party packages, installed, pruned and compiled: built once per
    distinct input (`layer_key`) and reused by every later build (other services, other
    clones, `sam build` reruns) while its files still match their digests. The fleet's own
    code is never cached.
    """
    version = (
        subprocess.run(
            [python, "-c", "import sys; print(sys.version)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if python
        else "no bytecode"
    )
    key = layer_key(requirements, platform, version)
    cache = cache or build_cache_dir()
    layer = cache / key
    if layer.is_dir() and _verified(layer, log):
        log("reusing the compiled third-party layer (same pinned wheels, platform, interpreter)")
        os.utime(layer)
        return layer
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
    try:
        requirements_file = scratch / "requirements.txt"
        requirements_file.write_text(requirements)
        tree = scratch / "tree"
        log(f"installing third-party wheels ({platform})")
        install_requirements(root, tree, requirements_file, install_flags(platform))
        log(f"leaving out {len(UNUSED_DISTRIBUTIONS)} unused distributions")
        _prune(tree)
        refuse_path_entries(tree, "the third-party layer")
        if python is not None:
            log("precompiling third-party bytecode (sources left out)")
            compile_third_party(tree, python)
        from fleet.integrity import tree_digest

        digest = json.dumps(tree_digest(tree), sort_keys=True)
        with contextlib.suppress(OSError):  # another build made the same layer: use theirs
            tree.rename(layer)
            _manifest_path(layer).write_text(digest, encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _trim(cache)
    return layer


def refuse_own_build_steps(root: Path) -> None:
    """Stop every build while a service's Makefile says more than the shared build: `sam
    build` would run it with the builder's rights, before or after this build."""
    from fleet.integrity import makefile_faults

    faults = makefile_faults(root)
    if faults:
        raise FleetError("refusing to build:\n" + "\n".join(f"  {fault}" for fault in faults))


def refuse_path_entries(tree: Path, label: str) -> None:
    """Stop a build whose output would run code in, or replace part of, every process."""
    from fleet.integrity import path_entry_faults

    faults = path_entry_faults(tree, label)
    if faults:
        raise FleetError("refusing to build:\n" + "\n".join(f"  {fault}" for fault in faults))


def _trim(cache: Path) -> None:
    """Keep the most recently used layers only."""
    layers = sorted(
        (path for path in cache.iterdir() if path.is_dir() and "." not in path.name),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for stale in layers[BUILD_CACHE_ENTRIES:]:
        shutil.rmtree(stale, ignore_errors=True)
        _manifest_path(stale).unlink(missing_ok=True)


MARKER: Final = ".fleet-build"
"""Written into every folder `fleet build` fills: the proof that it may empty it again."""


def prepare_out(root: Path, out: Path, force: bool = False) -> None:
    """Empty `out` for a build, but only if `fleet build` made it (or `force` says so).

    Never the workspace, a folder holding it, or the home folder, whatever `force` says;
    never through a symbolic link (it would empty the folder the link points to).
    """
    if out.is_symlink():
        raise FleetError(f"--out {out} is a symbolic link: name the folder itself")
    out = out.resolve()
    protected = {root.resolve(), Path.home().resolve(), Path("/")}
    if out in protected or root.resolve().is_relative_to(out):
        raise FleetError(f"refusing to build into {out}: it holds the workspace or your home")
    if out.exists():
        if not out.is_dir():
            raise FleetError(f"--out {out} is a file, not a folder")
        if any(out.iterdir()):
            if not (out / MARKER).exists() and not force:
                raise FleetError(
                    f"--out {out} is not empty and was not made by `fleet build`; refusing to "
                    "delete what it holds (pick an empty or new folder, or pass --force)"
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `fleet build`; it empties this folder on the next build\n")


def _normalized(name: str) -> str:
    """A distribution name as the lock and installers compare it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _member_dir(root: Path, distribution: str) -> Path:
    """The workspace member whose pyproject names `distribution`."""
    members = [*root.glob("packages/*/pyproject.toml"), *root.glob("services/*/pyproject.toml")]
    for pyproject in sorted(members):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if _normalized(str(project.get("name", ""))) == _normalized(distribution):
            return pyproject.parent
    raise FleetError(f"no workspace member named {distribution!r}")


def source_files(root: Path, folder: Path) -> list[Path] | None:
    """The files of `folder` that git would commit (tracked, or new and not ignored), or
    None outside a git checkout. Ignored files (build output, caches) never ship."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--"]
    try:
        listed = subprocess.run(
            [*command, str(folder)], cwd=root, capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    names = sorted(set(filter(None, listed.stdout.decode().split("\0"))))
    return [root / name for name in names if (root / name).is_file()]


def install_workspace_members(root: Path, packages: tuple[str, ...], out: Path) -> None:
    """Copy the fleet's own `packages` into `out` from their source files, with the metadata
    that reports their version.

    No build backend runs: a member's pyproject cannot make its build execute code, and the
    same name and version always mean the files in the tree now, never a cached wheel."""
    for distribution in packages:
        member = _member_dir(root, distribution)
        module = distribution.replace("-", "_")
        source = member / "src" / module
        files = source_files(root, source)
        if files is None:  # not a git checkout: every file but caches
            files = [p for p in source.rglob("*") if p.is_file()]
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            target = out / module / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        project = tomllib.loads((member / "pyproject.toml").read_text(encoding="utf-8"))
        name, version = project["project"]["name"], project["project"]["version"]
        info = out / f"{module}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )


def source_commit(root: Path, *paths: str) -> str | None:
    """The commit that last changed `paths` (short), `-dirty` when they hold uncommitted
    changes; None outside a git checkout. It changes only when those paths do, so an artifact
    stamped with it is still built byte for byte the same from unchanged code."""
    try:
        last = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", *paths],
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths],
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if last.returncode != 0 or not last.stdout.strip():
        return None
    return last.stdout.strip() + ("-dirty" if changes.stdout.strip() else "")


def lock_hash(root: Path) -> str | None:
    """The digest of uv.lock, which names every third-party version the fleet runs."""
    lock = root / "uv.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16] if lock.is_file() else None


def _stamp(root: Path, package_dir: Path, source: str | None) -> None:
    """Write which source and lock a package was built from (read by ServiceSpec.build)."""
    from mcp_common.service import BUILD_STAMP

    stamp = {"source": source, "lock": lock_hash(root)}
    if package_dir.is_dir():
        stamp = {key: value for key, value in stamp.items() if value}
        (package_dir / BUILD_STAMP).write_text(json.dumps(stamp) + "\n")


def _layer_stamp(root: Path, target: Path, kind: str, content: Path) -> None:
    """What health reports for a layer: the digest of its content and of the lock."""
    from fleet.integrity import content_hash
    from mcp_common.service import LAYER_STAMP

    stamp = {"content": content_hash(content)[:16], "lock": lock_hash(root)}
    (target / LAYER_STAMP.format(kind=kind)).write_text(json.dumps(stamp) + "\n")


LayerKind = Literal["deps", "common"]
LAYERS: Final[dict[LayerKind, str]] = {
    "deps": "DepsLayer",
    "common": "CommonLayer",
}
"""The fleet's shared layers and their logical ids in template.yaml."""
LAYER_PYTHON_DIR: Final = "python"
"""A Python layer's folder: Lambda extracts layers into /opt, and run.sh puts /opt/python on
the path."""
COMMON_PACKAGES: Final = tuple(name.replace("-", "_") for name in WORKSPACE_LIBRARIES)


def _bytecode_interpreter(platform: Platform, say: Callable[[str], None]) -> str | None:
    python = compile_interpreter(platform)
    if python is None:
        say(
            "WARNING: no Python 3.13 interpreter found (set FLEET_PYTHON313 or install "
            "python3.13): the artifact ships WITHOUT bytecode and with every source, so every "
            "cold start compiles every module (about twice as slow) and it is larger."
        )
    return python


def _add_third_party(root: Path, target: Path, platform: Platform, python: str | None, say) -> None:
    say("exporting the fleet's locked dependencies")
    requirements = fleet_requirements(root)
    if cache_disabled():
        say("FLEET_BUILD_CACHE=off: building the third-party layer from the wheels alone")
        with tempfile.TemporaryDirectory(prefix="fleet-deps-") as scratch:
            layer = third_party_layer(root, requirements, platform, python, say, Path(scratch))
            shutil.copytree(layer, target, dirs_exist_ok=True)  # copies: nothing is shared
            _layer_stamp(root, target, "deps", layer)
        return
    layer = third_party_layer(root, requirements, platform, python, say)
    shutil.copytree(layer, target, dirs_exist_ok=True)  # copies: nothing is shared
    _layer_stamp(root, target, "deps", layer)


def _add_common(root: Path, target: Path, platform: Platform, python: str | None, say) -> None:
    say("building mcp_common from source")
    install_workspace_members(root, WORKSPACE_LIBRARIES, target)
    _stamp(root, target / "mcp_common", source_commit(root, "packages/mcp_common"))
    _prune(target)
    if python is not None:
        compile_own(target, COMMON_PACKAGES, python)
    _layer_stamp(root, target, "common", target / "mcp_common")


def _result(name: str, out: Path, started: float, python: str | None, say) -> BuildResult:
    files = [path for path in out.rglob("*") if path.is_file()]
    result = BuildResult(
        service=name,
        out=out,
        seconds=time.perf_counter() - started,
        files=len(files),
        bytes=sum(path.stat().st_size for path in files),
        bytecode_by=python,
    )
    say(f"done in {result.seconds:.1f}s: {result.files} files, {result.bytes / 1e6:.1f} MB")
    return result


def build_layer(
    root: Path,
    kind: LayerKind,
    out: Path,
    platform: Platform = "lambda",
    log: Callable = print,
    force: bool = False,
) -> BuildResult:
    """Build one of the fleet's shared layers into `out/python`: `deps` (every service's
    third-party packages, from the compiled cache when nothing changed) or `common`
    (mcp_common, always from source)."""
    if kind not in LAYERS:
        raise FleetError(f"no layer {kind!r}; layers: {', '.join(LAYERS)}")
    refuse_own_build_steps(root)
    started = time.perf_counter()
    prepare_out(root, out, force)
    say = lambda message: log(f"[{LAYERS[kind]}] {message}")
    python = _bytecode_interpreter(platform, say)
    target = out / LAYER_PYTHON_DIR
    target.mkdir()
    if kind == "deps":
        _add_third_party(root, target, platform, python, say)
    else:
        _add_common(root, target, platform, python, say)
    refuse_path_entries(target, LAYERS[kind])
    return _result(LAYERS[kind], out, started, python, say)


def build_service(
    root: Path,
    service: ServiceDir,
    out: Path,
    platform: Platform = "lambda",
    log: Callable = print,
    force: bool = False,
    bundle: bool | None = None,
) -> BuildResult:
    """Build `service`'s artifact into `out` (which must be empty or made by fleet build).

    For Lambda, the artifact is the service's own code and run.sh: the shared layers bring
    the rest. `bundle` (the default for `host`) adds the layers' contents to the folder, so
    it runs on its own: a host twin.
    """
    refuse_own_build_steps(root)
    started = time.perf_counter()
    if not (service.path / "run.sh").is_file():
        raise FleetError(f"service {service.name!r} has no run.sh")
    bundle = platform == "host" if bundle is None else bundle
    prepare_out(root, out, force)
    say = lambda message: log(f"[{service.name}] {message}")
    python = _bytecode_interpreter(platform, say)
    if bundle:
        _add_third_party(root, out, platform, python, say)
        _add_common(root, out, platform, python, say)
    say("building the service from source")
    install_workspace_members(root, (service.distribution,), out)
    _stamp(root, out / service.package, source_commit(root, f"services/{service.name}"))
    run_sh = out / "run.sh"
    shutil.copy2(service.path / "run.sh", run_sh)
    run_sh.chmod(0o755)
    _prune(out)  # caches
    refuse_path_entries(out, f"the {service.name} artifact")
    if python is not None:
        say("precompiling the service's bytecode")
        compile_own(out, (service.package,), python)
    return _result(service.name, out, started, python, say)


FRONTDOOR = Path("infra") / "frontdoor"
"""The front door's run.sh (mcp_common.frontdoor); fleet build --frontdoor adds its catalog."""


def own_deadline(outputs: dict) -> float | None:
    """The service's MCP_TOOL_TIMEOUT_SECONDS, from its own stack's `ToolTimeout` output when
    that is a number (a parameter's value is not known at build: the default applies)."""
    value = (outputs.get("ToolTimeout") or {}).get("Value")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def build_frontdoor(root: Path, out: Path, log: Callable = print, force: bool = False) -> Path:
    """The front door's artifact: its run.sh and catalog.json, the catalog built from every
    service's own discovery (their tools as declared) and each own stack's response mode, so
    a deploy never pairs the front door with another build's list."""
    import asyncio

    from fleet.catalog import frontdoor_catalog
    from fleet.template import OWN_TEMPLATE, load_template
    from fleet.workspace import service_dirs
    from mcp_common.app import build_server

    refuse_own_build_steps(root)
    prepare_out(root, out, force)
    services = service_dirs(root)
    specs = [service.load_spec() for service in services]
    catalog = asyncio.run(frontdoor_catalog([(spec, build_server(spec)) for spec in specs]))
    for service in services:
        own = service.path / OWN_TEMPLATE
        outputs = (load_template(own).get("Outputs") or {}) if own.is_file() else {}
        mode = (outputs.get("ResponseTransferMode") or {}).get("Value", "BUFFERED")
        catalog[service.name]["streaming"] = mode == "STREAM"
        deadline = own_deadline(outputs)
        if deadline is not None:  # the front door waits as long as the service does
            catalog[service.name]["deadline_seconds"] = deadline
    document = {
        "lock": lock_hash(root),
        "source": source_commit(root, str(FRONTDOOR)),
        "services": catalog,
    }
    (out / "catalog.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    run_sh = out / "run.sh"
    shutil.copy2(root / FRONTDOOR / "run.sh", run_sh)
    run_sh.chmod(0o755)
    tools = sum(len(entry["tools"]) for entry in catalog.values())
    log(f"[frontdoor] catalog: {len(catalog)} services, {tools} tools")
    return out
