"""The fleet's headroom against the limits one `sam deploy` has to respect.

Every limit is measured on the templates as CloudFormation will run them (after the SAM
transform), with its growth per added service measured the same way: the template with one
more registration. `fleet check` prints the headroom and fails on a limit already crossed;
`fleet new` refuses a service that would cross one.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.aws import parameter_override
from fleet.template import (
    OWN_TEMPLATE,
    SERVICE_TEMPLATE,
    TEMPLATE,
    insert_service,
    load_template,
    parse_template,
    transform,
)
from fleet.workspace import service_dirs

STACK_RESOURCES = 500
STACK_OUTPUTS = 200
STACK_PARAMETERS = 200
TEMPLATE_BYTES = 1_048_576
"""CloudFormation's per-stack quotas (fixed), for the template as uploaded (`sam deploy` puts
templates in S3) and as processed after the SAM transform."""
API_RESOURCES_DEFAULT = 300
"""API Gateway's default quota of resources per REST API (adjustable: Service Quotas,
"Resources per API"; set the raised value as [tool.fleet] api-resources-per-api)."""
LAYERS_PER_FUNCTION = 5
NESTED_STACK_PARAMETERS = 60
"""SAM's limit on the parameters of a nested application; kept for infra/service.yaml too."""
PROJECTED_SERVICES = 200
"""The fleet size `fleet check` projects every growing limit to."""
PROBE = "zz_headroom_probe_".ljust(30, "x")
"""The service the growth per service is measured with (never written to disk): as long as
a name may be (fleet new allows 30 characters), so the projection of bytes is an upper bound."""


@dataclass(frozen=True)
class Usage:
    """One limit: what the fleet uses of it now, and how much each added service adds."""

    name: str
    used: int
    limit: int
    per_service: int = 0
    applies: bool = True
    """False for a limit of a feature the fleet has off (Cognito): shown, never failed."""

    @property
    def crossed(self) -> bool:
        return self.applies and self.used > self.limit

    def services_left(self) -> int | None:
        """How many more services fit under this limit (None: it does not grow with them)."""
        if self.per_service <= 0 or not self.applies:
            return None
        return max(0, (self.limit - self.used) // self.per_service)

    def at(self, services_added: int) -> int:
        return self.used + self.per_service * services_added

    def describe(self) -> str:
        left = self.services_left()
        room = "" if left is None else f", +{self.per_service}/service: room for {left} more"
        return f"{self.name}: {self.used:,}/{self.limit:,}{room}"


def api_resources_limit(root: Path) -> int:
    """The REST API's resource quota: the default, or [tool.fleet] api-resources-per-api."""
    return _fleet_setting(root, "api-resources-per-api", API_RESOURCES_DEFAULT)


ACCOUNT_CONCURRENCY_DEFAULT = 1000
UNRESERVED_CONCURRENCY = 100
"""Lambda's concurrent executions per account and region (adjustable: set the raised value as
[tool.fleet] account-concurrency), of which 100 always stay unreserved."""


def _fleet_setting(root: Path, name: str, default: int) -> int:
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        settings = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
        value = settings.get("fleet", {}).get(name)
        if isinstance(value, int) and value > 0:
            return value
    return default


def _fleet_flag(root: Path, name: str) -> bool:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return False
    settings = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    return settings.get("fleet", {}).get(name) is True


def reserved_concurrency(
    root: Path, template: dict[str, Any], extra_services: int = 0
) -> tuple[int, int]:
    """(what every stack samconfig.toml deploys reserves in all, what one more service adds).

    In each stack a service reserves its own output ReservedConcurrency when it names a
    number, else the stack's ServiceReservedConcurrency; a stack whose ServiceReservedConcurrency
    is 0 reserves nothing (infra/service.yaml). Stacks in one account and region share its
    concurrency, so they add up (an upper bound when they are in different ones)."""
    parameter = (template.get("Parameters") or {}).get("ServiceReservedConcurrency") or {}
    template_default = int(parameter.get("Default", 0))
    own: list[int | None] = []
    for service in service_dirs(root):
        path = service.path / OWN_TEMPLATE
        outputs = (load_template(path).get("Outputs") or {}) if path.is_file() else {}
        value = (outputs.get("ReservedConcurrency") or {}).get("Value")
        own.append(value if isinstance(value, int) or str(value).isdigit() else None)
    own += [None] * extra_services
    total = per_service = 0
    for env in deploy_environments(root):
        default = int(parameter_override(env, "ServiceReservedConcurrency") or template_default)
        if default == 0:
            continue
        total += sum(default if value is None else int(value) for value in own)
        per_service += default
    return total, per_service


def _api_resources(cfn: dict[str, Any]) -> int:
    """API Gateway resources the OpenAPI body creates: one per path segment node, the root
    resource `/` included."""
    nodes = {"/"}
    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::ApiGateway::RestApi":
            continue
        for path in (resource["Properties"].get("Body") or {}).get("paths", {}):
            parts = [part for part in path.split("/") if part]
            nodes.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    return len(nodes)


@dataclass(frozen=True)
class _Shape:
    resources: int
    outputs: int
    parameters: int
    uploaded_bytes: int
    processed_bytes: int
    api_resources: int
    query_log_groups: int
    """The most log groups one saved Logs Insights query lists (SOURCE by prefix lists none)."""


@functools.lru_cache(maxsize=32)
def _transformed(text: str) -> dict[str, Any]:
    """A template's text transformed once per process (check runs it several times)."""
    return transform(parse_template(text))


PACKAGED_URL = (
    "https://s3.us-east-1.amazonaws.com/aws-sam-cli-managed-default-samclisourcebucket-"
    "0123456789ab/mcp-fleet/0123456789abcdef0123456789abcdef.template"
)
"""What `sam package` writes in place of a local path (TemplateURL, CodeUri, ContentUri)."""


def _packaged_bytes(text: str) -> int:
    """The template's size as `sam package` uploads it: re-serialised by SAM CLI's own YAML
    writer, so every anchor expanded (about 27 parameters per service), local paths replaced
    by S3 URLs, each resource's SamResourceId added. The 1 MB limit applies to this, not to
    template.yaml. (Checked against a real `sam package` to moto's S3: within 2%.)"""
    from samcli.yamlhelper import yaml_dump, yaml_parse

    template = yaml_parse(text)
    for logical_id, resource in (template.get("Resources") or {}).items():
        resource.setdefault("Metadata", {})["SamResourceId"] = logical_id  # sam package adds it
        properties = resource.get("Properties") or {}
        for key in ("TemplateURL", "CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = PACKAGED_URL
    return len(yaml_dump(template).encode())


def _shape(text: str, packaged: bool = False) -> _Shape:
    cfn = _transformed(text)
    return _Shape(
        resources=len(cfn.get("Resources", {})),
        outputs=len(cfn.get("Outputs", {})),
        parameters=len(cfn.get("Parameters", {})),
        uploaded_bytes=_packaged_bytes(text) if packaged else len(text.encode()),
        processed_bytes=len(json.dumps(cfn, separators=(",", ":")).encode()),
        api_resources=_api_resources(cfn),
        query_log_groups=max(
            (
                len(res["Properties"].get("LogGroupNames") or [])
                for res in cfn.get("Resources", {}).values()
                if res.get("Type") == "AWS::Logs::QueryDefinition"
            ),
            default=0,
        ),
    )


def fleet_usage(
    root: Path, template_text: str | None = None, extra_services: int = 0
) -> list[Usage]:
    """Every limit, for template.yaml (or `template_text` instead), its service stacks and
    each service's own stack; `extra_services` are registered in the text but have no folder
    yet (fleet new checks before it writes)."""
    text = template_text if template_text is not None else (root / TEMPLATE).read_text()
    now, more = _shape(text, packaged=True), _shape(insert_service(text, PROBE), packaged=True)
    usage = [
        Usage(
            "root stack: resources", now.resources, STACK_RESOURCES, more.resources - now.resources
        ),
        Usage("root stack: outputs", now.outputs, STACK_OUTPUTS, more.outputs - now.outputs),
        Usage(
            "root stack: parameters",
            now.parameters,
            STACK_PARAMETERS,
            more.parameters - now.parameters,
        ),
        Usage(
            "root stack: packaged template bytes",
            now.uploaded_bytes,
            TEMPLATE_BYTES,
            more.uploaded_bytes - now.uploaded_bytes,
        ),
        Usage(
            "root stack: processed template bytes",
            now.processed_bytes,
            TEMPLATE_BYTES,
            more.processed_bytes - now.processed_bytes,
        ),
        Usage(
            "REST API: resources",
            now.api_resources,
            api_resources_limit(root),
            more.api_resources - now.api_resources,
        ),
        Usage(
            "Logs Insights: log groups one saved query lists",
            now.query_log_groups,
            QUERY_LOG_GROUPS,
            more.query_log_groups - now.query_log_groups,
        ),
    ]
    reserved, default = reserved_concurrency(root, parse_template(text), extra_services)
    usage.append(
        Usage(
            f"Lambda: reserved concurrency (account, region; {len(deploy_environments(root))} "
            "stack(s))",
            reserved,
            _fleet_setting(root, "account-concurrency", ACCOUNT_CONCURRENCY_DEFAULT)
            - UNRESERVED_CONCURRENCY,
            default,
        )
    )
    service = load_template(root / SERVICE_TEMPLATE)
    service_cfn = transform(service)
    usage += account_usage(root, text, service_cfn, extra_services)
    usage += [
        Usage("each service stack: resources", len(service_cfn["Resources"]), STACK_RESOURCES),
        Usage("each service stack: outputs", len(service_cfn.get("Outputs", {})), STACK_OUTPUTS),
        Usage(
            "each service stack: parameters",
            len(service.get("Parameters", {})),
            NESTED_STACK_PARAMETERS,
        ),
        Usage(
            "each function: layers",
            max(
                len(res["Properties"].get("Layers", []))
                for res in service_cfn["Resources"].values()
                if res["Type"] == "AWS::Lambda::Function"
            ),
            LAYERS_PER_FUNCTION,
        ),
    ]
    own = [(s.name, s.path / OWN_TEMPLATE) for s in service_dirs(root)]
    shapes = [(name, _shape(path.read_text())) for name, path in own if path.is_file()]
    if shapes:
        biggest = max(shapes, key=lambda item: item[1].resources)
        usage.append(
            Usage(
                f"own stack: resources (largest: {biggest[0]})",
                biggest[1].resources,
                STACK_RESOURCES,
            )
        )
    return usage


QUERY_LOG_GROUPS = 50
"""Log groups one Logs Insights StartQuery (and a saved query's list) takes."""
CODEDEPLOY_CONCURRENT_DEPLOYMENTS = 1300
"""Deployments in progress at once per region: a change to every service starts one each."""
IAM_ROLES = 1000
"""IAM roles per account, every region (adjustable to 5,000)."""
STACKS_PER_REGION = 2000
RESOURCES_PER_OPERATION = 2500
"""What one nested-stack operation (a first deploy, a delete) may create or delete."""
CODEDEPLOY_APPLICATIONS = 1000
COGNITO_SCOPES_PER_CLIENT = 50
COGNITO_SCOPES_PER_RESOURCE_SERVER = 100


def deploy_environments(root: Path) -> list[dict[str, str]]:
    """samconfig.toml's environments that deploy: each a stack in some account and region."""
    path = root / "samconfig.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    environments = []
    for name, env in config.items():
        if not isinstance(env, dict) or "deploy" not in env:
            continue
        merged = {
            **env.get("global", {}).get("parameters", {}),
            **env["deploy"].get("parameters", {}),
        }
        environments.append({"name": name, **{k: str(v) for k, v in merged.items()}})
    return environments or [{"name": "default"}]


def _created_in_one_region(own: dict[str, Any]) -> int:
    """The resources an own stack creates in a one-region fleet (memory's global table and
    its one-region table are alternatives); every resource when its conditions cannot be read."""
    from fleet.template import created

    values = {"PrimaryRegion": "", "ReplicaRegions": "", "AWS::Region": "us-east-1"}
    try:
        return len(created(own, values))
    except Exception:  # noqa: BLE001 - a condition the evaluator does not know: count them all
        return len(own.get("Resources", {}))


def _count(cfn: dict[str, Any], kind: str) -> int:
    return sum(1 for res in cfn.get("Resources", {}).values() if res.get("Type") == kind)


def account_usage(
    root: Path, text: str, service_cfn: dict[str, Any], extra_services: int = 0
) -> list[Usage]:
    """The account- and region-wide quotas the fleet consumes, for every stack samconfig.toml
    deploys (stages and regions alike: an upper bound for one region), per service measured
    on the templates as CloudFormation receives them."""
    template = parse_template(text)
    cfn = _transformed(text)
    services = len(service_dirs(root)) + extra_services
    stacks = len(deploy_environments(root))
    own = [
        load_template(s.path / OWN_TEMPLATE)
        for s in service_dirs(root)
        if (s.path / OWN_TEMPLATE).is_file()
    ]
    own_resources = max((_created_in_one_region(o) for o in own), default=1)
    nested = _count(service_cfn, "AWS::CloudFormation::Stack")  # own + response mode
    per_service_resources = 1 + len(service_cfn["Resources"]) + own_resources + (nested - 1)
    root_resources = len(cfn["Resources"]) - services  # the root's own, without the services
    root_stacks = _count(cfn, "AWS::CloudFormation::Stack") - services  # FleetSettings
    root_resources += root_stacks  # each holds one resource
    roles_root = _count(cfn, "AWS::IAM::Role")
    roles_service = _count(service_cfn, "AWS::IAM::Role")
    client_scopes = [
        res["Properties"].get("AllowedOAuthScopes") or []
        for res in cfn["Resources"].values()
        if res.get("Type") == "AWS::Cognito::UserPoolClient"
    ]
    server_scopes = [
        res["Properties"].get("Scopes") or []
        for res in cfn["Resources"].values()
        if res.get("Type") == "AWS::Cognito::UserPoolResourceServer"
    ]
    cognito = "true" in (
        str(template.get("Parameters", {}).get("EnableCognito", {}).get("Default")),
        *(
            "true"
            for env in deploy_environments(root)
            if "EnableCognito=true" in env.get("parameter_overrides", "").replace('"', "")
        ),
    )
    return [
        Usage(
            "one operation (a first deploy or a delete of the whole stack; add services in "
            "batches past it: README): resources",
            root_resources + services * per_service_resources,
            RESOURCES_PER_OPERATION,
            per_service_resources,
            applies=not _fleet_flag(root, "grown-in-batches"),
        ),
        Usage(
            f"IAM roles (account; {stacks} stack(s) in samconfig.toml)",
            stacks * (roles_root + services * roles_service),
            _fleet_setting(root, "iam-roles", IAM_ROLES),
            stacks * roles_service,
        ),
        Usage(
            f"CloudFormation stacks (region; {stacks} stack(s))",
            stacks * (1 + root_stacks + services * (1 + nested)),
            STACKS_PER_REGION,
            stacks * (1 + nested),
        ),
        Usage(
            f"CodeDeploy applications (region; {stacks} stack(s))",
            stacks * _count(cfn, "AWS::CodeDeploy::Application"),
            CODEDEPLOY_APPLICATIONS,
        ),
        Usage(
            f"CodeDeploy concurrent deployments (region; {stacks} stack(s) deployed at once)",
            stacks * services,
            CODEDEPLOY_CONCURRENT_DEPLOYMENTS,
            stacks,
        ),
        Usage(
            "CloudWatch dashboards named without the region (names are account-global)",
            sum(
                1
                for res in cfn["Resources"].values()
                if res.get("Type") == "AWS::CloudWatch::Dashboard"
                and "${AWS::Region}" not in json.dumps(res["Properties"].get("DashboardName"))
            ),
            0,
        ),
        Usage(
            "Cognito: scopes per app client (EnableCognito)",
            max((len(scopes) for scopes in client_scopes), default=0),
            COGNITO_SCOPES_PER_CLIENT,
            applies=cognito,
        ),
        Usage(
            "Cognito: scopes per resource server (EnableCognito)",
            max((len(scopes) for scopes in server_scopes), default=0),
            COGNITO_SCOPES_PER_RESOURCE_SERVER,
            applies=cognito,
        ),
    ]


def over_limits(root: Path, template_text: str, extra_services: int = 0) -> list[str]:
    """The limits `template_text` crosses, one phrase each (empty: none)."""
    return [
        f"{usage.name} would be {usage.used:,} (limit {usage.limit:,})"
        for usage in fleet_usage(root, template_text, extra_services)
        if usage.crossed
    ]


def projection(usage: list[Usage], services_now: int, services: int) -> list[tuple[Usage, int]]:
    """Each growing limit's use at `services` services."""
    return [(u, u.at(services - services_now)) for u in usage if u.per_service]


def max_services(usage: list[Usage], services_now: int) -> int:
    """The most services the fleet can have before the first limit is crossed."""
    lefts = [left for u in usage if (left := u.services_left()) is not None]
    return services_now + min(lefts) if lefts else math.inf  # type: ignore[return-value]
