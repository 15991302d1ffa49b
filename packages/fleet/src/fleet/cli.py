"""The `fleet` command: local development, scaffolding and checks for the MCP fleet."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fleet import aws, keys, machine_token, smoke
from fleet.bench import cli as bench_cli
from fleet.workspace import FleetError, find_root, service_dirs

Handler = Callable[[argparse.Namespace], int]


def refuse_open_bind(host: str, allowed: bool) -> None:
    """A bind beyond loopback with MCP_AUTH=none serves every service, memory included, to
    the network: the Host check is not authentication. Refused unless said on purpose."""
    import ipaddress

    from mcp_common.settings import AuthSettings

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and AuthSettings().effective_mode == "none" and not allowed:
        raise FleetError(
            f"refusing to serve on {host} with MCP_AUTH=none: anyone who reaches this machine "
            "could call every service. Set MCP_AUTH=api_key (or jwt), bind 127.0.0.1, or pass "
            "--unauthenticated-network if that is what you mean"
        )


def _cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet.dev import Broken, build_fleet_app
    from mcp_common.hardening import bounded_h11_protocol
    from mcp_common.settings import HttpSettings

    refuse_open_bind(args.host, args.unauthenticated_network)
    services = service_dirs(find_root())
    if not services:
        raise FleetError("no services under services/; create one with `fleet new <name>`")
    if args.services:
        known = {service.name: service for service in services}
        unknown = [name for name in args.services if name not in known]
        if unknown:
            raise FleetError(
                f"no service {', '.join(map(repr, unknown))}; services: {', '.join(known)}"
            )
        services = [known[name] for name in args.services]
    from fleet.build import source_commit

    commit = source_commit(find_root(), ".")
    if commit is not None:
        os.environ["MCP_SOURCE_COMMIT"] = commit  # the working tree's, on every /health
    follow = find_root() if args.reload and not args.services else None
    app = build_fleet_app(services, reload=args.reload, root=follow)
    base = f"http://{args.host}:{args.port}"
    for name, served in app.served.items():
        state = f"BROKEN: {served.app.reason}" if isinstance(served.app, Broken) else ""
        print(f"  {name:<12} {base}/{name}/mcp {state}".rstrip(), flush=True)
    print(f"  catalog      {base}/    (source {commit or 'not a git checkout'})", flush=True)
    if args.reload:
        print("  reloading a service when its code changes (services/<svc>/src)", flush=True)
    protocol = bounded_h11_protocol(HttpSettings().header_timeout_seconds)
    uvicorn.run(
        app, host=args.host, port=args.port, log_config=None, access_log=False, http=protocol
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    """The repository's catalog; with --base-url, a fleet's as its front door lists it."""
    from fleet.catalog import deployed_catalog, fleet_catalog, render_table

    if args.base_url:
        from fleet.smoke import credential, refuse_plain_http, what_the_server_said

        base, key = args.base_url.rstrip("/"), credential(args)
        refuse_plain_http(base, key)
        try:
            catalog = asyncio.run(deployed_catalog(base, key))
        except Exception as exc:  # noqa: BLE001 - a client's failure, said in one line
            said = asyncio.run(what_the_server_said(f"{base}/mcp", key))
            said = said or f"{type(exc).__name__}: {str(exc)[:160]}"
            raise FleetError(f"cannot read the catalog at {base}/mcp: {said}") from None
    else:
        from mcp_common.app import build_server

        specs = [service.load_spec() for service in service_dirs(find_root())]
        servers = [(spec, build_server(spec)) for spec in specs]
        catalog = asyncio.run(fleet_catalog(servers, LOCAL_BASE_URL))
    print(json.dumps(catalog, indent=2) if args.json else render_table(catalog))
    return 0


LOCAL_BASE_URL = "http://127.0.0.1:8080"


def _cmd_build(args: argparse.Namespace) -> int:
    from fleet.build import build_layer, build_service

    root = find_root()
    out = Path(args.out).absolute()  # not resolved: a symbolic link is refused, not followed
    if args.frontdoor:
        if args.service is not None or args.layer is not None:
            raise FleetError("--frontdoor builds the front door alone: no service, no --layer")
        from fleet.build import build_frontdoor

        build_frontdoor(root, out, force=args.force)
        return 0
    if (args.service is None) == (args.layer is None):
        raise FleetError("name a service or --layer deps|common (one of them)")
    if args.layer is not None:
        build_layer(root, args.layer, out, args.platform, force=args.force)
        return 0
    by_name = {service.name: service for service in service_dirs(root)}
    if args.service not in by_name:
        raise FleetError(f"no service {args.service!r}; services: {', '.join(by_name) or 'none'}")
    build_service(root, by_name[args.service], out, args.platform, force=args.force)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from fleet.check import check_artifacts, check_fleet
    from fleet.limits import PROJECTED_SERVICES, fleet_usage, max_services, projection

    root = find_root()
    faults = check_fleet(root)
    if args.artifacts:
        faults += check_artifacts(Path(args.artifacts))
    services = [service.name for service in service_dirs(root)]
    if faults:
        print(f"fleet check: {len(faults)} fault(s)", file=sys.stderr)
        for fault in faults:
            print(f"  - {fault}", file=sys.stderr)
        return 1
    usage = fleet_usage(root)
    print("headroom (CloudFormation, SAM, API Gateway and Lambda limits):")
    for item in usage:
        print(f"  {item.describe()}")
    first = min(
        (u for u in usage if u.services_left() is not None), key=lambda u: u.services_left()
    )
    print(f"  at most {max_services(usage, len(services))} services: then {first.name}")
    at = ", ".join(
        f"{u.name} {value:,}/{u.limit:,}{' (over)' if value > u.limit else ''}"
        for u, value in projection(usage, len(services), PROJECTED_SERVICES)
    )
    print(f"  at {PROJECTED_SERVICES} services: {at}")
    checked = f" and artifacts in {args.artifacts}" if args.artifacts else ""
    shown = services if len(services) <= 12 else [*services[:10], "..."]
    print(f"fleet check: OK ({len(services)} services: {', '.join(shown)}){checked}")
    return 0


def _cmd_new(args: argparse.Namespace) -> int:
    from fleet.new import create_services

    root = find_root()
    targets = create_services(root, args.name, lock=not args.no_lock)
    print(f"created {', '.join(str(t.relative_to(root)) for t in targets)}; next:")
    folders = " ".join(f"services/{name}" for name in args.name)
    steps = [
        (f"uv run pytest {folders}", "its tests"),
        ("uv run fleet dev", f"serves {', '.join(f'/{name}/mcp' for name in args.name)}"),
        ("uv run fleet check && uv run sam build", "consistent, then built for Lambda"),
    ]
    width = max(len(command) for command, _ in steps)
    for command, why in steps:
        print(f"  {command.ljust(width)}  # {why}")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from fleet.new import remove_service

    root = find_root()
    remove_service(root, args.name, lock=not args.no_lock, force=args.force)
    print(
        f"removed {args.name!r}. The next `sam deploy` deletes its stack (function, log group, "
        "alarms, route); what its infra.yaml retains (DeletionPolicy: Retain) stays in the account."
    )
    return 0


def _cmd_urls(args: argparse.Namespace) -> int:
    from fleet.urls import (
        client_configuration,
        identity_outputs,
        service_urls,
        stack_outputs,
        with_front_door,
    )

    aws.apply_samconfig(args)
    outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
    urls = with_front_door(service_urls(args.stack, outputs), outputs)
    try:
        outputs, _ = identity_outputs(args, outputs)  # a secondary region: the primary's pool
    except FleetError as exc:  # the URLs still print; the sign-in lines need the primary
        print(f"fleet: the primary region's stack could not be read: {exc}", file=sys.stderr)
    for service, url in urls.items():
        print(f"{service:<12} {url}")
    if "DashboardUrl" in outputs:
        print(f"{'dashboard':<12} {outputs['DashboardUrl']}")
    print()
    print(client_configuration(urls, outputs))
    return 0


def _cmd_releases(args: argparse.Namespace) -> int:
    from fleet.releases import release_state
    from fleet.urls import SERVICES_OUTPUT, stack_outputs

    aws.apply_samconfig(args)
    outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
    names = [n.strip() for n in outputs.get(SERVICES_OUTPUT, "").split(",") if n.strip()]
    lambda_client, codedeploy = aws.client(args, "lambda"), aws.client(args, "codedeploy")
    for name in names:
        state = release_state(args.stack, name, lambda_client, codedeploy)
        print(f"{name:<16} {state.describe()}")
    return 0


def _cmd_affected(args: argparse.Namespace) -> int:
    import shlex

    from fleet.affected import affected, changed_paths, merge_base

    root = find_root()
    base = args.base or merge_base(root)
    result = affected(root, changed_paths(root, base))
    if result.everything:
        shown = ", ".join(result.reasons[:5]) + (" ..." if len(result.reasons) > 5 else "")
        print(f"everything: {shown} can reach every service")
    else:
        print(f"services: {' '.join(result.services) or '(none)'}")
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in result.environment().items())
    print(f"run: {env + ' ' if env else ''}uv run pytest {' '.join(result.pytest_args())}".rstrip())
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from fleet.affected import merge_base
    from fleet.preview import preview

    root = find_root()
    result = preview(root, args.base or merge_base(root))
    total = len(service_dirs(root))
    print(f"republished: {len(result.republished)} of {total} services (each through its canary)")
    for service, why in result.republished.items():
        print(f"  {service:<16} {', '.join(dict.fromkeys(why))}")
    print(f"locked packages moved: {len(result.moved)}")
    for name, (before, now, users) in result.moved.items():
        print(
            f"  {name} {before or '(new)'} -> {now or '(removed)'}: {', '.join(users) or 'no service'}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="serve every service (or those named) in one process")
    dev.add_argument("services", nargs="*", help="serve only these services (default: all)")
    dev.add_argument(
        "--reload", action="store_true", help="rebuild a service when its code changes"
    )
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dev.add_argument(
        "--unauthenticated-network",
        action="store_true",
        help="allow a non-loopback --host while MCP_AUTH=none (anyone reaching it may call)",
    )
    dev.set_defaults(handler=_cmd_dev)

    listing = commands.add_parser(
        "list", help="print the catalog of services and tools (the repository's, or a fleet's)"
    )
    listing.add_argument("--json", action="store_true", help="print the catalog as JSON")
    listing.add_argument(
        "--base-url",
        help="read a fleet's catalog through its front door at URL/mcp, e.g. "
        "https://<api>/<stage> or http://127.0.0.1:8080 (default: the repository's services)",
    )
    listing.add_argument("--key", help="an API key (default: MCP_API_KEY)")
    listing.add_argument(
        "--token", action="store_true", help="use a token of the stack's Cognito machine client"
    )
    aws.add_arguments(listing, stack=True)
    listing.set_defaults(handler=_cmd_list)

    build = commands.add_parser(
        "build", help="build a service's artifact or a shared layer (sam build calls this)"
    )
    build.add_argument("service", nargs="?", help="service name (folder under services/)")
    build.add_argument(
        "--layer",
        choices=["deps", "common"],
        help="build a shared layer instead: deps (third-party packages) or common (mcp_common)",
    )
    build.add_argument(
        "--frontdoor",
        action="store_true",
        help="build the front door instead: its run.sh and the catalog of every service's tools",
    )
    build.add_argument(
        "--out",
        required=True,
        help="artifact folder: new, empty, or made by an earlier fleet build (it is emptied)",
    )
    build.add_argument(
        "--force", action="store_true", help="empty --out even if fleet build did not make it"
    )
    build.add_argument(
        "--platform",
        choices=["lambda", "host"],
        default="lambda",
        help="lambda: arm64 / Python 3.13, the service's own code (default); host: this machine, "
        "with the layers bundled in, to run the artifact locally",
    )
    build.set_defaults(handler=_cmd_build)

    check = commands.add_parser("check", help="verify services/, template.yaml and tools agree")
    check.add_argument("--artifacts", help="also check built artifacts, e.g. .aws-sam/build")
    check.set_defaults(handler=_cmd_check)

    new = commands.add_parser("new", help="create a service and wire it into the fleet")
    new.add_argument(
        "name",
        nargs="+",
        help="lowercase identifier: the URL segment and package stem (several: one lock, one check)",
    )
    new.add_argument("--no-lock", action="store_true", help="skip `uv lock` (tests only)")
    new.set_defaults(handler=_cmd_new)

    remove = commands.add_parser(
        "remove", help="delete a service and its registration (fleet new's inverse)"
    )
    remove.add_argument("name", help="the service's name")
    remove.add_argument("--force", action="store_true", help="delete work git does not have, too")
    remove.add_argument("--no-lock", action="store_true", help="skip `uv lock` (tests only)")
    remove.set_defaults(handler=_cmd_remove)

    urls = commands.add_parser("urls", help="print deployed service URLs and client configuration")
    aws.add_arguments(urls, stack=True, all_regions=True)
    urls.set_defaults(handler=aws.each_region(_cmd_urls))

    changes = commands.add_parser(
        "affected", help="the services and tests a change since BASE can break"
    )
    changes.add_argument("base", nargs="?", help="a commit (default: the merge base with main)")
    changes.set_defaults(handler=_cmd_affected)

    before = commands.add_parser(
        "preview", help="before a deploy: the services a change republishes, the packages it moves"
    )
    before.add_argument("base", nargs="?", help="a commit (default: the merge base with main)")
    before.set_defaults(handler=_cmd_preview)

    releases = commands.add_parser("releases", help="each deployed service's release state")
    aws.add_arguments(releases, stack=True)
    releases.set_defaults(handler=_cmd_releases)

    keys.add_parser(commands)
    machine_token.add_parser(commands)
    smoke.add_parser(commands)
    bench_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BrokenPipeError:  # a reader that left early (`| head`): nothing more to say to it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return 1
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # AWS and data errors are the user's to fix: say what to do, not where in our code.
        message = aws.explain(exc)
        if message is None and type(exc).__module__.split(".")[0] == "pydantic_core":
            message = f"invalid data: {exc}"
        if message is None:
            raise
        print(f"fleet: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
