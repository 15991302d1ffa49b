"""The memory service started as Lambda starts it (run.sh), with two API keys: two graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastmcp import Client

from fleet.testing import dev_env, loopback_http, refused_start, start_service
from mcp_common.apikeys import hash_key
from memory_service.settings import default_sqlite_path

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
KEYS = {"ada": "mcpk_memory_ada_0123456789", "grace": "mcpk_memory_grace_0123456789"}


def env(store: Path) -> dict[str, str]:
    records = [
        {"name": name, "sha256": hash_key(key), "services": ["memory"]}
        for name, key in KEYS.items()
    ]
    return dev_env(
        MCP_AUTH="api_key", MCP_API_KEYS=json.dumps(records), MEMORY_SQLITE_PATH=str(store)
    )


def client(base: str, who: str) -> Client:
    return Client(f"{base}/memory/mcp", auth=KEYS[who])


async def test_two_principals_are_isolated_and_memory_survives_a_restart(tmp_path):
    store = tmp_path / "memory.sqlite"
    with start_service(RUN_SH, "/memory/health", env(store)) as service:
        async with client(service.base, "ada") as ada:
            await ada.call_tool(
                "create_entities",
                {
                    "entities": [
                        {"name": "Project X", "entityType": "project", "observations": ["secret"]}
                    ]
                },
            )
        async with client(service.base, "grace") as grace:
            graph = (await grace.call_tool("read_graph", {})).structured_content
            assert graph == {"entities": [], "relations": []}
            found = (await grace.call_tool("search_nodes", {"query": "secret"})).structured_content
            assert found["entities"] == []
            await grace.call_tool("delete_entities", {"entityNames": ["Project X"]})
            refused = await grace.call_tool(
                "add_observations",
                {"observations": [{"entityName": "Project X", "contents": ["mine now"]}]},
                raise_on_error=False,
            )
            assert refused.is_error  # grace has no such entity
        principals = {line.get("principal") for line in service.request_lines()}
        assert {"ada", "grace"} <= principals

    with start_service(RUN_SH, "/memory/health", env(store)) as restarted:
        async with client(restarted.base, "ada") as ada:
            graph = (await ada.call_tool("read_graph", {})).structured_content
    assert graph["entities"] == [
        {"name": "Project X", "entityType": "project", "observations": ["secret"]}
    ]


def test_without_a_table_it_keeps_a_local_sqlite_file_beside_the_workspace():
    root = Path(__file__).resolve().parents[3]
    assert default_sqlite_path() == root / ".fleet" / "memory.sqlite"  # git-ignored


def test_inside_lambda_a_missing_table_stops_start_up_loudly(tmp_path):
    inside_lambda = {"AWS_LAMBDA_FUNCTION_NAME": "MemoryFunction", "PORT": "1"}
    refusal = refused_start([str(RUN_SH)], {**env(tmp_path / "m.sqlite"), **inside_lambda})
    message = refusal.critical["message"]
    assert message.startswith("invalid configuration")  # ServiceSpec.settings, read first
    assert "MEMORY_TABLE_NAME must be set inside Lambda" in message


def memory_table_properties() -> dict:
    """The Table of the memory service's own stack (services/memory/infra.yaml)."""
    from fleet.template import load_template

    own = load_template(Path(__file__).resolve().parents[1] / "infra.yaml")
    return own["Resources"]["Table"]["Properties"]


async def test_with_a_table_it_uses_dynamodb_through_the_standard_endpoint_variable(tmp_path):
    import boto3

    from fleet.testing import AWS_TEST_ENV, moto_server

    properties = memory_table_properties()
    with moto_server() as endpoint:
        boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        ).create_table(
            TableName="memory-table",
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            LocalSecondaryIndexes=properties["LocalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
        )
        settings = {
            **env(tmp_path / "unused.sqlite"),
            **AWS_TEST_ENV,
            "MEMORY_TABLE_NAME": "memory-table",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        }
        with start_service(RUN_SH, "/memory/health", settings) as service:
            async with client(service.base, "ada") as ada:
                await ada.call_tool(
                    "create_entities",
                    {"entities": [{"name": "Ada", "entityType": "person", "observations": ["x"]}]},
                )
                graph = (await ada.call_tool("read_graph", {})).structured_content
    assert [entity["name"] for entity in graph["entities"]] == ["Ada"]
    assert not (tmp_path / "unused.sqlite").exists()  # SQLite was not used


async def test_the_local_store_is_private_to_its_owner(tmp_path):
    """Regression: .fleet/memory.sqlite (every local tenant's graph) was 0644 in a 0755 folder."""
    folder = tmp_path / "fresh" / ".fleet"
    with start_service(RUN_SH, "/memory/health", env(folder / "memory.sqlite")) as service:
        async with client(service.base, "ada") as ada:
            await ada.call_tool("read_graph", {})
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "memory.sqlite").stat().st_mode & 0o777 == 0o600
    # A file made before the rule is tightened on first use; a folder that is not the
    # workspace's own .fleet is left as its owner made it.
    (folder / "memory.sqlite").chmod(0o644)
    folder.chmod(0o755)
    with start_service(RUN_SH, "/memory/health", env(folder / "memory.sqlite")) as service:
        async with client(service.base, "ada") as ada:
            await ada.call_tool("read_graph", {})
    assert (folder / "memory.sqlite").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o755


async def test_a_revoked_keys_name_and_graph_are_not_handed_to_a_new_key(tmp_path, capsys):
    """Regression, through run.sh: `fleet keys revoke --name tester`, then `fleet keys create
    --name tester`, gave the new holder the old holder's graph. Now the name is refused
    unless `--reuse` says so on purpose."""
    import re

    from fleet.cli import main

    records = tmp_path / "keys.json"
    create = ["keys", "create", "--file", str(records), "--name", "tester", "--services", "memory"]
    assert main(create) == 0
    key = re.search(r"(mcpk_\S+)", capsys.readouterr().out)[1]
    store = tmp_path / "memory.sqlite"

    def started():
        settings = {**env(store), "MCP_API_KEYS": records.read_text()}
        return start_service(RUN_SH, "/memory/health", settings)

    with started() as service:
        async with Client(f"{service.base}/memory/mcp", auth=key) as tester:
            entity = {"name": "diary", "entityType": "note", "observations": ["private"]}
            await tester.call_tool("create_entities", {"entities": [entity]})
    assert main(["keys", "revoke", "--file", str(records), "--name", "tester"]) == 0
    assert main(create) == 1
    assert "was the name of a key revoked" in capsys.readouterr().err
    with started() as service:
        refused = loopback_http().post(
            f"{service.base}/memory/mcp", json={}, headers={"authorization": f"Bearer {key}"}
        )
        assert refused.status_code == 401
