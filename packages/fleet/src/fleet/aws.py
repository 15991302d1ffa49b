"""AWS access for the fleet CLI: one way to pick the region and credentials, one way to fail.

Every command that talks to AWS takes `--region` and `--profile`, and otherwise honours
AWS_REGION, AWS_DEFAULT_REGION and AWS_PROFILE (then the profile's configured region).
A missing region or missing credentials is one line that says what to set.
"""

from __future__ import annotations

import argparse
import functools
import os
from typing import Any

from fleet.workspace import FleetError

NO_REGION = (
    "no AWS region: pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION), "
    "or a region in your AWS profile"
)
NO_CREDENTIALS = (
    "no AWS credentials: pass --profile or set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (`aws configure` or `aws sso login` sets them up)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--region` and `--profile`, as every AWS-touching command takes them."""
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


@functools.cache
def _service_models() -> Any:
    """One botocore loader per process, shared by every session it makes.

    A new session's dearest part is parsing the service models (CloudFormation's alone is
    megabytes of JSON); a command that makes several clients, or a test run that makes
    hundreds, would parse them again for each one.
    """
    from botocore.loaders import create_loader

    return create_loader(os.environ.get("AWS_DATA_PATH"))


def session(profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session (its own credentials, region and event handlers) whose service
    models come from the process's one loader."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    loader = _service_models()
    core.register_component("data_loader", loader)
    made = boto3.session.Session(botocore_session=core, profile_name=profile, region_name=region)
    loader.search_paths[:] = dict.fromkeys(loader.search_paths)  # boto3 appends its own path
    return made


def client(args: argparse.Namespace | None, service: str) -> Any:
    """A boto3 client for `service` with the region and profile the command was given."""
    from botocore.exceptions import ProfileNotFound

    region = getattr(args, "region", None) or os.environ.get("AWS_REGION")
    profile = getattr(args, "profile", None)
    try:
        made = session(profile, region)
        if not made.region_name:
            raise FleetError(NO_REGION)
    except ProfileNotFound as exc:
        raise FleetError(f"{exc}; check --profile / AWS_PROFILE") from None
    return made.client(service)


def explain(exc: BaseException) -> str | None:
    """One line for an AWS error the user can fix, or None if it is not one."""
    if type(exc).__module__.split(".")[0] not in {"botocore", "boto3"}:
        return None
    name = type(exc).__name__
    if name == "NoRegionError":
        return NO_REGION
    if name in {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return NO_CREDENTIALS
    if name in {"UnauthorizedSSOTokenError", "SSOTokenLoadError", "TokenRetrievalError"}:
        return f"the AWS SSO session has expired: run `aws sso login` ({exc})"
    if name == "EndpointConnectionError":
        return f"cannot reach AWS: {exc}"
    return f"AWS said: {exc}"
