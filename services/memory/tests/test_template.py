"""The memory service's block of template.yaml, as CloudFormation sees it (samtranslator)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform

from fleet.template import load_template

ROOT = Path(__file__).resolve().parents[3]


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def cfn() -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        template = copy.deepcopy(load_template(ROOT / "template.yaml"))
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["CodeUri"] = "s3://bucket/artifact.zip"
        return transform(template, {}, _NoManagedPolicies())


def test_the_table_is_durable_encrypted_on_demand_and_kept(cfn):
    table = cfn["Resources"]["MemoryTable"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    [index] = properties["LocalSecondaryIndexes"]
    assert index["IndexName"] == "by_target"


def test_the_function_gets_the_table_name(cfn):
    env = cfn["Resources"]["MemoryFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MEMORY_TABLE_NAME"] == {"Ref": "MemoryTable"}


def test_the_function_may_use_its_own_table_and_index_only(cfn):
    role = cfn["Resources"]["MemoryFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    [table] = [s for s in statements if s.get("Sid") == "UseOwnTable"]
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
    assert "dynamodb:Scan" not in json.dumps(statements)
    assert table["Resource"] == [
        {"Fn::GetAtt": ["MemoryTable", "Arn"]},
        {"Fn::Sub": "${MemoryTable.Arn}/index/by_target"},
    ]
    others = [
        f
        for name, f in cfn["Resources"].items()
        if name.endswith("FunctionRole") and name != "MemoryFunctionRole"
    ]
    assert others
    assert "MemoryTable" not in json.dumps(others)  # no other service can reach it
