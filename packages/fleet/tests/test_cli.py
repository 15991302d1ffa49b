"""The `fleet` CLI's read-only verbs."""

from __future__ import annotations

import json

from fleet.cli import main


def test_list_prints_a_table_of_services_and_tools(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["SERVICE", "URL", "TOOL"]
    assert any(row.startswith("math ") and "http://127.0.0.1:8080/math/mcp" in row for row in rows)
    assert any(" evaluate " in row for row in rows)


def test_list_json_matches_the_dev_catalog_shape(capsys):
    assert main(["list", "--json", "--base-url", "https://api.example/prod"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    math = next(service for service in catalog["services"] if service["name"] == "math")
    assert math["mcp_url"] == "https://api.example/prod/math/mcp"


def test_outside_a_workspace_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEET_ROOT", raising=False)
    assert main(["list"]) == 1
    assert "no uv workspace found" in capsys.readouterr().err
