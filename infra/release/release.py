"""The fleet's release function: CloudFormation custom resources that make every change go
live, one service at a time, without a stack update ever waiting on a canary.

- `Custom::Fingerprint` answers a digest of everything that reaches a service's function
  (layer ARNs, settings, its own stack's outputs). The function's published version carries
  it in its description, so a change to any of them publishes a new version: SAM's own
  version naming sees only the code and literal properties.
- `Custom::Release` moves the service's `live` alias to the new version through its own
  CodeDeploy deployment (its canary, its alarms on the new version, its rollback) and returns
  at once: the stack update completes, and a failed canary rolls back this service alone.
  The first release of a service creates the alias on its first version.

Runs on Lambda with boto3 from the runtime; answers CloudFormation at the pre-signed URL.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from typing import Any

ACTIVE = ["Created", "Queued", "InProgress", "Baking", "Ready"]


def fingerprint(inputs: Any) -> str:
    """16 hex digits that change whenever any input does (order of keys aside)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def version_of(arn: str) -> str:
    """The version number at the end of a qualified function ARN."""
    version = arn.rsplit(":", 1)[-1]
    if not version.isdigit():
        raise ValueError(f"not a published version: {arn}")
    return version


def release(properties: dict[str, Any], lambda_client: Any, codedeploy: Any) -> dict[str, str]:
    """Point `Alias` at `TargetVersion`: at once if the alias is new, else through a CodeDeploy
    deployment of the service's own group. Never raises for a release that cannot start: the
    version stays published and `fleet releases` shows why (a failed stack update would roll
    back every other service's change with it)."""
    function, alias = properties["FunctionName"], properties["Alias"]
    target = version_of(properties["TargetVersion"])
    try:
        current = lambda_client.get_alias(FunctionName=function, Name=alias)["FunctionVersion"]
    except lambda_client.exceptions.ResourceNotFoundException:
        lambda_client.create_alias(FunctionName=function, Name=alias, FunctionVersion=target)
        return {"State": "created", "Version": target, "DeploymentId": ""}
    if current == target:
        return {"State": "unchanged", "Version": target, "DeploymentId": ""}
    application, group = properties["ApplicationName"], properties["DeploymentGroupName"]
    try:
        _stop_active(codedeploy, application, group)
        appspec = {
            "version": 0.0,
            "Resources": [
                {
                    properties.get("Service", "service"): {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": function,
                            "Alias": alias,
                            "CurrentVersion": current,
                            "TargetVersion": target,
                        },
                    }
                }
            ],
        }
        started = codedeploy.create_deployment(
            applicationName=application,
            deploymentGroupName=group,
            revision={
                "revisionType": "AppSpecContent",
                "appSpecContent": {"content": json.dumps(appspec)},
            },
            description=f"{function}: {alias} {current} -> {target}",
        )
    except Exception as exc:  # noqa: BLE001 - reported as the release's state, see above
        return {"State": f"not started: {exc}"[:200], "Version": target, "DeploymentId": ""}
    return {"State": "started", "Version": target, "DeploymentId": started["deploymentId"]}


def _stop_active(codedeploy: Any, application: str, group: str) -> None:
    """A newer version supersedes a canary still running: stop it, rolling its alias back."""
    active = codedeploy.list_deployments(
        applicationName=application, deploymentGroupName=group, includeOnlyStatuses=ACTIVE
    ).get("deployments", [])
    for deployment in active:
        codedeploy.stop_deployment(deploymentId=deployment, autoRollbackEnabled=True)


def handle(event: dict[str, Any], clients: Any) -> tuple[str, dict[str, str]]:
    """(physical id, data) for one custom resource event."""
    properties = event.get("ResourceProperties", {})
    kind = event.get("ResourceType", "")
    physical = event.get("PhysicalResourceId") or event["LogicalResourceId"]
    if event["RequestType"] == "Delete":
        return physical, {}  # the alias and versions go with the function
    if kind == "Custom::Fingerprint":
        return physical, {"Digest": fingerprint(properties.get("Inputs"))}
    if kind == "Custom::Release":
        lambda_client, codedeploy = clients()
        return physical, release(properties, lambda_client, codedeploy)
    raise ValueError(f"unknown resource type {kind!r}")


def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("lambda"), boto3.client("codedeploy")


def _respond(event: dict[str, Any], status: str, physical: str, data: dict, reason: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": physical,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
        event["ResponseURL"], data=body, method="PUT", headers={"content-type": ""}
    )
    with urllib.request.urlopen(request, timeout=20):  # noqa: S310
        pass


def handler(event: dict[str, Any], context: Any) -> None:
    """Lambda's entry point: always answers CloudFormation, within the function's time."""
    physical = event.get("PhysicalResourceId") or event.get("LogicalResourceId", "resource")
    try:
        physical, data = handle(event, _clients)
    except Exception as exc:  # noqa: BLE001 - CloudFormation must hear of every failure
        print(json.dumps({"message": "custom resource failed", "error": repr(exc)}))
        _respond(event, "FAILED", physical, {}, f"{type(exc).__name__}: {exc}"[:500])
        return
    print(json.dumps({"message": "custom resource", "type": event.get("ResourceType"), **data}))
    _respond(event, "SUCCESS", physical, data, "")
