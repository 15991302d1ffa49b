"""`fleet token --stack NAME`: an access token for the machine app client.

Client credentials against the stack's Cognito user pool (EnableCognito=true). The client
secret is read from Cognito each time, never kept in a file; the token is the only thing
printed on stdout, so `export MCP_TOKEN=$(uv run fleet token --stack mcp-fleet)` works.
Its scope is `mcp-fleet/all`, every service: the machine client is the operators' (a
client-credentials token carries no groups). A machine that should reach some services only
needs an issuer of its own that grants `<resource server>/<service>`, which every service
accepts (README "Sign in with Cognito").
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx2 as httpx

from fleet import aws
from fleet.urls import identity_outputs, stack_outputs
from fleet.workspace import FleetError

NEEDED = ("CognitoUserPoolId", "CognitoMachineClientId", "CognitoTokenUrl", "CognitoResourceServer")


def machine_token(outputs: dict[str, str], cognito: Any) -> dict[str, Any]:
    """The token endpoint's answer (access_token, expires_in, ...) for the machine client."""
    missing = [name for name in NEEDED if name not in outputs]
    if missing:
        raise FleetError(
            f"the stack has no {', '.join(missing)} output(s): deploy it with EnableCognito=true"
        )
    client_id = outputs["CognitoMachineClientId"]
    described = cognito.describe_user_pool_client(
        UserPoolId=outputs["CognitoUserPoolId"], ClientId=client_id
    )
    secret = described["UserPoolClient"].get("ClientSecret")
    if not secret:
        raise FleetError(f"app client {client_id} has no secret: it is not the machine client")
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": f"{outputs['CognitoResourceServer']}/all",
    }
    try:
        response = httpx.post(
            outputs["CognitoTokenUrl"], data=form, auth=(client_id, secret), timeout=10
        )
    except httpx.HTTPError as exc:
        raise FleetError(f"cannot reach the token endpoint: {exc}") from None
    if response.status_code != 200:
        raise FleetError(
            f"the token endpoint answered HTTP {response.status_code}: {response.text[:200]}"
        )
    return response.json()


def run(args: argparse.Namespace) -> int:
    if args.service:
        print(
            f"note: --service {args.service} no longer narrows the token: the machine client's "
            "scope is mcp-fleet/all (every service)",
            file=sys.stderr,
        )
    aws.apply_samconfig(args)
    outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
    outputs, there = identity_outputs(args, outputs)  # a secondary region: the primary's pool
    answer = machine_token(outputs, aws.client(there, "cognito-idp"))
    scope = answer.get("scope", "every service")
    print(f"access token for {scope}, valid {answer.get('expires_in', '?')} s", file=sys.stderr)
    print(answer["access_token"])
    return 0


def add_parser(commands: Any) -> None:
    token = commands.add_parser(
        "token", help="print an access token for the stack's machine client (Cognito)"
    )
    token.add_argument(
        "--service",
        help="accepted for scripts written before 2026-12-06: the machine client's token now "
        "reaches every service (mcp-fleet/all), whatever this says",
    )
    aws.add_arguments(token, stack=True)
    token.set_defaults(handler=run)
