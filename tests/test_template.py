"""Contract tests on template.yaml as CloudFormation will see it: transformed by samtranslator.

(moto's CloudFormation silently drops AWS::Serverless::* resources, so it cannot test this.)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from fleet.template import function_id, load_template, logical_id
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = [service.name for service in service_dirs(ROOT)]


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def translate(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    template = copy.deepcopy(load_template(ROOT / "template.yaml"))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/artifact.zip"  # what sam package does
    return transform(template, parameters or {}, _NoManagedPolicies())


@pytest.fixture(scope="module")
def cfn(monkeypatch_module) -> dict[str, Any]:
    return translate()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield patch


def resources_of(cfn: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == kind}


def test_one_rest_api_for_the_whole_fleet(cfn):
    assert list(resources_of(cfn, "AWS::ApiGateway::RestApi")) == ["FleetApi"]
    [stage] = resources_of(cfn, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == {"Ref": "StageName"}
    [settings] = stage["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    assert stage["Properties"]["TracingEnabled"] == {"Fn::If": ["UseTracing", True, False]}


def test_one_function_per_service_folder(cfn):
    functions = resources_of(cfn, "AWS::Lambda::Function")
    assert set(functions) == {function_id(name) for name in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_function_runtime_contract(cfn, service):
    properties = cfn["Resources"][function_id(service)]["Properties"]
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == "run.sh"
    [layer] = properties["Layers"]
    assert (
        "753240598075:layer:LambdaAdapterLayerArm64:${LambdaAdapterLayerVersion}"
        in layer["Fn::Sub"]
    )
    env = properties["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["PORT"] == "8080"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == f"/{service}/health"
    assert env["MCP_AUTH"] == {"Fn::If": ["UseCognito", "jwt", {"Ref": "AuthMode"}]}
    assert env["MCP_API_KEYS_SSM_PARAMETER"] == {
        "Fn::Sub": f"${{ApiKeysParameterPrefix}}/{service}"
    }
    assert "execute-api" in json.dumps(env["MCP_ALLOWED_HOSTS"])
    assert properties["LoggingConfig"]["LogGroup"] == {"Ref": f"{logical_id(service)}LogGroup"}
    assert f"{function_id(service)}Aliaslive" in cfn["Resources"]  # AutoPublishAlias


@pytest.mark.parametrize("service", SERVICES)
def test_routes_reach_their_own_function_only(cfn, service):
    paths = cfn["Resources"]["FleetApi"]["Properties"]["Body"]["paths"]
    mine = {path: spec for path, spec in paths.items() if f"/{service}/" in path}
    assert set(mine) == {
        f"/{service}/mcp",
        f"/{service}/{{proxy+}}",
        f"/.well-known/oauth-protected-resource/{service}/mcp",
    }
    for spec in mine.values():
        for method in spec.values():
            uri = method["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert f"${{{function_id(service)}Aliaslive}}" in uri
            assert method["x-amazon-apigateway-integration"]["type"] == "aws_proxy"


def test_no_two_services_share_a_path(cfn):
    paths = cfn["Resources"]["FleetApi"]["Properties"]["Body"]["paths"]
    owners = {}
    for path, spec in paths.items():
        for method in spec.values():
            uri = json.dumps(method["x-amazon-apigateway-integration"]["uri"])
            owners.setdefault(path, set()).add(uri)
    assert all(len(uris) == 1 for uris in owners.values())


@pytest.mark.parametrize("service", SERVICES)
def test_each_function_reads_only_its_own_key_parameter(cfn, service):
    role = cfn["Resources"][f"{function_id(service)}Role"]["Properties"]
    statements = [
        s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]
    ]
    ssm = [s for s in statements if "ssm:" in json.dumps(s["Action"])]
    assert ssm == [
        {
            "Sid": "ReadOwnApiKeys",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
                f"${{ApiKeysParameterPrefix}}/{service}"
            },
        }
    ]
    assert all(s["Resource"] != "*" for s in statements)


@pytest.mark.parametrize("service", SERVICES)
def test_outputs_one_url_per_service(cfn, service):
    value = cfn["Outputs"][f"{logical_id(service)}McpUrl"]["Value"]["Fn::Sub"]
    assert value.endswith(f"/${{StageName}}/{service}/mcp")
    assert value.startswith("https://${FleetApi}.execute-api.")
    assert cfn["Outputs"]["ApiId"]["Value"] == {"Ref": "FleetApi"}


def test_sam_cli_reads_the_template_as_sam_build_does(monkeypatch_module):
    """SAM CLI resolves intrinsics itself before building; a name it mistranslates fails the build.

    (An Output named like a Parameter once made `sam build` crash with "unhashable type: 'list'".)
    """
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(ROOT / "template.yaml"))
    functions = {f.name: f for f in SamFunctionProvider(stacks).get_all()}
    assert set(functions) == {function_id(s) for s in SERVICES}
    for function in functions.values():
        assert function.metadata["BuildMethod"] == "makefile"


def test_secure_defaults():
    template = load_template(ROOT / "template.yaml")
    parameters = template["Parameters"]
    assert parameters["AuthMode"]["Default"] == "api_key"
    assert parameters["AllowedOrigins"]["Default"] == ""
    assert parameters["EnableApiGatewayApiKey"]["Default"] == "false"
    assert "*" not in json.dumps(
        template["Globals"]["Function"]["Environment"]["Variables"]["MCP_ALLOWED_ORIGINS"]
    )


def test_api_gateway_key_resources_are_conditional(cfn):
    for name in ("FleetApiKey", "FleetUsagePlan", "FleetUsagePlanKey"):
        assert cfn["Resources"][name]["Condition"] == "UseApiGatewayApiKey"


def test_log_groups_have_retention(cfn):
    groups = resources_of(cfn, "AWS::Logs::LogGroup")
    assert {"ApiAccessLogGroup", *(f"{logical_id(s)}LogGroup" for s in SERVICES)} <= set(groups)
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_adapter_layer_is_v1_1_0_or_later():
    parameter = load_template(ROOT / "template.yaml")["Parameters"]["LambdaAdapterLayerVersion"]
    assert parameter["Default"] == 30
    assert "v1.1.0" in parameter["Description"]


@pytest.mark.parametrize(("enabled", "applied"), [("true", "PublishedVersions"), ("false", "None")])
def test_snapstart_follows_its_switch(monkeypatch_module, enabled, applied):
    cfn = translate({"EnableSnapStart": enabled})
    assert cfn["Conditions"]["UseSnapStart"] == {"Fn::Equals": [{"Ref": "EnableSnapStart"}, "true"]}
    for service in SERVICES:
        function = cfn["Resources"][function_id(service)]["Properties"]
        condition, on, off = function["SnapStart"]["ApplyOn"]["Fn::If"]
        assert condition == "UseSnapStart"
        resolved = on if enabled == "true" else off
        assert resolved == applied
        # SnapStart applies to published versions: the live alias publishes one.
        assert f"{function_id(service)}Aliaslive" in cfn["Resources"]
    assert (
        load_template(ROOT / "template.yaml")["Parameters"]["EnableSnapStart"]["Default"] == "false"
    )


@pytest.mark.parametrize(
    "variable", ["AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH", "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"]
)
def test_hook_paths_are_reached_by_no_route(cfn, variable):
    paths = cfn["Resources"]["FleetApi"]["Properties"]["Body"]["paths"]
    for service in SERVICES:
        hook = cfn["Resources"][function_id(service)]["Properties"]["Environment"]["Variables"][
            variable
        ]
        assert hook.startswith("/")
        for route in paths:
            prefix = route.split("{", 1)[0]  # /math/{proxy+} reaches everything under /math/
            assert not hook.startswith(prefix) if "{" in route else hook != route
        assert not hook.startswith("/.well-known/")


def _substituted(value: dict | str) -> str:
    """A `Fn::Sub` string with every ${...} replaced by a plausible value."""
    import re

    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{[^}!]+\}", "sub-value", text)


def test_dashboard_body_is_json_built_on_search(cfn):
    [dashboard] = resources_of(cfn, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(_substituted(dashboard["Properties"]["DashboardBody"]))
    expressions = [
        item["expression"]
        for widget in body["widgets"]
        for row in widget["properties"]["metrics"]
        for item in row
        if isinstance(item, dict) and "expression" in item
    ]
    assert expressions
    service_graphs = [e for e in expressions if "McpFleet/" in e]
    assert service_graphs
    assert all("SEARCH(" in expression for expression in service_graphs)
    titles = " ".join(widget["properties"]["title"] for widget in body["widgets"])
    for topic in (
        "Requests",
        "Error rate",
        "p99",
        "Slowest tools",
        "most errors",
        "throttles",
        "Cold starts",
        "API Gateway",
    ):
        assert topic in titles


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_alarms(cfn, service):
    from fleet.template import ALARMS

    stem = logical_id(service)
    for alarm in ALARMS:
        properties = cfn["Resources"][f"{stem}{alarm}"]["Properties"]
        watched = json.dumps(properties)
        assert f'"Value": "{service}"' in watched or f'"Ref": "{function_id(service)}"' in watched
        assert properties["AlarmActions"]["Fn::If"][0] == "HasAlarmEmail"


def test_fleet_wide_alarm_on_api_5xx(cfn):
    alarm = cfn["Resources"]["ApiServerErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")


def condition_holds(cfn: dict[str, Any], name: str, parameters: dict[str, str]) -> bool:
    """Evaluate a template condition (Fn::Equals / Fn::Not / Fn::And / Fn::Or over Refs) as
    CloudFormation would for `parameters` (defaults for the rest)."""
    defaults = {k: str(v.get("Default", "")) for k, v in cfn["Parameters"].items()}
    values = {**defaults, **parameters}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return values[node["Ref"]]
        if isinstance(node, dict) and "Condition" in node:
            return holds(cfn["Conditions"][node["Condition"]])
        return node

    def holds(node: dict) -> bool:
        [(function, arguments)] = node.items()
        if function == "Fn::Equals":
            return value(arguments[0]) == value(arguments[1])
        if function == "Fn::Not":
            return not holds(arguments[0])
        if function == "Fn::And":
            return all(holds(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(holds(argument) for argument in arguments)
        raise AssertionError(f"unsupported condition function {function}")

    return holds(cfn["Conditions"][name])


@pytest.mark.parametrize(("email", "topic"), [("", False), ("ops@example.com", True)])
def test_alarm_topic_exists_only_with_an_email(monkeypatch_module, email, topic):
    cfn = translate({"AlarmEmail": email})
    resource = cfn["Resources"]["AlarmTopic"]
    assert condition_holds(cfn, resource["Condition"], {"AlarmEmail": email}) is topic
    assert resource["Properties"]["Subscription"] == [
        {"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    ]


def test_saved_queries_read_every_service_log_group(cfn):
    queries = resources_of(cfn, "AWS::Logs::QueryDefinition")
    assert len(queries) >= 3
    names = " ".join(json.dumps(q["Properties"]["Name"]) for q in queries.values())
    for topic in ("slowest tools", "errors by tool and principal", "cold starts"):
        assert topic in names
    for query in queries.values():
        groups = query["Properties"]["LogGroupNames"]
        for service in SERVICES:
            assert {"Ref": f"{logical_id(service)}LogGroup"} in groups


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_namespace_is_per_stack(cfn, service):
    env = cfn["Resources"][function_id(service)]["Properties"]["Environment"]["Variables"]
    assert env["MCP_METRICS_NAMESPACE"] == {"Fn::Sub": "McpFleet/${AWS::StackName}"}


def test_cognito_user_pool_is_protected_and_retained(cfn):
    pool = cfn["Resources"]["UserPool"]
    assert pool["Condition"] == "UseCognito"
    assert (pool["DeletionPolicy"], pool["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = pool["Properties"]
    assert properties["DeletionProtection"] == "ACTIVE"
    assert properties["UsernameAttributes"] == ["email"]
    assert properties["MfaConfiguration"] == "OPTIONAL"
    policy = properties["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    assert all(
        policy[f"Require{kind}"] for kind in ("Lowercase", "Uppercase", "Numbers", "Symbols")
    )
    domain = cfn["Resources"]["UserPoolDomain"]["Properties"]
    assert domain["Domain"] == {"Ref": "CognitoDomainPrefix"}


def test_one_scope_per_service_and_both_clients_may_ask_for_it(cfn):
    server = cfn["Resources"]["UserPoolResourceServer"]["Properties"]
    assert server["Identifier"] == "mcp-fleet"
    assert sorted(scope["ScopeName"] for scope in server["Scopes"]) == sorted(SERVICES)
    for client in ("PeopleClient", "MachineClient"):
        scopes = cfn["Resources"][client]["Properties"]["AllowedOAuthScopes"]
        assert {f"mcp-fleet/{service}" for service in SERVICES} <= set(scopes)


def test_people_sign_in_with_pkce_and_machines_with_a_secret(cfn):
    people = cfn["Resources"]["PeopleClient"]["Properties"]
    assert (people["GenerateSecret"], people["AllowedOAuthFlows"]) == (False, ["code"])
    assert people["CallbackURLs"] == {"Ref": "CognitoCallbackUrls"}
    defaults = load_template(ROOT / "template.yaml")["Parameters"]["CognitoCallbackUrls"]["Default"]
    assert "http://localhost:6274/oauth/callback" in defaults  # the MCP Inspector
    assert "http://localhost:8765/callback" in defaults  # Claude Code, --callback-port 8765
    machines = cfn["Resources"]["MachineClient"]["Properties"]
    assert (machines["GenerateSecret"], machines["AllowedOAuthFlows"]) == (
        True,
        ["client_credentials"],
    )


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_every_function_is_wired_to_the_pool_when_cognito_is_on(monkeypatch_module, enabled):
    cfn = translate({"EnableCognito": enabled, "CognitoDomainPrefix": "fleet-test"})
    assert condition_holds(cfn, "UseCognito", {"EnableCognito": enabled}) is (enabled == "true")
    for service in SERVICES:
        env = cfn["Resources"][function_id(service)]["Properties"]["Environment"]["Variables"]
        assert env["MCP_AUTH"] == {"Fn::If": ["UseCognito", "jwt", {"Ref": "AuthMode"}]}
        condition, on, off = env["MCP_JWT_ISSUER"]["Fn::If"]
        assert condition == "UseCognito"
        assert on == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}"}
        assert off == {"Ref": "JwtIssuer"}
        assert "${UserPool}/.well-known/jwks.json" in json.dumps(env["MCP_JWT_JWKS_URI"])
        assert env["MCP_JWT_AUDIENCE"]["Fn::If"][1] == {
            "Fn::Sub": "${PeopleClient},${MachineClient}"
        }
        assert env["MCP_JWT_RESOURCE_SERVER"] == {"Fn::If": ["UseCognito", "mcp-fleet", ""]}
    for name in (
        "UserPool",
        "UserPoolDomain",
        "UserPoolResourceServer",
        "PeopleClient",
        "MachineClient",
    ):
        assert cfn["Resources"][name]["Condition"] == "UseCognito"


def test_cognito_needs_a_domain_prefix():
    rule = load_template(ROOT / "template.yaml")["Rules"]["CognitoNeedsADomainPrefix"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "EnableCognito"}, "true"]}
