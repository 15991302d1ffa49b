"""`fleet urls`: deployed service URLs and client configuration, read from CloudFormation (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from fleet.cli import main
from fleet.testing import fake_aws

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
STACK_TEMPLATE = {
    "Resources": {
        "Marker": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": "/marker", "Type": "String", "Value": "x"},
        }
    },
    "Outputs": {
        "ApiId": {"Value": "abc123"},
        "MathMcpUrl": {"Value": f"{API}/math/mcp"},
        "WeatherMcpUrl": {"Value": f"{API}/weather/mcp"},
    },
}


@pytest.fixture
def stack() -> Iterator[str]:
    with fake_aws("eu-west-1"):
        boto3.client("cloudformation").create_stack(
            StackName="mcp-fleet", TemplateBody=json.dumps(STACK_TEMPLATE)
        )
        yield "mcp-fleet"


def test_prints_urls_and_client_configuration(stack, capsys):
    assert main(["urls", "--stack", stack]) == 0
    out = capsys.readouterr().out
    assert f"math         {API}/math/mcp" in out
    assert f"weather      {API}/weather/mcp" in out
    assert (
        f'claude mcp add --transport http math {API}/math/mcp --header "Authorization: Bearer ${{MCP_API_KEY}}"'
        in out
    )
    assert f"npx @modelcontextprotocol/inspector --cli {API}/weather/mcp --transport http" in out
    start = out.index("# .mcp.json") + len("# .mcp.json")
    document = json.loads(out[start : out.index("# MCP Inspector")])
    assert document["mcpServers"]["weather"] == {
        "type": "http",
        "url": f"{API}/weather/mcp",
        "headers": {"Authorization": "Bearer ${MCP_API_KEY}"},
    }


def test_unknown_stack_is_a_clear_error(stack, capsys):
    assert main(["urls", "--stack", "nope"]) == 1
    assert "cannot read stack 'nope'" in capsys.readouterr().err
