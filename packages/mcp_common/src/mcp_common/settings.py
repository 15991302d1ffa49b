"""Environment-driven configuration: one pydantic-settings object per concern.

Every variable here is documented in the README's configuration table.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def running_in_lambda() -> bool:
    """True inside an AWS Lambda execution environment."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


class RuntimeSettings(BaseSettings):
    """How the process serves: port, bind address, log level."""

    model_config = SettingsConfigDict(extra="ignore")

    port: int = Field(default=8080, ge=1, le=65535, validation_alias="PORT")
    host: str | None = Field(default=None, validation_alias="MCP_HOST")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias="LOG_LEVEL"
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", validation_alias="LOG_FORMAT"
    )
    """`auto`: readable text at a terminal outside Lambda, JSON lines everywhere else."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    def bind_host(self) -> str:
        """0.0.0.0 inside Lambda (the Web Adapter connects locally), loopback elsewhere."""
        if self.host:
            return self.host
        return "0.0.0.0" if running_in_lambda() else "127.0.0.1"  # noqa: S104


def _split_csv(value: object) -> object:
    """Comma-separated env values become lists; blanks are dropped."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]

AuthMode = Literal["none", "api_key", "jwt"]

FLEET_SCOPE = "all"
"""<resource server>/all: every service (Cognito's machine client)."""
GROUPS_SCOPE = "services"
"""<resource server>/services: the services the token's groups name (Cognito's people client)."""
FLEET_GROUP = "all"
"""A group that names every service, for people who need them all."""


class AuthSettings(BaseSettings):
    """Who may call the service: MCP_AUTH and the key / JWT sources behind it."""

    model_config = SettingsConfigDict(extra="ignore")

    mode: AuthMode | None = Field(default=None, validation_alias="MCP_AUTH")
    api_keys: SecretStr | None = Field(default=None, validation_alias="MCP_API_KEYS")
    api_keys_ssm_parameter: str | None = Field(
        default=None, validation_alias="MCP_API_KEYS_SSM_PARAMETER"
    )
    api_keys_secret_id: str | None = Field(default=None, validation_alias="MCP_API_KEYS_SECRET_ID")
    api_keys_ssm_prefix: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9_.\-/]*[^/]$",
        validation_alias="MCP_API_KEYS_SSM_PREFIX",
    )
    """The front door's key records: `<prefix>/<service>` for each service (each service reads
    only its own, MCP_API_KEYS_SSM_PARAMETER)."""
    api_keys_ttl_seconds: float = Field(
        default=300, gt=0, validation_alias="MCP_API_KEYS_TTL_SECONDS"
    )
    api_keys_max_stale_seconds: float = Field(
        default=3600, ge=0, validation_alias="MCP_API_KEYS_MAX_STALE_SECONDS"
    )
    wait_seconds: float = Field(default=5.0, gt=0, le=10, validation_alias="MCP_AUTH_WAIT_SECONDS")
    """The longest a request (or start-up) waits on a key store or the token issuer's JWKS:
    past it the answer is 503, so every answer comes well inside API Gateway's 29 s."""
    jwt_jwks_uri: str | None = Field(default=None, validation_alias="MCP_JWT_JWKS_URI")
    jwt_issuer: str | None = Field(default=None, validation_alias="MCP_JWT_ISSUER")
    jwt_audience: CsvList = Field(default_factory=list, validation_alias="MCP_JWT_AUDIENCE")
    jwt_required_scopes: CsvList = Field(
        default_factory=list, validation_alias="MCP_JWT_REQUIRED_SCOPES"
    )
    jwt_resource_server: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:/-]*$",
        max_length=256,
        validation_alias="MCP_JWT_RESOURCE_SERVER",
    )
    """A resource server R (Cognito's `mcp-fleet`): unless MCP_JWT_REQUIRED_SCOPES says
    otherwise, a token reaches service <svc> with scope R/all (every service), R/<svc> (this
    one), or R/services and the group <svc> or `all` in its groups claim. So a pool's app client
    needs two scopes whatever the number of services (Cognito allows 50 per client)."""
    jwt_groups_claim: str = Field(
        default="cognito:groups", max_length=128, validation_alias="MCP_JWT_GROUPS_CLAIM"
    )
    """The claim listing the caller's groups (R/services access); empty: none is read."""
    public_base_url: str | None = Field(default=None, validation_alias="MCP_PUBLIC_BASE_URL")

    @field_validator("mode", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "api_keys",
        "api_keys_ssm_parameter",
        "api_keys_secret_id",
        "api_keys_ssm_prefix",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty variable (`MCP_API_KEYS=`) is no source, so it cannot shadow a real one."""
        return None if isinstance(value, str) and not value.strip() else value

    def scopes_for(self, service: str) -> list[str]:
        """The scopes a client asks for to call `service` (challenges, RFC 9728 metadata): with
        a resource server, the one scope that, with the caller's groups, covers the fleet."""
        if self.jwt_required_scopes:
            return list(self.jwt_required_scopes)
        if self.jwt_resource_server:
            return [f"{self.jwt_resource_server}/{GROUPS_SCOPE}"]
        return []

    def grants(self, service: str, scopes: frozenset[str], groups: frozenset[str]) -> bool:
        """Whether a token with these scopes and groups may call `service` (the rule above)."""
        if self.jwt_required_scopes:
            return all(scope in scopes for scope in self.jwt_required_scopes)
        server = self.jwt_resource_server
        if not server:
            return True
        if f"{server}/{FLEET_SCOPE}" in scopes:
            return True
        if service not in (FLEET_SCOPE, GROUPS_SCOPE) and f"{server}/{service}" in scopes:
            return True  # (a service named like a fleet-wide scope gets no per-service one)
        return f"{server}/{GROUPS_SCOPE}" in scopes and bool({service, FLEET_GROUP} & groups)

    @property
    def effective_mode(self) -> AuthMode:
        """Unset means `none` on a workstation but `api_key` in Lambda: a deployment fails closed."""
        if self.mode is not None:
            return self.mode
        return "api_key" if running_in_lambda() else "none"

    @model_validator(mode="after")
    def _complete_for_mode(self) -> AuthSettings:
        mode = self.effective_mode
        if mode == "api_key":
            sources = [
                name
                for name, value in (
                    ("MCP_API_KEYS", self.api_keys),
                    ("MCP_API_KEYS_SSM_PARAMETER", self.api_keys_ssm_parameter),
                    ("MCP_API_KEYS_SECRET_ID", self.api_keys_secret_id),
                    ("MCP_API_KEYS_SSM_PREFIX", self.api_keys_ssm_prefix),
                )
                if value
            ]
            if len(sources) != 1:
                raise ValueError(
                    "MCP_AUTH=api_key needs exactly one key source: MCP_API_KEYS, "
                    "MCP_API_KEYS_SSM_PARAMETER, MCP_API_KEYS_SECRET_ID or (the front door's) "
                    "MCP_API_KEYS_SSM_PREFIX "
                    f"(set: {', '.join(sources) or 'none'})"
                )
        if mode == "jwt":
            missing = [
                name
                for name, value in (
                    ("MCP_JWT_JWKS_URI", self.jwt_jwks_uri),
                    ("MCP_JWT_ISSUER", self.jwt_issuer),
                    ("MCP_JWT_AUDIENCE", self.jwt_audience),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"MCP_AUTH=jwt needs {', '.join(missing)}")
        return self


LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024


class HttpSettings(BaseSettings):
    """Limits and allow-lists applied to every HTTP request before MCP sees it."""

    model_config = SettingsConfigDict(extra="ignore")

    allowed_hosts: CsvList = Field(
        default_factory=lambda: list(LOCAL_HOSTS), validation_alias="MCP_ALLOWED_HOSTS"
    )
    allowed_origins: CsvList = Field(default_factory=list, validation_alias="MCP_ALLOWED_ORIGINS")
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, le=LAMBDA_PAYLOAD_LIMIT, validation_alias="MCP_MAX_BODY_BYTES"
    )
    tool_timeout_seconds: float = Field(
        default=20.0, gt=0, le=900, validation_alias="MCP_TOOL_TIMEOUT_SECONDS"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, validation_alias="MCP_HEADER_TIMEOUT_SECONDS"
    )
    """A request's head (request line and headers) must arrive within this, from the
    connection or the previous answer: a client dripping header lines is cut off."""
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, validation_alias="MCP_BODY_TIMEOUT_SECONDS"
    )
    """A request's whole body must arrive within this, or the answer is 408."""
    write_timeout_seconds: float = Field(
        default=30.0, gt=0, le=900, validation_alias="MCP_WRITE_TIMEOUT_SECONDS"
    )
    """A streamed answer's every write must reach a client that reads within this: one that
    stops reading is cut off and its call stopped, never held open until it leaves."""
    calls_per_principal: int = Field(
        default=4, gt=0, le=1000, validation_alias="MCP_MAX_CALLS_PER_PRINCIPAL"
    )
    """Tool calls one principal may have in flight in one process, streaming calls included:
    the next one is answered a tool error at once, so one caller cannot take every worker or
    outbound connection of a service from the others."""
    invoke_mode: Literal["buffered", "response_stream"] = Field(
        default="buffered", validation_alias="AWS_LWA_INVOKE_MODE"
    )
    """The Web Adapter's mode, read by the app too so the two never disagree: `response_stream`
    (a service whose own stack says STREAM) answers long calls with SSE, progress as it
    happens; `buffered` answers one JSON body."""

    @field_validator("invoke_mode", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def streaming(self) -> bool:
        return self.invoke_mode == "response_stream"


class MetricsSettings(BaseSettings):
    """CloudWatch metrics written into the request and start-up log lines (EMF)."""

    model_config = SettingsConfigDict(extra="ignore")

    enabled: bool = Field(default=True, validation_alias="MCP_METRICS")
    per_tool: bool = Field(default=False, validation_alias="MCP_METRICS_PER_TOOL")
    """Also `duration_ms` and `tool_error` by [service, tool]: 2 custom metrics per tool
    (each costs ~$0.30 a month), so a service opts in (its infra.yaml `Environment`)."""
    namespace: str = Field(
        default="McpFleet",
        pattern=r"^[A-Za-z0-9.\-_/#: ]{1,255}$",
        validation_alias="MCP_METRICS_NAMESPACE",
    )

    @field_validator("namespace")
    @classmethod
    def _not_aws(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("namespaces starting with AWS/ are reserved for AWS")
        return value


def _hook_path(value: str) -> str:
    """A SnapStart hook path: absolute, and reachable by no API Gateway route."""
    if not value.startswith("/") or value.startswith("/.well-known/"):
        raise ValueError("must start with / and lie outside /.well-known/")
    return value


HookPath = Annotated[str, AfterValidator(_hook_path)]


class LifecycleSettings(BaseSettings):
    """Start-up priming and the Lambda Web Adapter's SnapStart hooks.

    The hook paths are the adapter's own variables, so the adapter and the app always
    agree; the template sets them outside every API route (no client can reach them, and
    the adapter answers 403 to outside requests for them anyway).
    """

    model_config = SettingsConfigDict(extra="ignore")

    prime: bool = Field(default=True, validation_alias="MCP_PRIME")
    before_checkpoint_path: HookPath = Field(
        default="/_lifecycle/before-checkpoint",
        validation_alias="AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH",
    )
    after_restore_path: HookPath = Field(
        default="/_lifecycle/after-restore", validation_alias="AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"
    )
    restore_budget_seconds: float = Field(
        default=3.0, gt=0, le=8, validation_alias="MCP_RESTORE_BUDGET_SECONDS"
    )
    """What the after-restore hook may spend re-reading key sources: Lambda allows the whole
    restore 10 s, and the adapter re-runs its readiness check after the hook."""


class FrontDoorSettings(BaseSettings):
    """Where the front door (frontdoor.py) finds its catalog and the services it forwards to."""

    model_config = SettingsConfigDict(extra="ignore")

    catalog: str = Field(default="catalog.json", validation_alias="MCP_FRONTDOOR_CATALOG")
    """The catalog `fleet build --frontdoor` wrote (run.sh sets it beside itself)."""
    stack: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$",
        validation_alias="MCP_FRONTDOOR_STACK",
    )
    """Set (by the template, to the stack's name): calls invoke `<stack>-<service>:serving`."""
    upstream: str = Field(
        default="http://127.0.0.1:8080",
        pattern=r"^https?://",
        validation_alias="MCP_FRONTDOOR_UPSTREAM",
    )
    """Without a stack: the services over HTTP at `<upstream>/<service>/mcp` (run.sh or fleet dev)."""
    connect_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, validation_alias="MCP_FRONTDOOR_CONNECT_TIMEOUT_SECONDS"
    )
    """How long reaching a service may take; the whole call is bounded by MCP_TOOL_TIMEOUT_SECONDS."""


@dataclass(frozen=True)
class AppSettings:
    """Every settings object a service reads, resolved once from the environment.

    It lives here, not beside the app factory, so start-up validates the configuration
    before importing fastmcp: a misconfigured service fails in a fraction of a second.
    """

    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


SERVICE_ENVIRONMENT = "MCP_SERVICE_ENVIRONMENT"
"""A JSON object of a service's own variables, set by the fleet's service template from the
`Environment` output of the service's own infra.yaml (e.g. memory's table name)."""

_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_RESERVED_NAMES = frozenset({"PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "PORT", "HOME", "TZ"})
_RESERVED_PREFIXES = ("AWS_", "LAMBDA_", "_")


class ServiceEnvironmentError(ValueError):
    """MCP_SERVICE_ENVIRONMENT is not what the service template promises; names, never values."""


def apply_service_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Export each variable of MCP_SERVICE_ENVIRONMENT into the process environment.

    Runs before any settings object is read, so a service's own settings see them like any
    other variable. A name that is already set is refused, never overridden: what the fleet
    sets for every service (auth, hosts, logging) cannot be changed from one service's stack.
    Returns the names exported.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(SERVICE_ENVIRONMENT, "").strip()
    if not raw:
        return []
    try:
        variables = json.loads(raw)
    except ValueError:
        raise ServiceEnvironmentError(f"{SERVICE_ENVIRONMENT} is not valid JSON") from None
    if not isinstance(variables, dict):
        raise ServiceEnvironmentError(f"{SERVICE_ENVIRONMENT} must be a JSON object")
    exported = []
    for name, value in variables.items():
        if not _VARIABLE_NAME.fullmatch(name):
            raise ServiceEnvironmentError(
                f"{SERVICE_ENVIRONMENT}: {name[:64]!r} is not an upper-case variable name"
            )
        if name in _RESERVED_NAMES or name.startswith(_RESERVED_PREFIXES):
            raise ServiceEnvironmentError(f"{SERVICE_ENVIRONMENT}: {name} is reserved")
        if name in environ:
            raise ServiceEnvironmentError(
                f"{SERVICE_ENVIRONMENT}: {name} is already set (by the fleet's template)"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise ServiceEnvironmentError(f"{SERVICE_ENVIRONMENT}: {name} must be a string")
        environ[name] = str(value)
        exported.append(name)
    return exported
