"""Contract tests on the fleet's templates as CloudFormation will run them: transformed by
samtranslator, offline (moto's CloudFormation silently drops AWS::Serverless::*).

template.yaml is the root stack: the API, the shared layers, sign-in and operations, and one
nested stack per service. infra/service.yaml is what every service has, instantiated once per
service; services/<svc>/infra.yaml is what is specific to one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fleet.template import (
    ADAPTER_MODES,
    ALARMS,
    OWN_OUTPUTS,
    ROUTE_OUTPUTS,
    SETTINGS_STACK,
    insert_service,
    load_template,
    logical_id,
    parse_template,
    route_path,
    service_parameters,
    transform,
)
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = [service.name for service in service_dirs(ROOT)]


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def cfn(source) -> dict[str, Any]:
    return transform(source)


@pytest.fixture(scope="module")
def service_cfn() -> dict[str, Any]:
    return transform(load_template(ROOT / "infra" / "service.yaml"))


def resources_of(cfn: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == kind}


def body(cfn: dict[str, Any]) -> dict[str, Any]:
    return cfn["Resources"]["FleetApi"]["Properties"]["Body"]


# --- the API -------------------------------------------------------------------------------


def test_one_rest_api_for_the_whole_fleet(cfn):
    assert list(resources_of(cfn, "AWS::ApiGateway::RestApi")) == ["FleetApi"]
    [stage] = resources_of(cfn, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == {"Ref": "StageName"}
    settings, *routes = stage["Properties"]["MethodSettings"]
    assert settings["ResourcePath"] == "/*"
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    # Each service's route has its own throttle, read from its own stack.
    assert sorted(route["ResourcePath"] for route in routes) == sorted(
        "/" + route_path(service).replace("/", "~1") for service in SERVICES
    )
    for route in routes:
        stack = next(s for s in SERVICES if route["ResourcePath"] == "/~1" + s + "~1{proxy+}")
        assert route["ThrottlingRateLimit"] == {
            "Fn::GetAtt": [logical_id(stack), "Outputs.ThrottlingRateLimit"]
        }
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    assert stage["Properties"]["TracingEnabled"] == {"Fn::If": ["UseTracing", True, False]}


def test_each_service_has_exactly_its_own_route(cfn):
    from fleet.template import FLEET_PATHS

    assert set(body(cfn)["paths"]) == {route_path(service) for service in SERVICES} | FLEET_PATHS


@pytest.mark.parametrize("service", SERVICES)
def test_routes_reach_their_own_stack_only(cfn, service):
    [(method, spec)] = body(cfn)["paths"][route_path(service)].items()
    assert method == "x-amazon-apigateway-any-method"
    integration = spec["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert integration["httpMethod"] == "POST"
    assert integration["credentials"] == {"Fn::GetAtt": ["ApiInvokeRole", "Arn"]}
    reads = {
        key: value["Fn::GetAtt"] for key, value in integration.items() if "Fn::GetAtt" in value
    }
    assert reads.pop("credentials") == ["ApiInvokeRole", "Arn"]
    assert {stack for stack, _ in reads.values()} == {logical_id(service)}
    assert {output.removeprefix("Outputs.") for _, output in reads.values()} == set(ROUTE_OUTPUTS)


def test_two_api_gateway_resources_per_service(cfn):
    """`/<svc>` and `/<svc>/{proxy+}`: 145 services fit the default quota of 300 (with the
    root, the region's `/health`, the front door's `/mcp`, `/search`, `/search/mcp` and its
    metadata's five)."""
    nodes = {"/"}
    for path in body(cfn)["paths"]:
        parts = [part for part in path.split("/") if part]
        nodes.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    assert len(nodes) == 10 + 2 * len(SERVICES)


def test_the_api_invokes_only_this_stacks_live_aliases(cfn):
    role = cfn["Resources"]["ApiInvokeRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"
    }
    [policy] = role["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    prefix = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
    assert statement["Resource"] == [
        {"Fn::Sub": prefix + "${AWS::StackName}-*:serving"},
        {"Fn::Sub": prefix + "${AWS::StackName}-*:live"},  # the upgrade from SAM's alias
    ]


def test_adding_a_service_redeploys_the_stage_with_its_route(source, monkeypatch):
    """Offline proof: transform template.yaml before and after `fleet new`'s registration.
    The stage must point to a new deployment of an API whose body has the new route."""
    from samtranslator.model import apigateway

    def stage_and_deployment(template: dict[str, Any]) -> tuple[dict[str, Any], str]:
        cfn = transform(template)
        [stage] = resources_of(cfn, "AWS::ApiGateway::Stage").values()
        deployment = stage["Properties"]["DeploymentId"]["Ref"]
        assert cfn["Resources"][deployment]["Properties"]["RestApiId"] == {"Ref": "FleetApi"}
        return cfn, deployment

    clock = iter([1_800_000_000, 1_800_000_100])  # two deploys, at two times
    monkeypatch.setattr(apigateway.time, "time", lambda: next(clock))
    _, before = stage_and_deployment(source)
    text = (ROOT / "template.yaml").read_text()
    after_cfn, after = stage_and_deployment(parse_template(insert_service(text, "zz_new")))
    assert after != before
    assert route_path("zz_new") in body(after_cfn)["paths"]
    # The new deployment is made once the new service's stack exists: its route reads it.
    integration = body(after_cfn)["paths"][route_path("zz_new")]["x-amazon-apigateway-any-method"]
    assert integration["x-amazon-apigateway-integration"]["uri"]["Fn::GetAtt"][0] == "ZzNew"


# --- one nested stack per service, written once ---------------------------------------------


def test_one_stack_per_service_folder_nesting_what_every_service_has(cfn):
    stacks = resources_of(cfn, "AWS::CloudFormation::Stack")
    assert set(stacks) == {logical_id(service) for service in SERVICES} | {SETTINGS_STACK}
    for service in SERVICES:
        assert stacks[logical_id(service)]["Properties"]["Parameters"]["Service"] == service


def test_every_parameter_of_the_service_stack_is_passed_and_nothing_else(cfn):
    declared = set(load_template(ROOT / "infra" / "service.yaml")["Parameters"])
    stacks = resources_of(cfn, "AWS::CloudFormation::Stack")
    for name, stack in stacks.items():
        if name != SETTINGS_STACK:
            assert set(stack["Properties"]["Parameters"]) == declared
    # FleetSettings hands back exactly what it is given, and is given only what it hands back.
    settings = load_template(ROOT / "infra" / "settings.yaml")
    given = set(stacks[SETTINGS_STACK]["Properties"]["Parameters"])
    assert given == set(settings["Parameters"]) == set(settings["Outputs"])
    for name in given:
        assert settings["Outputs"][name]["Value"] == {"Ref": name}


def test_each_function_reserves_its_concurrency_unless_the_stack_reserves_none(service_cfn):
    [function] = resources_of(service_cfn, "AWS::Lambda::Function").values()
    assert function["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "Reserves",
            {"Fn::GetAtt": ["Own", "Outputs.ReservedConcurrency"]},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert service_cfn["Conditions"]["Reserves"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "0"]}]
    }


def test_function_runtime_contract(service_cfn):
    [function] = resources_of(service_cfn, "AWS::Lambda::Function").values()
    properties = function["Properties"]
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == "run.sh"
    assert properties["FunctionName"] == {"Fn::Sub": "${Fleet}-${Service}"}
    assert properties["Layers"] == [
        {"Ref": "AdapterLayerArn"},
        {"Ref": "DepsLayerArn"},
        {"Ref": "CommonLayerArn"},
    ]
    env = properties["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["PORT"] == "8080"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == {"Fn::Sub": "/${Service}/health"}
    assert env["MCP_API_KEYS_SSM_PARAMETER"] == {"Fn::Sub": "${ApiKeysParameterPrefix}/${Service}"}
    assert env["MCP_METRICS_NAMESPACE"] == {"Fn::Sub": "McpFleet/${Fleet}"}
    assert env["MCP_SERVICE_ENVIRONMENT"] == {"Fn::GetAtt": ["Own", "Outputs.Environment"]}
    assert env["MCP_TOOL_TIMEOUT_SECONDS"] == {"Fn::GetAtt": ["Own", "Outputs.ToolTimeout"]}
    assert properties["MemorySize"] == {"Fn::GetAtt": ["Own", "Outputs.MemorySize"]}
    assert properties["Timeout"] == {"Fn::GetAtt": ["Own", "Outputs.Timeout"]}
    assert "FunctionAliaspublished" in service_cfn["Resources"]  # AutoPublishAlias


def test_the_adapter_layer_is_v1_1_0_or_later(source):
    parameter = source["Parameters"]["LambdaAdapterLayerVersion"]
    assert parameter["Default"] == 30
    assert "v1.1.0" in parameter["Description"]
    layer = service_parameters(source)["AdapterLayerArn"]["Fn::Sub"]
    assert "753240598075:layer:LambdaAdapterLayerArm64:${LambdaAdapterLayerVersion}" in layer


def test_shared_code_ships_as_two_layers_built_once(cfn):
    assert len(resources_of(cfn, "AWS::Lambda::LayerVersion")) == 2
    sources = load_template(ROOT / "template.yaml")["Resources"]
    for name in ("DepsLayer", "CommonLayer"):
        assert sources[name]["Metadata"] == {
            "BuildMethod": "makefile",
            "BuildArchitecture": "arm64",
        }
        assert sources[name]["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert sources[name]["Properties"]["RetentionPolicy"] == "Delete"


def test_the_function_role_is_least_privilege(service_cfn):
    role = service_cfn["Resources"]["Role"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert {s["Sid"]: s["Action"] for s in statements} == {
        "WriteOwnLogs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "ReadOwnApiKeys": "ssm:GetParameter",
    }
    [ssm] = [s for s in statements if s["Sid"] == "ReadOwnApiKeys"]
    assert ssm["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
        "${ApiKeysParameterPrefix}/${Service}"
    }
    assert all(s["Resource"] != "*" for s in statements)
    # The service's own stack attaches what its own resources need, to this role only.
    assert service_cfn["Resources"]["Own"]["Properties"]["Parameters"]["Role"] == {"Ref": "Role"}


def test_every_service_reads_its_own_settings_from_its_own_stack(service_cfn):
    own = service_cfn["Resources"]["Own"]["Properties"]
    assert own["TemplateURL"]  # ../services/${Service}/infra.yaml, packaged by sam
    source = load_template(ROOT / "infra" / "service.yaml")["Resources"]["Own"]["Properties"]
    assert source["TemplateURL"] == {"Fn::Sub": "../services/${Service}/infra.yaml"}
    text = json.dumps(service_cfn)
    reads = set(re.findall(r'"Own", "Outputs\.(\w+)"', text))
    reads |= set(re.findall(r"\$\{Own\.Outputs\.(\w+)\}", text))
    assert reads == set(OWN_OUTPUTS)


MODES = {
    # Own output: (AWS_LWA_INVOKE_MODE, the Lambda API API Gateway calls)
    "BUFFERED": ("buffered", "2015-03-31/functions/{alias}/invocations"),
    "STREAM": ("response_stream", "2021-11-15/functions/{alias}/response-streaming-invocations"),
}


def mode_outputs(transfer_mode: str, **parameters: str) -> dict[str, str]:
    """infra/response-mode.yaml's outputs for one choice, conditions and Refs evaluated."""
    mode = load_template(ROOT / "infra" / "response-mode.yaml")
    [(name, condition)] = mode["Conditions"].items()
    left, right = condition["Fn::Equals"]
    assert left == {"Ref": "ResponseTransferMode"}
    holds = transfer_mode == right

    def value(node: Any) -> Any:
        return parameters[node["Ref"]] if isinstance(node, dict) else node

    outputs = {}
    for output, spec in mode["Outputs"].items():
        when, then, otherwise = spec["Value"]["Fn::If"]
        assert when == name
        outputs[output] = value(then if holds else otherwise)
    return outputs


@pytest.mark.parametrize("transfer_mode", sorted(MODES))
def test_a_service_chooses_buffered_or_streamed_answers_in_its_own_stack(
    service_cfn, transfer_mode
):
    from mcp_common.settings import HttpSettings

    resources = service_cfn["Resources"]
    assert resources["Mode"]["Properties"]["Parameters"]["ResponseTransferMode"] == {
        "Fn::GetAtt": ["Own", "Outputs.ResponseTransferMode"]
    }
    env = resources["Function"]["Properties"]["Environment"]["Variables"]
    assert env["AWS_LWA_INVOKE_MODE"] == {"Fn::GetAtt": ["Mode", "Outputs.AdapterInvokeMode"]}
    outputs = service_cfn["Outputs"]
    assert outputs["ResponseTransferMode"]["Value"] == {
        "Fn::GetAtt": ["Own", "Outputs.ResponseTransferMode"]
    }
    # API Gateway waits exactly as long as the function may run: Timeout in ms.
    assert outputs["IntegrationTimeoutMs"]["Value"] == {"Fn::Sub": "${Own.Outputs.Timeout}000"}

    adapter_mode, lambda_api = MODES[transfer_mode]
    values = mode_outputs(transfer_mode, AlarmP99DurationMs="5000", ToolTimeoutMs="300000")
    assert values["AdapterInvokeMode"] == adapter_mode == ADAPTER_MODES[transfer_mode]  # fleet dev
    # The app reads the adapter's variable too, so the two cannot disagree.
    settings = HttpSettings.model_validate({"AWS_LWA_INVOKE_MODE": adapter_mode})
    assert settings.streaming is (transfer_mode == "STREAM")
    text, names = outputs["IntegrationUri"]["Value"]["Fn::Sub"]
    assert names["Api"] == {"Fn::GetAtt": ["Mode", "Outputs.LambdaApiPath"]}
    assert names["Action"] == {"Fn::GetAtt": ["Mode", "Outputs.LambdaApiAction"]}
    uri = text.replace("${Api}", values["LambdaApiPath"]).replace(
        "${Action}", values["LambdaApiAction"]
    )
    assert uri.endswith(lambda_api.format(alias="${Alias}"))
    # Long calls are a streaming service's point: its p99 alarm fires when calls hit the
    # deadline, not at the fleet's threshold for buffered services.
    latency = resources["LatencyAlarm"]["Properties"]["Threshold"]
    assert latency == {"Fn::GetAtt": ["Mode", "Outputs.LatencyAlarmThresholdMs"]}
    assert resources["Mode"]["Properties"]["Parameters"]["ToolTimeoutMs"] == {
        "Fn::Sub": "${Own.Outputs.ToolTimeout}000"
    }
    expected = "300000" if transfer_mode == "STREAM" else "5000"
    assert values["LatencyAlarmThresholdMs"] == expected


def test_the_log_group_has_retention_and_the_function_writes_to_it(service_cfn):
    group = service_cfn["Resources"]["LogGroup"]["Properties"]
    assert group["LogGroupName"] == {"Fn::Sub": "/mcp-fleet/${Fleet}/${Service}"}
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    function = service_cfn["Resources"]["Function"]["Properties"]
    assert function["LoggingConfig"] == {
        "LogGroup": {"Ref": "LogGroup"},
        "LogFormat": "JSON",  # Lambda filters by level: the service's lines all pass (TRACE),
        "ApplicationLogLevel": "TRACE",
        "SystemLogLevel": {"Ref": "LambdaSystemLogLevel"},  # START/END/REPORT: WARN drops them
    }
    root = load_template(ROOT / "template.yaml")["Parameters"]["LambdaSystemLogLevel"]
    assert root["Default"] == "WARN"


def test_every_service_has_its_alarms(service_cfn):
    for alarm in ALARMS:
        properties = service_cfn["Resources"][alarm]["Properties"]
        watched = json.dumps(properties)
        assert '{"Ref": "Service"}' in watched or '{"Ref": "Function"}' in watched
        assert properties["AlarmName"]["Fn::Sub"].startswith("${Fleet}-${Service}-")
        assert properties["AlarmActions"]["Fn::If"][0] == "HasAlarmTopic"


@pytest.mark.parametrize(("enabled", "applied"), [("true", "PublishedVersions"), ("false", "None")])
def test_snapstart_follows_its_switch(service_cfn, enabled, applied):
    function = service_cfn["Resources"]["Function"]["Properties"]
    condition, on, off = function["SnapStart"]["ApplyOn"]["Fn::If"]
    assert service_cfn["Conditions"][condition] == {
        "Fn::Equals": [{"Ref": "EnableSnapStart"}, "true"]
    }
    assert (on if enabled == "true" else off) == applied
    assert load_template(ROOT / "template.yaml")["Parameters"]["EnableSnapStart"]["Default"] == (
        "false"
    )


@pytest.mark.parametrize(
    "variable", ["AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH", "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"]
)
def test_hook_paths_are_reached_by_no_route(cfn, service_cfn, variable):
    hook = service_cfn["Resources"]["Function"]["Properties"]["Environment"]["Variables"][variable]
    assert hook.startswith("/")
    for route in body(cfn)["paths"]:
        assert not hook.startswith(route.split("{", 1)[0])  # /math/{proxy+}: all of /math/


def test_outputs_name_every_service_once(cfn, source):
    separator, names = cfn["Outputs"]["ServiceNames"]["Value"]["Fn::Join"]
    assert (separator, sorted(names)) == (",", SERVICES)  # in registration order
    assert sorted(source["Metadata"]["FleetServices"]) == SERVICES
    assert cfn["Outputs"]["ApiId"]["Value"] == {"Ref": "FleetApi"}
    assert len(cfn["Outputs"]) < 20  # nothing per service: a stack has at most 200


def test_sam_cli_reads_the_templates_as_sam_build_does():
    """SAM CLI resolves intrinsics itself before building: every service stack's function
    must resolve to its own folder, built by its Makefile."""
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, remote = SamLocalStackProvider.get_stacks(str(ROOT / "template.yaml"))
    assert remote == []
    functions = {f.full_path: f for f in SamFunctionProvider(stacks).get_all()}
    fleet_own = {"ReleaseFunction", "FrontDoorFunction"}
    assert set(functions) == {f"{logical_id(s)}/Function" for s in SERVICES} | fleet_own
    assert Path(functions["ReleaseFunction"].codeuri).resolve() == ROOT / "infra" / "release"
    front_door = functions["FrontDoorFunction"]
    assert Path(front_door.codeuri).resolve() == ROOT / "infra" / "frontdoor"
    assert front_door.metadata["BuildMethod"] == "makefile"
    for service in SERVICES:
        function = functions[f"{logical_id(service)}/Function"]
        assert Path(function.codeuri).resolve() == ROOT / "services" / service
        assert function.metadata["BuildMethod"] == "makefile"


def test_the_front_door_streams_at_two_paths_through_its_serving_alias(cfn):
    """Issue 31: /mcp and /search/mcp reach the front door's serving alias (response
    streaming: a service's progress passes through), with the API's invoke role."""
    paths = body(cfn)["paths"]
    for path in ("/mcp", "/search/mcp"):
        integration = paths[path]["x-amazon-apigateway-any-method"][
            "x-amazon-apigateway-integration"
        ]
        assert integration["responseTransferMode"] == "STREAM"
        assert "${FrontDoorFunctionAliasserving}/response-streaming-invocations" in json.dumps(
            integration["uri"]
        )
        assert integration["credentials"] == {"Fn::GetAtt": ["ApiInvokeRole", "Arn"]}
    function = cfn["Resources"]["FrontDoorFunction"]["Properties"]
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-mcp"}  # "mcp": reserved
    variables = function["Environment"]["Variables"]
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables["MCP_FRONTDOOR_STACK"] == {"Ref": "AWS::StackName"}
    tags = {tag["Key"]: tag["Value"] for tag in function["Tags"]}
    assert (tags["mcp-fleet"], tags["mcp-service"]) == ({"Ref": "AWS::StackName"}, "mcp")


def test_the_front_door_may_invoke_exactly_this_stacks_serving_aliases(cfn):
    role = cfn["Resources"]["FrontDoorRole"]["Properties"]
    assert role["PermissionsBoundary"] == {"Ref": "ServiceBoundary"}
    tags = {tag["Key"]: tag["Value"] for tag in role["Tags"]}
    assert tags["mcp-service"] == "mcp"
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    invoke = statements["InvokeThisStacksServices"]
    assert sorted(invoke["Action"]) == ["lambda:InvokeFunction", "lambda:InvokeWithResponseStream"]
    assert invoke["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
        "${AWS::StackName}-*:serving"
    }
    assert invoke["Condition"] == {
        "StringEquals": {"aws:ResourceTag/mcp-fleet": {"Ref": "AWS::StackName"}}
    }
    assert set(statements) == {
        "InvokeThisStacksServices",
        "ReadEveryServicesKeyRecord",
        "WriteOwnLogs",
    }


# --- sign-in, operations, defaults ----------------------------------------------------------


def test_secure_defaults(source):
    parameters = source["Parameters"]
    assert parameters["AuthMode"]["Default"] == "api_key"
    assert parameters["AllowedOrigins"]["Default"] == ""
    assert parameters["EnableApiGatewayApiKey"]["Default"] == "false"


def test_api_gateway_key_resources_are_conditional(cfn):
    for name in ("FleetApiKey", "FleetUsagePlan", "FleetUsagePlanKey"):
        assert cfn["Resources"][name]["Condition"] == "UseApiGatewayApiKey"


def _substituted(value: dict | str) -> str:
    """A `Fn::Sub` string with every ${...} replaced by a plausible value."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{[^}!]+\}", "sub-value", text)


def test_dashboard_body_is_json_built_on_search(cfn):
    [dashboard] = resources_of(cfn, "AWS::CloudWatch::Dashboard").values()
    dashboard_body = json.loads(_substituted(dashboard["Properties"]["DashboardBody"]))
    expressions = [
        item["expression"]
        for widget in dashboard_body["widgets"]
        for row in widget["properties"]["metrics"]
        for item in row
        if isinstance(item, dict) and "expression" in item
    ]
    service_graphs = [e for e in expressions if "McpFleet/" in e]
    assert service_graphs
    assert all("SEARCH(" in expression for expression in service_graphs)
    titles = " ".join(widget["properties"]["title"] for widget in dashboard_body["widgets"])
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


def test_fleet_wide_alarm_on_api_5xx(cfn):
    alarm = cfn["Resources"]["ApiServerErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")


def test_saved_queries_select_every_service_log_group_whatever_their_number(cfn, service_cfn):
    """A LogGroupNames list holds at most 50 groups: the queries select the fleet's groups by
    a prefix only this stack's service groups carry, so they run at 3 or 200 services."""
    queries = resources_of(cfn, "AWS::Logs::QueryDefinition")
    names = " ".join(json.dumps(q["Properties"]["Name"]) for q in queries.values())
    for topic in ("slowest tools", "errors by tool and principal", "cold starts"):
        assert topic in names
    group = service_cfn["Resources"]["LogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"]
    prefix = "/mcp-fleet/${AWS::StackName}/"
    assert group == "/mcp-fleet/${Fleet}/${Service}"  # Fleet is the root's stack name
    for query in queries.values():
        assert "LogGroupNames" not in query["Properties"]
        text = query["Properties"]["QueryString"]["Fn::Sub"]
        assert text.startswith(f"SOURCE logGroups(namePrefix: ['{prefix}'])")


def evaluate(node: Any) -> Any:
    """Fn::Split / Fn::Join / Fn::Sub (with literal values) evaluated as CloudFormation does."""
    if isinstance(node, list):
        return [evaluate(item) for item in node]
    if not isinstance(node, dict) or len(node) != 1:
        return node
    [(function, arguments)] = node.items()
    if function == "Fn::Split":
        return evaluate(arguments[1]).split(arguments[0])
    if function == "Fn::Join":
        return arguments[0].join(evaluate(arguments[1]))
    if function == "Fn::Sub":
        text, values = arguments
        return re.sub(r"\$\{(\w+)\}", lambda m: evaluate(values[m[1]]), text)
    return node


def test_cognito_user_pool_is_protected_and_retained(cfn):
    pool = cfn["Resources"]["UserPool"]
    assert pool["Condition"] == "CreatesPool"  # Cognito on, and this is the primary region
    assert (pool["DeletionPolicy"], pool["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = pool["Properties"]
    assert properties["DeletionProtection"] == "ACTIVE"
    assert properties["MfaConfiguration"] == "OPTIONAL"
    policy = properties["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12


def test_two_scopes_whatever_the_number_of_services(cfn):
    """Cognito allows 100 scopes per resource server and 50 per app client: per-service access
    comes from a person's groups (mcp-fleet/services) or the machine client's mcp-fleet/all."""
    server = cfn["Resources"]["UserPoolResourceServer"]["Properties"]
    assert server["Identifier"] == "mcp-fleet"
    assert sorted(scope["ScopeName"] for scope in server["Scopes"]) == ["all", "services"]
    people = evaluate(cfn["Resources"]["PeopleClient"]["Properties"]["AllowedOAuthScopes"])
    machines = evaluate(cfn["Resources"]["MachineClient"]["Properties"]["AllowedOAuthScopes"])
    assert set(people) == {"openid", "email", "mcp-fleet/services"}
    assert set(machines) == {"mcp-fleet/all"}


def test_people_sign_in_with_pkce_and_machines_with_a_secret(cfn, source):
    people = cfn["Resources"]["PeopleClient"]["Properties"]
    assert (people["GenerateSecret"], people["AllowedOAuthFlows"]) == (False, ["code"])
    defaults = source["Parameters"]["CognitoCallbackUrls"]["Default"]
    assert "http://localhost:6274/oauth/callback" in defaults  # the MCP Inspector
    assert "http://localhost:8765/callback" in defaults  # Claude Code, --callback-port 8765
    machines = cfn["Resources"]["MachineClient"]["Properties"]
    assert (machines["GenerateSecret"], machines["AllowedOAuthFlows"]) == (
        True,
        ["client_credentials"],
    )


def test_every_service_is_wired_to_the_pool_when_cognito_is_on(source):
    parameters = service_parameters(source)
    assert parameters["AuthMode"] == {"Fn::If": ["UseCognito", "jwt", {"Ref": "AuthMode"}]}
    condition, on, off = parameters["JwtIssuer"]["Fn::If"]
    assert condition == "CreatesPool"
    assert on == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}"}
    assert off["Fn::If"][0] == "TrustsPrimaryPool"  # a secondary region: tests/test_regions.py
    assert off["Fn::If"][2] == {"Ref": "JwtIssuer"}
    assert "${UserPool}/.well-known/jwks.json" in json.dumps(parameters["JwtJwksUri"])
    assert parameters["JwtResourceServer"] == {
        "Fn::If": ["UseCognito", "mcp-fleet", {"Ref": "JwtResourceServer"}]
    }
    assert "execute-api" in json.dumps(parameters["AllowedHosts"])
    assert parameters["Fleet"] == {"Ref": "AWS::StackName"}


def test_cognito_needs_a_domain_prefix(source):
    rule = source["Rules"]["CognitoNeedsADomainPrefix"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "EnableCognito"}, "true"]}


# --- deploy day: canaries that roll back, stacks that coexist ----------------------------------


def test_every_service_deploys_through_a_canary_that_its_alarms_roll_back(service_cfn, source):
    """Every function (one template for all) shifts traffic by DeploymentStrategy in its own
    CodeDeploy deployment, and rolls back on its new version's own alarms; the stack update
    never waits on it (tests/test_release.py runs the mechanism)."""
    group = service_cfn["Resources"]["DeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"] == {
        "Fn::Sub": "CodeDeployDefault.Lambda${DeploymentStrategy}"
    }
    assert group["AlarmConfiguration"] == {
        "Enabled": True,
        "Alarms": [
            {"Name": {"Ref": "ReleaseErrorsAlarm"}},
            {"Name": {"Ref": "ReleaseToolErrorRateAlarm"}},
            {"Name": {"Ref": "ReleaseLatencyAlarm"}},
        ],
    }
    rollback = group["AutoRollbackConfiguration"]
    assert rollback["Enabled"] is True
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(rollback["Events"])
    assert not [name for name, r in service_cfn["Resources"].items() if "UpdatePolicy" in r]
    release = service_cfn["Resources"]["Release"]["Properties"]
    assert release["Alias"] == "serving"
    assert release["DeploymentGroupName"] == {"Ref": "DeploymentGroup"}
    strategy = source["Parameters"]["DeploymentStrategy"]
    assert strategy["Default"].startswith("Canary")
    assert "AllAtOnce" in strategy["AllowedValues"]
    assert source["Metadata"]["ServiceParameters"]["DeploymentStrategy"] == {
        "Ref": "DeploymentStrategy"
    }


NAME_PROPERTIES = {
    "Name", "LogGroupName", "AlarmName", "FunctionName", "LayerName", "UserPoolName",
    "ClientName", "DashboardName", "UsagePlanName", "TableName", "RoleName", "TopicName",
    "QueueName", "ApiName", "BucketName",
}  # fmt: skip


SCOPED_NAMES = {
    ("AWS::Cognito::UserPoolResourceServer", "Name"),  # unique in the stack's own pool
    ("AWS::Lambda::Alias", "Name"),  # unique in its function
    ("AWS::IAM::RolePolicy", "RoleName"),  # the role it attaches to, not a name it gives
    ("AWS::Route53::RecordSet", "Name"),  # one name for every region: a record per SetIdentifier
}
"""Name-like properties that name nothing account-wide."""


def named_by_stack(value: Any) -> bool:
    text = json.dumps(value)
    return "${AWS::StackName}" in text or "${Fleet}" in text or '"Ref": "Fleet"' in text


def test_two_stacks_with_different_names_share_no_named_resource(cfn, service_cfn):
    """Staging beside prod: every name a resource takes (log groups, alarms, functions,
    layers, pools, queries, the API) carries the stack's name, and so does every SSM
    parameter the functions read. The one account-wide setting is opt-in (below)."""
    templates = {"template.yaml": cfn, "infra/service.yaml": service_cfn}
    for service in service_dirs(ROOT):
        templates[f"services/{service.name}/infra.yaml"] = transform(
            load_template(service.path / "infra.yaml")
        )
    names = 0
    for where, template in templates.items():
        for logical, resource in template["Resources"].items():
            for key, value in (resource.get("Properties") or {}).items():
                refers = isinstance(value, dict) and (
                    value.get("Ref") in template["Resources"] or "Fn::GetAtt" in value
                )  # another resource's name, not a name given here
                if key in NAME_PROPERTIES and (resource["Type"], key) not in SCOPED_NAMES:
                    if refers:
                        continue
                    names += 1
                    assert named_by_stack(value), f"{where}: {logical}.{key} = {value!r}"
    assert names >= 15
    prefix = cfn["Outputs"]["ApiKeysParameterPrefix"]["Value"]["Fn::If"]
    assert prefix[0] == "HasApiKeysParameterPrefix"
    assert prefix[2] == {"Fn::Sub": "/mcp-fleet/${AWS::StackName}/api-keys"}
    env = service_cfn["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env["MCP_API_KEYS_SSM_PARAMETER"] == {"Fn::Sub": "${ApiKeysParameterPrefix}/${Service}"}


def test_the_account_wide_api_gateway_logging_role_is_opt_in_and_kept(cfn, source):
    """AWS::ApiGateway::Account is one setting per account and region: a second stack says
    `existing`, and deleting the stack that set it never breaks another's access logs."""
    assert source["Parameters"]["ApiGatewayLoggingRole"]["AllowedValues"] == ["create", "existing"]
    assert cfn["Conditions"]["SetsApiGatewayAccount"] == {
        "Fn::Equals": [{"Ref": "ApiGatewayLoggingRole"}, "create"]
    }
    for name in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        resource = cfn["Resources"][name]
        assert resource["Condition"] == "SetsApiGatewayAccount"
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
