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


def test_no_other_service_reaches_the_table():
    for service in service_dirs(ROOT):
        if service.name != "memory":
            text = json.dumps(load_template(service.path / "infra.yaml"))
            assert "dynamodb" not in text


def test_fleet_check_passes_it():
    [memory] = [service for service in service_dirs(ROOT) if service.name == "memory"]
    assert own_stack_faults(memory) == []
