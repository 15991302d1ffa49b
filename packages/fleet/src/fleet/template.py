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
    """`text` with the service's resources and output inserted above the markers."""
    for marker in (FUNCTIONS_MARKER, OUTPUTS_MARKER):
        if text.count(marker) != 1:
            raise ValueError(
                f"template.yaml must contain the marker line exactly once: {marker.strip()!r}"
            )
    text = text.replace(FUNCTIONS_MARKER, service_block(service) + FUNCTIONS_MARKER)
    return text.replace(OUTPUTS_MARKER, service_output(service) + OUTPUTS_MARKER)


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
