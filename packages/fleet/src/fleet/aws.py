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


def add_arguments(
    parser: argparse.ArgumentParser, stack: bool = False, all_regions: bool = False
) -> None:
    """`--region` and `--profile` (and `--stack`, `--all-regions`), as every AWS-touching
    command takes them; what is not given comes from samconfig.toml's `--config-env`, as
    `sam` itself does."""
    if all_regions:
        parser.add_argument(
            "--all-regions",
            action="store_true",
            help="every region of the fleet (PrimaryRegion and ReplicaRegions in samconfig.toml's "
            "parameter_overrides), one after the other, each region's result reported",
        )
    if stack:
        parser.add_argument(
            "--stack", help="CloudFormation stack name (default: samconfig.toml's stack_name)"
        )
    parser.add_argument(
        "--region", help="AWS region (default: samconfig.toml, AWS_REGION, AWS_DEFAULT_REGION)"
    )
    parser.add_argument("--profile", help="AWS profile (default: samconfig.toml, AWS_PROFILE)")
    parser.add_argument(
        "--config-env",
        default="default",
        help="the samconfig.toml environment to read defaults from (default: default)",
    )


SAMCONFIG = "samconfig.toml"
SAMCONFIG_KEYS = ("stack_name", "region", "profile")


def samconfig(root: Any, environment: str = "default") -> dict[str, str]:
    """stack_name, region and profile for `environment` in samconfig.toml, where `sam`
    reads them: the environment's `global` table, overridden by its `deploy` table."""
    import tomllib
    from pathlib import Path

    path = Path(root) / SAMCONFIG
    if not path.is_file():
        return {}
    tables = tomllib.loads(path.read_text(encoding="utf-8")).get(environment, {})
    found: dict[str, str] = {}
    for command in ("global", "deploy"):
        parameters = tables.get(command, {}).get("parameters", {})
        found.update({k: str(v) for k, v in parameters.items() if k in SAMCONFIG_KEYS})
    return found


def parameter_override(env: dict[str, str], name: str) -> str | None:
    """`name`'s value in a samconfig environment's parameter_overrides, if it sets one."""
    import shlex

    for pair in shlex.split(str(env.get("parameter_overrides", ""))):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None


def fleet_regions(root: Any, environment: str = "default") -> list[str]:
    """The fleet's regions as samconfig.toml's `environment` deploys it: PrimaryRegion, then
    ReplicaRegions, from its parameter_overrides; else its one region (none: empty)."""
    import tomllib
    from pathlib import Path

    path = Path(root) / SAMCONFIG
    tables = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    deploy = tables.get(environment, {}).get("deploy", {}).get("parameters", {})
    regions = [parameter_override(deploy, "PrimaryRegion") or ""]
    regions += (parameter_override(deploy, "ReplicaRegions") or "").split(",")
    regions = [region.strip() for region in regions if region.strip()]
    if not regions and (region := samconfig(root, environment).get("region")):
        regions = [region]
    return list(dict.fromkeys(regions))


def each_region(handler: Any) -> Any:
    """`handler`, or with --all-regions `handler` once per region of the fleet: each region's
    output under a `== region` line, a failure in one region reported and the next tried;
    non-zero if any region failed."""
    import copy
    import sys

    def run(args: argparse.Namespace) -> int:
        if not getattr(args, "all_regions", False):
            return handler(args)
        from fleet.workspace import find_root

        if getattr(args, "region", None):
            raise FleetError("--all-regions reads the regions from samconfig.toml: drop --region")
        regions = fleet_regions(find_root(), getattr(args, "config_env", "default"))
        if not regions:
            raise FleetError(
                f"no regions in {SAMCONFIG}: set PrimaryRegion and ReplicaRegions in the "
                f"[{getattr(args, 'config_env', 'default')}.deploy.parameters] "
                "parameter_overrides (README 'Several regions')"
            )
        failed = []
        for region in regions:
            print(f"== {region}", flush=True)
            one = copy.copy(args)
            one.region, one.all_regions = region, False
            try:
                code = handler(one)
            except FleetError as exc:
                print(f"fleet: {region}: {exc}", file=sys.stderr, flush=True)
                code = 1
            if code:
                failed.append(region)
        done = f"{len(regions) - len(failed)} of {len(regions)} regions OK"
        print(done + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
        return 1 if failed else 0

    return run


def apply_samconfig(args: argparse.Namespace) -> argparse.Namespace:
    """Fill --stack, --region and --profile that were not given from samconfig.toml."""
    from fleet.workspace import find_root

    try:
        defaults = samconfig(find_root(), getattr(args, "config_env", "default"))
    except FleetError:
        defaults = {}
    for option, key in (("stack", "stack_name"), ("region", "region"), ("profile", "profile")):
        if hasattr(args, option) and not getattr(args, option) and key in defaults:
            setattr(args, option, defaults[key])
    if hasattr(args, "stack") and not args.stack:
        raise FleetError(
            f"no stack: pass --stack, or set stack_name in {SAMCONFIG} "
            f"([{getattr(args, 'config_env', 'default')}.global.parameters])"
        )
    return args


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
    """A boto3 client for `service` with the region and profile the command was given (or
    samconfig.toml's)."""
    from botocore.exceptions import ProfileNotFound

    if args is not None and hasattr(args, "config_env"):
        apply_samconfig(args)
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
