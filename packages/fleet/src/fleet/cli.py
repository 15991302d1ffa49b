"""The `fleet` command: local development, scaffolding and checks for the MCP fleet."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence

from fleet.workspace import FleetError, find_root, service_dirs

Handler = Callable[[argparse.Namespace], int]


def _cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet.dev import build_fleet_app
    from mcp_common.settings import RuntimeSettings

    services = service_dirs(find_root())
    if not services:
        raise FleetError("no services under services/; create one with `fleet new <name>`")
    runtime = RuntimeSettings()
    app = build_fleet_app(services, runtime)
    base = f"http://{args.host}:{args.port}"
    for service in services:
        print(f"  {service.name:<12} {base}/{service.name}/mcp", flush=True)
    print(f"  catalog      {base}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from fleet.catalog import render_table
    from fleet.dev import build_fleet_app

    app = build_fleet_app(service_dirs(find_root()))
    catalog = asyncio.run(app.catalog(args.base_url.rstrip("/")))
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
