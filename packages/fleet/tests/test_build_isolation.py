"""One team's folder cannot put code into another team's artifact or the shared layers.

Each test is the attack: a Makefile with steps of its own, a poisoned cache entry, a wheel
that ships an auto-run or standard-library-named module, a tool module in an ignored folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from fleet.build import build_layer, build_service, third_party_layer
from fleet.check import check_artifacts, check_fleet
from fleet.testing import copy_workspace
from fleet.workspace import FleetError, find_root, service_dirs

ROOT = find_root(Path(__file__).parent)


def make_wheel(folder: Path, name: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel holding `files`: what any dependency could publish."""
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def quiet(_message: str) -> None:
    pass


@pytest.fixture
def workspace(tmp_path) -> Path:
    return copy_workspace(ROOT, tmp_path / "workspace")


def test_a_makefile_with_steps_of_its_own_is_refused_by_check_and_by_every_build(
    workspace, tmp_path
):
    """The reported attack: a recipe in one service's Makefile, run by `sam build`, wrote
    sitecustomize.py into the shared build cache."""
    service = service_dirs(workspace)[0]
    makefile = service.path / "Makefile"
    makefile.write_text(
        makefile.read_text() + "\nbuild-Function::\n\techo 'import os' > $(HOME)/sitecustomize.py\n"
    )
    faults = check_fleet(workspace)
    assert any(f"services/{service.name}/Makefile must be the one line" in f for f in faults)
    for build in (
        lambda: build_layer(workspace, "common", tmp_path / "layer", "host", quiet),
        lambda: build_service(
            workspace, service_dirs(workspace)[-1], tmp_path / "fn", "host", quiet
        ),
    ):
        with pytest.raises(FleetError, match=f"services/{service.name}/Makefile"):
            build()


def test_a_cached_layer_edited_after_its_build_is_rebuilt_not_shipped(tmp_path):
    wheel = make_wheel(tmp_path, "harmless", {"harmless/__init__.py": "VALUE = 1\n"})
    cache = tmp_path / "cache"
    layer = third_party_layer(ROOT, f"{wheel}\n", "host", None, quiet, cache)
    assert (layer / "harmless" / "__init__.py").is_file()
    (layer / "sitecustomize.py").write_text("import os; os.system('id')\n")  # the poison
    (layer / "harmless" / "__init__.py").write_text("VALUE = 2\n")
    messages: list[str] = []
    again = third_party_layer(ROOT, f"{wheel}\n", "host", None, messages.append, cache)
    assert not (again / "sitecustomize.py").exists()
    assert (again / "harmless" / "__init__.py").read_text() == "VALUE = 1\n"
    assert any("changed after it was built" in message for message in messages)


@pytest.mark.parametrize(
    ("module", "fault"),
    [
        ("sitecustomize.py", "would run at every interpreter start"),
        ("usercustomize.py", "would run at every interpreter start"),
        ("hmac.py", "shadows the standard library's 'hmac'"),
        ("json/__init__.py", "shadows the standard library's 'json'"),
    ],
)
def test_a_wheel_that_would_run_or_shadow_code_in_every_process_is_refused(tmp_path, module, fault):
    """A top-level hmac.py whose compare_digest always says yes let a wrong key in."""
    wheel = make_wheel(tmp_path, "evil", {module: "def compare_digest(a, b):\n    return True\n"})
    with pytest.raises(FleetError, match=fault):
        third_party_layer(ROOT, f"{wheel}\n", "host", None, quiet, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # nothing cached


def test_check_artifacts_refuses_what_would_run_in_every_process(tmp_path):
    function = tmp_path / "Svc" / "Function"
    function.mkdir(parents=True)
    (function / "run.sh").write_text("#!/bin/sh\n")
    (function / "run.sh").chmod(0o755)
    layer = tmp_path / "DepsLayer" / "python"
    layer.mkdir(parents=True)
    (layer / "sitecustomize.py").write_text("")
    (layer / "hmac.py").write_text("")
    (function / "zz.pth").write_text("import os\n")
    faults = check_artifacts(tmp_path)
    assert any("DepsLayer/python: sitecustomize.py" in fault for fault in faults)
    assert any("DepsLayer/python: hmac.py shadows" in fault for fault in faults)
    assert any("zz.pth" in fault for fault in faults)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_an_ignored_folder_never_ships_and_the_stamp_says_dirty_for_any_change(workspace, tmp_path):
    git(workspace, "init", "-q")
    git(workspace, "add", "-A")
    git(workspace, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    service = service_dirs(workspace)[0]
    hidden = service.package_dir / "tools" / "build" / "backdoor.py"  # build/ is git-ignored
    hidden.parent.mkdir(parents=True)
    hidden.write_text("raise SystemExit('shipped')\n")
    out = tmp_path / "fn"
    build_service(workspace, service, out, "host", quiet, bundle=False)
    assert not (out / service.package / "tools" / "build").exists()
    stamp = json.loads((out / service.package / "build.json").read_text())
    assert stamp["source"] == git(workspace, "log", "-1", "--format=%h")
    assert len(stamp["lock"]) == 16
    init = service.package_dir / "__init__.py"
    init.write_text(init.read_text() + "\n# edited\n")
    build_service(workspace, service, out, "host", quiet, bundle=False)
    assert json.loads((out / service.package / "build.json").read_text())["source"].endswith(
        "-dirty"
    )
