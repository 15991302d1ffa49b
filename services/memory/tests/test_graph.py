"""The graph's rules: every limit checked before any work, linear work, bounded answers."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.graph import (
    Entity,
    KnowledgeGraph,
    LimitExceeded,
    Limits,
    ObservationAddition,
    Relation,
    bounded,
    check_additions,
    merge_observations,
)

LIMITS = Limits(
    items_per_call=99,
    observation_bytes=4096,
    observations_per_entity=64,
    entities_per_tenant=10_000,
    relations_per_tenant=50_000,
)


def test_an_addition_larger_than_an_entity_may_hold_is_refused_before_any_work():
    """The reported call: 100 additions of 800 distinct strings to one entity."""
    additions = [
        ObservationAddition(entityName="target", contents=[f"s{i}-{j}" for j in range(800)])
        for i in range(99)
    ]
    started = time.perf_counter()
    with pytest.raises(LimitExceeded, match="MEMORY_MAX_OBSERVATIONS_PER_ENTITY"):
        check_additions(additions, LIMITS)
    assert time.perf_counter() - started < 0.5  # the loop it replaced took 25 s for this call


def test_a_call_carries_at_most_items_per_call_observations():
    additions = [ObservationAddition(entityName=f"e{i}", contents=["a", "b"]) for i in range(50)]
    with pytest.raises(LimitExceeded, match="100 observations in one call"):
        check_additions(additions, LIMITS)
    check_additions(additions[:49], LIMITS)  # 98


def test_merging_is_linear_and_stops_at_the_first_entity_that_would_overflow():
    existing = {"full": [f"o{n}" for n in range(63)], "other": []}
    big = [ObservationAddition(entityName="other", contents=[f"x{n}" for n in range(64)])]
    changed, results = merge_observations(existing, big, LIMITS)
    assert len(changed["other"]) == 64
    assert results[0].addedObservations[:2] == ["x0", "x1"]
    over = [ObservationAddition(entityName="full", contents=["o1", "new", "newer"])]
    with pytest.raises(LimitExceeded, match="would hold 65"):
        merge_observations(existing, over, LIMITS)
    assert len(existing["full"]) == 63  # nothing applied


def graph(entities: int) -> KnowledgeGraph:
    names = [f"entity-{n}" for n in range(entities)]
    return KnowledgeGraph(
        entities=[Entity(name=name, entityType="t", observations=["o" * 100]) for name in names],
        relations=[
            Relation.model_validate({"from": a, "to": b, "relationType": "next"})
            for a, b in itertools.pairwise(names)
        ],
    )


def size(found: KnowledgeGraph) -> int:
    from memory_service.tools.graph import answer_bytes

    return answer_bytes(found)


def costs():
    from memory_service.tools.graph import WireCosts

    return WireCosts()


def test_an_answer_that_fits_is_whole_and_unmarked():
    whole = graph(10)
    assert bounded(whole, size(whole), costs()) == whole
    assert "truncated" not in bounded(whole, size(whole), costs()).dump()


def test_a_larger_answer_is_the_longest_prefix_that_fits_and_says_so():
    whole = graph(200)
    limit = size(whole) // 3
    cut = bounded(whole, limit, costs())
    kept = len(cut.entities)
    assert size(cut) <= limit
    assert 0 < kept < 200
    assert cut.entities == whole.entities[:kept]
    names = {entity.name for entity in cut.entities}
    assert all(r.from_ in names or r.to in names for r in cut.relations)
    longer = bounded(whole, limit + 10_000, costs())
    assert len(longer.entities) > kept
    one_more = KnowledgeGraph(
        entities=whole.entities[: kept + 1],
        relations=[
            r
            for r in whole.relations
            if {r.from_, r.to} & {e.name for e in whole.entities[: kept + 1]}
        ],
        truncated=True,
        message=cut.message.replace(f" {kept} of", f" {kept + 1} of"),
    )
    assert size(one_more) > limit  # one more entity would not fit
    assert cut.dump()["truncated"] is True
    assert f"{kept} of 200 entities" in cut.dump()["message"]


TEXT = st.text(alphabet=st.sampled_from(list('aZ é中😀"\\\u2028\n')), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(TEXT, TEXT, st.lists(TEXT, max_size=3)), max_size=10, unique_by=lambda t: t[0]
    ),
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), TEXT), max_size=15),
    st.integers(600, 20_000),
)
def test_answer_sizes_are_exact_item_by_item_whatever_the_characters(items, links, limit):
    """The one-pass sizing equals the whole answer serialised at the 2026 revision (non-ASCII
    escaped: 12 bytes for an emoji), and the cut is the longest prefix that fits."""
    entities = [Entity(name=n, entityType=t, observations=o) for n, t, o in items]
    relations = [
        Relation.model_validate(
            {"from": entities[a].name, "to": entities[b].name, "relationType": r}
        )
        for a, b, r in links
        if a < len(entities) and b < len(entities)
    ]
    whole = KnowledgeGraph(entities=entities, relations=relations)
    wire = costs()
    measured = [wire.entity(e) for e in entities], [wire.relation(r) for r in relations]
    assert wire.total(*measured, None) == size(whole)
    cut = bounded(whole, limit, wire)
    assert cut is whole or size(cut) <= limit
