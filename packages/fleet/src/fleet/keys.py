"""`fleet keys`: create, store, list and revoke API key records.

A key is shown once, at creation; only its SHA-256 is ever stored. Records live
in a local file (default .fleet/api-keys.json, git-ignored) until `put` writes
them to the SSM SecureString or Secrets Manager secret the services read.
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

from fleet.workspace import FleetError
from mcp_common.apikeys import (
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
    def __init__(self, parameter: str) -> None:
        import boto3

        self.parameter = parameter
        self.description = f"SSM parameter {parameter}"
        self.client: Any = boto3.client("ssm")

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
    def __init__(self, secret_id: str) -> None:
        import boto3

        self.secret_id = secret_id
        self.description = f"Secrets Manager secret {secret_id}"
        self.client: Any = boto3.client("secretsmanager")

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


def store_from_args(args: argparse.Namespace) -> RecordStore:
    if getattr(args, "ssm_parameter", None):
        return SsmStore(args.ssm_parameter)
    if getattr(args, "secret_id", None):
        return SecretStore(args.secret_id)
    return FileStore(Path(args.file))


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


def create(args: argparse.Namespace) -> int:
    _check_name(args.name)
    store = store_from_args(args)
    records = store.load()
    if any(record.name == args.name for record in records):
        raise FleetError(f"a key named {args.name!r} already exists in {store.description}")
    services = [service.strip() for service in args.services.split(",") if service.strip()]
    if not services:
        raise FleetError("--services needs at least one service name (or '*')")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        name=args.name, sha256=hash_key(key), services=services, expires=_parse_expiry(args.expires)
    )
    store.save([*records, record])
    print(f"API key for {args.name!r} (shown once; store it in your client's secret store):")
    print(f"  {key}")
    print(f"record added to {store.description}:")
    print(json.dumps(record.model_dump(mode="json", exclude_none=True), indent=2))
    return 0


def put(args: argparse.Namespace) -> int:
    source = FileStore(Path(args.file))
    records = source.load()
    if not records:
        raise FleetError(
            f"no key records in {source.description}; create one with `fleet keys create`"
        )
    if args.ssm_prefix:
        return _put_per_service(records, args.ssm_prefix.rstrip("/"))
    target = store_from_args(argparse.Namespace(**{**vars(args), "file": None}))
    if isinstance(target, FileStore):
        raise FleetError("put needs a target: --ssm-parameter NAME or --secret-id ID")
    target.save(records)
    print(f"wrote {len(records)} record(s) from {source.description} to {target.description}")
    return 0


def _put_per_service(records: list[ApiKeyRecord], prefix: str) -> int:
    """Write <prefix>/<svc> for every service: only the records allowed to call it."""
    from fleet.workspace import find_root, service_dirs

    for service in service_dirs(find_root()):
        allowed = [record for record in records if record.allows(service.name)]
        store = SsmStore(f"{prefix}/{service.name}")
        store.save(allowed)
        print(f"wrote {len(allowed)} record(s) to {store.description}")
    return 0


def list_keys(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    records = store.load()
    now = datetime.now(UTC)
    print(f"{len(records)} key record(s) in {store.description}")
    for record in records:
        expires = record.expires.isoformat() if record.expires else "never"
        state = "EXPIRED" if record.expired(now) else "active"
        print(
            f"  {record.name:<24} {state:<8} services={','.join(record.services):<20} expires={expires}"
        )
    return 0


def revoke(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    records = store.load()
    remaining = [record for record in records if record.name != args.name]
    if len(remaining) == len(records):
        raise FleetError(f"no key named {args.name!r} in {store.description}")
    store.save(remaining)
    print(f"revoked {args.name!r} in {store.description} ({len(remaining)} record(s) left)")
    print("services re-read AWS key stores after MCP_API_KEYS_TTL_SECONDS (default 300 s)")
    return 0


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="manage API keys (hashed records)")
    verbs = keys.add_subparsers(dest="verb", required=True, metavar="VERB")

    def with_store(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--file", default=str(DEFAULT_FILE), help=f"records file (default {DEFAULT_FILE})"
        )
        where.add_argument("--ssm-parameter", help="SSM SecureString parameter name")
        where.add_argument("--secret-id", help="Secrets Manager secret id")
        return parser

    new = with_store(verbs.add_parser("create", help="create a key; prints it once"))
    new.add_argument("--name", required=True, help="principal name shown in logs")
    new.add_argument("--services", required=True, help="comma-separated services, or '*'")
    new.add_argument("--expires", help="ISO 8601 expiry, e.g. 2027-06-30")
    new.set_defaults(handler=create)

    upload = verbs.add_parser("put", help="write the records file to SSM or Secrets Manager")
    upload.add_argument(
        "--file", default=str(DEFAULT_FILE), help=f"records file (default {DEFAULT_FILE})"
    )
    target = upload.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--ssm-prefix",
        help="write <prefix>/<service> for every service (what template.yaml's functions read)",
    )
    target.add_argument("--ssm-parameter", help="SSM SecureString parameter name")
    target.add_argument("--secret-id", help="Secrets Manager secret id")
    upload.set_defaults(handler=put)

    with_store(verbs.add_parser("list", help="list key records")).set_defaults(handler=list_keys)

    remove = with_store(verbs.add_parser("revoke", help="remove a key record"))
    remove.add_argument("--name", required=True)
    remove.set_defaults(handler=revoke)
