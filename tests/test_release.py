"""Every change goes live, and each service is released on its own.

The proof, offline: infra/service.yaml transformed by samtranslator, each input of the
function given two values, the version's digest computed by the release function's own code
(infra/release/release.py); and the release mechanism run against moto's Lambda, CodeDeploy
and CloudWatch. What CodeDeploy itself does during a canary (shifting weights, reading the
group's alarms, rolling back) is AWS's: `codedeploy_runs` below stands in for it, and is
the part these tests cannot verify.
"""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fleet.template import load_template, transform
from fleet.workspace import find_root

ROOT = find_root(Path(__file__).parent)


def release_module() -> Any:
    spec = importlib.util.spec_from_file_location("release", ROOT / "infra/release/release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


release = release_module()


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    return load_template(ROOT / "infra" / "service.yaml")


def references(node: Any) -> set[str]:
    """Parameters (Ref) and other stacks' outputs (GetAtt X.Outputs.Y) a value reads."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        if set(node) == {"Ref"}:
            found.add(node["Ref"])
        elif set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"]
            target = target.split(".", 1) if isinstance(target, str) else target
            found.add(".".join(target))
        elif set(node) == {"Fn::Sub"}:
            text, local = (
                (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
            )
            import re

            found |= {m for m in re.findall(r"\$\{([^}!]+)\}", text) if m not in local}
            found |= references(local)
        else:
            for value in node.values():
                found |= references(value)
    return found


UNVERSIONED = ("VersionDescription", "ReservedConcurrentExecutions", "Tags", "FunctionName")
"""Function properties a published version does not hold (Lambda keeps them per function)."""


def conditions_read(node: Any, conditions: dict[str, Any]) -> set[str]:
    """The parameters behind every condition a value's Fn::If tests."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= conditions_read(item, conditions)
    elif isinstance(node, dict):
        if "Fn::If" in node:
            found |= references(conditions[node["Fn::If"][0]])
        for value in node.values():
            found |= conditions_read(value, conditions)
    return found


def function_inputs(service: dict[str, Any]) -> set[str]:
    """What reaches the function's published version: its properties' parameters and stack
    outputs, the parameters behind the conditions they test included."""
    properties = service["Resources"]["Function"]["Properties"]
    versioned = {k: v for k, v in properties.items() if k not in UNVERSIONED}
    read = references(versioned) | conditions_read(versioned, service.get("Conditions", {}))
    parameters = set(service["Parameters"])
    inputs = {name for name in read if name in parameters or ".Outputs." in name}
    return inputs - {"AWS::StackName", "Fleet", "Service"}  # the function's identity


def test_the_digest_covers_exactly_what_reaches_the_function(service):
    fingerprint = references(service["Resources"]["Fingerprint"]["Properties"]["Inputs"])
    assert function_inputs(service) == fingerprint


def resolve(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::GetAtt"}:
            return values[".".join(node["Fn::GetAtt"])]
        return {key: resolve(value, values) for key, value in node.items()}
    return node


def test_a_change_to_any_input_publishes_a_version_and_nothing_else_does(service):
    """Two values of every parameter and own-stack output: the version's description (the
    digest) changes exactly for those that reach the function."""
    inputs = service["Resources"]["Fingerprint"]["Properties"]["Inputs"]
    candidates = {*service["Parameters"], *function_inputs(service)}
    base = {name: f"{name}-a" for name in candidates}
    digest = release.fingerprint(resolve(inputs, base))
    reaches = function_inputs(service)
    for name in sorted(candidates):
        changed = release.fingerprint(resolve(inputs, {**base, name: f"{name}-b"}))
        assert (changed != digest) == (name in reaches), name
    cfn = transform(service)
    [version] = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::Version"]
    assert version["Properties"]["Description"] == {"Fn::Sub": "config ${Fingerprint.Digest}"}


def test_a_change_to_the_code_publishes_a_version(service):
    def version_id(code_uri: str) -> str:
        template = json.loads(json.dumps(service))
        template["Resources"]["Function"]["Properties"]["CodeUri"] = code_uri
        cfn = transform(template)
        [name] = [n for n, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Version"]
        return name

    assert version_id("s3://bucket/aaaa") != version_id("s3://bucket/bbbb")


def test_no_stack_update_waits_on_a_canary(service):
    cfn = transform(service)
    assert not [r for r in cfn["Resources"].values() if "UpdatePolicy" in r]
    assert "DeploymentPreference" not in service["Resources"]["Function"]["Properties"]
    group = service["Resources"]["DeploymentGroup"]["Properties"]
    assert group["AutoRollbackConfiguration"]["Events"] == [
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
        "DEPLOYMENT_STOP_ON_REQUEST",  # a superseded canary, stopped, rolls back
    ]
    alarms = {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]}
    for alarm in alarms:  # each watches the new version alone
        text = json.dumps(service["Resources"][alarm]["Properties"])
        assert '"ExecutedVersion"' in text or '"version"' in text, alarm
        assert "Function.Version" in text, alarm


# --- the release mechanism against moto -----------------------------------------------------

STACK = "mcp"


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("run.sh", text)
    return buffer.getvalue()


def publish(lam: Any, function: str, text: str) -> str:
    lam.update_function_code(FunctionName=function, ZipFile=_zip(text))
    return lam.publish_version(FunctionName=function)["FunctionArn"]


def codedeploy_runs(lam: Any, codedeploy: Any, cloudwatch: Any, group_alarms: dict) -> None:
    """AWS's part, simulated: each deployment shifts its alias to the target unless one of
    its group's alarms is in ALARM, in which case the alias stays (rolled back)."""
    for group, alarms in group_alarms.items():
        ids = codedeploy.list_deployments(
            applicationName=f"{STACK}-mcp-fleet", deploymentGroupName=group
        )
        for deployment_id in ids["deployments"]:
            info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
            content = json.loads(info["revision"]["appSpecContent"]["content"])
            [[_, resource]] = [next(iter(r.items())) for r in content["Resources"]]
            states = cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
            if all(state["StateValue"] != "ALARM" for state in states):
                target = resource["Properties"]
                lam.update_alias(
                    FunctionName=target["Name"],
                    Name=target["Alias"],
                    FunctionVersion=target["TargetVersion"],
                )


def event(request: str, properties: dict[str, Any], stack: str | None = None) -> dict[str, Any]:
    function = properties.get("FunctionName", "")
    return {
        "RequestType": request,
        "ResourceType": "Custom::Release",
        "LogicalResourceId": "Release",
        "StackId": stack or f"arn:aws:cloudformation:us-east-1:1:stack/{function}/x",
        "ResourceProperties": properties,
    }


class OwnerOf:
    """CloudFormation's answer, at the edge: each service stack's `Function` is the function
    named after the stack (`<stack>-<svc>`), as CloudFormation would describe it."""

    def __init__(self, fleet: str) -> None:
        self.fleet = fleet

    def describe_stack_resource(self, StackName: str, LogicalResourceId: str) -> dict:
        owner = StackName.split(":stack/", 1)[1].split("/", 1)[0]  # the function it owns
        return {"StackResourceDetail": {"PhysicalResourceId": owner}}


def test_one_failing_canary_rolls_back_its_service_alone():
    import boto3

    from fleet.testing import fake_aws

    with fake_aws():
        lam, codedeploy = boto3.client("lambda"), boto3.client("codedeploy")
        cloudwatch, iam = boto3.client("cloudwatch"), boto3.client("iam")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        codedeploy.create_application(
            applicationName=f"{STACK}-mcp-fleet", computePlatform="Lambda"
        )
        alarms, properties = {}, {}
        for name in ("alpha", "beta"):
            function = f"{STACK}-{name}"
            lam.create_function(
                FunctionName=function, Runtime="python3.13", Role=role, Handler="run.sh",
                Code={"ZipFile": _zip("v1")},
            )  # fmt: skip
            codedeploy.create_deployment_group(
                applicationName=f"{STACK}-mcp-fleet", deploymentGroupName=name, serviceRoleArn=role
            )
            alarm = f"{function}-release-lambda-errors"
            cloudwatch.put_metric_alarm(
                AlarmName=alarm, MetricName="Errors", Namespace="AWS/Lambda", Statistic="Sum",
                Period=60, EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold",
            )  # fmt: skip
            alarms[name] = [alarm]
            properties[name] = {
                "Service": name,
                "FunctionName": function,
                "Alias": "live",
                "ApplicationName": f"{STACK}-mcp-fleet",
                "DeploymentGroupName": name,
            }
            first = publish(lam, function, "v1")
            clients = lambda: (lam, codedeploy, OwnerOf(STACK))
            _, data = release.handle(
                event("Create", {**properties[name], "TargetVersion": first}), clients
            )
            assert data["State"] == "created"
        # One deploy changes both services; beta's new version fails its canary.
        for name in ("alpha", "beta"):
            target = publish(lam, f"{STACK}-{name}", "v2")
            _, data = release.handle(
                event("Update", {**properties[name], "TargetVersion": target}), clients
            )
            assert data["State"] == "started"  # and the custom resource answers at once
            assert (
                lam.get_alias(FunctionName=f"{STACK}-{name}", Name="live")["FunctionVersion"] == "1"
            )
        cloudwatch.set_alarm_state(
            AlarmName=alarms["beta"][0], StateValue="ALARM", StateReason="canary"
        )
        codedeploy_runs(lam, codedeploy, cloudwatch, alarms)
        assert lam.get_alias(FunctionName=f"{STACK}-alpha", Name="live")["FunctionVersion"] == "2"
        assert lam.get_alias(FunctionName=f"{STACK}-beta", Name="live")["FunctionVersion"] == "1"
        # Deploying the same version again starts nothing.
        _, data = release.handle(
            event("Update", {**properties["alpha"], "TargetVersion": f"arn:aws:lambda:us-east-1:123456789012:function:{STACK}-alpha:2"}),
            clients,
        )  # fmt: skip
        assert data["State"] == "unchanged"


def test_another_stacks_custom_resource_cannot_move_a_service():
    """A team's stack declaring Custom::Release with the fleet's token and another service's
    function is refused (and fleet check refuses custom resources in a team's stack)."""
    properties = {
        "FunctionName": f"{STACK}-memory", "Alias": "serving",
        "TargetVersion": f"arn:aws:lambda:us-east-1:1:function:{STACK}-memory:1",
        "ApplicationName": "a", "DeploymentGroupName": "memory",
    }  # fmt: skip
    attack = event(
        "Update", properties, stack="arn:aws:cloudformation:us-east-1:1:stack/mcp-weather-Own/x"
    )
    with pytest.raises(PermissionError, match="not the Function of the stack asking"):
        release.handle(attack, lambda: (None, None, OwnerOf(STACK)))


def test_a_stack_rolled_back_stops_the_canary_it_left_running():
    """The alias still serves the old version while a canary shifts weight to the new one; a
    stack rolled back asks for the old version again: the canary must not go on unwatched."""
    stopped: list[str] = []

    class Canary:
        class exceptions:  # boto3's shape
            ResourceNotFoundException = KeyError

        def get_alias(self, **_: Any) -> dict:
            return {
                "FunctionVersion": "3",
                "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.1}},
            }

        def list_deployments(self, **_: Any) -> dict:
            return {"deployments": [] if stopped else ["d-1"]}

        def stop_deployment(self, deploymentId: str, autoRollbackEnabled: bool) -> None:
            stopped.append(deploymentId)

    properties = {
        "FunctionName": "f", "Alias": "serving", "TargetVersion": "arn:aws:lambda:r:1:function:f:3",
        "ApplicationName": "a", "DeploymentGroupName": "g",
    }  # fmt: skip
    data = release.release(properties, Canary(), Canary(), wait_seconds=5)
    assert stopped == ["d-1"]
    assert data["State"] == "unchanged (a canary stopped)"


def test_a_release_that_cannot_start_never_fails_the_stack():
    class Refusing:
        class exceptions:  # boto3's shape
            ResourceNotFoundException = KeyError

        def get_alias(self, **_: Any) -> dict[str, str]:
            return {"FunctionVersion": "3"}

        def list_deployments(self, **_: Any) -> dict[str, list]:
            raise RuntimeError("AccessDenied")

    properties = {
        "FunctionName": "f", "Alias": "live", "TargetVersion": "arn:aws:lambda:r:1:function:f:4",
        "ApplicationName": "a", "DeploymentGroupName": "g",
    }  # fmt: skip
    data = release.release(properties, Refusing(), Refusing())
    assert data["State"].startswith("not started: AccessDenied")
    assert data["Version"] == "4"


def test_fleet_releases_shows_each_services_state(capsys):
    """After a deploy: one service live on its new version, one whose canary rolled back,
    one whose release is still running."""
    import boto3

    from fleet.cli import main
    from fleet.testing import deployed_stack, fake_aws

    with fake_aws():
        lam, codedeploy = boto3.client("lambda"), boto3.client("codedeploy")
        role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        codedeploy.create_application(
            applicationName=f"{STACK}-mcp-fleet", computePlatform="Lambda"
        )
        names = ("done", "failed", "running")
        for name in names:
            function = f"{STACK}-{name}"
            lam.create_function(
                FunctionName=function, Runtime="python3.13", Role=role["Role"]["Arn"],
                Handler="run.sh", Code={"ZipFile": _zip("v1")},
            )  # fmt: skip
            codedeploy.create_deployment_group(
                applicationName=f"{STACK}-mcp-fleet",
                deploymentGroupName=name,
                serviceRoleArn=role["Role"]["Arn"],
            )
            one, two = publish(lam, function, "v1"), publish(lam, function, "v2")
            live = two if name == "done" else one
            lam.create_alias(
                FunctionName=function, Name="serving", FunctionVersion=live.rsplit(":")[-1]
            )
            lam.create_alias(FunctionName=function, Name="published", FunctionVersion="2")
            codedeploy.create_deployment(
                applicationName=f"{STACK}-mcp-fleet",
                deploymentGroupName=name,
                revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}"}},
            )
        deployed_stack(STACK, {"ServiceNames": ",".join(names)})
        from moto.codedeploy.models import codedeploy_backends

        backend = codedeploy_backends["123456789012"]["us-east-1"]
        for deployment in backend.deployments.values():
            if deployment.deployment_group_name == "failed":
                deployment.status = "Stopped"
        assert main(["releases", "--stack", STACK, "--region", "us-east-1"]) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert lines["done"].startswith("live on version 2")
    assert lines["failed"].startswith("rolled back: live on 1, version 2 published")
    assert lines["running"].startswith("releasing 1 -> 2")
