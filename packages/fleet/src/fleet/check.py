"""`fleet check`: the fleet's folders, templates and tools agree, within every limit.

It checks what every service has (infra/service.yaml), how template.yaml registers each
service, and what a team may change alone in its folder (infra.yaml: timeouts that agree, no
IAM wildcard). Every fault is collected and reported together, one line each, so one run
shows everything to fix.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from fleet.integrity import makefile_fault, path_entry_faults
from fleet.limits import fleet_usage
from fleet.template import (
    ADAPTER_MODES,
    ALARMS,
    FLEET_PATHS,
    OWN_OUTPUTS,
    OWN_PARAMETERS,
    OWN_TEMPLATE,
    ROUTE_OUTPUTS,
    SERVICE_STACK,
    SERVICE_TEMPLATE,
    TEMPLATE,
    load_template,
    logical_id,
    registered_services,
    route_path,
)
from fleet.workspace import FleetError, ServiceDir, service_dirs

ADAPTER_LAYER = "753240598075:layer:LambdaAdapterLayerArm64"
ELF_AARCH64 = 183
REQUIRED_ENV = (
    "AWS_LAMBDA_EXEC_WRAPPER",
    "PORT",
    "MCP_AUTH",
    "MCP_ALLOWED_HOSTS",
    "MCP_API_KEYS_SSM_PARAMETER",
    "MCP_TOOL_TIMEOUT_SECONDS",
    "MCP_SERVICE_ENVIRONMENT",
    "AWS_LWA_INVOKE_MODE",
    "AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH",
    "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH",
)
HOOK_ENV = ("AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH", "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH")
MIN_ADAPTER_LAYER = 30  # Lambda Web Adapter v1.1.0: the first release with SnapStart hooks
INVOKE_ROLE = "ApiInvokeRole"
"""The role API Gateway calls every service's alias with (each route's `credentials`)."""
API_GATEWAY_TIMEOUT_SECONDS = 29
"""How long API Gateway waits for a buffered (non-streaming) Lambda integration."""
STREAMING_TIMEOUT_SECONDS = 900
"""How long API Gateway streams a response, and Lambda's own maximum: 15 minutes."""


def _text(value: Any) -> str:
    """A template value as text, intrinsics included (enough to search for a name)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _load(path: Path, label: str, faults: list[str]) -> dict[str, Any] | None:
    try:
        return load_template(path)
    except FileNotFoundError:
        faults.append(f"{label} is missing")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = " - two merged edits of one line?" if "twice" in str(problem) else ""
        faults.append(f"{label}{where}: {problem}{hint}")
    return None


# --- what every service has: infra/service.yaml ---------------------------------------------


def _service_template_faults(service_template: dict[str, Any]) -> list[str]:
    where = SERVICE_TEMPLATE
    resources = service_template.get("Resources", {})
    function = resources.get("Function", {})
    if function.get("Type") != "AWS::Serverless::Function":
        return [f"{where}: no AWS::Serverless::Function named Function"]
    properties = function.get("Properties", {})
    faults = []
    expected = {
        "Runtime": "python3.13",
        "Architectures": ["arm64"],
        "Handler": "run.sh",
        "AutoPublishAlias": "published",
        "VersionDescription": {"Fn::Sub": "config ${Fingerprint.Digest}"},
        "CodeUri": {"Fn::Sub": "../services/${Service}"},
    }
    faults.extend(
        f"{where}: Function.{name} must be {value!r} (is {properties.get(name)!r})"
        for name, value in expected.items()
        if properties.get(name) != value
    )
    if "DeploymentPreference" in properties:
        faults.append(
            f"{where}: Function.DeploymentPreference makes every stack update wait on this "
            "service's canary and fail with it: releases go through Release (Custom::Release)"
        )
    for name, kind in (("Fingerprint", "Custom::Fingerprint"), ("Release", "Custom::Release")):
        if resources.get(name, {}).get("Type") != kind:
            faults.append(f"{where}: no {kind} named {name} (every change must go live)")
    if function.get("Metadata", {}).get("BuildMethod") != "makefile":
        faults.append(f"{where}: Function.Metadata.BuildMethod must be makefile")
    layers = _text(properties.get("Layers", []))
    for layer in ("AdapterLayerArn", "DepsLayerArn", "CommonLayerArn"):
        if layer not in layers:
            faults.append(f"{where}: Function.Layers lacks {layer}")
    if "ApplyOn" not in (properties.get("SnapStart") or {}):
        faults.append(
            f"{where}: Function.SnapStart.ApplyOn is not set (the EnableSnapStart switch)"
        )
    env = properties.get("Environment", {}).get("Variables", {})
    faults.extend(
        f"{where}: Function environment variable {name} is not set"
        for name in REQUIRED_ENV
        if name not in env
    )
    if env.get("AWS_LAMBDA_EXEC_WRAPPER") != "/opt/bootstrap":
        faults.append(f"{where}: AWS_LAMBDA_EXEC_WRAPPER must be /opt/bootstrap")
    if str(env.get("PORT")) != "8080":
        faults.append(f"{where}: PORT must be 8080")
    if env.get("AWS_LWA_READINESS_CHECK_PATH") != {"Fn::Sub": "/${Service}/health"}:
        faults.append(f"{where}: AWS_LWA_READINESS_CHECK_PATH must be /${{Service}}/health")
    for name in HOOK_ENV:
        path = env.get(name)
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("/."):
            faults.append(f"{where}: {name} must be an absolute path outside every route")
    faults.extend(
        f"{where}: no alarm {alarm}"
        for alarm in ALARMS
        if resources.get(alarm, {}).get("Type") != "AWS::CloudWatch::Alarm"
    )
    outputs = service_template.get("Outputs", {})
    faults.extend(
        f"{where}: no output {name} (the service's route reads it)"
        for name in (*ROUTE_OUTPUTS, "LogGroup")
        if name not in outputs
    )
    return faults


def _hook_faults(service_template: dict[str, Any], services: list[str]) -> list[str]:
    """The SnapStart hook paths lie outside every service's route."""
    env = (
        service_template.get("Resources", {})
        .get("Function", {})
        .get("Properties", {})
        .get("Environment", {})
        .get("Variables", {})
    )
    faults = []
    for name in HOOK_ENV:
        path = env.get(name)
        if isinstance(path, str):
            faults.extend(
                f"{SERVICE_TEMPLATE}: {name} {path} lies under /{service}/; clients could call it"
                for service in services
                if path.startswith(f"/{service}/") or path.rstrip("/") == f"/{service}"
            )
    return faults


# --- how template.yaml registers each service ---------------------------------------------


def _expected_places(template: dict[str, Any], service: str) -> set[str]:
    return {
        "Metadata.FleetServices",
        f"nested stack {logical_id(service)}",
        f"route {route_path(service)}",
        "route throttle",
    }


def _registration_faults(template: dict[str, Any], services: list[str]) -> list[str]:
    faults = []
    registered = registered_services(template)
    for service in services:
        missing = _expected_places(template, service) - registered.get(service, set())
        faults.extend(
            f"{TEMPLATE}: service {service!r} is not registered in {place}"
            for place in sorted(missing)
        )
    for name, places in sorted(registered.items()):
        if name not in services:
            faults.append(
                f"{TEMPLATE} still registers {name!r} ({', '.join(sorted(places))}) but "
                f"services/{name} does not exist: run `uv run fleet remove {name}`"
            )
    resources = template.get("Resources", {})
    for service in services:
        stack = resources.get(logical_id(service), {})
        if stack and stack.get("Type") != SERVICE_STACK:
            faults.append(f"{TEMPLATE}: {logical_id(service)} must be an {SERVICE_STACK}")
        elif stack and stack.get("Properties", {}).get("TemplateURL") != SERVICE_TEMPLATE:
            faults.append(f"{TEMPLATE}: {logical_id(service)} must nest {SERVICE_TEMPLATE}")
    return faults + _route_faults(template, services)


def _integration_reads(integration: dict[str, Any]) -> set[str]:
    """The stacks whose outputs an integration reads (GetAtt <Stack>.Outputs.<X>)."""
    return {
        value["Fn::GetAtt"][0]
        for value in integration.values()
        if isinstance(value, dict) and "Fn::GetAtt" in value
    }


def _route_faults(template: dict[str, Any], services: list[str]) -> list[str]:
    """Each service has exactly its own route, and it reaches its own stack's function only."""
    faults = []
    apis = [
        res
        for res in template.get("Resources", {}).values()
        if res.get("Type") == "AWS::Serverless::Api"
    ]
    if len(apis) != 1:
        return [f"{TEMPLATE}: expected one AWS::Serverless::Api, found {len(apis)}"]
    paths = (apis[0].get("Properties", {}).get("DefinitionBody") or {}).get("paths", {})
    for path, item in paths.items():
        match = re.fullmatch(r"/([a-z][a-z0-9_]*)/\{proxy\+\}", path)
        if match is None or match[1] not in services:
            continue  # reported above as a leftover, or below as a stray path
        for method, spec in (item or {}).items():
            integration = (spec or {}).get("x-amazon-apigateway-integration", {})
            reads = _integration_reads(integration) - {INVOKE_ROLE}
            if reads != {logical_id(match[1])}:
                faults.append(
                    f"route {path} ({method}) must reach only its own stack "
                    f"{logical_id(match[1])} (reads {sorted(reads) or 'nothing'})"
                )
            missing = [
                key
                for key, output in (
                    ("uri", "IntegrationUri"),
                    ("responseTransferMode", "ResponseTransferMode"),
                    ("timeoutInMillis", "IntegrationTimeoutMs"),
                )
                if integration.get(key)
                != {"Fn::GetAtt": [logical_id(match[1]), f"Outputs.{output}"]}
            ]
            if missing:
                faults.append(f"route {path}: {', '.join(missing)} must read its stack's outputs")
    allowed = {route_path(service) for service in services} | FLEET_PATHS
    faults.extend(
        f"route {path} is no service's route (each service has exactly /<service>/{{proxy+}})"
        for path in paths
        if path not in allowed and re.fullmatch(r"/[a-z][a-z0-9_]*/\{proxy\+\}", path) is None
    )
    return faults


# --- what a team changes alone: services/<svc>/infra.yaml ----------------------------------


def _number(outputs: dict[str, Any], name: str) -> float | None:
    value = (outputs.get(name) or {}).get("Value")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def iam_faults(root: Path, template: dict[str, Any], where: str, service: str) -> list[str]:
    """What the team's stack creates or grants past its own resources (fleet.guard)."""
    from fleet.guard import guard_faults

    return guard_faults(root, template, where, service)


def _environment_faults(
    outputs: dict[str, Any], where: str, service: ServiceDir | None = None
) -> list[str]:
    """The own Environment is a JSON object of variables the fleet does not set, and the
    service's own settings model accepts it (a value it refuses would stop every cold start
    on Lambda, trip the errors alarm and roll the release back)."""
    from mcp_common.settings import ServiceEnvironmentError, apply_service_environment

    value = (outputs.get("Environment") or {}).get("Value")
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"]
        value = value[0] if isinstance(value, list) else value
        value = re.sub(r"\$\{[^}]+\}", "substituted", value)
    if not isinstance(value, str):
        return [f"{where}: output Environment must be a JSON object (a string, or !Sub)"]
    fleet_sets = dict.fromkeys(REQUIRED_ENV, "set") | {"LOG_LEVEL": "set"}
    environ = {**fleet_sets, "MCP_SERVICE_ENVIRONMENT": value}
    try:
        exported = apply_service_environment(environ)
    except ServiceEnvironmentError as exc:
        return [f"{where}: output Environment: {exc}"]
    if service is None:
        return []
    return _settings_faults(service, {name: environ[name] for name in exported}, where)


def _settings_faults(service: ServiceDir, variables: dict[str, str], where: str) -> list[str]:
    """Build the service's own settings with its stack's variables, as start-up will."""
    from unittest import mock

    from pydantic import ValidationError

    try:
        read = service.load_spec().settings
    except FleetError:
        return []  # reported where its tools are discovered
    if read is None:
        return []
    make = getattr(read, "__wrapped__", read)  # past the functools.cache of get_settings
    with mock.patch.dict(os.environ, variables):
        try:
            make()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
                for error in exc.errors(include_input=False)
            )
            return [f"{where}: output Environment is refused by the service's settings: {problems}"]
    return []


def cfn_lint_faults(path: Path, where: str) -> list[str]:
    """cfn-lint on a service's own stack, as CI runs it: errors are faults."""
    return [f"{where}:{fault}" for fault in _cfn_lint(path.read_text(encoding="utf-8"))]


@functools.cache
def _cfn_lint_runner() -> Any:
    """cfn-lint's runner, its rules loaded once per process: loading them is most of a lint's
    time (0.7 s), and fleet check lints every service's own stack."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    return Runner(ConfigMixIn(regions=["us-east-1"]))


@functools.lru_cache(maxsize=256)
def _cfn_lint(text: str) -> tuple[str, ...]:
    """cfn-lint's errors for one template text (the same text is linted once per process)."""
    from cfnlint.decode.decode import decode_str

    template, matches = decode_str(text)
    if not matches and template is not None:
        matches = list(_cfn_lint_runner().validate_template(template))
    return tuple(
        f"{match.linenumber}: {match.rule.id} {match.message}"
        for match in matches
        if match.rule.id.startswith("E")
    )


def _timeout_faults(outputs: dict[str, Any], where: str) -> list[str]:
    """tool deadline < integration timeout <= function timeout <= 29 s (BUFFERED) or 900 s
    (STREAM). The integration timeout is the function's (infra/service.yaml), in ms."""
    mode = (outputs.get("ResponseTransferMode") or {}).get("Value", "BUFFERED")
    if mode not in ADAPTER_MODES:  # the modes infra/response-mode.yaml maps
        return [f"{where}: ResponseTransferMode must be BUFFERED or STREAM (is {mode!r})"]
    timeout, tool = _number(outputs, "Timeout"), _number(outputs, "ToolTimeout")
    if timeout is None or tool is None:
        return [f"{where}: Timeout and ToolTimeout must be numbers of seconds"]
    for name, value in (("Timeout", timeout), ("ToolTimeout", tool)):
        if value != int(value) or value < 1:  # infra/service.yaml appends "000" for ms
            return [f"{where}: {name} {value:g} must be a whole number of seconds"]
    limit = API_GATEWAY_TIMEOUT_SECONDS if mode == "BUFFERED" else STREAMING_TIMEOUT_SECONDS
    faults = []
    if timeout > limit:
        faults.append(
            f"{where}: Timeout {timeout:g} s is above API Gateway's {API_GATEWAY_TIMEOUT_SECONDS} s "
            "for a buffered service: clients get 504 while the function still runs "
            "(ResponseTransferMode: STREAM allows up to 900 s)"
            if mode == "BUFFERED"
            else f"{where}: Timeout {timeout:g} s is above the 900 s a streamed response may last"
        )
    if not 0 < tool < timeout:
        faults.append(
            f"{where}: ToolTimeout {tool:g} s must be below Timeout {timeout:g} s (the function's "
            "and the integration's), so a slow tool answers a tool error before either gives up"
        )
    return faults


def own_stack_faults(service: ServiceDir) -> list[str]:
    """The service's own stack: the outputs every service's stack reads, timeouts that agree,
    and IAM statements without wildcards."""
    where = f"services/{service.name}/{OWN_TEMPLATE}"
    faults: list[str] = []
    own = _load(service.path / OWN_TEMPLATE, where, faults)
    if own is None:
        return faults
    outputs = own.get("Outputs", {})
    faults.extend(
        f"{where}: no output {name} (infra/service.yaml reads it)"
        for name in OWN_OUTPUTS
        if name not in outputs
    )
    declared = set(own.get("Parameters", {}))
    faults.extend(
        f"{where}: no parameter {name} (every service's stack passes it)"
        for name in OWN_PARAMETERS
        if name not in declared
    )
    memory = _number(outputs, "MemorySize")
    if memory is not None and not 128 <= memory <= 10240:
        faults.append(f"{where}: MemorySize {memory:g} MB is outside Lambda's 128-10240")
    faults.extend(_timeout_faults(outputs, where))
    if "Environment" in outputs:
        faults.extend(_environment_faults(outputs, where, service))
    faults.extend(cfn_lint_faults(service.path / OWN_TEMPLATE, where))
    return faults + iam_faults(service.path.parent.parent, own, where, service.name)


def _service_folder_faults(service: ServiceDir) -> list[str]:
    faults = []
    run_sh = service.path / "run.sh"
    if not run_sh.is_file() or not os.access(run_sh, os.X_OK):
        faults.append(f"services/{service.name}: run.sh missing or not executable")
    if (fault := makefile_fault(service.path)) is not None:
        faults.append(fault)
    try:
        from mcp_common.discovery import contract_faults, discover_tools

        tools = discover_tools(service.load_spec().tools_package)
    except Exception as exc:  # noqa: BLE001 - every failure is a fault to report, not a crash
        faults.append(f"services/{service.name}: tools not discoverable: {exc}")
    else:
        faults.extend(
            f"services/{service.name}: {f}" for tool in tools for f in contract_faults(tool)
        )
    return faults + own_stack_faults(service)


def _regions_faults(root: Path) -> list[str]:
    """The regions samconfig.toml deploys the fleet to, as CloudFormation cannot check them:
    PrimaryRegion with ReplicaRegions, a list without spaces or the primary, at most three
    (memory's global table has a replica slot for three)."""
    from fleet.aws import parameter_override
    from fleet.limits import deploy_environments

    faults = []
    for env in deploy_environments(root):
        primary = parameter_override(env, "PrimaryRegion") or ""
        replicas = parameter_override(env, "ReplicaRegions") or ""
        where = f"samconfig.toml [{env['name']}]"
        if not replicas:
            continue
        names = replicas.split(",")
        if not primary:
            faults.append(f"{where}: ReplicaRegions needs PrimaryRegion")
        if any(name != name.strip() or not name for name in names):
            faults.append(f"{where}: ReplicaRegions {replicas!r}: no spaces, no empty entry")
        if primary in names:
            faults.append(f"{where}: ReplicaRegions lists the primary region {primary!r}")
        if len(set(names)) != len(names):
            faults.append(f"{where}: ReplicaRegions lists a region twice")
        if len(names) > 3:
            faults.append(f"{where}: at most 3 ReplicaRegions (memory's global table)")
    return faults


def check_fleet(root: Path) -> list[str]:
    """Every inconsistency between services/, the templates and the services' tools, and
    every limit the fleet crosses."""
    faults: list[str] = []
    template = _load(root / TEMPLATE, TEMPLATE, faults)
    service_template = _load(root / SERVICE_TEMPLATE, SERVICE_TEMPLATE, faults)
    services = [service.name for service in service_dirs(root)]
    if service_template is not None:
        faults += _service_template_faults(service_template)
        faults += _hook_faults(service_template, services)
    if template is not None:
        faults += _registration_faults(template, services)
        layer = template.get("Parameters", {}).get("LambdaAdapterLayerVersion", {}).get("Default")
        if not isinstance(layer, int) or layer < MIN_ADAPTER_LAYER:
            faults.append(
                f"LambdaAdapterLayerVersion defaults to {layer!r}: SnapStart hooks need "
                f"{MIN_ADAPTER_LAYER} (Lambda Web Adapter v1.1.0) or later"
            )
    from fleet.new import RESERVED

    faults += [
        f"services/{name}: the name is reserved by the fleet ({name!r} is a path, scope or "
        "group of the fleet's own): rename the service"
        for name in services
        if name in RESERVED
    ]
    faults += _regions_faults(root)
    for service in service_dirs(root):
        faults += _service_folder_faults(service)
    if template is not None and service_template is not None and not faults:
        faults += [
            f"limit crossed: {usage.describe()}" for usage in fleet_usage(root) if usage.crossed
        ]
    return faults


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a shared object (183 = aarch64, 62 = x86-64), None if not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


LAMBDA_UNZIPPED_BYTES = 250 * 1024 * 1024
"""A function and all its layers, unzipped (the Web Adapter's layer is a few MB more)."""


def check_artifacts(build_dir: Path) -> list[str]:
    """Faults in `sam build`'s output: foreign .so files, missing run.sh, dev leftovers, a
    function and its layers over Lambda's unzipped size."""
    if not build_dir.is_dir():
        raise FleetError(f"{build_dir} does not exist; run `uv run sam build` first")
    faults: list[str] = []
    functions = sorted(path.parent for path in build_dir.glob("*/Function/run.sh"))
    functions += sorted(path.parent for path in build_dir.glob("*Function/run.sh"))
    layers = sorted(path.parent for path in build_dir.glob("*/python") if path.is_dir())
    if not functions:
        faults.append(f"{build_dir} holds no function artifacts (*/Function/run.sh)")
    for artifact in functions:
        label = str(artifact.relative_to(build_dir))
        if not os.access(artifact / "run.sh", os.X_OK):
            faults.append(f"{label}: run.sh is not executable")
        leftovers = [artifact / "bin", artifact / "fleet", artifact / "_pytest"]
        faults.extend(f"{label}: {p.name} must not ship" for p in leftovers if p.exists())
    for tree in [*functions, *(layer / "python" for layer in layers)]:  # what sys.path holds
        faults.extend(path_entry_faults(tree, str(tree.relative_to(build_dir))))
    for tree in [*functions, *layers]:
        label = str(tree.relative_to(build_dir))
        faults.extend(
            f"{label}: {so.relative_to(tree)} is not aarch64 (ELF machine {elf_machine(so)})"
            for so in tree.rglob("*.so*")
            if so.is_file() and elf_machine(so) != ELF_AARCH64
        )
    layer_bytes = sum(_size(layer) for layer in layers)
    for artifact in functions:
        total = _size(artifact) + layer_bytes
        if total > LAMBDA_UNZIPPED_BYTES:
            faults.append(
                f"{artifact.relative_to(build_dir)}: {total / 2**20:.0f} MB with the layers, "
                f"above Lambda's {LAMBDA_UNZIPPED_BYTES // 2**20} MB unzipped"
            )
    return faults


def _size(tree: Path) -> int:
    return sum(path.stat().st_size for path in tree.rglob("*") if path.is_file())
