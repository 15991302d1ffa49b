"""template.yaml: the lines that register a service, and a CloudFormation-aware reader.

Everything a service has is written once: infra/service.yaml (its function, log group, alarms
and route values) and services/<svc>/infra.yaml (what is specific to it). template.yaml only
registers each service, in five places marked by comments; `fleet new` and `fleet remove`
insert and delete those lines as text, so everything else in the file (comments, order,
formatting) stays as the operator left it. The file is merged with git's `union` driver
(.gitattributes): two branches that each add a service keep both registrations.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = "template.yaml"
SERVICE_TEMPLATE = "infra/service.yaml"
"""What every service has: instantiated once per service, as a nested stack."""
SERVICE_STACK = "AWS::CloudFormation::Stack"
"""How template.yaml nests each service's stack. (Not AWS::Serverless::Application: SAM
allows 200 of those per template, and nothing else would be left for the fleet.)"""
OWN_TEMPLATE = "infra.yaml"
"""Each service's own stack, in its folder: its resources, IAM statements and settings."""
RESOURCE_SERVER = "mcp-fleet"
"""The Cognito resource server: scopes <RESOURCE_SERVER>/services and <RESOURCE_SERVER>/all."""
ALARMS: tuple[str, ...] = (
    "ToolErrorRateAlarm",
    "LatencyAlarm",
    "LambdaErrorsAlarm",
    "ThrottlesAlarm",
)
"""Every service's alarms, in infra/service.yaml (fleet check verifies them)."""
OWN_OUTPUTS: tuple[str, ...] = (
    "MemorySize",
    "ResponseTransferMode",
    "Timeout",
    "ToolTimeout",
    "Environment",
    "ReservedConcurrency",
    "ThrottlingRateLimit",
    "ThrottlingBurstLimit",
)
"""What infra/service.yaml reads from every service's own stack."""
OWN_PARAMETERS: tuple[str, ...] = (
    "Fleet",
    "Service",
    "Role",
    "ReservedConcurrency",
    "ThrottlingRateLimit",
    "ThrottlingBurstLimit",
    "PrimaryRegion",
    "ReplicaRegions",
)
"""What infra/service.yaml passes to every service's own stack."""
ROUTE_OUTPUTS: tuple[str, ...] = ("IntegrationUri", "ResponseTransferMode", "IntegrationTimeoutMs")
"""What each service's route in template.yaml reads from its stack."""
ADAPTER_MODES = {"BUFFERED": "buffered", "STREAM": "response_stream"}
"""ResponseTransferMode → AWS_LWA_INVOKE_MODE, as infra/response-mode.yaml maps it."""


def own_outputs(service_path: Path) -> dict[str, Any]:
    """The literal Value of each output of a service's own stack (infra.yaml)."""
    outputs = load_template(service_path / OWN_TEMPLATE).get("Outputs") or {}
    return {name: (spec or {}).get("Value") for name, spec in outputs.items()}


def lambda_environment(service_path: Path) -> dict[str, str]:
    """What the service's own stack puts in its function's environment, for running it
    locally as Lambda does: its tool deadline and its response mode."""
    outputs = own_outputs(service_path)
    environment = {}
    if isinstance(outputs.get("ToolTimeout"), str | int | float):
        environment["MCP_TOOL_TIMEOUT_SECONDS"] = str(outputs["ToolTimeout"])
    mode = outputs.get("ResponseTransferMode", "BUFFERED")
    if mode in ADAPTER_MODES:
        environment["AWS_LWA_INVOKE_MODE"] = ADAPTER_MODES[mode]
    return environment


def logical_id(service: str) -> str:
    """`math` → `Math`, `long_name` → `LongName`: the service's nested stack in template.yaml."""
    return "".join(part.capitalize() for part in service.split("_"))


FLEET_PATHS = frozenset(
    {
        "/health",
        "/mcp",
        "/search/mcp",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource/search/mcp",
    }
)
"""The API's own routes, no service's: the region's health for Route 53 (a mock), and the
front door (mcp_common.frontdoor) at /mcp and /search/mcp."""


def throttle_path(service: str) -> str:
    """The route as a stage's method settings name it (`/` inside the path is `~1`)."""
    return "/" + route_path(service).replace("/", "~1")


def route_path(service: str) -> str:
    """The service's one route: two API Gateway resources, `/<svc>` and `/<svc>/{proxy+}`."""
    return f"/{service}/{{proxy+}}"


@dataclass(frozen=True)
class Marker:
    """A comment line in template.yaml above which one kind of registration line goes."""

    name: str
    where: str

    @property
    def tag(self) -> str:
        return f"# fleet:{self.name} "


MARKERS: tuple[Marker, ...] = (
    Marker("services", "Metadata.FleetServices"),
    Marker("routes", "the API's OpenAPI paths"),
    Marker("stacks", "Resources"),
    Marker("throttles", "the API stage's per-route throttles"),
)


SETTINGS_STACK = "FleetSettings"
"""The root's nested stack (infra/settings.yaml) that computes once what every service is given."""


def service_parameters(template: dict[str, Any]) -> dict[str, Any]:
    """What each service's stack is given (Metadata.ServiceParameters), with what the root
    computes once in FleetSettings in place of the !GetAtt that reads it."""
    computed = template["Resources"][SETTINGS_STACK]["Properties"]["Parameters"]

    def resolved(value: Any) -> Any:
        target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
        if isinstance(target, list) and target[0] == SETTINGS_STACK:
            return computed[target[1].removeprefix("Outputs.")]
        return value

    return {
        name: resolved(value) for name, value in template["Metadata"]["ServiceParameters"].items()
    }


def registration(service: str) -> dict[str, list[str]]:
    """The lines that register `service`, by marker name, indented relative to the marker."""
    stem = logical_id(service)
    reads = {output: f"!GetAtt {stem}.Outputs.{output}" for output in ROUTE_OUTPUTS}
    return {
        "services": [f"- {service}"],
        "routes": [
            f"{route_path(service)}:",
            "  x-amazon-apigateway-any-method:",
            (
                "    x-amazon-apigateway-integration: {<<: *integration, "
                f"uri: {reads['IntegrationUri']},"
            ),
            (
                f"      responseTransferMode: {reads['ResponseTransferMode']}, "
                f"timeoutInMillis: {reads['IntegrationTimeoutMs']}}}"
            ),
        ],
        "stacks": [
            f"{stem}:",
            "  Type: AWS::CloudFormation::Stack",
            (
                f"  Properties: {{TemplateURL: {SERVICE_TEMPLATE}, "
                f"Parameters: {{<<: *service_parameters, Service: {service}}}}}"
            ),
        ],
        "throttles": [
            (
                f'- {{ResourcePath: "{throttle_path(service)}", HttpMethod: "*", '
                f"MetricsEnabled: true, ThrottlingRateLimit: !GetAtt {stem}.Outputs."
                f"ThrottlingRateLimit, ThrottlingBurstLimit: !GetAtt {stem}.Outputs."
                "ThrottlingBurstLimit}"
            )
        ],
    }


def registration_lines(service: str) -> int:
    """How many lines registering a service adds to template.yaml."""
    return sum(len(lines) for lines in registration(service).values())


def _marker_lines(text: str) -> dict[str, int]:
    """{marker name: line index}, each marker exactly once."""
    lines = text.splitlines()
    found: dict[str, int] = {}
    for marker in MARKERS:
        indexes = [i for i, line in enumerate(lines) if line.strip().startswith(marker.tag)]
        if len(indexes) != 1:
            raise ValueError(
                f"{TEMPLATE} must hold the marker line {marker.tag.strip()!r} ({marker.where}) "
                f"exactly once; it holds it {len(indexes)} times"
            )
        found[marker.name] = indexes[0]
    return found


def insert_service(text: str, service: str) -> str:
    """`text` with `service`'s registration lines above each marker."""
    lines = text.splitlines(keepends=True)
    markers = _marker_lines(text)
    additions = registration(service)
    for name, index in sorted(markers.items(), key=lambda item: -item[1]):  # bottom up
        indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
        lines[index:index] = [f"{indent}{line}\n" for line in additions[name]]
    return "".join(lines)


def remove_service(text: str, service: str) -> tuple[str, int]:
    """`text` without `service`'s registration lines, and how many lines went.

    Each registration starts at its marker's indentation with the line `fleet new` wrote;
    the lines indented deeper below it belong to it."""
    lines = text.splitlines(keepends=True)
    markers = _marker_lines(text)
    firsts = {name: lines_[0] for name, lines_ in registration(service).items()}
    doomed: set[int] = set()
    for name, marker_index in markers.items():
        marker_line = lines[marker_index]
        indent = len(marker_line) - len(marker_line.lstrip())
        start = _block_start(lines, marker_index, indent)
        for i in range(start, marker_index):
            line = lines[i]
            if len(line) - len(line.lstrip()) == indent and line.strip() == firsts[name]:
                doomed.add(i)
                j = i + 1
                while j < marker_index and (
                    not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
                ):
                    doomed.add(j)
                    j += 1
    kept = [line for i, line in enumerate(lines) if i not in doomed]
    return "".join(kept), len(doomed)


def _block_start(lines: list[str], marker_index: int, indent: int) -> int:
    """The first line of the list or mapping that ends at the marker: upwards, until a line
    indented less than the marker."""
    i = marker_index
    while i > 0:
        line = lines[i - 1]
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        i -= 1
    return i


def registered_services(template: dict[str, Any]) -> dict[str, set[str]]:
    """{service: where template.yaml registers it}, read from the parsed template."""
    where: dict[str, set[str]] = {}

    def note(service: object, place: str) -> None:
        if isinstance(service, str):
            where.setdefault(service, set()).add(place)

    for service in template.get("Metadata", {}).get("FleetServices", []) or []:
        note(service, "Metadata.FleetServices")
    resources = template.get("Resources", {})
    for name, resource in resources.items():
        properties = resource.get("Properties", {}) or {}
        kind = resource.get("Type")
        if kind == SERVICE_STACK:
            note((properties.get("Parameters") or {}).get("Service"), f"nested stack {name}")
        elif kind == "AWS::Serverless::Api":
            paths = ((properties.get("DefinitionBody") or {}).get("paths")) or {}
            for path in paths:
                if path in FLEET_PATHS:
                    continue
                match = re.fullmatch(r"/([^/]+)/\{proxy\+\}", path)
                note(match[1] if match else path, f"route {path}")
            for setting in properties.get("MethodSettings", []) or []:
                path = (setting or {}).get("ResourcePath", "")
                match = re.fullmatch(r"/~1([^~/]+)~1\{proxy\+\}", path)
                if match:
                    note(match[1], "route throttle")
        elif kind == "AWS::Logs::QueryDefinition":
            for group in properties.get("LogGroupNames", []) or []:
                target = (group.get("Fn::GetAtt") or [None])[0] if isinstance(group, dict) else None
                stacks = {
                    stack: (res.get("Properties") or {}).get("Parameters", {}).get("Service")
                    for stack, res in resources.items()
                    if res.get("Type") == SERVICE_STACK
                }
                note(stacks.get(target, target), f"log groups of {name}")
    return where


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A key twice in one mapping: what a union merge of two edits to one line leaves."""


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as their long form, and refuses
    duplicate keys (YAML would silently keep the last). libyaml's parser where PyYAML has it:
    fleet check reads the root template and every service's stack several times."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Only the mapping's own keys count: a merge key's (<<) values may be overridden.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):  # the two short forms without an Fn:: long form
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)
# Its own mapping constructor: other tools (SAM CLI) re-register SafeLoader's, for every user.
_CfnLoader.add_constructor("tag:yaml.org,2002:map", _CfnLoader.construct_yaml_map)


def parse_template(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def load_template(path: Path) -> dict[str, Any]:
    return parse_template(path.read_text(encoding="utf-8"))


PLACEHOLDER_S3 = "s3://bucket/artifact.zip"
TRANSFORM_REGION = "us-east-1"
"""The region offline transforms assume (no AWS call is made; ARNs need a partition)."""


def transform(template: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The template as CloudFormation runs it: local code and templates replaced by S3
    locations (what `sam package` does), then the SAM transform, offline."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    template = copy.deepcopy(template)
    if "Transform" not in template:
        return template
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            if not str(properties.get("CodeUri", "")).startswith("s3://"):  # packaged already
                properties["CodeUri"] = PLACEHOLDER_S3
        elif kind == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = PLACEHOLDER_S3
        elif kind == "AWS::Serverless::Application":
            properties["Location"] = "https://s3.amazonaws.com/bucket/nested.template"
        elif kind == "AWS::CloudFormation::Stack":
            properties["TemplateURL"] = "https://s3.amazonaws.com/bucket/nested.template"
    parameters = dict(parameters or {})
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # feature-toggle chatter
    to_py27_compatible_template(template, parameters)
    translator = Translator(
        None, Parser(), boto_session=boto3.session.Session(region_name=TRANSFORM_REGION)
    )
    transformed = translator.translate(
        template, parameter_values=parameters, get_managed_policy_map=dict
    )
    return undo_mark_unicode_str_in_template(transformed)


NO_VALUE = {"Ref": "AWS::NoValue"}


def holds(cfn: dict[str, Any], node: Any, values: dict[str, str]) -> Any:
    """A template's condition or value, evaluated with parameter values (and the parameters'
    defaults) as CloudFormation does: enough of the intrinsic functions for the fleet's
    conditions (Equals, Not, And, Or, If, Ref, Sub, Select, Split)."""

    def value_of(name: str) -> Any:
        return values.get(name, cfn.get("Parameters", {}).get(name, {}).get("Default"))

    if isinstance(node, list):  # AWS::NoValue removes the element, as in CloudFormation
        return [item for item in (holds(cfn, each, values) for each in node) if item != NO_VALUE]
    if isinstance(node, dict) and len(node) == 1:
        [(function, arguments)] = node.items()
        if function == "Condition":
            return holds(cfn, cfn["Conditions"][arguments], values)
        if function == "Fn::Equals":
            return holds(cfn, arguments[0], values) == holds(cfn, arguments[1], values)
        if function == "Fn::Not":
            return not holds(cfn, arguments[0], values)
        if function == "Fn::And":
            return all(holds(cfn, a, values) for a in arguments)
        if function == "Fn::Or":
            return any(holds(cfn, a, values) for a in arguments)
        if function == "Ref":
            if arguments == "AWS::NoValue" or arguments in cfn.get("Resources", {}):
                return node  # nothing, or a resource: known only once it exists
            return value_of(arguments)
        if function == "Fn::If":
            name, yes, no = arguments
            return holds(cfn, yes if holds(cfn, cfn["Conditions"][name], values) else no, values)
        if function == "Fn::Select":
            return holds(cfn, arguments[1], values)[int(holds(cfn, arguments[0], values))]
        if function == "Fn::Split":
            return str(holds(cfn, arguments[1], values)).split(arguments[0])
        if function == "Fn::Sub":
            text = arguments if isinstance(arguments, str) else arguments[0]
            names = {*values, *cfn.get("Parameters", {})}
            for key in sorted(names, key=len, reverse=True):
                if (found := value_of(key)) is not None:
                    text = text.replace("${" + key + "}", str(found))
            return text
    return node


def created(cfn: dict[str, Any], values: dict[str, str]) -> set[str]:
    """The template's resources CloudFormation creates with these parameter values."""
    return {
        name
        for name, resource in cfn["Resources"].items()
        if "Condition" not in resource
        or holds(cfn, cfn["Conditions"][resource["Condition"]], values)
    }
