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
    template, names = own["Outputs"]["Environment"]["Value"]["Fn::Sub"]
    name = names["Name"]["Fn::If"]
    assert name[:2] == ["OneRegion", {"Ref": "Table"}]
    assert json.loads(template.replace("${Name}", "t")) == {"MEMORY_TABLE_NAME": "t"}


PRIMARY, SECONDARY, THIRD = "us-east-1", "eu-west-1", "ap-northeast-1"
BASE = {"Fleet": "mcp", "Service": "memory", "PrimaryRegion": "", "ReplicaRegions": ""}


@pytest.mark.parametrize(
    ("values", "made"),
    [
        pytest.param({"AWS::Region": PRIMARY}, {"Table"}, id="one-region"),
        pytest.param(
            {"AWS::Region": PRIMARY, "PrimaryRegion": PRIMARY, "ReplicaRegions": SECONDARY},
            {"GlobalTable"},
            id="primary",
        ),
        pytest.param(
            {"AWS::Region": SECONDARY, "PrimaryRegion": PRIMARY, "ReplicaRegions": SECONDARY},
            set(),
            id="secondary",
        ),
    ],
)
def test_a_global_table_in_the_primary_and_its_replica_everywhere(own, values, made):
    """Issue 30: with ReplicaRegions, the primary creates <fleet>.memory.graphs with a replica
    in each region; a secondary creates no table and uses its local replica by that name."""
    from fleet.template import created, holds

    values = {**BASE, **values}
    tables = {"Table", "GlobalTable"}
    assert created(own, values) & tables == made
    [statement] = own["Resources"]["TableAccess"]["Properties"]["PolicyDocument"]["Statement"]
    name = holds(own, own["Outputs"]["TableName"]["Value"], values)
    if made == {"Table"}:
        assert name == {"Ref": "Table"}
        return
    assert name == "mcp.memory.graphs"  # one name in every region
    arn = f"arn:aws:dynamodb:{values['AWS::Region']}:123456789012:table/mcp.memory.graphs"
    pseudo = {**values, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    granted = holds(own, statement["Resource"], pseudo)
    assert granted == [arn, f"{arn}/index/by_target"]
    environment = holds(own, own["Outputs"]["Environment"]["Value"]["Fn::Sub"][1]["Name"], values)
    assert environment == "mcp.memory.graphs"


def test_the_global_table_has_a_replica_in_every_region_and_keeps_its_data(own):
    from fleet.template import holds

    values = {
        **BASE,
        "AWS::Region": PRIMARY,
        "PrimaryRegion": PRIMARY,
        "ReplicaRegions": f"{SECONDARY},{THIRD}",
    }
    table = own["Resources"]["GlobalTable"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = table["Properties"]
    assert holds(own, properties["TableName"], values) == "mcp.memory.graphs"
    assert properties["KeySchema"] == own["Resources"]["Table"]["Properties"]["KeySchema"]
    replicas = holds(own, properties["Replicas"], values)
    assert [holds(own, r["Region"], values) for r in replicas] == [PRIMARY, SECONDARY, THIRD]
    for replica in replicas:
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert replica["DeletionProtectionEnabled"] is True


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
    one_region = [resource["Fn::If"][:2] for resource in table["Resource"]]
    assert one_region == [
        ["OneRegion", {"Fn::GetAtt": ["Table", "Arn"]}],
        ["OneRegion", {"Fn::Sub": "${Table.Arn}/index/by_target"}],
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
