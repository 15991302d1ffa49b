"""The IAM guard on a team's own stack: what it may not create or grant, refused by name.

The rules are data (infra/guard/rules.yaml); the analysis is pycfmodel's (intrinsics resolved with
the stack's parameters, wildcard and mixed-case actions expanded against AWS's action list)
and cfripper's (principals: everyone, other accounts). Every statement that allows anything
must name resources its own stack creates: a `!GetAtt`/`!Ref` of one of its resources, or a
name that starts with its own stack's name. The permissions boundary enforces the same at
run time; this fails the check before a deploy.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml

GUARD_RULES = "infra/guard/rules.yaml"
OWN_STACK = "OwnStack0Name"
"""What `AWS::StackName` resolves to in the analysis: a name only the own stack carries."""
FLEET = "Fleet0Name"
"""What the analysis gives the Fleet parameter: a name no real resource has."""
ACCOUNT = "111111111111"


@functools.cache
def rules(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / GUARD_RULES).read_text(encoding="utf-8"))


def _type_faults(template: dict[str, Any], where: str, guard: dict[str, Any]) -> list[str]:
    faults = []
    for name, resource in (template.get("Resources") or {}).items():
        kind = str((resource or {}).get("Type", ""))
        for pattern, reason in guard["forbidden_types"].items():
            if fnmatch.fnmatchcase(kind, pattern):
                faults.append(f"{where}: {name} ({kind}) is refused: {reason}")
                break
        named = guard.get("own_names", {}).get(kind)
        value = ((resource or {}).get("Properties") or {}).get(named) if named else None
        if value is not None and not _named_by_own_stack(value, "DynamoDB" in kind):
            faults.append(
                f"{where}: {name} ({kind}) is named {value!r}: only names starting with "
                "${AWS::StackName}- (or none: CloudFormation's"
                + (", or ${Fleet}.${Service}. for a global table)" if "DynamoDB" in kind else ")")
            )
        for attach_kind, keys in guard["attachments"].items():
            if kind != attach_kind:
                continue
            properties = resource.get("Properties") or {}
            for key in ("Roles", "RoleName", "Users", "Groups"):
                if key not in properties:
                    continue
                value = properties[key]
                targets = value if isinstance(value, list) else [value]
                if key not in keys or any(target != {"Ref": "Role"} for target in targets):
                    faults.append(
                        f"{where}: {name} attaches a policy to {key} {targets!r}: only to "
                        "!Ref Role (the service's own role)"
                    )
    return faults


def _named_by_own_stack(value: Any, global_table: bool = False) -> bool:
    """A name written as !Sub "${AWS::StackName}-..." (or "/${AWS::StackName}-..."), or as
    !Sub "${Fleet}.${Service}...." (a table global across the fleet's regions: the name is
    the service's in every region, and the permissions boundary's)."""
    text = value.get("Fn::Sub") if isinstance(value, dict) else None
    text = text[0] if isinstance(text, list) else text
    if not isinstance(text, str):
        return False
    if text.lstrip("/").startswith("${AWS::StackName}-"):
        return True
    return global_table and text.startswith("${Fleet}.${Service}.")


def _own(resource: str, own_resources: set[str], global_prefix: str = "") -> bool:
    """A resource the own stack created: a reference to one of its resources, a name
    starting with its stack's name (before any wildcard), or with `<fleet>.<service>.` (a
    table global across the fleet's regions, created by the primary region's stack)."""
    if resource == "GETATT":  # pycfmodel's value for any !GetAtt (of this template's resources)
        return True
    if (match := re.fullmatch(r"UNDEFINED_PARAM_(\w+)", resource)) is not None:
        return match[1] in own_resources
    if (match := re.match(r"\$\{(\w+)[.}]", resource)) is not None:
        return match[1] in own_resources
    before_wildcard = re.split(r"[*?]", resource, maxsplit=1)[0]
    if global_prefix and re.search(
        rf"^arn:[^:]+:dynamodb:[^:]*:[^:]*:table/{re.escape(global_prefix)}", before_wildcard
    ):
        return True  # a global table, as the boundary allows it (DynamoDB tables only)
    return f"{OWN_STACK}-" in before_wildcard or before_wildcard.endswith(f":{OWN_STACK}")


def _statement_faults(
    name: str,
    statement: Any,
    where: str,
    guard: dict[str, Any],
    own_resources: set[str],
    global_prefix: str = "",
) -> list[str]:
    effect = statement.Effect
    if effect not in ("Allow", "Deny"):
        return [f"{where}: {name} has a statement whose Effect is {effect!r}, not Allow or Deny"]
    if effect == "Deny":
        return []
    faults = []
    for element in ("NotAction", "NotResource", "NotPrincipal"):
        if getattr(statement, element, None) is not None:
            faults.append(f"{where}: {name} allows with {element}: name what it allows")
    raw = statement.Action if statement.Action is not None else []
    raw = [raw] if isinstance(raw, str) else list(raw)
    expanded = [action.lower() for action in statement.get_expanded_action_list()]
    unknown = [a for a in raw if isinstance(a, str) and "*" not in a and "?" not in a]
    unknown = [a for a in unknown if a.lower() not in expanded]
    if unknown:
        faults.append(f"{where}: {name} allows unknown actions {unknown}: check their spelling")
    forbidden = sorted(
        {
            action
            for action in expanded
            for pattern in guard["forbidden_actions"]
            if fnmatch.fnmatchcase(action, pattern)
        }
    )
    if forbidden:
        shown = ", ".join(forbidden[:4]) + (
            f" (+{len(forbidden) - 4} more)" if len(forbidden) > 4 else ""
        )
        faults.append(f"{where}: {name} allows {shown}: no team's role may ({', '.join(raw)})")
    if getattr(statement, "Principal", None) is not None:
        return faults  # a resource policy names its own resource; cfripper checks the principal
    resources = statement.Resource if statement.Resource is not None else []
    resources = [resources] if isinstance(resources, str) else list(resources)
    anywhere = set(guard["any_resource_actions"])
    for resource in resources:
        text = str(resource)
        if text == "*" and expanded and set(expanded) <= anywhere:
            continue
        if not _own(text, own_resources, global_prefix):
            shown = text.replace(OWN_STACK, "${AWS::StackName}").replace(
                ACCOUNT, "${AWS::AccountId}"
            )
            faults.append(
                f"{where}: {name} allows {', '.join(raw)} on {shown}: only on resources its own "
                "stack creates (a !GetAtt/!Ref of them, or names starting with ${AWS::StackName}-)"
            )
    return faults


def _cfripper_faults(model: Any, where: str, guard: dict[str, Any]) -> list[str]:
    from cfripper.config.config import Config
    from cfripper.model.enums import RuleMode
    from cfripper.rule_processor import RuleProcessor
    from cfripper.rules import DEFAULT_RULES

    config = Config(rules=guard["cfripper_rules"], aws_account_id=ACCOUNT, stack_name=OWN_STACK)
    processor = RuleProcessor(*(DEFAULT_RULES[rule](config) for rule in config.rules))
    result = processor.process_cf_template(model, config)
    faults = [
        f"{where}: {', '.join(sorted(f.resource_ids or ()))} {f.reason} ({f.rule})"
        for f in result.get_failures(include_rule_modes={RuleMode.BLOCKING, RuleMode.MONITOR})
    ]
    faults += [f"{where}: the analysis failed ({exc!r}): refused" for exc in result.exceptions]
    return faults


def guard_faults(root: Path, template: dict[str, Any], where: str, service: str) -> list[str]:
    """Every principal, grant or statement in a team's own stack that reaches past its own
    resources, one line each naming the file and the resource."""
    guard = rules(root)
    faults = _type_faults(template, where, guard)
    text = json.dumps(template, sort_keys=True)
    rules_text = json.dumps(guard, sort_keys=True)
    return [*faults, *_analysis_cached(text, where, service, rules_text)]


@functools.lru_cache(maxsize=512)
def _analysis_cached(text: str, where: str, service: str, rules_text: str) -> tuple[str, ...]:
    """The analysis of one stack's text under one set of rules, once per process."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # pycfmodel warns per !GetAtt it leaves unresolved
    try:
        return tuple(_analysis_faults(json.loads(text), where, service, json.loads(rules_text)))
    finally:
        logging.disable(previous)


def _analysis_faults(
    template: dict[str, Any], where: str, service: str, guard: dict[str, Any]
) -> list[str]:
    import pycfmodel

    faults: list[str] = []
    parameters = {
        "Fleet": FLEET,
        "Service": service,
        "Role": "OwnRole",
        "AWS::StackName": OWN_STACK,
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": "us-east-1",
    }
    try:
        model = pycfmodel.parse(copy.deepcopy(template)).resolve(extra_params=dict(parameters))
    except Exception as exc:  # noqa: BLE001 - an unreadable stack is refused, not waved through
        return [f"{where}: the IAM analysis could not read it ({exc}): refused"]
    own_resources = set(template.get("Resources") or {})
    for name, resource in model.Resources.items():
        for named in getattr(resource, "policy_documents", []) or []:
            for statement in named.policy_document.statement_as_list():
                faults += _statement_faults(
                    name, statement, where, guard, own_resources, f"{FLEET}.{service}."
                )
    faults += _cfripper_faults(model, where, guard)
    return list(dict.fromkeys(faults))
