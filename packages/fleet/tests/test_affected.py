"""`fleet affected`: a change inside one service runs that service's tests and the fleet's
cases for it; anything shared runs everything."""

from __future__ import annotations

from pathlib import Path

from fleet.affected import affected
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = [service.name for service in service_dirs(ROOT)]


def test_a_change_inside_one_service_selects_it_alone():
    service = SERVICES[-1]
    result = affected(ROOT, [f"services/{service}/src/x.py", f"services/{service}/infra.yaml"])
    assert not result.everything
    assert result.services == (service,)
    assert result.pytest_args() == [f"services/{service}/tests", "tests", "packages/fleet/tests"]
    assert result.environment() == {"FLEET_TEST_SERVICES": service}


def test_anything_shared_selects_everything():
    for path in (
        "packages/mcp_common/src/mcp_common/auth.py",
        "infra/service.yaml",
        "uv.lock",
        "template.yaml",
        ".ci/run",
    ):
        result = affected(ROOT, [f"services/{SERVICES[0]}/x.py", path])
        assert result.everything, path
        assert result.pytest_args() == []
    assert not affected(ROOT, ["README.md"]).everything


def test_the_fleet_tests_leave_out_the_other_services_cases(monkeypatch):
    """The root conftest's selection, on items shaped as pytest collects them."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)  # type: ignore[union-attr]
    chosen, *others = SERVICES
    items = [
        SimpleNamespace(nodeid=f"tests/test_template.py::test_route[{name}]",
                        callspec=SimpleNamespace(params={"service": name}))
        for name in SERVICES
    ] + [
        SimpleNamespace(nodeid=f"services/{name}/tests/test_tools.py::test_x", callspec=None)
        for name in SERVICES
    ] + [SimpleNamespace(nodeid="tests/test_template.py::test_shared", callspec=None)]  # fmt: skip
    dropped: list = []
    config = SimpleNamespace(
        hook=SimpleNamespace(pytest_deselected=lambda items: dropped.extend(items))
    )
    monkeypatch.setenv("FLEET_TEST_SERVICES", chosen)
    conftest._only_the_selected_services(config, items)
    kept = [item.nodeid for item in items]
    assert f"tests/test_template.py::test_route[{chosen}]" in kept
    assert f"services/{chosen}/tests/test_tools.py::test_x" in kept
    assert "tests/test_template.py::test_shared" in kept
    for other in others:
        assert not [nodeid for nodeid in kept if other in nodeid], other
    assert len(dropped) == 2 * len(others)
