"""`fleet check` finds every inconsistency between services/, template.yaml and tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.check import check_fleet
from fleet.cli import main
from fleet.testing import copy_workspace
from fleet.workspace import find_root

ROOT = find_root(Path(__file__).parent)


@pytest.fixture
def workspace(tmp_path) -> Path:
    return copy_workspace(ROOT, tmp_path / "repo")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_repository_is_consistent(capsys):
    assert check_fleet(ROOT) == []
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("fleet check: OK (")


def test_missing_function_and_orphan_function(workspace):
    edit(workspace / "template.yaml", "  MathFunction:\n", "  AbacusFunction:\n")
    faults = check_fleet(workspace)
    assert "services/math has no MathFunction in template.yaml" in faults
    assert "template.yaml function AbacusFunction has no service folder under services/" in faults


def test_wrong_architecture_runtime_and_layer(workspace):
    edit(
        workspace / "template.yaml", "    Architectures: [arm64]\n", "    Architectures: [x86_64]\n"
    )
    edit(workspace / "template.yaml", "    Runtime: python3.13\n", "    Runtime: python3.12\n")
    edit(workspace / "template.yaml", "LambdaAdapterLayerArm64:", "LambdaAdapterLayerX86:")
    faults = "\n".join(check_fleet(workspace))
    assert "MathFunction: Architectures must be [arm64]" in faults
    assert "WeatherFunction: Runtime must be python3.13" in faults
    assert "MathFunction: missing the Lambda Web Adapter layer" in faults


def test_shared_path_and_missing_env(workspace):
    edit(
        workspace / "template.yaml",
        "            Path: /weather/mcp\n",
        "            Path: /math/mcp\n",
    )
    edit(workspace / "template.yaml", "          AWS_LWA_READINESS_CHECK_PATH: /math/health\n", "")
    faults = "\n".join(check_fleet(workspace))
    assert (
        "route ANY /math/mcp is claimed by several functions: MathFunction, WeatherFunction"
        in faults
    )
    assert "WeatherFunction: route /math/mcp is outside /weather/" in faults
    assert "WeatherFunction: no API route for /weather/mcp" in faults
    assert "MathFunction: AWS_LWA_READINESS_CHECK_PATH must be /math/health" in faults


def test_undiscoverable_tools_are_a_fault(workspace, monkeypatch):
    tools = workspace / "services" / "math" / "src" / "math_service" / "tools"
    (tools / "broken.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(workspace / "services" / "math" / "src"))
    for name in [m for m in __import__("sys").modules if m.startswith("math_service")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    faults = "\n".join(check_fleet(workspace))
    assert "services/math: tools not discoverable" in faults
    assert "math_service.tools.broken" in faults


def test_cli_exits_non_zero_with_the_list(workspace, monkeypatch, capsys):
    edit(workspace / "template.yaml", "  MathMcpUrl:\n", "  AbacusUrl:\n")
    monkeypatch.setenv("FLEET_ROOT", str(workspace))
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "fleet check: 1 fault(s)" in err
    assert "template.yaml has no output MathMcpUrl" in err


def test_snapstart_hooks_under_a_route_and_an_old_adapter_are_faults(workspace):
    edit(
        workspace / "template.yaml",
        "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH: /_lifecycle/after-restore",
        "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH: /math/after-restore",
    )
    edit(workspace / "template.yaml", "    Default: 30\n", "    Default: 28\n")
    edit(
        workspace / "template.yaml",
        "      ApplyOn: !If [UseSnapStart, PublishedVersions, None]\n",
        "",
    )
    faults = "\n".join(check_fleet(workspace))
    assert (
        "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH /math/after-restore lies under an API route" in faults
    )
    assert "LambdaAdapterLayerVersion defaults to 28" in faults
    assert "MathFunction: SnapStart.ApplyOn is not set" in faults
