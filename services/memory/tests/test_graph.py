"""The graph's rules: every limit checked before any work, linear work, bounded answers."""

from __future__ import annotations

import itertools
import json
import time

import pytest

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
    return len(json.dumps(found.dump()))


def test_an_answer_that_fits_is_whole_and_unmarked():
    whole = graph(10)
    assert bounded(whole, size(whole), size) == whole
    assert "truncated" not in bounded(whole, size(whole), size).dump()


def test_a_larger_answer_is_the_longest_prefix_that_fits_and_says_so():
    whole = graph(200)
    limit = size(whole) // 3
    cut = bounded(whole, limit, size)
    kept = len(cut.entities)
    assert size(cut) <= limit
    assert 0 < kept < 200
    assert cut.entities == whole.entities[:kept]
    names = {entity.name for entity in cut.entities}
    assert all(r.from_ in names or r.to in names for r in cut.relations)
    longer = cut.model_copy(update={"entities": whole.entities[: kept + 1]})
    assert size(longer) > limit  # one more entity would not fit
    assert cut.dump()["truncated"] is True
    assert f"{kept} of 200 entities" in cut.dump()["message"]
