"""`fleet dev`'s app: every service at its own paths in one process, plus the catalog."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastmcp import Client

from fleet.dev import build_fleet_app
from fleet.testing import MCP_HEADERS, loopback_http, serve
from fleet.workspace import find_root, service_dirs


@pytest.fixture(scope="module")
def fleet_url() -> Iterator[str]:
    with serve(build_fleet_app(service_dirs(find_root()))) as base:
        yield base


def test_catalog_lists_every_service_with_urls_and_tools(fleet_url):
    catalog = loopback_http().get(f"{fleet_url}/").json()
    by_name = {service["name"]: service for service in catalog["services"]}
    assert set(by_name) == {service.name for service in service_dirs(find_root())}
    math = by_name["math"]
    assert math["mcp_url"] == f"{fleet_url}/math/mcp"
    assert math["health_url"] == f"{fleet_url}/math/health"
    assert "evaluate" in {tool["name"] for tool in math["tools"]}


def test_each_service_answers_at_its_paths(fleet_url):
    for service in service_dirs(find_root()):
        health = loopback_http().get(f"{fleet_url}/{service.name}/health")
        assert health.status_code == 200
        assert health.json()["service"] == service.name


async def test_mcp_client_through_the_fleet(fleet_url):
    async with Client(f"{fleet_url}/math/mcp") as client:
        assert (await client.call_tool("add", {"a": 40, "b": 2})).data == 42


def test_unknown_service_is_404_with_hints(fleet_url):
    response = loopback_http().post(f"{fleet_url}/nope/mcp", json={}, headers=MCP_HEADERS)
    assert response.status_code == 404
    assert "/math/mcp" in response.json()["services"]


@pytest.mark.parametrize("path", ["/", "/nope/mcp"])
def test_what_the_router_answers_itself_checks_the_host_too(fleet_url, path):
    """Regression: GET / answered a DNS-rebinding Host (evil.example) with the catalog,
    its URLs built from that Host, while /math/health answered 421."""
    port = fleet_url.rsplit(":", 1)[1]
    response = loopback_http().get(f"{fleet_url}{path}", headers={"host": f"evil.example:{port}"})
    assert response.status_code == 421
    assert "evil.example" not in response.text
    health = loopback_http().get(
        f"{fleet_url}/math/health", headers={"host": f"evil.example:{port}"}
    )
    assert health.status_code == 421


def test_the_open_auth_warning_is_printed_once_for_the_whole_fleet(caplog):
    """Regression: 50 services printed 50 MCP_AUTH=none warnings at every start."""
    import logging

    from mcp_common import app

    app._warn_open_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        build_fleet_app(service_dirs(find_root()))
        build_fleet_app(service_dirs(find_root()))
    warnings = [r for r in caplog.records if "MCP_AUTH=none" in r.getMessage()]
    assert len(warnings) == 1
