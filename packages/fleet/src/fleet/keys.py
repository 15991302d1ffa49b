"""`fleet keys`: create, store, list and revoke API key records.

A key is shown once, at creation; only its SHA-256 is ever stored. Records live
in a local file (default .fleet/api-keys.json, git-ignored) until `put` writes
them to the SSM SecureString or Secrets Manager secret the services read.

A key's name is its holder's principal: the memory service keeps a graph under it. So a
revoked name is remembered (.fleet/api-keys.revoked.json, and with --stack/--ssm-prefix in AWS
beside the records, <prefix>/_revoked) and not given to a new key unless --reuse says so on
purpose: its new holder would read the old holder's memories. `put` adds to what AWS holds and
never removes another operator's records; `revoke` removes a key from every service deployed
under the prefix, those of other branches included.
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


REVOKED_PARAMETER = "_revoked"
"""Beside the services' records under the prefix: every revoked name, kept in AWS so that no
operator's machine can issue it again (no service is named so: names start with a letter)."""


class AwsRevocations:
    """The names revoked in a fleet stack, in SSM: {name: when}."""

    def __init__(self, prefix: str, client: Any) -> None:
        self.parameter = f"{prefix}/{REVOKED_PARAMETER}"
        self.client = client

    def load(self) -> dict[str, str]:
        try:
            value = self.client.get_parameter(Name=self.parameter)["Parameter"]["Value"]
        except self.client.exceptions.ParameterNotFound:
            return {}
        return {str(k): str(v) for k, v in json.loads(value).items()}

    def add(self, name: str) -> None:
        names = {**self.load(), name: datetime.now(UTC).isoformat(timespec="seconds")}
        text = json.dumps(names, sort_keys=True)
        self.client.put_parameter(Name=self.parameter, Value=text, Type="String", Overwrite=True)


def aws_prefix(args: argparse.Namespace) -> str | None:
    """--stack's ApiKeysParameterPrefix output, or --ssm-prefix; None for other stores (a
    stack samconfig.toml names does not replace an --ssm-parameter or --secret-id given)."""
    if getattr(args, "ssm_parameter", None) or getattr(args, "secret_id", None):
        return None
    if getattr(args, "stack", None) and not getattr(args, "ssm_prefix", None):
        from fleet.urls import stack_outputs

        outputs = stack_outputs(args.stack, aws.client(args, "cloudformation"))
        if "ApiKeysParameterPrefix" not in outputs:
            raise FleetError(f"stack {args.stack!r} has no ApiKeysParameterPrefix output")
        args.ssm_prefix = outputs["ApiKeysParameterPrefix"]
    prefix = getattr(args, "ssm_prefix", None)
    return prefix.rstrip("/") if prefix else None


def _deployed_services(prefix: str, client: Any) -> list[str]:
    """Every service with a record parameter under the prefix: those of other branches too."""
    names: list[str] = []
    for page in client.get_paginator("get_parameters_by_path").paginate(Path=prefix):
        names += [p["Name"].rsplit("/", 1)[-1] for p in page.get("Parameters", [])]
    return [name for name in names if name != REVOKED_PARAMETER]


def stores_from_args(args: argparse.Namespace) -> list[RecordStore]:
    """The stores a command works on: one per service under --ssm-prefix (what the deployed
    functions read: <prefix>/<service>, for the services of this tree and every other one
    deployed there), else the one SSM parameter, secret or file."""
    prefix = aws_prefix(args)
    if prefix:
        client = aws.client(args, "ssm")
        services = sorted({*_service_names(), *_deployed_services(prefix, client)})
        return [SsmStore(f"{prefix}/{name}", client, name) for name in services]
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
    """Add the local records to AWS, never removing another operator's: to every
    <prefix>/<service> the records allowed to call that service, or all of them to one
    parameter or secret, merged by name with what is there. A name revoked in AWS is refused
    (unless --reuse), so an old records file cannot bring a revoked key back; removing a key
    is `revoke`'s."""
    source = FileStore(Path(args.file))
    records = source.load()
    if not records:
        raise FleetError(
            f"no key records in {source.description}; create one with `fleet keys create`"
        )
    targets = stores_from_args(argparse.Namespace(**{**vars(args), "file": None}))
    prefix = aws_prefix(args)
    revoked = AwsRevocations(prefix, aws.client(args, "ssm")).load() if prefix else {}
    refused = sorted(record.name for record in records if record.name in revoked)
    if refused and not args.reuse:
        raise FleetError(
            f"{', '.join(map(repr, refused))} revoked in AWS on "
            f"{', '.join(revoked[name] for name in refused)}: a key with that name is the same "
            "principal. Remove it from the records file, or pass --reuse if that is meant"
        )
    for target in targets:
        if isinstance(target, FileStore):
            raise FleetError("put needs a target: --ssm-prefix, --ssm-parameter or --secret-id")
        service = getattr(target, "service", None)
        chosen = [r for r in records if service is None or r.allows(service)]
        existing = {record.name: record for record in target.load()}
        for record in chosen:
            other = existing.get(record.name)
            if other is not None and other.sha256 != record.sha256:
                raise FleetError(
                    f"{target.description} holds another key named {record.name!r} (another "
                    "operator's?): revoke it first, or name this key differently"
                )
        names = {record.name for record in chosen}
        kept = [r for name, r in existing.items() if name not in names and name not in revoked]
        target.save([*kept, *chosen])
        print(
            f"wrote {len(chosen)} record(s) from {source.description} to {target.description} "
            f"({len(kept)} kept from others)"
        )
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
    prefix = aws_prefix(args)
    if not removed and not prefix:
        described = ", ".join(store.description for store in stores)
        raise FleetError(f"no key named {args.name!r} in {described}")
    if not removed:  # remembered as revoked all the same: no machine may put it here later
        print(f"no key named {args.name!r} here; the name is revoked all the same")
    revoked = RevokedNames(local.path)
    revoked.save({**revoked.load(), args.name: datetime.now(UTC).isoformat(timespec="seconds")})
    if prefix:  # kept in AWS: no operator's machine can issue the name again
        AwsRevocations(prefix, aws.client(args, "ssm")).add(args.name)
        print(f"remembered {args.name!r} as revoked in SSM parameter {prefix}/{REVOKED_PARAMETER}")
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
        """Where the records are: the local file (default) or AWS (create writes the local
        file only; put, list and revoke may act on every region)."""
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
        aws.add_arguments(parser, all_regions=prefix)

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

    upload = verbs.add_parser("put", help="add the local records to SSM or Secrets Manager")
    upload.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(upload)
    upload.add_argument(
        "--reuse", action="store_true", help="allow a name revoked in AWS (the same principal)"
    )
    upload.set_defaults(handler=aws.each_region(put))

    listing = verbs.add_parser(
        "list", help="list key records (local file, or where --ssm-prefix ... says)"
    )
    listing.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(listing)
    listing.set_defaults(handler=aws.each_region(list_keys))

    remove = verbs.add_parser("revoke", help="remove a key record (from AWS and the local file)")
    remove.add_argument("--file", default=str(DEFAULT_FILE), help=file_help)
    with_stores(remove)
    remove.add_argument("--name", required=True)
    remove.set_defaults(handler=aws.each_region(revoke))
