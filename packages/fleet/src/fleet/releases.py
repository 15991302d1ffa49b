"""`fleet releases`: where each deployed service's release stands.

For every service of a stack (its ServiceNames output): the version its `live` alias serves,
the newest published version, and its latest CodeDeploy deployment. A release whose canary
failed shows as rolled back: the new version stays published, the alias on the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINISHED_BADLY = {"Failed", "Stopped"}


@dataclass(frozen=True)
class ReleaseState:
    service: str
    live: str | None
    published: str | None
    deployment: str | None
    status: str | None

    def describe(self) -> str:
        if self.live is None:
            return "not released yet (no live alias)"
        if self.live == self.published:
            done = f" ({self.status})" if self.status else ""
            return f"live on version {self.live}{done}"
        if self.status in FINISHED_BADLY:
            return (
                f"rolled back: live on {self.live}, version {self.published} published "
                f"but its release {self.status.lower()} ({self.deployment})"
            )
        return f"releasing {self.live} -> {self.published} ({self.status or 'not started'})"


def _alias(lambda_client: Any, function: str, name: str) -> str | None:
    try:
        return lambda_client.get_alias(FunctionName=function, Name=name)["FunctionVersion"]
    except lambda_client.exceptions.ResourceNotFoundException:
        return None


def release_state(stack: str, service: str, lambda_client: Any, codedeploy: Any) -> ReleaseState:
    function = f"{stack}-{service}"
    deployments = codedeploy.list_deployments(
        applicationName=f"{stack}-mcp-fleet", deploymentGroupName=service
    ).get("deployments", [])
    latest, status = None, None
    if deployments:
        infos = codedeploy.batch_get_deployments(deploymentIds=deployments[:25])["deploymentsInfo"]
        newest = max(infos, key=lambda info: info.get("createTime", 0))
        latest, status = newest["deploymentId"], newest.get("status")
    return ReleaseState(
        service=service,
        live=_alias(lambda_client, function, "serving"),
        published=_alias(lambda_client, function, "published"),
        deployment=latest,
        status=status,
    )
