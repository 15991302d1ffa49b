"""The fleet's headroom: measured on the templates as CloudFormation runs them, and projected
to 200 services from the measured growth per service."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.limits import (
    API_RESOURCES_DEFAULT,
    PROJECTED_SERVICES,
    fleet_usage,
    max_services,
    projection,
)
from fleet.template import insert_service
from fleet.workspace import find_root, service_dirs

ROOT = find_root(Path(__file__).parent)
SERVICES = len(service_dirs(ROOT))


@pytest.fixture(scope="module")
def usage():
    return {item.name: item for item in fleet_usage(ROOT)}


def test_a_service_costs_one_root_resource_and_two_api_resources(usage):
    assert usage["root stack: resources"].per_service == 1  # its nested stack
    assert usage["REST API: resources"].per_service == 2  # /<svc> and /<svc>/{proxy+}
    assert usage["root stack: outputs"].per_service == 0
    assert usage["root stack: parameters"].per_service == 0


KNOWN_PAST_A_DEFAULT = ("REST API: resources", "one operation")
"""Quotas 200 services exceed by default, each with its way past in the README: a raised
API quota, growing a stack in batches."""


def by_start(usage: dict, start: str):
    [item] = [item for name, item in usage.items() if name.startswith(start)]
    return item


def test_per_service_quota_use_is_pinned(usage):
    """One IAM role per service (CodeDeploy's role is one per stack), three stacks (its own,
    its settings, its response mode), 21 resources in a first deploy, two API resources."""
    stacks = by_start(usage, "IAM roles").name.split("; ")[1].split(" ")[0]
    assert by_start(usage, "IAM roles").per_service == int(stacks) * 1
    assert by_start(usage, "CloudFormation stacks").per_service == int(stacks) * 3
    assert by_start(usage, "one operation").per_service <= 21
    assert by_start(usage, "CodeDeploy applications").per_service == 0
    assert usage["REST API: resources"].per_service == 2
    # Two scopes per resource server, at most three per app client, at any number of services.
    assert by_start(usage, "Cognito: scopes per app client").per_service == 0
    assert by_start(usage, "Cognito: scopes per app client").used == 3
    assert by_start(usage, "Cognito: scopes per resource server").used == 2


def test_at_200_services_every_stack_stays_within_cloudformations_limits(usage):
    for item, value in projection(list(usage.values()), SERVICES, PROJECTED_SERVICES):
        if not item.name.startswith(KNOWN_PAST_A_DEFAULT):  # each says its way past: README
            assert value <= item.limit, f"{item.name}: {value} > {item.limit} at 200 services"
    for item in usage.values():
        if not item.per_service:  # what does not grow: each service's own stacks, layers
            assert not item.crossed, item.describe()


def test_at_least_110_services_fit_every_default_and_200_the_raised_api_quota(usage):
    api = usage["REST API: resources"]
    assert api.limit == API_RESOURCES_DEFAULT
    assert max_services(list(usage.values()), SERVICES) >= 110  # then: a first deploy's 2,500
    # root, /health, the front door's /mcp, /search, /search/mcp and its metadata's five
    assert api.at(PROJECTED_SERVICES - SERVICES) <= 2 * PROJECTED_SERVICES + 10


def test_the_projection_is_what_60_registered_services_measure(usage):
    """Growth is linear: 60 registrations written into the template measure as projected."""
    text = (ROOT / "template.yaml").read_text()
    for i in range(60 - SERVICES):
        text = insert_service(text, f"zz_projection_probe_{i:03d}")  # a name no team uses
    grown = {item.name: item for item in fleet_usage(ROOT, text)}
    for name in ("root stack: resources", "REST API: resources"):
        assert grown[name].used == usage[name].at(60 - SERVICES), name
    for name in ("root stack: packaged template bytes", "root stack: processed template bytes"):
        assert grown[name].used <= usage[name].at(60 - SERVICES), name  # the longest names


def test_a_raised_api_quota_is_read_from_pyproject(tmp_path):
    from fleet.limits import api_resources_limit

    (tmp_path / "pyproject.toml").write_text("[tool.fleet]\napi-resources-per-api = 600\n")
    assert api_resources_limit(tmp_path) == 600
    assert api_resources_limit(tmp_path / "nowhere") == API_RESOURCES_DEFAULT


def test_saved_queries_and_dashboards_fit_any_number_of_services(usage):
    """The queries select log groups by prefix (a list holds at most 50), and the dashboard's
    name carries the region (names are account-global)."""
    assert (
        by_start(usage, "Logs Insights").used == by_start(usage, "Logs Insights").per_service == 0
    )
    assert by_start(usage, "CloudWatch dashboards named without").used == 0


def test_a_query_listing_log_groups_and_a_dashboard_without_the_region_are_faults():
    text = (ROOT / "template.yaml").read_text()
    groups = "".join(f"\n        - /mcp-fleet/x/{i}" for i in range(51))
    text = text.replace(
        "    Type: AWS::Logs::QueryDefinition\n    Properties:\n",
        f"    Type: AWS::Logs::QueryDefinition\n    Properties:\n      LogGroupNames:{groups}\n",
        1,
    )
    assert "${AWS::StackName}-${AWS::Region}-mcp-fleet" in text
    text = text.replace("${AWS::StackName}-${AWS::Region}-mcp-fleet", "${AWS::StackName}-mcp-fleet")
    grown = {item.name: item for item in fleet_usage(ROOT, text)}
    assert by_start(grown, "Logs Insights").used == 51
    assert by_start(grown, "Logs Insights").crossed
    assert by_start(grown, "CloudWatch dashboards named without").crossed


def test_stacks_in_one_region_add_their_reservations_unless_one_reserves_nothing(tmp_path):
    """The report's 200 services x 2 stages: staging's reservations doubled production's, past
    the account's 900. A stack with ServiceReservedConcurrency=0 reserves nothing."""
    from fleet.limits import reserved_concurrency
    from fleet.template import load_template
    from fleet.testing import copy_workspace

    root = copy_workspace(ROOT, tmp_path / "ws")
    template = load_template(root / "template.yaml")
    samconfig = root / "samconfig.toml"
    text = samconfig.read_text()
    assert "ServiceReservedConcurrency=0" in text  # staging, as committed
    alone, per_service = reserved_concurrency(root, template)
    samconfig.write_text(text.replace(" ServiceReservedConcurrency=0", ""))
    doubled, doubled_per_service = reserved_concurrency(root, template)
    assert (doubled, doubled_per_service) == (2 * alone, 2 * per_service)
    assert per_service == template["Parameters"]["ServiceReservedConcurrency"]["Default"]
