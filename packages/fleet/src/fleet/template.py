"""template.yaml: the per-service blocks `fleet new` inserts, and a CloudFormation-aware reader.

Edits are textual insertions above marker comments, so everything else in the
file (comments, order, formatting) stays exactly as the operator left it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FUNCTIONS_MARKER = "  # fleet:services-end (fleet new inserts service resources above this line)"
OUTPUTS_MARKER = "  # fleet:outputs-end (fleet new inserts service outputs above this line)"
LOG_GROUPS_MARKER = "# fleet:log-groups (fleet new adds each service's log group above this line)"
"""Ends each saved query's list of log groups; the list items sit at its indentation."""
SCOPES_MARKER = "# fleet:scopes (fleet new adds each service's scope above this line)"
"""Ends the Cognito resource server's scope list."""
CLIENT_SCOPES_MARKER = "# fleet:client-scopes (fleet new adds each service's scope above this line)"
"""Ends each Cognito app client's list of allowed scopes."""
RESOURCE_SERVER = "mcp-fleet"
"""The Cognito resource server: a service's scope is <RESOURCE_SERVER>/<service>."""
ALARMS: tuple[str, ...] = (
    "ToolErrorRateAlarm",
    "LatencyAlarm",
    "LambdaErrorsAlarm",
    "ThrottlesAlarm",
)
"""Every service's alarms, as `<Stem><Alarm>` resources (fleet check verifies them)."""


def logical_id(service: str) -> str:
    """`math` → `Math`, `long_name` → `LongName`: the stem of the service's resource ids."""
    return "".join(part.capitalize() for part in service.split("_"))


def function_id(service: str) -> str:
    return f"{logical_id(service)}Function"


def service_block(service: str) -> str:
    """The function, its log group and its routes, as template.yaml text."""
    stem = logical_id(service)
    return f"""\
  # --- service: {service} ----------------------------------------------------------
  {stem}Function:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      CodeUri: services/{service}
      Description: MCP service "{service}" at /{service}/mcp
      LoggingConfig:
        LogGroup: !Ref {stem}LogGroup
      Environment:
        Variables:
          AWS_LWA_READINESS_CHECK_PATH: /{service}/health
          MCP_API_KEYS_SSM_PARAMETER: !Sub "${{ApiKeysParameterPrefix}}/{service}"
      Policies:
        - Statement:
            - Sid: ReadOwnApiKeys
              Effect: Allow
              Action: ssm:GetParameter
              Resource: !Sub "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{ApiKeysParameterPrefix}}/{service}"
      Events:
        Mcp:
          Type: Api
          Properties:
            RestApiId: !Ref FleetApi
            Path: /{service}/mcp
            Method: ANY
        Proxy:
          Type: Api
          Properties:
            RestApiId: !Ref FleetApi
            Path: /{service}/{{proxy+}}
            Method: ANY
        ResourceMetadata:
          Type: Api
          Properties:
            RestApiId: !Ref FleetApi
            Path: /.well-known/oauth-protected-resource/{service}/mcp
            Method: GET

  {stem}LogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}-{service}"
      RetentionInDays: !Ref LogRetentionDays

{service_alarms(service)}
"""


def service_alarms(service: str) -> str:
    """The service's alarms: tool-error rate, p99 duration, Lambda errors and throttles."""
    stem = logical_id(service)
    actions = """\
      AlarmActions: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]
      OKActions: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]"""
    return f"""\
  {stem}ToolErrorRateAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${{AWS::StackName}}-{service}-tool-error-rate"
      AlarmDescription: >-
        More than AlarmToolErrorRatePercent % of the {service} service's requests answered a
        tool error for 15 minutes. First look: the saved query "errors by tool and principal".
      Metrics:
        - Id: toolErrors
          ReturnData: false
          MetricStat:
            Metric:
              Namespace: !Sub "McpFleet/${{AWS::StackName}}"
              MetricName: tool_error
              Dimensions:
                - Name: service
                  Value: {service}
            Period: 300
            Stat: Average
        - Id: rate
          Expression: "100 * toolErrors"
          Label: tool error rate (%)
          ReturnData: true
      ComparisonOperator: GreaterThanThreshold
      Threshold: !Ref AlarmToolErrorRatePercent
      EvaluationPeriods: 3
      TreatMissingData: notBreaching
{actions}

  {stem}LatencyAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${{AWS::StackName}}-{service}-p99-duration"
      AlarmDescription: >-
        The {service} service's p99 request duration was above AlarmP99DurationMs for 15
        minutes. First look: the saved query "slowest tools", then the traces (EnableTracing).
      Namespace: !Sub "McpFleet/${{AWS::StackName}}"
      MetricName: duration_ms
      Dimensions:
        - Name: service
          Value: {service}
      ExtendedStatistic: p99
      Period: 300
      EvaluationPeriods: 3
      ComparisonOperator: GreaterThanThreshold
      Threshold: !Ref AlarmP99DurationMs
      TreatMissingData: notBreaching
{actions}

  {stem}LambdaErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${{AWS::StackName}}-{service}-lambda-errors"
      AlarmDescription: >-
        The {service} function failed invocations (crashes, timeouts, out of memory), which
        clients see as 5xx. First look: the function's log group around the alarm time.
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - Name: FunctionName
          Value: !Ref {stem}Function
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      ComparisonOperator: GreaterThanThreshold
      Threshold: 0
      TreatMissingData: notBreaching
{actions}

  {stem}ThrottlesAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${{AWS::StackName}}-{service}-throttles"
      AlarmDescription: >-
        Lambda throttled the {service} function (account or reserved concurrency reached), so
        clients got 429/5xx. First look: the dashboard's concurrency graph.
      Namespace: AWS/Lambda
      MetricName: Throttles
      Dimensions:
        - Name: FunctionName
          Value: !Ref {stem}Function
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      ComparisonOperator: GreaterThanThreshold
      Threshold: 0
      TreatMissingData: notBreaching
{actions}
"""


def service_output(service: str) -> str:
    stem = logical_id(service)
    return f"""\
  {stem}McpUrl:
    Description: MCP endpoint of the {service} service
    Value: !Sub "https://${{FleetApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/${{StageName}}/{service}/mcp"
"""


def makefile(service: str) -> str:
    """The service's Makefile: `sam build` (BuildMethod: makefile) runs its target."""
    return f"""\
# `sam build` runs this target (BuildMethod: makefile) in a scratch copy of this folder, so the
# repository root is found from this Makefile's own path. The build itself is
# packages/fleet/src/fleet/build.py: locked arm64 wheels, workspace code built fresh, bytecode.
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)

build-{function_id(service)}:
\tcd "$(ROOT)" && uv run --frozen fleet build {service} --out "$(ARTIFACTS_DIR)"
"""


def insert_service(text: str, service: str) -> str:
    """`text` with the service's resources and output inserted above the markers, its log
    group added to every saved query, and its Cognito scope to the resource server and to
    both app clients."""
    for marker in (FUNCTIONS_MARKER, OUTPUTS_MARKER):
        if text.count(marker) != 1:
            raise ValueError(
                f"template.yaml must contain the marker line exactly once: {marker.strip()!r}"
            )
    list_items = {
        LOG_GROUPS_MARKER: [f"- !Ref {logical_id(service)}LogGroup"],
        SCOPES_MARKER: [
            f"- ScopeName: {service}",
            f"  ScopeDescription: Call the {service} service's tools",
        ],
        CLIENT_SCOPES_MARKER: [f"- {RESOURCE_SERVER}/{service}"],
    }
    for marker in list_items:
        if marker not in text:
            raise ValueError(f"template.yaml has no marker line {marker!r}")
    text = text.replace(FUNCTIONS_MARKER, service_block(service) + FUNCTIONS_MARKER)
    text = text.replace(OUTPUTS_MARKER, service_output(service) + OUTPUTS_MARKER)
    lines = []
    for line in text.splitlines(keepends=True):
        items = list_items.get(line.strip())
        if items is not None:
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(f"{indent}{item}\n" for item in items)
        lines.append(line)
    return "".join(lines)


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as their long form."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
