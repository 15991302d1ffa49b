"""The `fleet` CLI's read-only verbs."""

from __future__ import annotations

import json

from fleet.cli import main


def test_list_prints_a_table_of_services_and_tools(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["SERVICE", "URL", "TOOL"]
    from fleet.workspace import find_root, service_dirs

    for folder in service_dirs(find_root()):  # each service's first row names it and its URL
        url = f"http://127.0.0.1:8080/{folder.name}/mcp"
        assert any(row.startswith(f"{folder.name} ") and url in row for row in rows), folder.name


def test_list_json_matches_the_dev_catalog_shape(capsys):
    """Without --base-url: the repository's services, at the URLs `fleet dev` serves them."""
    from fleet.workspace import find_root, service_dirs

    assert main(["list", "--json"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    names = [folder.name for folder in service_dirs(find_root())]
    assert [service["name"] for service in catalog["services"]] == names
    for service in catalog["services"]:
        assert service["mcp_url"] == f"http://127.0.0.1:8080/{service['name']}/mcp"
        assert set(service) >= {"name", "mcp_url", "health_url", "tools"}


def test_list_from_a_fleet_that_cannot_be_reached_says_so_in_one_line(capsys):
    assert main(["list", "--base-url", "http://127.0.0.1:9", "--key", "k"]) == 1
    said = capsys.readouterr().err
    assert said.startswith("fleet: cannot read the catalog at http://127.0.0.1:9/mcp: "), said
    assert "Traceback" not in said


def test_outside_a_workspace_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEET_ROOT", raising=False)
    assert main(["list"]) == 1
    assert "no uv workspace found" in capsys.readouterr().err


def test_a_key_is_never_sent_in_clear_over_a_network(capsys):
    assert main(["list", "--base-url", "http://fleet.example.com/prod", "--key", "k"]) == 1
    said = capsys.readouterr().err
    assert "not sending a key or token in clear to fleet.example.com" in said
