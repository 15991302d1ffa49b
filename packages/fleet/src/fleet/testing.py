"""Test helpers: real servers on loopback, for this repo's tests and each service's own.

Dev-only (the fleet package never ships in a Lambda artifact).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import uvicorn
from starlette.types import ASGIApp

if TYPE_CHECKING:  # importing it loads fastmcp: ~2.5 s the xdist controller never needs
    from fastmcp import Client

    from mcp_common.app import AppSettings
    from mcp_common.service import ServiceSpec

MCP_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; yield its base URL.

    The listening socket is explicitly IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted
    connections only then, and without it every response waits ~40 ms on Nagle's
    algorithm against the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@functools.cache
def loopback_http() -> httpx.Client:
    """One HTTP client per test process for the servers it starts on 127.0.0.1.

    Building a client (its TLS context) costs about 50 ms of CPU, more than the request it
    sends; a readiness poll that built one every 50 ms competed with the very server it
    waited for.
    """
    return httpx.Client(timeout=5.0)


def dev_env(**values: str) -> dict[str, str]:
    """`values` for a service started through its run.sh from the dev environment, with this
    interpreter's folder first on PATH (run.sh runs `python`), as `uv run` has it."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **values}


def wait_for_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll `url` until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server exited with code {process.returncode} before {url} answered"
            )
        try:
            if loopback_http().get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError as exc:
            last_error = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s (last error: {last_error})")


@dataclass
class RunningService:
    """A service started by its run.sh: its base URL, process, and what it wrote to stdout."""

    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_entries(self) -> list[dict]:
        """Every stdout line as JSON (fails on a line that is not one JSON object)."""
        return [json.loads(line) for line in self.output().splitlines() if line.strip()]

    def request_lines(self) -> list[dict]:
        return [entry for entry in self.log_entries() if entry["logger"] == "mcp_common.request"]

    def log_size(self) -> int:
        return self.log_path.stat().st_size


@contextlib.contextmanager
def start_service(
    script: Path, health_path: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Iterator[RunningService]:
    """Start a service the way Lambda does (its run.sh with $PORT), wait until its health
    answers, and stop it afterwards. Its stdout goes to a file (never a pipe that fills)."""
    port = free_port()
    full_env = {**os.environ, **(env or {}), "PORT": str(port)}
    with tempfile.TemporaryDirectory(prefix="service-log-") as scratch:
        log_path = Path(scratch) / "stdout.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(script)], env=full_env, stdout=log, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_for_http(base + health_path, timeout=timeout, process=process)
            except (RuntimeError, TimeoutError) as exc:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise RuntimeError(f"{exc}; its output ended with:\n{tail}") from None
            yield RunningService(base, process, log_path)
        finally:
            stop(process)


@contextlib.contextmanager
def run_script(
    script: Path, health_path: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`start_service`, yielding (base URL, process)."""
    with start_service(script, health_path, env, timeout) as service:
        yield service.base, service.process


@dataclass
class Refusal:
    """A start-up that refused: its one CRITICAL line, and all it wrote (stdout + stderr)."""

    critical: dict
    output: str


def refused_start(command: list[str], env: Mapping[str, str]) -> Refusal:
    """Run a service start-up that must refuse to start: it exits with 2, its stdout holds
    JSON lines only, and exactly one of them is CRITICAL."""
    result = subprocess.run(
        command, env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 2:
        raise AssertionError(f"exit code {result.returncode}, not 2; it wrote:\n{output[-3000:]}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    [critical] = [line for line in lines if line["level"] == "CRITICAL"]
    return Refusal(critical, output)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s: the process is gone when this returns."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def fake_aws(region: str = "us-east-1") -> Iterator[None]:
    """moto's in-process AWS with throwaway credentials, restored afterwards."""
    from moto import mock_aws

    names = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    )
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names[:3], "testing"), AWS_DEFAULT_REGION=region)
    try:
        with mock_aws():  # which gives boto3 a new default session; let it share the models
            import boto3

            from fleet.aws import session

            boto3.DEFAULT_SESSION = session()
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def deployed_stack(name: str, outputs: Mapping[str, str], region: str | None = None) -> None:
    """A stack with these outputs in moto's CloudFormation (inside `fake_aws`): what fleet's
    AWS commands read. Its one resource is a marker parameter named after it."""
    import boto3

    marker = {"Type": "String", "Value": "x", "Name": f"/marker/{name}"}
    template = {
        "Resources": {"Marker": {"Type": "AWS::SSM::Parameter", "Properties": marker}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
"""Throwaway credentials that reach no real account: for boto3 clients of a moto server,
and for a service pointed at a stand-in on loopback."""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto as an HTTP server on loopback, for services running in their own process
    (point them at it with AWS_ENDPOINT_URL_<SERVICE>); yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def app_settings(**env: str) -> AppSettings:
    """App settings from explicit env-var values (`MCP_AUTH="none"`, ...), as the environment gives them."""
    import dataclasses
    import typing

    from mcp_common.app import AppSettings

    kinds = typing.get_type_hints(AppSettings)
    return AppSettings(**{f.name: kinds[f.name](**env) for f in dataclasses.fields(AppSettings)})


def write_tools_package(root: Path, package: str, modules: Mapping[str, str]) -> str:
    """Write a throwaway tools package (`{module name: source}`) under `root`; return its name.

    The caller puts `root` on sys.path (pytest's monkeypatch.syspath_prepend).
    """
    package_dir = root / package
    package_dir.mkdir(parents=True)
    (package_dir / "__init__.py").write_text("")
    for module, source in modules.items():
        (package_dir / f"{module}.py").write_text(source)
    return package


class JwtIssuer:
    """A throwaway OIDC-style issuer for tests: an RSA key, its JWKS, and signed tokens."""

    def __init__(self, issuer: str = "https://issuer.test", kid: str = "test-key") -> None:
        from joserfc.jwk import RSAKey

        self.issuer = issuer
        self.kid = kid
        self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def token(self, *, lifetime: float = 300, signing_key: object = None, **claims: object) -> str:
        """A signed RS256 token; `claims` override iss/exp/iat/sub (None removes a claim)."""
        from joserfc import jwt

        now = int(time.time())
        payload: dict[str, object] = {
            "iss": self.issuer,
            "sub": "user-1",
            "iat": now,
            "exp": now + int(lifetime),
        }
        payload.update(claims)
        payload = {key: value for key, value in payload.items() if value is not None}
        header = {"alg": "RS256", "kid": self.kid}
        return jwt.encode(header, payload, signing_key or self.key)

    def cognito_token(
        self,
        client_id: str,
        scopes: str | None = None,
        token_use: str = "access",
        sub: str | None = "user-1",
        **claims: object,
    ) -> str:
        """A token shaped like Cognito's: access tokens carry `client_id`, `token_use` and
        `scope` but no `aud`; id tokens carry `aud` (the client) and `token_use: id`.
        Client-credentials (machine) tokens have no `sub` (pass sub=None)."""
        if token_use == "id":
            shaped: dict[str, object] = {"aud": client_id, "token_use": "id", "email": "a@b.c"}
        else:
            shaped = {"client_id": client_id, "token_use": token_use, "scope": scopes}
        return self.token(sub=sub, **{**shaped, **claims})

    def jwks_app(self) -> ASGIApp:
        """A Starlette app answering the JWKS at /.well-known/jwks.json."""
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def jwks(_: object) -> JSONResponse:
            return JSONResponse(self.jwks())

        return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])


@contextlib.contextmanager
def silent_listener(host: str = "127.0.0.1") -> Iterator[str]:
    """A TCP socket that accepts connections and never answers (a hung dependency); yields
    its URL. Connections are held open until the block ends."""
    server = socket.socket()
    server.bind((host, 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop_event = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop_event.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.getsockname()[1]}"
    finally:
        stop_event.set()
        thread.join(2)
        for connection in held:
            connection.close()
        server.close()


@contextlib.contextmanager
def dripping_server(body: bytes, seconds_per_byte: float, host: str = "127.0.0.1") -> Iterator[str]:
    """An HTTP server that answers 200 but sends its body one byte every `seconds_per_byte`
    (each read returns in time, the whole never does); yields its URL."""
    server = socket.socket()
    server.bind((host, 0))
    server.listen(64)
    stop_event = threading.Event()

    def drip(connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(body)
            )
            for byte in body:
                if stop_event.wait(seconds_per_byte):
                    return
                connection.sendall(bytes([byte]))

    def accept() -> None:
        server.settimeout(0.2)
        while not stop_event.is_set():
            with contextlib.suppress(OSError):
                connection = server.accept()[0]
                threading.Thread(target=drip, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.getsockname()[1]}"
    finally:
        stop_event.set()
        thread.join(2)
        server.close()


def shared_dir(tmp_path_factory: object) -> Path:
    """A folder shared by every pytest-xdist worker of this run (the session's own otherwise)."""
    base: Path = tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return base
    shared = base.parent / f"shared-{run}"
    shared.mkdir(exist_ok=True)
    return shared


def once(shared: Path, name: str, make: Callable[[Path], object]) -> Path:
    """`shared/name`, made by `make` exactly once per test run, whichever worker asks first
    (the others wait on a file lock)."""
    import fcntl

    target = shared / name
    done = shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            done.touch()
    return target


SMOKE_META = "smoke"
"""A tool's declared example call: `@tool(meta={"smoke": {...}})`. The one way a team says
which arguments `fleet smoke` and the fleet's artifact tests call its tool with (a long
tool names a short example: one year, not eighty)."""


def declared_example(tool: Any) -> dict[str, Any] | None:
    """The arguments a tool declares for test and smoke calls, if any."""
    example = (getattr(tool, "meta", None) or {}).get(SMOKE_META)
    return example if isinstance(example, dict) else None


def tool_arguments(tool: Any) -> dict[str, Any]:
    """What to call a tool with: its declared example, else a small valid value of its input
    schema (`example_arguments`)."""
    declared = declared_example(tool)
    if declared is not None:
        return declared
    made = example_arguments(
        tool.input_schema if hasattr(tool, "input_schema") else tool.inputSchema
    )
    return made if isinstance(made, dict) else {}


def example_arguments(schema: Mapping[str, object]) -> object:
    """A small valid value for a JSON schema (a tool's inputSchema): its `examples` or
    `default` when it declares them, else the simplest value of its type."""
    definitions = schema.get("$defs", {})

    def value(node: Mapping[str, object]) -> object:
        if "$ref" in node:
            return value(definitions[str(node["$ref"]).rsplit("/", 1)[-1]])  # type: ignore[index]
        for key in ("examples", "enum"):
            if node.get(key):
                return node[key][0]  # type: ignore[index]
        if "default" in node:
            return node["default"]
        for key in ("anyOf", "oneOf", "allOf"):
            if node.get(key):
                return value(node[key][0])  # type: ignore[index]
        kind = node.get("type")
        if kind == "string":
            return "x" * max(1, int(node.get("minLength", 1)))  # type: ignore[arg-type]
        if kind in ("number", "integer"):
            return max(1, node.get("minimum", 1), node.get("exclusiveMinimum", 0) + 1)  # type: ignore[operator]
        if kind == "boolean":
            return True
        if kind == "array":
            count = max(1, int(node.get("minItems", 1)))  # type: ignore[arg-type]
            return [value(node.get("items", {})) for _ in range(count)]  # type: ignore[arg-type]
        if kind == "object":
            required = node.get("required", [])
            properties = node.get("properties", {})
            return {key: value(sub) for key, sub in properties.items() if key in required}  # type: ignore[union-attr]
        return None

    return value(schema)


def copy_workspace(source: Path, target: Path) -> Path:
    """Copy the repository's files (tracked and new, not ignored) into `target`; return it."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        origin = source / relative
        if origin.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
    return target


@contextlib.asynccontextmanager
async def client_as(spec: ServiceSpec, principal: str) -> AsyncIterator[Client]:
    """fastmcp's in-memory Client of `spec`'s tools, every call made as `principal`: how to
    test a tool that keeps data per caller (it calls `current_principal()`, which raises
    outside an authenticated request). One at a time: the principal is the calling task's,
    so open a second caller's client after the first one's has closed."""
    from fastmcp import Client

    from mcp_common.app import build_server
    from mcp_common.auth import acting_as

    with acting_as(principal):
        async with Client(build_server(spec)) as client:
            yield client
