"""One fleet in several regions: one name (a regional custom domain, a latency record with a
health check per region) and one identity (a secondary region trusts the primary's pool),
read from the root template as CloudFormation would evaluate it for each region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleet.template import created, holds, load_template, service_parameters, transform
from fleet.workspace import find_root

ROOT = find_root(Path(__file__).parent)
PRIMARY, SECONDARY = "us-east-1", "eu-west-1"


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transform(load_template(ROOT / "template.yaml"))


def service_parameter(name: str, values: dict[str, str]) -> Any:
    source = load_template(ROOT / "template.yaml")
    return holds(transform(source), service_parameters(source)[name], values)


DOMAIN = {
    "DomainName": "mcp.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc",
    "HostedZoneId": "Z123",
}
COGNITO = {"EnableCognito": "true", "CognitoDomainPrefix": "fleet", "PrimaryRegion": PRIMARY}


def test_one_name_per_region_with_a_latency_record_and_a_health_check(cfn):
    made = created(cfn, {"AWS::Region": PRIMARY, **DOMAIN})
    assert {"FleetDomain", "FleetBasePathMapping", "FleetHealthCheck", "FleetLatencyRecord"} <= made
    record = cfn["Resources"]["FleetLatencyRecord"]["Properties"]
    assert record["Region"] == {"Ref": "AWS::Region"}
    assert record["HealthCheckId"] == {"Ref": "FleetHealthCheck"}
    assert record["AliasTarget"]["EvaluateTargetHealth"] is True
    check = cfn["Resources"]["FleetHealthCheck"]["Properties"]["HealthCheckConfig"]
    assert check["ResourcePath"] == {"Fn::Sub": "/${StageName}/health"}
    assert "/health" in cfn["Resources"]["FleetApi"]["Properties"]["Body"]["paths"]
    mapping = cfn["Resources"]["FleetBasePathMapping"]["Properties"]
    assert "BasePath" not in mapping  # https://<domain>/<svc>/mcp
    hosts = service_parameter("AllowedHosts", {"AWS::Region": PRIMARY, **DOMAIN})
    assert "mcp.example.com" in hosts.split(",")
    assert "FleetUrl" in cfn["Outputs"]


def test_without_a_domain_nothing_of_it_is_created(cfn):
    made = created(cfn, {"AWS::Region": PRIMARY})
    assert (
        not {"FleetDomain", "FleetBasePathMapping", "FleetHealthCheck", "FleetLatencyRecord"} & made
    )
    without_zone = created(cfn, {"AWS::Region": PRIMARY, **DOMAIN, "HostedZoneId": ""})
    assert "FleetDomain" in without_zone
    assert "FleetLatencyRecord" not in without_zone


def test_the_primary_creates_the_pool_and_a_secondary_trusts_it(cfn):
    primary = created(cfn, {"AWS::Region": PRIMARY, **COGNITO})
    secondary_values = {
        "AWS::Region": SECONDARY,
        **COGNITO,
        "CognitoUserPoolId": "us-east-1_Pool",
        "CognitoAppClientIds": "people,machines",
    }
    secondary = created(cfn, secondary_values)
    assert {"UserPool", "PeopleClient", "MachineClient", "UserPoolResourceServer"} <= primary
    assert not {r for r in secondary if r.startswith(("UserPool", "People", "Machine"))}
    issuer = service_parameter("JwtIssuer", {**secondary_values, "AWS::URLSuffix": "amazonaws.com"})
    assert issuer == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool"
    assert service_parameter("JwtAudience", secondary_values) == "people,machines"
    assert service_parameter("JwtResourceServer", secondary_values) == "mcp-fleet"  # scopes kept
    assert service_parameter("AuthMode", secondary_values) == "jwt"


def test_a_shared_issuer_keeps_the_per_service_scopes(cfn):
    """The report: AuthMode=jwt with the Jwt* parameters lost the per-service scopes."""
    values = {"AWS::Region": PRIMARY, "AuthMode": "jwt", "JwtResourceServer": "mcp-fleet"}
    assert service_parameter("JwtResourceServer", values) == "mcp-fleet"
