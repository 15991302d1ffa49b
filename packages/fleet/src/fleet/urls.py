"""`fleet urls --stack NAME`: each deployed service's URL and ready-to-paste client configuration."""

from __future__ import annotations

import json
import re
from typing import Any

from fleet.workspace import FleetError

SERVICES_OUTPUT = "ServiceNames"
BASE_OUTPUT = "ApiBaseUrl"


def stack_outputs(stack: str, client: Any) -> dict[str, str]:
    """{OutputKey: OutputValue} of a deployed stack."""
    try:
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except client.exceptions.ClientError as exc:
        raise FleetError(f"cannot read stack {stack!r}: {exc}") from None
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def primary_region(outputs: dict[str, str], region: str | None) -> str | None:
    """The fleet's primary region when the stack read is a secondary one (its FleetRegions
    output names another region first), else None."""
    primary = outputs.get("FleetRegions", "").split(",")[0].strip()
    return primary if primary and primary != region else None


def identity_outputs(args: Any, outputs: dict[str, str]) -> tuple[dict[str, str], Any]:
    """(the outputs that name the fleet's user pool, the args to reach its region): a secondary
    region's stack has no pool of its own, so the primary region's stack (the same name) is
    read for its Cognito* outputs."""
    import copy

    from fleet import aws

    primary = primary_region(outputs, getattr(args, "region", None))
    if primary is None or "CognitoUserPoolId" in outputs:
        return outputs, args
    there = copy.copy(args)
    there.region = primary
    found = stack_outputs(args.stack, aws.client(there, "cloudformation"))
    cognito = {key: value for key, value in found.items() if key.startswith("Cognito")}
    return {**outputs, **cognito}, there


def service_urls(stack: str, outputs: dict[str, str]) -> dict[str, str]:
    """{service: MCP URL}: `<ApiBaseUrl>/<service>/mcp` for each of the stack's ServiceNames.

    (One output for the whole fleet, not one per service: a stack holds at most 200.)"""
    names = [name.strip() for name in outputs.get(SERVICES_OUTPUT, "").split(",") if name.strip()]
    base = outputs.get(BASE_OUTPUT, "").rstrip("/")
    if not names or not base:
        raise FleetError(
            f"stack {stack!r} has no {SERVICES_OUTPUT} and {BASE_OUTPUT} outputs; "
            "is it the MCP fleet stack?"
        )
    return {name: f"{base}/{name}/mcp" for name in sorted(names)}


FRONT_DOOR_ENTRY = "fleet"
"""The whole fleet's entry in client configuration (a reserved service name)."""


def with_front_door(urls: dict[str, str], outputs: dict[str, str]) -> dict[str, str]:
    """The whole fleet at one URL (`<ApiBaseUrl>/mcp`, the front door) first, then each
    service's own."""
    base = outputs.get(BASE_OUTPUT, "").rstrip("/")
    return {FRONT_DOOR_ENTRY: f"{base}/mcp", **urls} if base else urls


CLAUDE_CODE_CALLBACK_PORT = 8765
"""The port in template.yaml's default CognitoCallbackUrls for Claude Code."""


def client_configuration(urls: dict[str, str], outputs: dict[str, str] | None = None) -> str:
    """Ready-to-paste client configuration: API keys, or OAuth with the stack's Cognito pool."""
    outputs = outputs or {}
    if "CognitoPeopleClientId" in outputs:
        return _cognito_configuration(urls, outputs)
    auth_header, header_value = "Authorization", "Bearer ${MCP_API_KEY}"
    lines = ["# Claude Code"]
    for service, url in urls.items():
        lines.append(
            f'claude mcp add --transport http {service} {url} --header "{auth_header}: {header_value}"'
        )
    mcp_json = {
        "mcpServers": {
            service: {"type": "http", "url": url, "headers": {auth_header: header_value}}
            for service, url in urls.items()
        }
    }
    lines += ["", "# .mcp.json", json.dumps(mcp_json, indent=2), "", "# MCP Inspector"]
    for url in urls.values():
        lines.append(
            f"npx @modelcontextprotocol/inspector --cli {url} --transport http --method tools/list "
            f'--header "{auth_header}: {header_value}"'
        )
    return "\n".join(lines)


def _cognito_configuration(urls: dict[str, str], outputs: dict[str, str]) -> str:
    client_id = outputs["CognitoPeopleClientId"]
    resource_server = outputs.get("CognitoResourceServer", "mcp-fleet")
    callbacks = outputs.get("CognitoPeopleCallbackUrls", "(see the CognitoCallbackUrls parameter)")
    lines = [
        f"# Sign in with Cognito: every service asks for {resource_server}/services, and a person",
        "# reaches the services their Cognito groups name (a group per service, or `all`)",
        f"#   OAuth client id: {client_id} (no client secret: authorization code + PKCE)",
        f"#   callback URLs allowed now: {callbacks}",
        "#   A hosted connector (Claude, ChatGPT) needs its callback URL added to the stack's",
        "#   CognitoCallbackUrls parameter first; see the README's 'Sign in with Cognito'.",
        "",
    ]
    for service, url in urls.items():
        oauth = f"--client-id {client_id} --callback-port {CLAUDE_CODE_CALLBACK_PORT}"
        lines += [
            "# the whole fleet: every service your groups name"
            if service == FRONT_DOOR_ENTRY
            else f"# {service}: group {service}",
            f"claude mcp add --transport http {oauth} {service} {url}",
        ]
    mcp_json = {
        "mcpServers": {
            service: {
                "type": "http",
                "url": url,
                "oauth": {"clientId": client_id, "callbackPort": CLAUDE_CODE_CALLBACK_PORT},
            }
            for service, url in urls.items()
        }
    }
    lines += ["", "# .mcp.json", json.dumps(mcp_json, indent=2), ""]
    lines.append("# Machines: uv run fleet token --stack <stack> --service <service>")
    return "\n".join(lines)


def is_valid_stack_name(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", name) is not None
