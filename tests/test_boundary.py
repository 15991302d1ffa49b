"""The permissions boundary every service role carries, evaluated offline.

IAM grants a role what its policies allow AND its boundary allows. So whatever a team
attaches to its role, the boundary decides the most it can do. These tests resolve the
boundary as CloudFormation would for one stack and evaluate requests against it, and against
the attacker's policy from the report, with moto's IAM policy evaluator (actions compared
case-insensitively, as IAM does).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from fleet.template import load_template, transform
from fleet.workspace import find_root

ROOT = find_root(Path(__file__).parent)
ACCOUNT, REGION, STACK = "123456789012", "us-east-1", "mcp"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": STACK,
}


def resolve(node: Any, values: dict[str, str]) -> Any:
    """Fn::Sub, Ref and Fn::If (conditions false) with literal values, as CloudFormation does;
    `${!x}` stays the IAM policy variable `${x}`."""
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::Sub"}:
        arguments = node["Fn::Sub"]
        text, local = (arguments, {}) if isinstance(arguments, str) else arguments
        scope = {**values, **{k: resolve(v, values) for k, v in local.items()}}
        text = re.sub(r"\$\{([\w:.]+)\}", lambda m: str(scope[m[1]]), text)
        return text.replace("${!", "${")
    if set(node) == {"Ref"}:
        return values[node["Ref"]]
    if set(node) == {"Fn::If"}:
        return resolve(node["Fn::If"][2], values)
    return {key: resolve(value, values) for key, value in node.items()}


def lower_actions(document: dict[str, Any]) -> dict[str, Any]:
    statements = []
    for statement in document["Statement"]:
        statement = dict(statement)
        for key in ("Action", "NotAction"):
            if key in statement:
                value = statement[key]
                statement[key] = (
                    value.lower() if isinstance(value, str) else [a.lower() for a in value]
                )
        statements.append(statement)
    return {**document, "Statement": statements}


def with_tags(document: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """The role's policy variables (${aws:PrincipalTag/...}) as IAM fills them in."""
    text = json.dumps(document)
    for key, value in tags.items():
        text = text.replace("${aws:PrincipalTag/" + key + "}", value)
    return json.loads(text)


@pytest.fixture(scope="module")
def boundary() -> dict[str, Any]:
    cfn = transform(load_template(ROOT / "template.yaml"))
    policy = cfn["Resources"]["ServiceBoundary"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return resolve(policy["Properties"]["PolicyDocument"], PSEUDO)


# The memory service of stack "mcp": its nested stack's name, as CloudFormation names it.
MEMORY_TAGS = {"mcp-fleet": STACK, "mcp-service": "memory", "mcp-stack": "mcp-Memory-1AB2C3"}
WEATHER_TAGS = {"mcp-fleet": STACK, "mcp-service": "weather", "mcp-stack": "mcp-Weather-9ZY8X7"}
MEMORY_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mcp-Memory-1AB2C3-Own-4DE5F6-Table-77"


def permitted(
    documents: list[dict[str, Any]],
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
) -> bool:
    """Allowed by every document (identity policy AND boundary), denied by none; `context`:
    the request's condition keys (aws:PrincipalTag/..., aws:ResourceTag/...)."""
    results = [
        IAMPolicy(json.dumps(lower_actions(document))).is_action_permitted(
            action.lower(), resource, incoming_condition_values=context
        )
        for document in documents
    ]
    return all(result == PermissionResult.PERMITTED for result in results)


def test_every_service_role_carries_the_boundary():
    service = transform(load_template(ROOT / "infra" / "service.yaml"))
    role = service["Resources"]["Role"]["Properties"]
    assert role["PermissionsBoundary"] == {"Ref": "PermissionsBoundaryArn"}
    tags = {tag["Key"]: tag["Value"] for tag in role["Tags"]}
    assert tags == {
        "mcp-fleet": {"Ref": "Fleet"},
        "mcp-service": {"Ref": "Service"},
        "mcp-stack": {"Ref": "AWS::StackName"},
    }
    root = load_template(ROOT / "template.yaml")
    passed = root["Metadata"]["ServiceParameters"]["PermissionsBoundaryArn"]
    assert passed == {"Ref": "ServiceBoundary"}


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        # The report's policy, attached to weather's role: every tenant's memory graph...
        ("dynamodb:Query", MEMORY_TABLE),
        ("dynamodb:PutItem", MEMORY_TABLE),
        # ...and the key records of every service, enough to mint a key.
        (
            "ssm:PutParameter",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mcp-fleet/mcp/api-keys/memory",
        ),
        (
            "ssm:GetParameter",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mcp-fleet/mcp/api-keys/memory",
        ),
        # Escalation, mixed case included.
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin"),
        ("IAM:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/mcp-Weather-role"),
        ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mcp-memory"),
        ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/admin"),
        ("kms:PutKeyPolicy", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"),
        ("apigateway:PATCH", f"arn:aws:apigateway:{REGION}::/restapis/abc"),
        ("S3:GetObject", "arn:aws:s3:::someone-elses-bucket/x"),
        (
            "logs:PutLogEvents",
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/mcp-fleet/mcp/memory:*",
        ),
        # A stack whose name starts with this one's: "mcp-staging" is not "mcp".
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mcp-Weather-9ZY8X7x-T"),
        # Memory's global table (one name in every region), and look-alikes of weather's own.
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mcp.memory.graphs"),
        # (A service named "weatherx" is refused by IAM's literal "." too; moto's evaluator reads
        # the pattern as a regular expression, where "." matches any character.)
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mcpx.weather.t"),
    ],
)
def test_no_policy_a_team_attaches_reaches_past_the_boundary(boundary, action, resource):
    """Weather's team attaches Action "*" on Resource "*": the boundary still refuses."""
    everything = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    assert permitted([everything], action, resource)  # the attached policy alone would allow it
    # The request's context carries weather's principal tags, as IAM's does (the front door's
    # statements are conditioned on them).
    context = {f"aws:PrincipalTag/{key}": value for key, value in WEATHER_TAGS.items()}
    assert not permitted([everything, with_tags(boundary, WEATHER_TAGS)], action, resource, context)


def test_what_a_service_needs_passes_the_boundary(boundary):
    memory = with_tags(boundary, MEMORY_TAGS)
    own = transform(load_template(ROOT / "services" / "memory" / "infra.yaml"))
    table_policy = own["Resources"]["TableAccess"]["Properties"]["PolicyDocument"]
    for statement in table_policy["Statement"]:  # one region: the table its stack created
        statement["Resource"] = [resource["Fn::If"][1] for resource in statement["Resource"]]
    table_policy = json.loads(
        json.dumps(table_policy)
        .replace('{"Fn::GetAtt": ["Table", "Arn"]}', json.dumps(MEMORY_TABLE))
        .replace(
            '{"Fn::Sub": "${Table.Arn}/index/by_target"}',
            json.dumps(MEMORY_TABLE + "/index/by_target"),
        )
    )
    for action in table_policy["Statement"][0]["Action"]:
        assert permitted([table_policy, memory], action, MEMORY_TABLE)
    assert permitted([table_policy, memory], "dynamodb:Query", MEMORY_TABLE + "/index/by_target")
    assert permitted(
        [memory], "logs:PutLogEvents",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/mcp-fleet/mcp/memory:log-stream:x",
    )  # fmt: skip
    assert permitted(
        [memory], "ssm:GetParameter",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mcp-fleet/mcp/api-keys/memory",
    )  # fmt: skip
    assert not permitted([table_policy, memory], "dynamodb:Scan", MEMORY_TABLE)
    # With ReplicaRegions: the global table <fleet>.memory.graphs, the same name in every region.
    global_table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}.memory.graphs"
    for resource in (global_table, f"{global_table}/index/by_target"):
        assert permitted([memory], "dynamodb:Query", resource)


def test_the_api_invokes_exactly_this_stacks_functions(boundary):
    cfn = transform(load_template(ROOT / "template.yaml"))
    role = cfn["Resources"]["ApiInvokeRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}  # PassRole guards it
    [statement] = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:ResourceTag/mcp-fleet": {"Ref": "AWS::StackName"}}
    }
    service = transform(load_template(ROOT / "infra" / "service.yaml"))
    tags = {
        tag["Key"]: tag["Value"] for tag in service["Resources"]["Function"]["Properties"]["Tags"]
    }
    assert tags["mcp-fleet"] == {"Ref": "Fleet"}  # the root passes its own stack name
    root = load_template(ROOT / "template.yaml")
    assert root["Metadata"]["ServiceParameters"]["Fleet"] == {"Ref": "AWS::StackName"}


FRONT_DOOR_TAGS = {"mcp-fleet": STACK, "mcp-service": "mcp", "mcp-stack": "mcp-FrontDoor-none"}
SERVING = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mcp-math:serving"


def test_only_the_front_door_may_invoke_and_only_serving_aliases(boundary):
    """Issue 31: the front door runs inside the boundary every service has; it (the principal
    "mcp", a name no service may take) may invoke this stack's serving aliases, and no service
    may invoke anything. (moto evaluates the conditions given as the request's context.)"""
    everything = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }

    def context(tags: dict[str, str], function_fleet: str = STACK) -> dict[str, str]:
        return {
            **{f"aws:PrincipalTag/{key}": value for key, value in tags.items()},
            "aws:ResourceTag/mcp-fleet": function_fleet,
        }

    front_door = with_tags(boundary, FRONT_DOOR_TAGS)
    weather = with_tags(boundary, WEATHER_TAGS)
    for action in ("lambda:InvokeFunction", "lambda:InvokeWithResponseStream"):
        assert permitted([everything, front_door], action, SERVING, context(FRONT_DOOR_TAGS))
        assert not permitted([everything, weather], action, SERVING, context(WEATHER_TAGS))
    # A function of stack "mcp-staging" matches the name pattern; its tag does not.
    staging = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mcp-staging-math:serving"
    assert not permitted(
        [everything, front_door], "lambda:InvokeFunction", staging,
        context(FRONT_DOOR_TAGS, "mcp-staging"),
    )  # fmt: skip
    for resource in (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mcp-math",  # $LATEST, unqualified
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mcp-math:published",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other-math:serving",  # another stack
    ):
        assert not permitted(
            [everything, front_door], "lambda:InvokeFunction", resource, context(FRONT_DOOR_TAGS)
        )
    for action in ("lambda:UpdateFunctionCode", "lambda:AddPermission", "lambda:CreateFunction"):
        assert not permitted([everything, front_door], action, SERVING, context(FRONT_DOOR_TAGS))
    # Every service's key record (hashes), to list what a key may call; nothing else of theirs.
    record = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mcp-fleet/mcp/api-keys/memory"
    for read in ("ssm:GetParameter", "ssm:GetParameters"):  # one, or ten a call
        assert permitted([everything, front_door], read, record, context(FRONT_DOOR_TAGS))
        assert not permitted([everything, weather], read, record, context(WEATHER_TAGS))
    # By path is authorized on the path, not on each record it returns: never allowed.
    prefix = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mcp-fleet/mcp/api-keys"
    assert not permitted(
        [everything, front_door], "ssm:GetParametersByPath", prefix, context(FRONT_DOOR_TAGS)
    )
    assert not permitted([everything, front_door], "ssm:PutParameter", record)
    assert not permitted([everything, front_door], "dynamodb:Query", MEMORY_TABLE)
