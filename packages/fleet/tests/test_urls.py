"""`fleet urls`: deployed service URLs and client configuration, read from CloudFormation (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.testing import deployed_stack, fake_aws
from fleet.workspace import find_root

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
DASHBOARD = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/mcp-fleet-mcp-fleet"
OUTPUTS = {
    "ApiId": "abc123",
    "ApiBaseUrl": API,
    "ServiceNames": "weather,math",
    "DashboardUrl": DASHBOARD,
}


def empty_workspace(root: Path, monkeypatch: pytest.MonkeyPatch, samconfig: str = "") -> None:
    """A workspace with no services at `root` (its samconfig.toml, when given), as the fleet's."""
    (root / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    if samconfig:
        (root / "samconfig.toml").write_text(samconfig)
    monkeypatch.setenv("FLEET_ROOT", str(root))


@pytest.fixture
def stack() -> Iterator[str]:
    with fake_aws("eu-west-1"):
        deployed_stack("mcp-fleet", OUTPUTS)
        yield "mcp-fleet"


def test_prints_urls_and_client_configuration(stack, capsys):
    assert main(["urls", "--stack", stack]) == 0
    whole = capsys.readouterr().out
    capsys.readouterr()
    # The whole fleet at one URL (the front door) comes first, next to each service's own.
    assert whole.splitlines()[0] == f"fleet        {API}/mcp"
    assert f"claude mcp add --transport http fleet {API}/mcp" in whole
    assert main(["urls", "--stack", stack]) == 0
    out = capsys.readouterr().out
    assert f"math         {API}/math/mcp" in out
    assert f"weather      {API}/weather/mcp" in out
    assert f"dashboard    {DASHBOARD}" in out
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


def test_region_comes_from_the_flag_or_aws_region(stack, capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert main(["urls", "--stack", stack]) == 0
    monkeypatch.delenv("AWS_REGION")
    assert main(["urls", "--stack", stack, "--region", "eu-west-1"]) == 0


def test_no_region_is_one_line_saying_what_to_set(capsys, monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert main(["urls", "--stack", "mcp-fleet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fleet: no AWS region: pass --region, or set AWS_REGION")
    assert "\n" not in err


def test_no_credentials_is_one_line_saying_what_to_set(capsys, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["urls", "--stack", "mcp-fleet", "--region", "eu-west-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fleet: no AWS credentials: pass --profile or set AWS_PROFILE")


def test_unknown_profile_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert main(["urls", "--stack", "mcp-fleet", "--profile", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_with_cognito_prints_the_client_scopes_and_oauth_configuration():
    from fleet.urls import client_configuration

    outputs = {
        "CognitoPeopleClientId": "people123",
        "CognitoResourceServer": "mcp-fleet",
        "CognitoPeopleCallbackUrls": "http://localhost:6274/oauth/callback,http://localhost:8765/callback",
    }
    text = client_configuration({"math": f"{API}/math/mcp"}, outputs)
    assert "OAuth client id: people123" in text
    assert "every service asks for mcp-fleet/services" in text
    assert "# math: group math" in text
    assert (
        f"claude mcp add --transport http --client-id people123 --callback-port 8765 math {API}/math/mcp"
        in text
    )
    assert "http://localhost:8765/callback" in text
    document = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert document["mcpServers"]["math"]["oauth"] == {
        "clientId": "people123",
        "callbackPort": 8765,
    }
    assert "Bearer" not in text  # no API key header with Cognito


def test_stack_region_and_profile_come_from_samconfig_as_sam_reads_them(
    tmp_path, monkeypatch, capsys
):
    """`fleet urls` with no flags reads the stack name and region of samconfig.toml's
    environment (`--config-env`, default `default`), as `sam deploy` does."""
    empty_workspace(
        tmp_path,
        monkeypatch,
        'version = 0.1\n[default.global.parameters]\nstack_name = "mcp-fleet"\n'
        '[staging.global.parameters]\nstack_name = "fleet-staging"\n'
        '[staging.deploy.parameters]\nregion = "eu-west-1"\n',
    )
    monkeypatch.delenv("AWS_REGION", raising=False)
    with fake_aws("eu-west-1"):
        for name in ("mcp-fleet", "fleet-staging"):
            deployed_stack(name, OUTPUTS)
        assert main(["urls"]) == 0
        assert main(["urls", "--config-env", "staging", "--region", "us-east-1"]) == 1
        assert "fleet-staging" in capsys.readouterr().err  # the flag wins over samconfig
        assert main(["urls", "--config-env", "staging"]) == 0
    assert f"math         {API}/math/mcp" in capsys.readouterr().out


def test_no_stack_anywhere_is_one_line_that_says_where_to_set_it(tmp_path, monkeypatch, capsys):
    empty_workspace(tmp_path, monkeypatch)
    assert main(["urls"]) == 1
    assert "no stack: pass --stack, or set stack_name in samconfig.toml" in capsys.readouterr().err


ROOT = find_root(Path(__file__).parent)


def test_every_samconfig_environment_deploys_with_a_bucket_and_nested_stacks():
    """Regression: the README's `--config-env staging` failed with "S3 Bucket not specified"
    (no [staging] section: no resolve_s3, no CAPABILITY_AUTO_EXPAND)."""
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    environments = [name for name in config if name != "version"]
    assert "staging" in environments
    names = set()
    for name in environments:
        deploy = config[name]["deploy"]["parameters"]
        assert deploy["resolve_s3"] is True, name
        assert "CAPABILITY_AUTO_EXPAND" in deploy["capabilities"], name
        names.add(config[name]["global"]["parameters"]["stack_name"])
    assert len(names) == len(environments)  # two environments never share a stack


def test_all_regions_prints_each_regions_urls(tmp_path, monkeypatch, capsys):
    """Issue 30: the fleet's regions are configuration (samconfig.toml), and `fleet urls`
    prints every region's, under its name."""
    empty_workspace(
        tmp_path,
        monkeypatch,
        'version = 0.1\n[default.global.parameters]\nstack_name = "mcp-fleet"\n'
        "[default.deploy.parameters]\n"
        'parameter_overrides = "PrimaryRegion=eu-west-1 ReplicaRegions=us-east-1"\n',
    )
    with fake_aws("eu-west-1"):
        for region in ("eu-west-1", "us-east-1"):
            api = API.replace("eu-west-1", region)
            deployed_stack("mcp-fleet", {**OUTPUTS, "ApiBaseUrl": api}, region)
        assert main(["urls", "--all-regions"]) == 0
    out = capsys.readouterr().out
    assert out.index("== eu-west-1") < out.index(f"{API}/math/mcp") < out.index("== us-east-1")
    assert f"{API.replace('eu-west-1', 'us-east-1')}/math/mcp" in out
    assert out.rstrip().endswith("2 of 2 regions OK")
