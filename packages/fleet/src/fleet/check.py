"""`fleet check`: the fleet's folders, template and tools agree with each other.

Every fault is collected and reported together, so one run shows everything to fix.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from fleet.template import ALARMS, RESOURCE_SERVER, function_id, load_template, logical_id
from fleet.workspace import FleetError, ServiceDir, service_dirs

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
ADAPTER_LAYER = "753240598075:layer:LambdaAdapterLayerArm64"
ELF_AARCH64 = 183
REQUIRED_ENV = (
    "AWS_LAMBDA_EXEC_WRAPPER",
    "PORT",
    "MCP_AUTH",
    "MCP_ALLOWED_HOSTS",
    "MCP_API_KEYS_SSM_PARAMETER",
    "AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH",
    "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH",
)
HOOK_ENV = ("AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH", "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH")
MIN_ADAPTER_LAYER = 30  # Lambda Web Adapter v1.1.0: the first release with SnapStart hooks


def _text(value: Any) -> str:
    """A template value as text, intrinsics included (enough to search for the layer name)."""
    return value if isinstance(value, str) else repr(value)


def _function_faults(service: str, resource: dict[str, Any], globals_: dict[str, Any]) -> list[str]:
    faults: list[str] = []
    properties = resource.get("Properties", {})
    merged = {**globals_, **properties}
    where = f"{function_id(service)}"
    if properties.get("CodeUri") != f"services/{service}":
        faults.append(
            f"{where}: CodeUri must be services/{service} (is {properties.get('CodeUri')!r})"
        )
    if resource.get("Metadata", {}).get("BuildMethod") != "makefile":
        faults.append(f"{where}: Metadata.BuildMethod must be makefile")
    if merged.get("Architectures") != ["arm64"]:
        faults.append(
            f"{where}: Architectures must be [arm64] (is {merged.get('Architectures')!r})"
        )
    if merged.get("Runtime") != "python3.13":
        faults.append(f"{where}: Runtime must be python3.13 (is {merged.get('Runtime')!r})")
    if merged.get("Handler") != "run.sh":
        faults.append(f"{where}: Handler must be run.sh (is {merged.get('Handler')!r})")
    if not any(ADAPTER_LAYER in _text(layer) for layer in merged.get("Layers", [])):
        faults.append(f"{where}: missing the Lambda Web Adapter layer (LambdaAdapterLayerArm64)")
    env = {
        **globals_.get("Environment", {}).get("Variables", {}),
        **properties.get("Environment", {}).get("Variables", {}),
    }
    faults.extend(
        f"{where}: environment variable {name} is not set"
        for name in REQUIRED_ENV
        if name not in env
    )
    if env.get("AWS_LAMBDA_EXEC_WRAPPER", "/opt/bootstrap") != "/opt/bootstrap":
        faults.append(f"{where}: AWS_LAMBDA_EXEC_WRAPPER must be /opt/bootstrap")
    if str(env.get("PORT", "8080")) != "8080":
        faults.append(f"{where}: PORT must be 8080")
    if env.get("AWS_LWA_READINESS_CHECK_PATH") != f"/{service}/health":
        faults.append(f"{where}: AWS_LWA_READINESS_CHECK_PATH must be /{service}/health")
    if "ApplyOn" not in (merged.get("SnapStart") or {}):
        faults.append(f"{where}: SnapStart.ApplyOn is not set (the EnableSnapStart switch)")
    return faults


def _operations_faults(resources: dict[str, Any], service: str) -> list[str]:
    """The service's alarms exist and watch it, and every saved query reads its log group."""
    stem = logical_id(service)
    faults = []
    for alarm in ALARMS:
        resource = resources.get(f"{stem}{alarm}")
        if resource is None or resource.get("Type") != "AWS::CloudWatch::Alarm":
            faults.append(f"template.yaml has no alarm {stem}{alarm} for service {service!r}")
        elif service not in repr(resource) and f"{stem}Function" not in repr(resource):
            faults.append(f"{stem}{alarm} does not watch service {service!r}")
    for name, resource in resources.items():
        kind, properties = resource.get("Type"), resource.get("Properties", {})
        if kind == "AWS::Logs::QueryDefinition":
            if {"Ref": f"{stem}LogGroup"} not in properties.get("LogGroupNames", []):
                faults.append(f"{name} does not read {stem}LogGroup")
        elif kind == "AWS::Cognito::UserPoolResourceServer":
            if service not in [scope.get("ScopeName") for scope in properties.get("Scopes", [])]:
                faults.append(f"{name} has no scope {service!r}")
        elif kind == "AWS::Cognito::UserPoolClient" and f"{RESOURCE_SERVER}/{service}" not in (
            properties.get("AllowedOAuthScopes", [])
        ):
            faults.append(f"{name} may not ask for scope {RESOURCE_SERVER}/{service}")
    return faults


def _hook_faults(template: dict[str, Any], services: list[str]) -> list[str]:
    """The SnapStart hook paths lie outside every route, and the adapter can call them."""
    faults = []
    globals_ = template.get("Globals", {}).get("Function", {})
    env = globals_.get("Environment", {}).get("Variables", {})
    reserved = ("/.well-known/", *(f"/{service}/" for service in services))
    for name in HOOK_ENV:
        path = env.get(name)
        if not isinstance(path, str) or not path.startswith("/"):
            faults.append(f"Globals: {name} must be an absolute path (is {path!r})")
        elif path.startswith(reserved) or path.rstrip("/") in {r.rstrip("/") for r in reserved}:
            faults.append(f"Globals: {name} {path} lies under an API route; clients could call it")
    layer = template.get("Parameters", {}).get("LambdaAdapterLayerVersion", {}).get("Default")
    if not isinstance(layer, int) or layer < MIN_ADAPTER_LAYER:
        faults.append(
            f"LambdaAdapterLayerVersion defaults to {layer!r}: SnapStart hooks need "
            f"{MIN_ADAPTER_LAYER} (Lambda Web Adapter v1.1.0) or later"
        )
    return faults


def _routes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    routes = []
    for event in resource.get("Properties", {}).get("Events", {}).values():
        if event.get("Type") == "Api":
            props = event.get("Properties", {})
            routes.append((str(props.get("Path")), str(props.get("Method", "")).upper()))
    return routes


def _route_faults(service: str, routes: list[tuple[str, str]]) -> list[str]:
    faults = []
    paths = {path for path, _ in routes}
    allowed_prefixes = (f"/{service}/", f"/.well-known/oauth-protected-resource/{service}/")
    for required in (f"/{service}/mcp", f"/{service}/{{proxy+}}"):
        if required not in paths:
            faults.append(f"{function_id(service)}: no API route for {required}")
    faults.extend(
        f"{function_id(service)}: route {path} is outside /{service}/"
        for path in sorted(paths)
        if not path.startswith(allowed_prefixes)
    )
    return faults


def _service_faults(service: ServiceDir) -> list[str]:
    faults = []
    run_sh = service.path / "run.sh"
    if not run_sh.is_file() or not os.access(run_sh, os.X_OK):
        faults.append(f"services/{service.name}: run.sh missing or not executable")
    makefile = service.path / "Makefile"
    if not makefile.is_file() or f"build-{function_id(service.name)}:" not in makefile.read_text():
        faults.append(
            f"services/{service.name}: Makefile lacks target build-{function_id(service.name)}"
        )
    try:
        from mcp_common.discovery import discover_tools

        discover_tools(service.load_spec().tools_package)
    except Exception as exc:  # noqa: BLE001 - every failure is a fault to report, not a crash
        faults.append(f"services/{service.name}: tools not discoverable: {exc}")
    return faults


def check_fleet(root: Path) -> list[str]:
    """Every inconsistency between services/, template.yaml and the services' tools."""
    template_path = root / "template.yaml"
    if not template_path.is_file():
        return ["template.yaml is missing"]
    template = load_template(template_path)
    resources = template.get("Resources", {})
    outputs = template.get("Outputs", {})
    globals_ = template.get("Globals", {}).get("Function", {})
    functions = {
        name: res for name, res in resources.items() if res.get("Type") == SERVERLESS_FUNCTION
    }
    services = service_dirs(root)
    faults: list[str] = []

    expected = {function_id(service.name): service for service in services}
    faults.extend(
        f"services/{service.name} has no {function_id(service.name)} in template.yaml"
        for name, service in expected.items()
        if name not in functions
    )
    faults.extend(
        f"template.yaml function {name} has no service folder under services/"
        for name in functions
        if name not in expected
    )
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, service in expected.items():
        resource = functions.get(name)
        if resource is not None:
            faults.extend(_function_faults(service.name, resource, globals_))
            routes = _routes(resource)
            faults.extend(_route_faults(service.name, routes))
            for route in routes:
                owners[route].append(name)
        if f"{logical_id(service.name)}McpUrl" not in outputs:
            faults.append(f"template.yaml has no output {logical_id(service.name)}McpUrl")
        faults.extend(_operations_faults(resources, service.name))
        faults.extend(_service_faults(service))
    faults.extend(
        f"route {method} {path} is claimed by several functions: {', '.join(sorted(names))}"
        for (path, method), names in sorted(owners.items())
        if len(names) > 1
    )
    faults.extend(_hook_faults(template, [service.name for service in services]))
    return faults


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a shared object (183 = aarch64, 62 = x86-64), None if not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def check_artifacts(build_dir: Path) -> list[str]:
    """Faults in built Lambda artifacts: foreign .so files, missing run.sh, dev leftovers."""
    if not build_dir.is_dir():
        raise FleetError(f"{build_dir} does not exist; run `uv run sam build` first")
    faults: list[str] = []
    artifacts = [path for path in sorted(build_dir.iterdir()) if path.is_dir()]
    if not artifacts:
        faults.append(f"{build_dir} holds no artifacts")
    for artifact in artifacts:
        run_sh = artifact / "run.sh"
        if not run_sh.is_file() or not os.access(run_sh, os.X_OK):
            faults.append(f"{artifact.name}: run.sh missing or not executable")
        faults.extend(
            f"{artifact.name}: {so.relative_to(artifact)} is not aarch64 (ELF machine {elf_machine(so)})"
            for so in artifact.rglob("*.so*")
            if so.is_file() and elf_machine(so) != ELF_AARCH64
        )
        leftovers = [
            artifact / "bin",
            *artifact.glob("*.pth"),
            artifact / "fleet",
            artifact / "_pytest",
        ]
        faults.extend(f"{artifact.name}: {p.name} must not ship" for p in leftovers if p.exists())
    return faults
