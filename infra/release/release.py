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
import time
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


def release(
    properties: dict[str, Any], lambda_client: Any, codedeploy: Any, wait_seconds: float = 60.0
) -> dict[str, str]:
    """Point `Alias` at `TargetVersion`: at once if the alias is new, else through a CodeDeploy
    deployment of the service's own group. Never raises for a release that cannot start: the
    version stays published and `fleet releases` shows why (a failed stack update would roll
    back every other service's change with it)."""
    function, alias = properties["FunctionName"], properties["Alias"]
    target = version_of(properties["TargetVersion"])
    try:
        found = lambda_client.get_alias(FunctionName=function, Name=alias)
    except lambda_client.exceptions.ResourceNotFoundException:
        lambda_client.create_alias(FunctionName=function, Name=alias, FunctionVersion=target)
        return {"State": "created", "Version": target, "DeploymentId": ""}
    current = found["FunctionVersion"]
    canary = (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    application, group = properties["ApplicationName"], properties["DeploymentGroupName"]
    try:
        if current == target and not canary:
            return {"State": "unchanged", "Version": target, "DeploymentId": ""}
        # A canary still running is superseded (a newer version) or abandoned (a stack rolled
        # back to the version the alias serves): stop it, rolling its alias back, and wait.
        _stop_active(codedeploy, application, group, wait_seconds)
        if current == target:
            return {"State": "unchanged (a canary stopped)", "Version": target, "DeploymentId": ""}
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


def _stop_active(codedeploy: Any, application: str, group: str, wait_seconds: float) -> None:
    """Stop the group's active deployments and wait until none is active (a group runs one at
    a time: a new deployment is refused while a stopped one is still rolling back)."""
    active = codedeploy.list_deployments(
        applicationName=application, deploymentGroupName=group, includeOnlyStatuses=ACTIVE
    ).get("deployments", [])
    for deployment in active:
        codedeploy.stop_deployment(deploymentId=deployment, autoRollbackEnabled=True)
    deadline = time.monotonic() + wait_seconds
    while active and time.monotonic() < deadline:
        time.sleep(2)
        active = codedeploy.list_deployments(
            applicationName=application, deploymentGroupName=group, includeOnlyStatuses=ACTIVE
        ).get("deployments", [])


def owned_by_caller(event: dict[str, Any], cloudformation: Any) -> bool:
    """The stack asking is the one that owns the function: no other stack's custom resource
    can move this service's alias (a team's stack naming this function is refused)."""
    function = event.get("ResourceProperties", {}).get("FunctionName")
    try:
        found = cloudformation.describe_stack_resource(
            StackName=event["StackId"], LogicalResourceId="Function"
        )
    except Exception:  # noqa: BLE001 - no such resource in the caller's stack: not its own
        return False
    return found["StackResourceDetail"].get("PhysicalResourceId") == function


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
        lambda_client, codedeploy, cloudformation = clients()
        if not owned_by_caller(event, cloudformation):
            raise PermissionError(
                f"{properties.get('FunctionName')!r} is not the Function of the stack asking"
            )
        return physical, release(properties, lambda_client, codedeploy)
    raise ValueError(f"unknown resource type {kind!r}")


def _clients() -> tuple[Any, Any, Any]:
    """Short timeouts and few retries: every answer reaches CloudFormation in time."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3})
    return tuple(
        boto3.client(name, config=config) for name in ("lambda", "codedeploy", "cloudformation")
    )


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
