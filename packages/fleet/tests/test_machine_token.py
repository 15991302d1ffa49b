"""`fleet token`: client credentials for the stack's machine client, its secret from Cognito.

moto backs CloudFormation (the stack's outputs) and Cognito (the pool and the client with
its secret); the hosted token endpoint, which moto does not serve, is a stand-in on
loopback that checks the client's credentials as Cognito's does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import boto3
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleet.cli import main
from fleet.testing import deployed_stack, fake_aws, serve

TOKEN = "eyJraWQiOiJtYWNoaW5lIn0.stand-in.token"


class TokenEndpoint:
    """Cognito's /oauth2/token for client credentials: Basic auth, a form, a JSON answer."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.forms: list[dict[str, str]] = []

    async def token(self, request: Request) -> JSONResponse:
        form = dict(await request.form())
        self.forms.append(form)
        if request.headers.get("authorization") != self.expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        scope = form.get("scope", "mcp-fleet/all")
        return JSONResponse(
            {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600, "scope": scope}
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/oauth2/token", self.token, methods=["POST"])])


@pytest.fixture
def stack() -> Iterator[TokenEndpoint]:
    with fake_aws("eu-west-1"):
        cognito = boto3.client("cognito-idp")
        pool = cognito.create_user_pool(PoolName="fleet")["UserPool"]["Id"]
        client = cognito.create_user_pool_client(
            UserPoolId=pool, ClientName="machines", GenerateSecret=True
        )["UserPoolClient"]
        endpoint = TokenEndpoint(client["ClientId"], client["ClientSecret"])
        with serve(endpoint.app()) as base:
            outputs = {
                "CognitoUserPoolId": pool,
                "CognitoMachineClientId": client["ClientId"],
                "CognitoTokenUrl": f"{base}/oauth2/token",
                "CognitoResourceServer": "mcp-fleet",
            }
            deployed_stack("mcp-fleet", outputs)
            yield endpoint


def test_prints_only_the_token_for_every_service(stack, capsys):
    assert main(["token", "--stack", "mcp-fleet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == TOKEN  # `export MCP_TOKEN=$(fleet token ...)` works
    [form] = stack.forms
    assert form == {
        "grant_type": "client_credentials",
        "client_id": form["client_id"],
        "scope": "mcp-fleet/all",  # the machine client's one scope, whatever the fleet's size
    }
    assert "access token for mcp-fleet/all" in captured.err


def test_a_stack_without_cognito_is_a_clear_error(capsys):
    with fake_aws("eu-west-1"):
        deployed_stack("plain", {"ServiceNames": "math"})
        assert main(["token", "--stack", "plain"]) == 1
    assert "deploy it with EnableCognito=true" in capsys.readouterr().err


def test_a_secondary_region_takes_the_token_from_the_primarys_pool(stack, capsys):
    """Issue 30: a secondary region has no pool of its own; `fleet token --region <it>` used to
    say "deploy it with EnableCognito=true"."""
    deployed_stack(
        "mcp-fleet",
        {"FleetRegions": "eu-west-1,us-east-1", "ApiBaseUrl": "https://x", "ServiceNames": "a"},
        "us-east-1",
    )
    assert main(["token", "--stack", "mcp-fleet", "--region", "us-east-1"]) == 0
    assert capsys.readouterr().out.strip() == TOKEN
    assert stack.forms[-1]["scope"] == "mcp-fleet/all"


def test_service_is_still_accepted_and_says_it_no_longer_narrows(stack, capsys):
    assert main(["token", "--stack", "mcp-fleet", "--service", "math"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == TOKEN
    assert "no longer narrows the token" in captured.err
    assert stack.forms[-1]["scope"] == "mcp-fleet/all"
