"""The `fleet` command: local development, scaffolding and checks for the MCP fleet."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence

from fleet import keys
from fleet.workspace import FleetError, find_root, service_dirs

Handler = Callable[[argparse.Namespace], int]


def _cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet.dev import build_fleet_app

    services = service_dirs(find_root())
    if not services:
        raise FleetError("no services under services/; create one with `fleet new <name>`")
    app = build_fleet_app(services)
    base = f"http://{args.host}:{args.port}"
    for service in services:
        print(f"  {service.name:<12} {base}/{service.name}/mcp", flush=True)
    print(f"  catalog      {base}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from fleet.catalog import fleet_catalog, render_table
    from mcp_common.app import build_server

    specs = [service.load_spec() for service in service_dirs(find_root())]
    servers = [(spec, build_server(spec)) for spec in specs]
    catalog = asyncio.run(fleet_catalog(servers, args.base_url.rstrip("/")))
    print(json.dumps(catalog, indent=2) if args.json else render_table(catalog))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="serve every service in one process")
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dev.set_defaults(handler=_cmd_dev)

    listing = commands.add_parser("list", help="print the catalog of services and tools")
    listing.add_argument("--json", action="store_true", help="print the catalog as JSON")
    listing.add_argument(
        "--base-url", default="http://127.0.0.1:8080", help="base URL shown in the catalog"
    )
    listing.set_defaults(handler=_cmd_list)

    keys.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # AWS and data errors are the user's to fix: say what failed, not where in our code.
        if type(exc).__module__.split(".")[0] in {"botocore", "boto3", "pydantic_core"}:
            print(f"fleet: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
