"""The memory service's own stack (services/memory/infra.yaml), as CloudFormation runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.check import own_stack_faults
from fleet.template import load_template
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
HERE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def own() -> dict:
    return load_template(HERE / "infra.yaml")


def test_the_table_is_durable_encrypted_on_demand_and_kept(own):
    table = own["Resources"]["Table"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    [index] = properties["LocalSecondaryIndexes"]
    assert index["IndexName"] == "by_target"


def test_the_function_gets_the_table_name(own):
    environment = own["Outputs"]["Environment"]["Value"]["Fn::Sub"]
    assert json.loads(environment.replace("${Table}", "t")) == {"MEMORY_TABLE_NAME": "t"}


def test_the_function_may_use_its_own_table_and_index_only(own):
    policy = own["Resources"]["TableAccess"]
    assert policy["Type"] == "AWS::IAM::RolePolicy"
    assert policy["Properties"]["RoleName"] == {"Ref": "Role"}  # the memory function's role
    [table] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(table["Action"]) == sorted(
        f"dynamodb:{action}"
        for action in (
            "GetItem",
            "BatchGetItem",
            "Query",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "ConditionCheckItem",
        )
    )
    assert table["Resource"] == [
        {"Fn::GetAtt": ["Table", "Arn"]},
        {"Fn::Sub": "${Table.Arn}/index/by_target"},
    ]


def test_the_table_is_reachable_from_memorys_role_alone():
    """What isolation means here, not which words other teams' stacks use: the table's only
    grant is to memory's own role, and it is named by CloudFormation after memory's stack,
    so every other role's permissions boundary (names starting with its own stack) excludes
    it (tests/test_boundary.py evaluates that boundary)."""
    own = load_template(ROOT / "services" / "memory" / "infra.yaml")["Resources"]
    assert "TableName" not in own["Table"]["Properties"]
    grants = [
        resource
        for resource in own.values()
        if resource["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy")
        and "Table" in json.dumps(resource["Properties"]["PolicyDocument"])
    ]
    assert grants
    for grant in grants:
        assert grant["Properties"].get("RoleName", {"Ref": "Role"}) == {"Ref": "Role"}
        assert grant["Properties"].get("Roles", [{"Ref": "Role"}]) == [{"Ref": "Role"}]
    assert "ResourcePolicy" not in own["Table"]["Properties"]  # no grant to anyone else


def test_fleet_check_passes_it():
    [memory] = [service for service in service_dirs(ROOT) if service.name == "memory"]
    assert own_stack_faults(memory) == []
