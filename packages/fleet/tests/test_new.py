"""`fleet new`: refused names change nothing; a new service is wired in, tested and checked."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.check import check_fleet
from fleet.cli import main
from fleet.new import create_service, remove_service
from fleet.template import (
    OWN_OUTPUTS,
    load_template,
    logical_id,
    registered_services,
    registration_lines,
)
from fleet.testing import copy_workspace
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    copy = copy_workspace(ROOT, tmp_path / "repo")
    monkeypatch.setenv("FLEET_ROOT", str(copy))
    return copy


def fingerprint(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def unused_name(prefix: str = "probe") -> str:
    """A service name that cannot exist already, whatever services the repository has."""
    existing = {service.name for service in service_dirs(ROOT)}
    while (name := f"{prefix}{secrets.token_hex(3)}") in existing:
        pass
    return name


EXISTING = next(s.name for s in service_dirs(ROOT) if s.name not in sys.stdlib_module_names)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Billing", "invalid service name 'Billing': use a lowercase identifier"),
        ("bill-ing", "use a lowercase identifier"),
        ("9lives", "use a lowercase identifier"),
        ("json", "would shadow Python's standard library module"),
        ("asyncio", "would shadow Python's standard library module"),
        ("class", "Python keyword"),
        ("math", "would shadow Python's standard library module"),
        (EXISTING, f"service {EXISTING!r} already exists"),
        ("fleet", "reserved by the fleet"),
    ],
)
def test_refused_names_change_nothing(workspace, capsys, name, message):
    before = fingerprint(workspace)
    assert main(["new", name, "--no-lock"]) == 1
    assert message in capsys.readouterr().err
    assert fingerprint(workspace) == before


def test_new_service_is_registered_and_owns_its_folder(workspace, monkeypatch):
    name = unused_name()
    before = fingerprint(workspace)
    template_before = (workspace / "template.yaml").read_text()
    create_service(workspace, name, lock=False, log=lambda _: None)
    service = workspace / "services" / name
    assert os.access(service / "run.sh", os.X_OK)
    assert (service / "src" / f"{name}_service" / "tools" / "greeting.py").is_file()
    assert "infra/service.mk" in (service / "Makefile").read_text()
    own = load_template(service / "infra.yaml")
    assert set(OWN_OUTPUTS) <= set(own["Outputs"])
    # Outside its folder only template.yaml changed, by its registration lines, and
    # everything that was there is still there, in order, comments included.
    after = fingerprint(workspace)
    changed = {path for path in after if before.get(path) != after[path]}
    assert {path for path in changed if not path.startswith(f"services/{name}/")} == {
        "template.yaml"
    }
    template_text = (workspace / "template.yaml").read_text()
    added = len(template_text.splitlines()) - len(template_before.splitlines())
    assert added == registration_lines(name) <= 12
    lines_before = [line for line in template_before.splitlines() if line.strip()]
    remaining = iter(template_text.splitlines())
    assert all(any(line == other for other in remaining) for line in lines_before)
    template = load_template(workspace / "template.yaml")
    places = registered_services(template)[name]
    assert f"route /{name}/{{proxy+}}" in places
    assert f"nested stack {logical_id(name)}" in places
    stack = template["Resources"][logical_id(name)]["Properties"]
    assert stack["Parameters"]["Service"] == name
    assert stack["TemplateURL"] == "infra/service.yaml"
    monkeypatch.syspath_prepend(str(service / "src"))  # as `uv sync` would install it
    assert check_fleet(workspace) == []  # the scaffold passes fleet check as written


def test_remove_is_the_inverse_of_new(workspace, capsys):
    name = unused_name()
    before = fingerprint(workspace)
    create_service(workspace, name, lock=False, log=lambda _: None)
    assert main(["remove", name, "--no-lock", "--force"]) == 0
    assert "deletes its stack" in capsys.readouterr().out
    assert fingerprint(workspace) == before


def test_remove_cleans_up_after_a_folder_deleted_by_hand(workspace):
    import shutil

    service = service_dirs(workspace)[0].name
    shutil.rmtree(workspace / "services" / service)
    assert any("still registers" in fault for fault in check_fleet(workspace))
    assert remove_service(workspace, service, lock=False, log=lambda _: None) == registration_lines(
        service
    )
    assert service not in registered_services(load_template(workspace / "template.yaml"))


def test_remove_refuses_work_git_does_not_have_and_unknown_names(workspace, capsys):
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    service = service_dirs(workspace)[0]
    (service.path / "notes.txt").write_text("not committed anywhere")
    before = fingerprint(workspace)
    assert main(["remove", service.name, "--no-lock"]) == 1
    assert "holds work git does not have" in capsys.readouterr().err
    assert main(["remove", "no_such_service", "--no-lock"]) == 1
    assert "no service 'no_such_service'" in capsys.readouterr().err
    assert fingerprint(workspace) == before


def test_a_service_that_would_cross_a_limit_is_refused(workspace, capsys):
    """With the REST API's resource quota at what the fleet uses now, one more is refused."""
    from fleet.limits import fleet_usage

    [api] = [u for u in fleet_usage(workspace) if u.name == "REST API: resources"]
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + f"\n[tool.fleet]\napi-resources-per-api = {api.used}\n"
    )
    before = fingerprint(workspace)
    assert main(["new", unused_name(), "--no-lock"]) == 1
    assert "would cross a limit: REST API: resources would be" in capsys.readouterr().err
    assert fingerprint(workspace) == before


def test_several_services_at_once_are_one_check_and_one_lock(workspace, capsys):
    names = [unused_name("batch") + suffix for suffix in ("a", "b", "c")]
    assert main(["new", *names, "--no-lock"]) == 0
    assert f"uv run pytest {' '.join(f'services/{n}' for n in names)}" in capsys.readouterr().out
    registered = registered_services(load_template(workspace / "template.yaml"))
    for name in names:
        assert (workspace / "services" / name / "infra.yaml").is_file()
        assert f"nested stack {logical_id(name)}" in registered[name]
    assert main(["new", "twice_x", "twice_x", "--no-lock"]) == 1
    assert "given twice" in capsys.readouterr().err


def test_a_batch_counts_its_new_services_in_the_account_quotas(workspace, capsys):
    """The folders do not exist yet when the quotas are checked: a batch that would reserve
    more concurrency than the account has is refused whole, though one service fits."""
    from fleet.limits import UNRESERVED_CONCURRENCY, fleet_usage

    [reserved] = [u for u in fleet_usage(workspace) if u.name.startswith("Lambda: reserved")]
    room_for_one = UNRESERVED_CONCURRENCY + reserved.used + reserved.per_service
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + f"\n[tool.fleet]\naccount-concurrency = {room_for_one}\n"
    )
    before = fingerprint(workspace)
    assert main(["new", unused_name("pair") + "a", unused_name("pair") + "b", "--no-lock"]) == 1
    assert "would cross a limit: Lambda: reserved concurrency" in capsys.readouterr().err
    assert fingerprint(workspace) == before
    assert main(["new", unused_name("single"), "--no-lock"]) == 0


@pytest.mark.parametrize("prefix", ["aprobe", "zprobe"])  # sorts before / after mcp_common
def test_generated_code_is_ruff_clean_as_written(workspace, prefix):
    """Regression: the scaffold's imports failed ruff's I001 in CI."""
    name = unused_name(prefix)
    create_service(workspace, name, lock=False, log=lambda _: None)
    ruff = str(Path(sys.executable).parent / "ruff")
    for command in ([ruff, "check", "--no-cache"], [ruff, "format", "--check", "--no-cache"]):
        result = subprocess.run(
            [*command, f"services/{name}"],
            cwd=workspace,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_end_to_end_new_service_locks_passes_its_tests_and_checks(workspace, monkeypatch, capsys):
    """The real thing: uv lock (touching only the new member), its tests, fleet check.

    CI goes further (.ci/scaffold-check): a fresh clone, `fleet new billing`, the README's
    `circle_area` tool, then ruff, fleet check and the whole test suite."""
    name = unused_name()
    lock_before = (workspace / "uv.lock").read_text().splitlines()
    create_service(workspace, name, lock=True, log=lambda _: None)
    lock_after = (workspace / "uv.lock").read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(lock_before, lock_after, n=0, lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert not [line for line in changed if line.startswith("-")], changed[:10]
    assert len(changed) < 20, changed  # the new member's entry, not a rewrite of the lock

    # Its own tests, as pytest would run them (plain async functions, no fixtures).
    monkeypatch.syspath_prepend(str(workspace / "services" / name / "src"))
    module_path = workspace / "services" / name / "tests" / "test_tools.py"
    spec = importlib.util.spec_from_file_location(f"scaffold_tests_{name}", module_path)
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    ran = [test for test_name, test in vars(tests).items() if test_name.startswith("test_")]
    for test in ran:
        asyncio.run(test())
    assert len(ran) == 3

    monkeypatch.setenv("FLEET_ROOT", str(workspace))
    capsys.readouterr()
    assert main(["check"]) == 0  # its tools are discoverable, too
    services = sorted(path.name for path in (workspace / "services").iterdir())
    shown = services if len(services) <= 12 else [*services[:10], "..."]  # as the CLI shows them
    expected = f"fleet check: OK ({len(services)} services: {', '.join(shown)})"
    assert expected in capsys.readouterr().out
