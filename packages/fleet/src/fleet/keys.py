"""`fleet keys`: create, store, list and revoke API key records.

A key is shown once, at creation; only its SHA-256 is ever stored. Records live
in a local file (default .fleet/api-keys.json, git-ignored) until `put` writes
them to the SSM SecureString or Secrets Manager secret the services read.

A key's name is its holder's principal: the memory service keeps a graph under it. So a
revoked name is remembered (.fleet/api-keys.revoked.json) and not given to a new key unless
`create --reuse` says so on purpose: its new holder would read the old holder's memories.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fleet import aws
from fleet.workspace import FleetError
from mcp_common.apikeys import (
    ALL_SERVICES,
    KEY_NAME_PATTERN,
    ApiKeyRecord,
    dump_records,
    hash_key,
    parse_records,
)

DEFAULT_FILE = Path(".fleet/api-keys.json")
KEY_PREFIX = "mcpk_"


class RecordStore(Protocol):
    description: str

    def load(self) -> list[ApiKeyRecord]: ...

    def save(self, records: list[ApiKeyRecord]) -> None: ...


class FileStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    def load(self) -> list[ApiKeyRecord]:
        if not self.path.exists():
            return []
        return parse_records(self.path.read_text(encoding="utf-8"))

    def save(self, records: list[ApiKeyRecord]) -> None:
        """Write atomically, readable by the owner only from the first byte (never 0644)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(dump_records(records) + "\n")
            scratch.replace(self.path)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise


class SsmStore:
    def __init__(self, parameter: str, client: Any, service: str | None = None) -> None:
        self.parameter = parameter
        self.description = f"SSM parameter {parameter}"
        self.client = client
        self.service = service
        """The one service whose function reads this parameter (under --ssm-prefix)."""

    def load(self) -> list[ApiKeyRecord]:
        try:
            value = self.client.get_parameter(Name=self.parameter, WithDecryption=True)
        except self.client.exceptions.ParameterNotFound:
            return []
        return parse_records(value["Parameter"]["Value"])

    def save(self, records: list[ApiKeyRecord]) -> None:
        self.client.put_parameter(
            Name=self.parameter, Value=dump_records(records), Type="SecureString", Overwrite=True
        )


class SecretStore:
    def __init__(self, secret_id: str, client: Any) -> None:
        self.secret_id = secret_id
        self.description = f"Secrets Manager secret {secret_id}"
        self.client = client

    def load(self) -> list[ApiKeyRecord]:
        try:
            value = self.client.get_secret_value(SecretId=self.secret_id)
        except self.client.exceptions.ResourceNotFoundException:
            return []
        return parse_records(value["SecretString"])

    def save(self, records: list[ApiKeyRecord]) -> None:
        text = dump_records(records)
        try:
            self.client.put_secret_value(SecretId=self.secret_id, SecretString=text)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_secret(Name=self.secret_id, SecretString=text)


class RevokedNames:
    """The names of revoked keys, kept beside the local records file (owner-only, atomic)."""

    def __init__(self, records_file: Path) -> None:
        self.path = records_file.with_name(f"{records_file.stem}.revoked.json")

    def load(self) -> dict[str, str]:
        """{name: when it was revoked (ISO 8601)}."""
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {str(name): str(when) for name, when in data.items()}

    def save(self, names: dict[str, str]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(names, indent=2, sort_keys=True) + "\n")
            scratch.replace(self.path)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise


def stores_from_args(args: argparse.Namespace) -> list[RecordStore]:
    """The stores a command works on: one per service under --ssm-prefix (what the deployed
    functions read: <prefix>/<service>), else the one SSM parameter, secret or file."""
    if getattr(args, "stack", None):
        from fleet.urls import stack_outputs

        outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
        if "ApiKeysParameterPrefix" not in outputs:
            raise FleetError(f"stack {args.stack!r} has no ApiKeysParameterPrefix output")
        args.ssm_prefix = outputs["ApiKeysParameterPrefix"]
    if getattr(args, "ssm_prefix", None):
        client = aws.client(args, "ssm")
        prefix = args.ssm_prefix.rstrip("/")
        return [SsmStore(f"{prefix}/{name}", client, name) for name in _service_names()]
    if getattr(args, "ssm_parameter", None):
        return [SsmStore(args.ssm_parameter, aws.client(args, "ssm"))]
    if getattr(args, "secret_id", None):
        return [SecretStore(args.secret_id, aws.client(args, "secretsmanager"))]
    return [FileStore(Path(args.file))]


def _service_names() -> list[str]:
    from fleet.workspace import find_root, service_dirs

    return [service.name for service in service_dirs(find_root())]


def _parse_expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        expires = datetime.fromisoformat(value)
    except ValueError:
        raise FleetError(f"--expires {value!r} is not an ISO 8601 date or date-time") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        raise FleetError(f"--expires {value!r} is in the past")
    return expires


def _check_name(name: str) -> None:
    if not re.fullmatch(KEY_NAME_PATTERN, name):
        raise FleetError(
            f"invalid key name {name!r}: use 1-64 ASCII letters, digits and . _ @ + - "
            "(starting with a letter or digit), e.g. ci-bot or ada@laptop"
        )


def _check_services(services: list[str]) -> None:
    if not services:
        raise FleetError("--services needs at least one service name (or '*')")
    known = _service_names()
    unknown = [name for name in services if name != ALL_SERVICES and name not in known]
    if unknown:
        raise FleetError(
            f"no service named {', '.join(map(repr, unknown))}; "
            f"services: {', '.join(known) or 'none'} (or '*' for all of them)"
        )


def create(args: argparse.Namespace) -> int:
    _check_name(args.name)
    services = [service.strip() for service in args.services.split(",") if service.strip()]
    _check_services(services)
    [store] = stores_from_args(args)
    records = store.load()
    if any(record.name == args.name for record in records):
        raise FleetError(f"a key named {args.name!r} already exists in {store.description}")
    revoked = RevokedNames(Path(args.file))
    names = revoked.load()
    if args.name in names and not args.reuse:
        raise FleetError(
            f"{args.name!r} was the name of a key revoked on {names[args.name]}: a new key with "
            "that name is the same principal, and would read what its old holder kept (the "
            "memory service's graph). Pick another name, or pass --reuse if that is meant"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        name=args.name, sha256=hash_key(key), services=services, expires=_parse_expiry(args.expires)
    )
    store.save([*records, record])
    if args.name in names:
        revoked.save({name: when for name, when in names.items() if name != args.name})
        print(f"reusing the revoked name {args.name!r}: this key's holder is its old principal")
    print(f"API key for {args.name!r} (shown once; store it in your client's secret store):")
    print(f"  {key}")
    print(f"record added to {store.description}:")
    print(json.dumps(record.model_dump(mode="json", exclude_none=True), indent=2))
    return 0


def put(args: argparse.Namespace) -> int:
    """Write the local records to AWS: to every <prefix>/<service> only the records allowed
    to call that service, or all of them to one parameter or secret."""
    source = FileStore(Path(args.file))
    records = source.load()
    if not records:
        raise FleetError(
            f"no key records in {source.description}; create one with `fleet keys create`"
        )
    for target in stores_from_args(argparse.Namespace(**{**vars(args), "file": None})):
        if isinstance(target, FileStore):
            raise FleetError("put needs a target: --ssm-prefix, --ssm-parameter or --secret-id")
        service = getattr(target, "service", None)
        chosen = [r for r in records if service is None or r.allows(service)]
        target.save(chosen)
        print(f"wrote {len(chosen)} record(s) from {source.description} to {target.description}")
    return 0


def list_keys(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    for store in stores_from_args(args):
        records = store.load()
        print(f"{len(records)} key record(s) in {store.description}")
        for record in records:
            expires = record.expires.isoformat() if record.expires else "never"
            state = "EXPIRED" if record.expired(now) else "active"
            services = ",".join(record.services)
            print(f"  {record.name:<24} {state:<8} services={services:<20} expires={expires}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    """Remove a key from the given stores, and from the local records file too when the
    stores are in AWS, so a later `put` cannot bring it back."""
    stores = stores_from_args(args)
    local = FileStore(Path(args.file))
    if not isinstance(stores[0], FileStore) and local.path.exists():
        stores.append(local)
    removed = 0
    for store in stores:
        records = store.load()
        remaining = [record for record in records if record.name != args.name]
        if len(remaining) != len(records):
            store.save(remaining)
            removed += 1
            print(f"revoked {args.name!r} in {store.description} ({len(remaining)} left)")
    if not removed:
        described = ", ".join(store.description for store in stores)
        raise FleetError(f"no key named {args.name!r} in {described}")
    revoked = RevokedNames(local.path)
    revoked.save({**revoked.load(), args.name: datetime.now(UTC).isoformat(timespec="seconds")})
    print(
        "deployed services re-read their key parameter every MCP_API_KEYS_TTL_SECONDS "
        "(template: ApiKeysCacheSeconds, default 300 s): the key stops working within that time"
    )
    return 0


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="manage API keys (hashed records)")
    verbs = keys.add_subparsers(dest="verb", required=True, metavar="VERB")
    file_help = f"local records file (default {DEFAULT_FILE})"

    def with_stores(parser: argparse.ArgumentParser, prefix: bool = True) -> None:
        """Where the records are: the local file (default) or AWS."""
        where = parser.add_mutually_exclusive_group()
        if prefix:
            where.add_argument(
                "--stack",
                help="the deployed stack: every <prefix>/<service> it reads (its "
                "ApiKeysParameterPrefix output, by default /mcp-fleet/<stack>/api-keys)",
            )
            where.add_argument(
                "--ssm-prefix",
                help="every <prefix>/<service> SSM parameter (what the template's functions read)",
            )
        where.add_argument("--ssm-parameter", help="one SSM SecureString parameter")
        where.add_argument("--secret-id", help="one Secrets Manager secret")
        aws.add_arguments(parser)

    new = verbs.add_parser("create", help="create a key in the local records file; prints it once")
    new.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(new, prefix=False)
    new.add_argument("--name", required=True, help="principal name shown in logs")
    new.add_argument("--services", required=True, help="comma-separated services, or '*'")
    new.add_argument("--expires", help="ISO 8601 expiry, e.g. 2027-06-30")
    new.add_argument(
        "--reuse",
        action="store_true",
        help="allow the name of a revoked key (its new holder is the same principal)",
    )
    new.set_defaults(handler=create)

    upload = verbs.add_parser("put", help="write the local records to SSM or Secrets Manager")
    upload.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(upload)
    upload.set_defaults(handler=put)

    listing = verbs.add_parser(
        "list", help="list key records (local file, or where --ssm-prefix ... says)"
    )
    listing.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(listing)
    listing.set_defaults(handler=list_keys)

    remove = verbs.add_parser("revoke", help="remove a key record (from AWS and the local file)")
    remove.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(remove)
    remove.add_argument("--name", required=True)
    remove.set_defaults(handler=revoke)
