"""`fleet keys`: keys are shown once, stored hashed, and round-trip through SSM and Secrets Manager."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from fleet.cli import main
from fleet.testing import deployed_stack, fake_aws
from mcp_common.apikeys import hash_key, parse_records

KEY = re.compile(r"^\s+(mcpk_[A-Za-z0-9_-]{40,})$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _outside_the_checkout(tmp_path, monkeypatch):
    """Every key command's default files (.fleet/...) land in a scratch folder: a test run
    once left a revoked list in the checkout that refused the next real `keys create`."""
    monkeypatch.setenv("FLEET_ROOT", str(Path(__file__).resolve().parents[3]))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def records_file(tmp_path) -> str:
    return str(tmp_path / "keys.json")


def create(records_file: str, capsys, name: str, services: str, *extra: str) -> str:
    assert (
        main(
            [
                "keys",
                "create",
                "--file",
                records_file,
                "--name",
                name,
                "--services",
                services,
                *extra,
            ]
        )
        == 0
    )
    return KEY.search(capsys.readouterr().out).group(1)


def test_create_prints_the_key_once_and_stores_only_its_hash(records_file, capsys):
    key = create(records_file, capsys, "ci-bot", "math,weather", "--expires", "2099-01-01")
    text = Path(records_file).read_text()
    assert key not in text
    [record] = parse_records(text)
    assert record.name == "ci-bot"
    assert record.sha256 == hash_key(key)
    assert record.services == ["math", "weather"]
    assert record.expires.year == 2099


def test_duplicate_names_and_past_expiry_are_refused(records_file, capsys):
    create(records_file, capsys, "a", "*")
    refused = ["keys", "create", "--file", records_file, "--services", "*", "--name"]
    assert main([*refused, "a"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*refused, "b", "--expires", "2001-01-01"]) == 1
    assert "in the past" in capsys.readouterr().err
    assert [record.name for record in parse_records(Path(records_file).read_text())] == ["a"]


def test_list_and_revoke(records_file, capsys):
    create(records_file, capsys, "a", "math")
    create(records_file, capsys, "b", "*")
    assert main(["keys", "list", "--file", records_file]) == 0
    listing = capsys.readouterr().out
    assert "2 key record(s)" in listing
    assert "a " in listing
    assert "active" in listing
    assert main(["keys", "revoke", "--file", records_file, "--name", "a"]) == 0
    assert [record.name for record in parse_records(Path(records_file).read_text())] == ["b"]
    assert main(["keys", "revoke", "--file", records_file, "--name", "a"]) == 1
    assert "no key named 'a'" in capsys.readouterr().err


def test_a_revoked_name_is_not_reissued_unless_on_purpose(records_file, capsys):
    """Regression: revoke, then create with the same name, gave the new holder the old
    holder's principal, and so its memories (the memory service's graph)."""
    create(records_file, capsys, "tester", "memory")
    assert main(["keys", "revoke", "--file", records_file, "--name", "tester"]) == 0
    capsys.readouterr()
    again = ["keys", "create", "--file", records_file, "--name", "tester", "--services", "memory"]
    assert main(again) == 1
    assert "was the name of a key revoked on" in capsys.readouterr().err
    assert parse_records(Path(records_file).read_text()) == []
    key = create(records_file, capsys, "tester", "memory", "--reuse")
    [record] = parse_records(Path(records_file).read_text())
    assert record.sha256 == hash_key(key)
    revoked = Path(records_file).with_name("keys.revoked.json")
    assert json.loads(revoked.read_text()) == {}  # in use again
    assert revoked.stat().st_mode & 0o077 == 0


@pytest.fixture
def aws() -> Iterator[None]:
    with fake_aws():
        yield


def test_put_to_ssm_then_list_and_revoke_there(aws, records_file, capsys):
    key = create(records_file, capsys, "svc", "math")
    assert main(["keys", "put", "--file", records_file, "--ssm-parameter", "/mcp/api-keys"]) == 0
    parameter = boto3.client("ssm").get_parameter(Name="/mcp/api-keys", WithDecryption=True)[
        "Parameter"
    ]
    assert parameter["Type"] == "SecureString"
    assert key not in parameter["Value"]
    assert json.loads(parameter["Value"])[0]["sha256"] == hash_key(key)
    capsys.readouterr()
    assert main(["keys", "list", "--ssm-parameter", "/mcp/api-keys"]) == 0
    assert "svc" in capsys.readouterr().out
    assert main(["keys", "revoke", "--ssm-parameter", "/mcp/api-keys", "--name", "svc"]) == 0
    value = boto3.client("ssm").get_parameter(Name="/mcp/api-keys", WithDecryption=True)[
        "Parameter"
    ]["Value"]
    assert json.loads(value) == []


def test_put_to_secrets_manager_creates_then_updates(aws, records_file, capsys):
    create(records_file, capsys, "one", "*")
    assert main(["keys", "put", "--file", records_file, "--secret-id", "mcp-keys"]) == 0
    create(records_file, capsys, "two", "*")
    assert main(["keys", "put", "--file", records_file, "--secret-id", "mcp-keys"]) == 0
    secret = boto3.client("secretsmanager").get_secret_value(SecretId="mcp-keys")["SecretString"]
    assert [record.name for record in parse_records(secret)] == ["one", "two"]


def test_put_without_records_is_a_clear_error(records_file, capsys):
    assert main(["keys", "put", "--file", records_file, "--ssm-parameter", "/x"]) == 1
    assert "no key records" in capsys.readouterr().err


def test_put_per_service_prefix_writes_only_each_services_records(aws, records_file, capsys):
    create(records_file, capsys, "math-only", "math")
    create(records_file, capsys, "everything", "*")
    create(records_file, capsys, "weather-only", "weather")
    assert (
        main(["keys", "put", "--file", records_file, "--ssm-prefix", "/mcp-fleet/api-keys/"]) == 0
    )
    ssm = boto3.client("ssm")

    def names(service: str) -> list[str]:
        value = ssm.get_parameter(Name=f"/mcp-fleet/api-keys/{service}", WithDecryption=True)[
            "Parameter"
        ]["Value"]
        return [record.name for record in parse_records(value)]

    assert names("math") == ["math-only", "everything"]
    assert names("weather") == ["everything", "weather-only"]


@pytest.mark.parametrize("name", ["Łukasz laptop", 'ci", error="forged', "a b", ""])
def test_unsafe_key_names_are_refused_at_creation(records_file, capsys, name):
    argv = ["keys", "create", "--file", records_file, "--services", "*", "--name", name]
    assert main(argv) == 1
    assert "invalid key name" in capsys.readouterr().err
    assert not Path(records_file).exists()


def test_the_records_file_is_never_readable_by_others(records_file, capsys, monkeypatch):
    import os
    import stat

    seen: list[int] = []
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT:
            seen.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", watching_open)
    create(records_file, capsys, "a", "*")
    assert seen == [0o600]  # created 0600, not chmod-ed afterwards
    assert stat.S_IMODE(Path(records_file).stat().st_mode) == 0o600


def test_unknown_service_names_are_refused_with_the_known_ones(records_file, capsys):
    argv = ["keys", "create", "--file", records_file, "--name", "x", "--services", "math,mth"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    from fleet.workspace import find_root, service_dirs

    known = ", ".join(service.name for service in service_dirs(find_root()))
    assert "no service named 'mth'" in err
    assert f"services: {known} (or '*' for all of them)" in err
    assert not Path(records_file).exists()


def test_keys_honour_aws_region(aws, records_file, capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    create(records_file, capsys, "svc", "math")
    assert main(["keys", "put", "--file", records_file, "--ssm-parameter", "/r"]) == 0
    assert main(["keys", "list", "--ssm-parameter", "/r", "--region", "us-east-1"]) == 0


def test_put_list_and_revoke_are_symmetric_over_the_service_prefix(aws, records_file, capsys):
    """Regression: revoke had no --ssm-prefix; deployed functions read <prefix>/<service>."""
    create(records_file, capsys, "laptop", "*")
    create(records_file, capsys, "ci-bot", "math")
    prefix = ["--ssm-prefix", "/mcp-fleet/api-keys"]
    assert main(["keys", "put", "--file", records_file, *prefix]) == 0
    capsys.readouterr()
    assert main(["keys", "list", *prefix]) == 0
    listing = capsys.readouterr().out
    assert "2 key record(s) in SSM parameter /mcp-fleet/api-keys/math" in listing
    assert "1 key record(s) in SSM parameter /mcp-fleet/api-keys/weather" in listing
    assert main(["keys", "revoke", "--file", records_file, "--name", "laptop", *prefix]) == 0
    out = capsys.readouterr().out
    assert "revoked 'laptop' in SSM parameter /mcp-fleet/api-keys/weather" in out
    ssm = boto3.client("ssm")

    def names(parameter: str) -> list[str]:
        value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
        return [record.name for record in parse_records(value)]

    assert names("/mcp-fleet/api-keys/math") == ["ci-bot"]
    assert names("/mcp-fleet/api-keys/weather") == []
    # Gone from the local records too: a later put cannot bring it back.
    assert [r.name for r in parse_records(Path(records_file).read_text())] == ["ci-bot"]


def test_put_to_a_stack_writes_where_its_services_read(aws, records_file, capsys):
    """`--stack` reads the stack's ApiKeysParameterPrefix output (/mcp-fleet/<stack>/api-keys
    by default, so staging and prod never share keys)."""
    deployed_stack("staging", {"ApiKeysParameterPrefix": "/mcp-fleet/staging/api-keys"})
    create(records_file, capsys, "svc", "math")
    assert main(["keys", "put", "--file", records_file, "--stack", "staging"]) == 0
    parameter = boto3.client("ssm").get_parameter(
        Name="/mcp-fleet/staging/api-keys/math", WithDecryption=True
    )
    assert [r.name for r in parse_records(parameter["Parameter"]["Value"])] == ["svc"]


def records_at(parameter: str) -> list[str]:
    value = boto3.client("ssm").get_parameter(Name=parameter, WithDecryption=True)
    return [record.name for record in parse_records(value["Parameter"]["Value"])]


def test_two_operators_keys_merge_and_a_revocation_holds_everywhere(aws, tmp_path, capsys):
    """The report: a second operator's `put` removed the first's keys from every service; a
    revoked name came back from another operator's older file and from a fresh clone's
    `create`; `revoke` missed a service deployed from another branch."""
    deployed_stack("prod", {"ApiKeysParameterPrefix": "/mcp-fleet/prod/api-keys"})
    first, second, fresh = (str(tmp_path / f"{who}.json") for who in ("first", "second", "fresh"))
    create(first, capsys, "alice", "*")
    create(second, capsys, "bob", "*")
    # A service deployed from another branch: its records exist, its folder does not here.
    boto3.client("ssm").put_parameter(
        Name="/mcp-fleet/prod/api-keys/ghost", Value="[]", Type="SecureString"
    )
    assert main(["keys", "put", "--file", first, "--stack", "prod"]) == 0
    assert main(["keys", "put", "--file", second, "--stack", "prod"]) == 0
    assert records_at("/mcp-fleet/prod/api-keys/ghost") == ["alice", "bob"]  # merged
    assert main(["keys", "revoke", "--file", second, "--name", "alice", "--stack", "prod"]) == 0
    assert records_at("/mcp-fleet/prod/api-keys/ghost") == ["bob"]  # other branches' too
    capsys.readouterr()
    # The first operator's older file still holds alice: put adds bob's neighbours, never her.
    assert main(["keys", "put", "--file", first, "--stack", "prod"]) == 1
    assert "'alice' revoked in AWS" in capsys.readouterr().err
    # A fresh clone knows nothing locally: its new alice cannot reach AWS either.
    create(fresh, capsys, "alice", "*")
    assert main(["keys", "put", "--file", fresh, "--stack", "prod"]) == 1
    assert "revoked in AWS" in capsys.readouterr().err
    assert "alice" not in records_at("/mcp-fleet/prod/api-keys/ghost")


def test_a_name_taken_by_another_operators_key_is_not_overwritten(aws, tmp_path, capsys):
    first, second = str(tmp_path / "first.json"), str(tmp_path / "second.json")
    create(first, capsys, "ci", "*")
    create(second, capsys, "ci", "*")  # the same name, another key
    prefix = ["--ssm-prefix", "/mcp-fleet/x/api-keys"]
    assert main(["keys", "put", "--file", first, *prefix]) == 0
    capsys.readouterr()
    assert main(["keys", "put", "--file", second, *prefix]) == 1
    assert "holds another key named 'ci'" in capsys.readouterr().err


def with_regions(tmp_path: Path, regions: str) -> Path:
    """A copy of the workspace whose samconfig.toml deploys the fleet to these regions."""
    from fleet.testing import copy_workspace

    root = copy_workspace(Path(__file__).resolve().parents[3], tmp_path / "ws")
    samconfig = root / "samconfig.toml"
    primary, _, replicas = regions.partition(",")
    samconfig.write_text(
        samconfig.read_text().replace(
            "[default.deploy.parameters]\n",
            "[default.deploy.parameters]\nparameter_overrides = "
            f'"PrimaryRegion={primary} ReplicaRegions={replicas}"\n',
            1,
        )
    )
    return root


def test_put_and_revoke_reach_every_region_of_the_fleet(aws, tmp_path, capsys, monkeypatch):
    """Issue 30: every put and revoke had to be repeated per region with --region. A region
    that fails (no stack there yet) is reported, and the others are still done."""
    regions = ["us-east-1", "eu-west-1", "ap-northeast-1"]
    monkeypatch.setenv("FLEET_ROOT", str(with_regions(tmp_path, ",".join(regions))))
    for region in regions[:2]:
        deployed_stack("prod", {"ApiKeysParameterPrefix": "/mcp-fleet/prod/api-keys"}, region)
    keys = str(tmp_path / "keys.json")
    create(keys, capsys, "alice", "math")

    def records(region: str) -> list[str]:
        ssm = boto3.client("ssm", region_name=region)
        value = ssm.get_parameter(Name="/mcp-fleet/prod/api-keys/math", WithDecryption=True)
        return [record.name for record in parse_records(value["Parameter"]["Value"])]

    assert main(["keys", "put", "--file", keys, "--stack", "prod", "--all-regions"]) == 1
    out = capsys.readouterr()
    assert [records(region) for region in regions[:2]] == [["alice"], ["alice"]]
    assert "== us-east-1" in out.out
    assert "== eu-west-1" in out.out
    assert "fleet: ap-northeast-1: cannot read stack 'prod'" in out.err
    assert "2 of 3 regions OK; failed: ap-northeast-1" in out.out
    deployed_stack("prod", {"ApiKeysParameterPrefix": "/mcp-fleet/prod/api-keys"}, regions[2])
    # The third region never got alice (its put failed above): revoking there still records
    # the name as revoked, so no machine can put it there later.
    revoke = ["keys", "revoke", "--file", keys, "--name", "alice", "--stack", "prod"]
    assert main([*revoke, "--all-regions"]) == 0
    assert [records(region) for region in regions[:2]] == [[], []]
    assert "3 of 3 regions OK" in capsys.readouterr().out
    # Another operator's fresh clone: its new alice is refused in every region.
    fresh = str(tmp_path / "fresh.json")
    create(fresh, capsys, "alice", "math")
    assert main(["keys", "put", "--file", fresh, "--stack", "prod", "--all-regions"]) == 1
    out = capsys.readouterr()
    assert out.err.count("revoked in AWS") == 3
    assert "0 of 3 regions OK" in out.out
    assert [records(region) for region in regions[:2]] == [[], []]
    assert main([*revoke, "--all-regions", "--region", "us-east-1"]) == 1  # one or the other
