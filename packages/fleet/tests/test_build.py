"""`fleet build`: arm64-only and lean for Lambda, fresh workspace code, careful with --out."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from fleet.build import (
    LAMBDA_PYTHON,
    MARKER,
    UNUSED_DISTRIBUTIONS,
    build_service,
    find_python,
    install_workspace_members,
    layer_key,
    prepare_out,
)
from fleet.check import ELF_AARCH64, check_artifacts, elf_machine
from fleet.cli import main
from fleet.template import logical_id
from fleet.testing import copy_workspace
from fleet.workspace import FleetError, find_root, service_dirs

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

ROOT = find_root(Path(__file__).parent)
SERVICES = {service.name: service for service in service_dirs(ROOT)}


def test_every_shared_object_is_aarch64(lambda_build):
    objects = list(lambda_build.rglob("*.so"))
    assert objects, "expected compiled extensions (pydantic-core, ...)"
    assert {elf_machine(path) for path in objects} == {ELF_AARCH64}
    assert check_artifacts(lambda_build) == []


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_function_holds_only_its_own_code(lambda_build, service):
    """Everything else comes from the shared layers: a change to a service uploads only it."""
    artifact = lambda_build / logical_id(service) / "Function"
    assert (artifact / "run.sh").stat().st_mode & 0o111
    assert (artifact / SERVICES[service].package / "__main__.py").is_file()
    package = SERVICES[service].package
    infos = [info.name for info in artifact.glob("*.dist-info")]
    assert [info.split("-")[0] for info in infos] == [package]  # no other distribution
    assert {path.name for path in artifact.iterdir()} == {"run.sh", MARKER, package, *infos}


def test_the_layers_hold_the_rest_once(lambda_build):
    deps = lambda_build / "DepsLayer" / "python"
    common = lambda_build / "CommonLayer" / "python"
    assert (common / "mcp_common" / "app.py").is_file()
    assert not (deps / "mcp_common").exists()
    installed = {
        normalized(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        for info in deps.glob("*.dist-info")
    }
    assert "fastmcp" in installed
    assert installed.isdisjoint(normalized(name) for name in UNUSED_DISTRIBUTIONS)
    dev_only = {"bin", "fleet", "pytest", "_pytest", "moto", "ruff", "samcli", "tests"}
    services = {service.package for service in SERVICES.values()}
    assert {path.name for path in deps.iterdir()}.isdisjoint(dev_only | services)
    assert not list(deps.glob("*.pth"))


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_third_party_ships_as_bytecode_and_ours_keeps_its_sources(lambda_build):
    if find_python(LAMBDA_PYTHON) is None:  # here, not at collection: it starts interpreters
        pytest.skip("no Python 3.13 interpreter here")
    deps = lambda_build / "DepsLayer" / "python"
    assert not (deps / "fastmcp" / "server" / "server.py").exists()
    assert (deps / "fastmcp" / "server" / "server.pyc").is_file()
    common = lambda_build / "CommonLayer" / "python"
    assert (common / "mcp_common" / "app.py").is_file()  # our tracebacks keep source lines
    assert list((common / "mcp_common" / "__pycache__").glob("app.cpython-313.pyc"))


def test_the_same_code_builds_to_the_same_bytes(tmp_path):
    """`sam deploy` uploads an artifact whose content hash changed: a rebuild of unchanged
    code must not change a byte (no scratch paths, timestamps or install records)."""
    service = SERVICES["math"] if "math" in SERVICES else next(iter(SERVICES.values()))
    first = build_service(ROOT, service, tmp_path / "a", "host", log=lambda _: None, bundle=False)
    second = build_service(ROOT, service, tmp_path / "b", "host", log=lambda _: None, bundle=False)
    files = sorted(p.relative_to(first.out) for p in first.out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second.out) for p in second.out.rglob("*") if p.is_file())
    assert all((first.out / f).read_bytes() == (second.out / f).read_bytes() for f in files)


def looked_up(version: str) -> str | None:
    """find_python's answer now, not the one it cached for this process."""
    find_python.cache_clear()
    try:
        return find_python(version)
    finally:
        find_python.cache_clear()


def test_an_interpreter_behind_a_shim_is_found_as_itself(tmp_path, monkeypatch):
    """A wrapper script (as pyenv's shims are) resolves to the interpreter it runs, so the
    build's many compile steps do not start the wrapper's shell each time."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    shim = tmp_path / f"python{version}"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("FLEET_PYTHON" + version.replace(".", ""), str(shim))
    found = looked_up(version)
    assert found is not None
    assert Path(found).resolve() == Path(sys.executable).resolve()
    assert found != str(shim)


def test_a_shim_on_path_is_not_started_when_the_interpreter_itself_is_at_hand(
    tmp_path, monkeypatch
):
    """pyenv's shims are shell scripts that cost ~0.25 s a start, and every per-service
    `fleet build` of a `sam build` looked its interpreter up through one: about 48 s of CPU at 200
    services. An interpreter found as itself (here, pyenv's versions folder) is preferred."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    started = tmp_path / "shim-started"
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / f"python{version}"
    shim.write_text(f'#!/bin/sh\ntouch "{started}"\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    real = tmp_path / "pyenv" / "versions" / f"{version}.99" / "bin" / f"python{version}"
    real.parent.mkdir(parents=True)
    real.symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.delenv("FLEET_PYTHON" + version.replace(".", ""), raising=False)
    found = looked_up(version)
    assert found is not None
    assert Path(found).resolve() == Path(sys.executable).resolve()
    assert not started.exists()


def test_every_clone_shares_one_host_layer(monkeypatch):
    """The cached third-party layer is keyed by what shapes it, not by the path of the
    virtual environment: a fresh clone reuses the layer instead of rebuilding it."""
    pinned = "fastmcp==4.1.2 \\\n    --hash=sha256:0a1b\n"
    here = layer_key(pinned, "host", sys.version)
    monkeypatch.setattr(sys, "executable", "/elsewhere/clone/.venv/bin/python")
    assert layer_key(pinned, "host", sys.version) == here
    assert layer_key(pinned, "host", "3.12.0 (another interpreter)") != here
    assert layer_key(pinned, "lambda", sys.version) != here
    assert layer_key(pinned.replace("0a1b", "2c3d"), "host", sys.version) != here


def test_workspace_code_is_always_fresh(tmp_path):
    """A changed source file shows up in the next build, though the version did not change.

    On a copy of the workspace: builds running in parallel read the real one."""
    workspace = copy_workspace(ROOT, tmp_path / "workspace")
    marker = workspace / "packages" / "mcp_common" / "src" / "mcp_common" / "_build_probe.py"
    marker.write_text("VALUE = 1\n")
    install_workspace_members(workspace, ("mcp-common",), tmp_path / "a")
    marker.write_text("VALUE = 2\n")
    install_workspace_members(workspace, ("mcp-common",), tmp_path / "b")
    assert (tmp_path / "a" / "mcp_common" / "_build_probe.py").read_text() == "VALUE = 1\n"
    assert (tmp_path / "b" / "mcp_common" / "_build_probe.py").read_text() == "VALUE = 2\n"


class TestOutFolder:
    """Regression: `--out DIR` deleted DIR first, whatever it held (`--out .` the repository)."""

    def test_a_folder_it_did_not_make_is_left_alone(self, tmp_path, capsys):
        keep = tmp_path / "important" / "notes.txt"
        keep.parent.mkdir()
        keep.write_text("precious")
        assert main(["build", "math", "--out", str(tmp_path)]) == 1
        assert "not made by `fleet build`" in capsys.readouterr().err
        assert keep.read_text() == "precious"

    def test_its_own_folder_is_emptied_and_force_overrides(self, tmp_path):
        ours = tmp_path / "ours"
        prepare_out(ROOT, ours)
        (ours / "stale.txt").write_text("old build")
        prepare_out(ROOT, ours)
        assert sorted(path.name for path in ours.iterdir()) == [MARKER]
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        (theirs / "file").write_text("x")
        prepare_out(ROOT, theirs, force=True)
        assert sorted(path.name for path in theirs.iterdir()) == [MARKER]

    def test_a_symbolic_link_is_refused_even_with_force(self, tmp_path, capsys):
        """Regression: `--out link --force` emptied the folder the link pointed to."""
        precious = tmp_path / "precious"
        precious.mkdir()
        (precious / "notes.txt").write_text("keep")
        (tmp_path / "link").symlink_to(precious)
        assert main(["build", "math", "--out", str(tmp_path / "link"), "--force"]) == 1
        assert "symbolic link" in capsys.readouterr().err
        assert (precious / "notes.txt").read_text() == "keep"

    @pytest.mark.parametrize("where", [".", "..", "~", "/"])
    def test_the_workspace_and_home_are_never_emptied_even_with_force(self, where):
        target = {"~": Path.home(), "/": Path("/")}.get(where, ROOT / where)
        with pytest.raises(FleetError, match="refusing"):
            prepare_out(ROOT, target, force=True)
        assert (ROOT / "pyproject.toml").is_file()
