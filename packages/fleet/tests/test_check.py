"""`fleet check`: folders, templates and tools agree; a team's own changes stay within bounds;
the fleet stays under every limit. Each fault is one line that says what to fix."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from fleet.check import check_fleet
from fleet.cli import main
from fleet.testing import copy_workspace
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = [service.name for service in service_dirs(ROOT)]
SERVICE = SERVICES[0]
"""Any service: these tests edit a copy of its folder."""


@pytest.fixture
def workspace(tmp_path) -> Path:
    return copy_workspace(ROOT, tmp_path / "repo")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def own(workspace: Path, service: str = SERVICE) -> Path:
    return workspace / "services" / service / "infra.yaml"


def set_output(workspace: Path, name: str, value: str, service: str = SERVICE) -> None:
    """Replace the Value of one output of the service's infra.yaml."""
    path = own(workspace, service)
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{name}:")
    value_line = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("Value:"))
    indent = lines[value_line][: len(lines[value_line]) - len(lines[value_line].lstrip())]
    lines[value_line] = f"{indent}Value: {value}\n"
    path.write_text("".join(lines))


def test_the_repository_is_consistent_and_prints_its_headroom(capsys):
    assert check_fleet(ROOT) == []
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "REST API: resources:" in out
    assert "at most " in out
    assert "at 200 services:" in out
    shown = SERVICES if len(SERVICES) <= 12 else [*SERVICES[:10], "..."]  # as the CLI shows them
    assert f"fleet check: OK ({len(SERVICES)} services: {', '.join(shown)})" in out


def test_a_service_missing_from_the_template_is_named_in_every_place(workspace):
    from fleet.template import remove_service

    text, removed = remove_service((workspace / "template.yaml").read_text(), SERVICE)
    assert removed
    (workspace / "template.yaml").write_text(text)
    faults = "\n".join(check_fleet(workspace))
    for place in ("Metadata.FleetServices", "nested stack", "route /", "route throttle"):
        assert f"service {SERVICE!r} is not registered in {place}" in faults


def test_leftovers_of_a_deleted_folder_are_named_with_the_fix(workspace):
    import shutil

    shutil.rmtree(workspace / "services" / SERVICE)
    faults = check_fleet(workspace)
    [leftover] = [fault for fault in faults if "still registers" in fault]
    assert f"still registers {SERVICE!r}" in leftover
    assert "route /" in leftover
    assert "route throttle" in leftover
    assert f"run `uv run fleet remove {SERVICE}`" in leftover


def test_what_every_service_has_is_checked_once(workspace):
    service_template = workspace / "infra" / "service.yaml"
    edit(service_template, "      Architectures: [arm64]\n", "      Architectures: [x86_64]\n")
    edit(service_template, "      Runtime: python3.13\n", "      Runtime: python3.12\n")
    edit(service_template, "        - !Ref AdapterLayerArn\n", "")
    edit(service_template, "          AWS_LAMBDA_EXEC_WRAPPER: /opt/bootstrap\n", "")
    edit(service_template, "  ThrottlesAlarm:\n", "  ThrottledAlarm:\n")
    faults = "\n".join(check_fleet(workspace))
    assert "Function.Architectures must be ['arm64']" in faults
    assert "Function.Runtime must be 'python3.13'" in faults
    assert "Function.Layers lacks AdapterLayerArn" in faults
    assert "environment variable AWS_LAMBDA_EXEC_WRAPPER is not set" in faults
    assert "infra/service.yaml: no alarm ThrottlesAlarm" in faults


def test_a_route_that_reaches_another_service_is_a_fault(workspace):
    first, second = SERVICES[0], SERVICES[1]
    from fleet.template import logical_id

    edit(
        workspace / "template.yaml",
        f"uri: !GetAtt {logical_id(first)}.Outputs.IntegrationUri",
        f"uri: !GetAtt {logical_id(second)}.Outputs.IntegrationUri",
    )
    faults = "\n".join(check_fleet(workspace))
    assert f"route /{first}/{{proxy+}} (x-amazon-apigateway-any-method) must reach only" in faults


def test_a_stray_route_is_a_fault(workspace):
    edit(
        workspace / "template.yaml",
        "          # fleet:routes ",
        "          /admin:\n            get: {}\n          # fleet:routes ",
    )
    faults = "\n".join(check_fleet(workspace))
    assert "route /admin is no service's route" in faults


@pytest.mark.parametrize(
    ("output", "value", "fault"),
    [
        ("Timeout", '"300"', "Timeout 300 s is above API Gateway's 29 s"),
        ("Timeout", '"15"', "ToolTimeout 20 s must be below Timeout 15 s"),
        ("Timeout", '"25.5"', "Timeout 25.5 must be a whole number of seconds"),
        ("ResponseTransferMode", "SSE", "ResponseTransferMode must be BUFFERED or STREAM"),
        ("MemorySize", '"64"', "MemorySize 64 MB is outside Lambda's 128-10240"),
        ("Environment", '\'{"LOG_LEVEL": "DEBUG"}\'', "LOG_LEVEL is already set"),
        ("Environment", "'[1, 2]'", "must be a JSON object"),
    ],
)
def test_a_teams_own_settings_are_guarded(workspace, output, value, fault):
    # A buffered service with a 20 s tool deadline, whatever the service chose for itself.
    for name, start in (("ResponseTransferMode", "BUFFERED"), ("Timeout", '"29"')):
        set_output(workspace, name, start)
    set_output(workspace, "ToolTimeout", '"20"')
    set_output(workspace, output, value)
    assert any(fault in line for line in check_fleet(workspace)), check_fleet(workspace)


@pytest.mark.parametrize(
    ("timeout", "tool_timeout", "fault"),
    [
        ('"900"', '"840"', None),
        ('"120"', '"60"', None),
        ('"901"', '"840"', "Timeout 901 s is above the 900 s a streamed response may last"),
        ('"600"', '"600"', "ToolTimeout 600 s must be below Timeout 600 s"),
    ],
)
def test_a_streaming_service_may_run_for_minutes_and_no_longer(
    workspace, timeout, tool_timeout, fault
):
    set_output(workspace, "ResponseTransferMode", "STREAM")
    set_output(workspace, "Timeout", timeout)
    set_output(workspace, "ToolTimeout", tool_timeout)
    faults = check_fleet(workspace)
    if fault is None:
        assert faults == []
    else:
        assert any(fault in line for line in faults), faults


ATTACKS = {
    # The report's policy on weather's own role: every tenant's memory, every service's keys.
    "other tenants' table": (
        "RolePolicy",
        "Action: [dynamodb:Query, dynamodb:GetItem, dynamodb:PutItem]",
        'Resource: !Sub "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Fleet}-Memory-*"',
        "allows dynamodb:Query, dynamodb:GetItem, dynamodb:PutItem on arn:aws:dynamodb",
    ),
    "another service's global table": (
        "RolePolicy",
        "Action: dynamodb:GetItem",
        f'Resource: !Sub "arn:aws:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{Fleet}}.not_{SERVICE}.graphs"',
        "allows dynamodb:GetItem on arn:aws:dynamodb",
    ),
    "a global table's prefix with the service's name inside": (
        "RolePolicy",
        "Action: dynamodb:GetItem",
        'Resource: !Sub "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/x${Fleet}.${Service}.t"',
        "allows dynamodb:GetItem on arn:aws:dynamodb",
    ),
    "every service's keys": (
        "RolePolicy",
        "Action: [ssm:GetParameter, ssm:PutParameter]",
        'Resource: !Sub "arn:aws:ssm:${AWS::Region}:${AWS::AccountId}:parameter/mcp-fleet/${Fleet}/api-keys/*"',
        "allows ssm:GetParameter, ssm:PutParameter on arn:aws:ssm",
    ),
    "mixed case": (
        "RolePolicy",
        "Action: S3:GetObject",
        'Resource: "*"',
        "allows S3:GetObject on *",
    ),
    "!Join wildcard": (
        "RolePolicy",
        "Action: s3:GetObject",
        'Resource: !Join ["", ["arn:aws:s3:::", "*"]]',
        "on arn:aws:s3:::*",
    ),
    "ARN with a wildcard": (
        "RolePolicy",
        "Action: sqs:SendMessage",
        'Resource: !Sub "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:*"',
        "allows sqs:SendMessage on",
    ),
    "NotResource": (
        "RolePolicy",
        "Action: s3:GetObject",
        'NotResource: "arn:aws:s3:::x"',
        "allows with NotResource",
    ),
    "Effect !Sub": ("RolePolicy", "Action: iam:PassRole", 'Resource: "*"', "allows iam:passrole"),
    "iam:?*": ("RolePolicy", 'Action: "iam:?*"', 'Resource: "*"', "no team's role may (iam:?*)"),
    "escalation": (
        "RolePolicy",
        "Action: [iam:PutRolePolicy, lambda:UpdateFunctionCode, sts:AssumeRole]",
        'Resource: "*"',
        "no team's role may",
    ),
}
INLINE = """\
  Attack:
    Type: AWS::IAM::{kind}
    Properties:
      RoleName: !Ref Role
      PolicyName: attack
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: {effect}
            {action}
            {resource}
"""
RESOURCES = {
    "another service's global table name, squatted": (
        (
            "Attack:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
            f"      TableName: !Sub '${{Fleet}}.not_{SERVICE}.graphs'\n"
            "      BillingMode: PAY_PER_REQUEST\n"
            "      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]\n"
            "      KeySchema: [{AttributeName: pk, KeyType: HASH}]\n"
        ),
        "is named",
    ),
    "a key record planted for another service": (
        (
            "Attack:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n"
            "      Name: !Sub '/mcp-fleet/${Fleet}/api-keys/memory'\n      Value: '[]'\n"
        ),
        "is named",
    ),
    "a custom resource on the fleet's release function": (
        (
            "Attack:\n    Type: Custom::Release\n    Properties:\n"
            "      ServiceToken: !Sub 'arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:${Fleet}-release'\n"
            "      FunctionName: !Sub '${Fleet}-memory'\n"
        ),
        "(Custom::Release) is refused",
    ),
    "a scheduled role of the deployer's choosing": (
        (
            "Attack:\n    Type: AWS::Scheduler::Schedule\n    Properties:\n"
            "      ScheduleExpression: rate(1 minute)\n      FlexibleTimeWindow: {Mode: 'OFF'}\n"
            "      Target: {Arn: arn:aws:lambda:us-east-1:1:function:x, RoleArn: arn:aws:iam::1:role/admin}\n"
        ),
        "(AWS::Scheduler::Schedule) is refused",
    ),
    "a managed policy": (
        (
            "Attack:\n    Type: AWS::IAM::ManagedPolicy\n    Properties:\n      Roles: [!Ref Role]\n"
            "      PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: s3:GetObject, Resource: '*'}]}\n"
        ),
        "Attack (AWS::IAM::ManagedPolicy) is refused",
    ),
    "a second role with AdministratorAccess": (
        (
            "Attack:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {Version: '2012-10-17', "
            "Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]}\n"
            "      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]\n"
        ),
        "Attack (AWS::IAM::Role) is refused",
    ),
    "a user with an access key": (
        (
            "Attack:\n    Type: AWS::IAM::User\n  AttackKey:\n    Type: AWS::IAM::AccessKey\n"
            "    Properties: {UserName: !Ref Attack}\n"
        ),
        "AttackKey (AWS::IAM::AccessKey) is refused",
    ),
    "a Lambda permission for everyone": (
        (
            "Attack:\n    Type: AWS::Lambda::Permission\n    Properties: {Action: lambda:InvokeFunction, "
            "FunctionName: !Sub '${Fleet}-memory', Principal: '*'}\n"
        ),
        "Attack (AWS::Lambda::Permission) is refused",
    ),
    "a function URL": (
        "Attack:\n    Type: AWS::Lambda::Url\n    Properties: {AuthType: NONE, TargetFunctionArn: !Sub '${Fleet}-memory'}\n",
        "Attack (AWS::Lambda::Url) is refused",
    ),
    "a policy on another role": (
        (
            "Attack:\n    Type: AWS::IAM::RolePolicy\n    Properties:\n      RoleName: admin\n      PolicyName: x\n"
            "      PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: s3:GetObject, Resource: !GetAtt Bucket.Arn}]}\n"
            "  Bucket:\n    Type: AWS::S3::Bucket\n"
        ),
        "attaches a policy to RoleName ['admin']",
    ),
    "a public bucket policy": (
        (
            "Bucket:\n    Type: AWS::S3::Bucket\n  Attack:\n    Type: AWS::S3::BucketPolicy\n    Properties:\n"
            "      Bucket: !Ref Bucket\n      PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, "
            "Principal: '*', Action: s3:GetObject, Resource: !Sub '${Bucket.Arn}/*'}]}\n"
        ),
        "Attack",
    ),
    "a KMS key for everyone": (
        (
            "Attack:\n    Type: AWS::KMS::Key\n    Properties:\n      KeyPolicy: {Version: '2012-10-17', Statement: "
            "[{Effect: Allow, Principal: {AWS: '*'}, Action: 'kms:Decrypt', Resource: '*'}]}\n"
        ),
        "KMSKeyWildcardPrincipalRule",
    ),
    "a secret for another account": (
        (
            "Secret:\n    Type: AWS::SecretsManager::Secret\n  Attack:\n    Type: AWS::SecretsManager::ResourcePolicy\n"
            "    Properties:\n      SecretId: !Ref Secret\n      ResourcePolicy: {Version: '2012-10-17', Statement: "
            "[{Effect: Allow, Principal: {AWS: 'arn:aws:iam::999999999999:root'}, Action: 'secretsmanager:GetSecretValue', Resource: '*'}]}\n"
        ),
        "GenericCrossAccountTrustRule",
    ),
}


@pytest.fixture(scope="module")
def attack_faults(tmp_path_factory) -> list[str]:
    """Every attack from the report in one service's stack, each under names of its own:
    one check reads them all (each test below looks for its own)."""
    workspace = copy_workspace(ROOT, tmp_path_factory.mktemp("attacks"))
    blocks = []
    for n, attack in enumerate(sorted(ATTACKS)):
        kind, action, resource, _ = ATTACKS[attack]
        effect = "!Sub Allow" if attack == "Effect !Sub" else "Allow"
        block = INLINE.format(kind=kind, effect=effect, action=action, resource=resource)
        block = block.replace("Attack:", f"V{n}Attack:")
        blocks.append(block.replace("PolicyName: attack", f"PolicyName: attack{n}"))
    for n, attack in enumerate(sorted(RESOURCES)):
        block, _ = RESOURCES[attack]
        ids = r"(AttackKey|Attack|Bucket|Secret)"
        block = re.sub(rf"(^|\n)(\s*){ids}:\n", rf"\1\2R{n}\3:\n", block)  # logical ids
        block = re.sub(rf"(!Ref |!GetAtt |\$\{{){ids}\b", rf"\1R{n}\2", block)  # references
        blocks.append("  " + block)
    edit(own(workspace), "Resources:\n", "Resources:\n" + "".join(blocks))
    return [f for f in check_fleet(workspace) if f"services/{SERVICE}/infra.yaml" in f]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_iam_variant_from_the_report_is_refused_naming_file_and_resource(
    attack_faults, attack
):
    n = sorted(ATTACKS).index(attack)
    fault = ATTACKS[attack][3]
    mine = [f for f in attack_faults if f"V{n}Attack" in f]
    assert any(fault.lower() in f.lower() for f in mine), mine


@pytest.mark.parametrize("attack", sorted(RESOURCES))
def test_principals_and_grants_past_the_boundary_are_refused(attack_faults, attack):
    n = sorted(RESOURCES).index(attack)
    fault = RESOURCES[attack][1]
    mine = [f for f in attack_faults if f"R{n}" in f]
    assert any(fault.replace("Attack", f"R{n}Attack") in f or fault in f for f in mine), mine


def test_a_teams_own_table_with_its_own_policy_passes(workspace):
    """What the README teaches: a table of its own, its role allowed on it alone."""
    block = (
        "Table:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      BillingMode: PAY_PER_REQUEST\n"
        "      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: pk, KeyType: HASH}]\n"
        "  TableAccess:\n    Type: AWS::IAM::RolePolicy\n    Properties:\n      RoleName: !Ref Role\n"
        "      PolicyName: table\n      PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, "
        "Action: [dynamodb:GetItem, dynamodb:PutItem], Resource: [!GetAtt Table.Arn, !Sub '${Table.Arn}/index/*']}]}\n"
        "  Queue:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Sub '${AWS::StackName}-jobs'}\n"
        "  QueueAccess:\n    Type: AWS::IAM::RolePolicy\n    Properties:\n      RoleName: !Ref Role\n"
        "      PolicyName: queue\n      PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, "
        "Action: sqs:SendMessage, Resource: !Sub 'arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-jobs'}]}\n"
    )
    edit(own(workspace), "Resources:\n", "Resources:\n  " + block)
    assert [f for f in check_fleet(workspace) if f"services/{SERVICE}/" in f] == []


def test_a_key_written_twice_is_a_fault_not_a_silent_choice(workspace):
    """What git's union merge leaves when two branches edit one line of template.yaml."""
    edit(workspace / "template.yaml", "    Default: 30\n", "    Default: 30\n    Default: 31\n")
    faults = "\n".join(check_fleet(workspace))
    assert "found the key 'Default' twice" in faults
    assert "two merged edits of one line?" in faults


def test_undiscoverable_tools_are_a_fault(workspace, monkeypatch):
    service = next(s for s in service_dirs(workspace) if s.name == SERVICE)
    (service.package_dir / "tools" / "broken.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(service.path / "src"))
    for name in [m for m in sys.modules if m.startswith(service.package)]:
        monkeypatch.delitem(sys.modules, name)
    faults = "\n".join(check_fleet(workspace))
    assert f"services/{SERVICE}: tools not discoverable" in faults
    assert f"{service.package}.tools.broken" in faults


def test_a_tool_that_breaks_the_contract_is_a_fault_naming_it(workspace, monkeypatch):
    service = next(s for s in service_dirs(workspace) if s.name == SERVICE)
    (service.package_dir / "tools" / "sloppy.py").write_text(
        "from fastmcp.tools import tool\n\n\n@tool\ndef sloppy(x):\n    return x\n"
    )
    monkeypatch.syspath_prepend(str(service.path / "src"))
    for name in [m for m in sys.modules if m.startswith(service.package)]:
        monkeypatch.delitem(sys.modules, name)
    faults = "\n".join(check_fleet(workspace))
    assert (
        f"services/{SERVICE}: tool 'sloppy' ({service.package}.tools.sloppy) has no description"
        in faults
    )
    assert "parameter(s) x have no type hint" in faults


def test_cli_exits_non_zero_with_the_list(workspace, monkeypatch, capsys):
    set_output(workspace, "Timeout", '"300"')
    monkeypatch.setenv("FLEET_ROOT", str(workspace))
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "fleet check: 1 fault(s)" in err
    assert "Timeout 300 s is above API Gateway's 29 s" in err


def test_snapstart_hooks_under_a_route_and_an_old_adapter_are_faults(workspace):
    service_template = workspace / "infra" / "service.yaml"
    edit(
        service_template,
        "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH: /_lifecycle/after-restore",
        f"AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH: /{SERVICE}/after-restore",
    )
    edit(workspace / "template.yaml", "    Default: 30\n", "    Default: 28\n")
    edit(service_template, "        ApplyOn: !If [UseSnapStart, PublishedVersions, None]\n", "")
    faults = "\n".join(check_fleet(workspace))
    assert f"/{SERVICE}/after-restore lies under /{SERVICE}/; clients could call it" in faults
    assert "LambdaAdapterLayerVersion defaults to 28" in faults
    assert "Function.SnapStart.ApplyOn is not set" in faults


def test_reserved_concurrency_beyond_the_accounts_is_refused(workspace):
    """A team that reserves the account's concurrency for itself starves every other."""
    edit(own(workspace), "Value: !Ref ReservedConcurrency", 'Value: "950"')
    faults = check_fleet(workspace)
    assert any("limit crossed: Lambda: reserved concurrency (account, region" in f for f in faults)
    edit(own(workspace), 'Value: "950"', 'Value: "20"')
    assert not [f for f in check_fleet(workspace) if "concurrency" in f]


def _a_bounded_setting() -> tuple[str, str, str] | None:
    """(service, variable, a value above its bound) for any service whose own settings model
    bounds a number: read from the model, never from today's list of services."""
    import annotated_types

    for service in service_dirs(ROOT):
        read = service.load_spec().settings
        model = getattr(read, "__wrapped__", read)() if read else None
        if model is None:
            continue
        prefix = type(model).model_config.get("env_prefix", "")
        for name, field in type(model).model_fields.items():
            for bound in field.metadata:
                if isinstance(bound, annotated_types.Le):
                    return service.name, f"{prefix}{name}".upper(), str(bound.le + 1)
    return None


def test_a_value_the_services_own_settings_refuse_is_a_fault(workspace):
    """Regression: FX_TIMEOUT_SECONDS=99 (at most 10) passed fleet check and failed every
    cold start on Lambda."""
    found = _a_bounded_setting()
    if found is None:
        pytest.skip("no service bounds a numeric setting")
    service, variable, value = found
    path = own(workspace, service)
    text = path.read_text()
    start = text.index("  Environment:\n", text.index("\nOutputs:"))
    value_at = text.index("Value:", start)
    end = text.index("\n", value_at)
    path.write_text(text[:value_at] + f'Value: \'{{"{variable}": "{value}"}}\'' + text[end:])
    faults = [f for f in check_fleet(workspace) if f"services/{service}/infra.yaml" in f]
    assert any("refused by the service's settings" in f for f in faults), faults


def test_cfn_lint_runs_on_a_teams_own_stack(workspace):
    """A !Sub naming a resource that does not exist passed fleet check; only CI caught it."""
    edit(
        own(workspace),
        "Resources:\n",
        "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"
        "    Properties:\n      DisplayName: !Sub '${NoSuchTable}'\n",
    )
    faults = [f for f in check_fleet(workspace) if f"services/{SERVICE}/infra.yaml:" in f]
    assert any("NoSuchTable" in f for f in faults), faults


@pytest.mark.parametrize(
    ("overrides", "fault"),
    [
        ("ReplicaRegions=eu-west-1", "ReplicaRegions needs PrimaryRegion"),
        ("PrimaryRegion=us-east-1 ReplicaRegions=eu-west-1,us-east-1", "lists the primary"),
        ('PrimaryRegion=us-east-1 "ReplicaRegions=eu-west-1, ap-south-1"', "no spaces"),
        ("PrimaryRegion=us-east-1 ReplicaRegions=a-1,b-1,c-1,d-1", "at most 3"),
        ("PrimaryRegion=us-east-1 ReplicaRegions=eu-west-1", None),
    ],
)
def test_the_fleets_regions_are_checked_before_cloudformation_sees_them(
    workspace, overrides, fault
):
    """ReplicaRegions without PrimaryRegion made every region act as the primary (each creating
    memory's global table); a space made a replica region CloudFormation cannot create."""
    samconfig = workspace / "samconfig.toml"
    samconfig.write_text(
        samconfig.read_text().replace(
            "[default.deploy.parameters]\n",
            f"[default.deploy.parameters]\nparameter_overrides = '{overrides}'\n",
            1,
        )
    )
    from fleet.check import _regions_faults  # what check_fleet runs, without the rest of it

    faults = _regions_faults(workspace)
    if fault is None:
        assert faults == []
    else:
        assert any(fault in f for f in faults), faults


def test_a_service_with_a_reserved_name_is_a_fault(workspace):
    """`all` and `services` name the fleet's Cognito scopes and group: a service under either
    name would be reached by every fleet-wide token."""
    import shutil

    shutil.copytree(workspace / "services" / SERVICE, workspace / "services" / "all")
    assert any("services/all: the name is reserved" in f for f in check_fleet(workspace))
