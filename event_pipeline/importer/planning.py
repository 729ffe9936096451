"""Step 2, plan: each model's id map and planned writes, in the reference server's order."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from event_pipeline.importer.validating import ValidatedArchive
from event_pipeline.model.catalog import EVENT, LINKS, MODELS, ModelSpec, upstream
from event_pipeline.plan.diff import ModelPlan, count_links, count_rows, plan_event, plan_links, plan_model


def _unchanged_plan(engine: Engine, spec: ModelSpec, event_id: int) -> ModelPlan:
    """The row counts of an event whose archive has not changed, read back from its rows.

    Its id map stays empty: nothing is written for an unchanged archive, so no model needs the ids of
    another, and reading them (100 000 session ids: ~0.4 s of a ~3 s re-import) was most of its cost."""
    with engine.connect() as conn:
        count = count_rows(conn, spec, event_id)
        links = count_links(conn, spec.link, event_id) if spec.link else 0
    return ModelPlan(spec.name, event_id, {}, unchanged=count, links_total=links)


def plan_step(
    engine: Engine,
    spec: ModelSpec,
    validated: ValidatedArchive,
    maps: dict[str, dict[str, int]],
    *,
    reserve: bool = True,
) -> ModelPlan:
    """Plan one model; ``maps`` holds the id maps of the models it references."""
    target = validated.target
    if validated.unchanged:
        return _unchanged_plan(engine, spec, target.event_id)
    normalised = validated.normalised
    assert normalised is not None and normalised.event is not None  # a changed archive that validated
    if spec is EVENT:
        return plan_event(target, normalised.event, validated.key, normalised.shape)
    plan = plan_model(
        engine, spec, validated.records(spec), target.event_id, maps, is_new_event=target.is_new, reserve=reserve
    )
    if spec.link:
        pairs = normalised.links.get(spec.link.table, [])
        wanted, plan.links_add, plan.links_remove = plan_links(
            engine, spec.link, target.event_id, pairs, {**maps, spec.name: plan.id_map}
        )
        plan.links_total = len(wanted)
    return plan


def summarise(plans: dict[str, ModelPlan]) -> tuple[dict[str, int], dict[str, Any]]:
    """Row counts per table and the diff (totals and per model)."""
    counts = {spec.table: plans[spec.name].count for spec in MODELS}
    owners = [plans[link.owner] for link in LINKS]
    counts.update({link.table: plans[link.owner].links_total for link in LINKS})
    by_model = {spec.name: plans[spec.name].diff() for spec in MODELS}
    diff: dict[str, Any] = {
        k: sum(d[k] for d in by_model.values()) for k in ("created", "updated", "deleted", "unchanged")
    }
    diff["links"] = {
        "added": sum(len(plan.links_add) for plan in owners),
        "removed": sum(len(plan.links_remove) for plan in owners),
    }
    diff["by_model"] = by_model
    return counts, diff


def plan_all(engine: Engine, validated: ValidatedArchive, *, reserve: bool = True) -> dict[str, ModelPlan]:
    """Every model's plan in catalog order, as the model assets compute them one by one."""
    plans: dict[str, ModelPlan] = {}
    for spec in MODELS:
        maps = {name: plans[name].id_map for name in [EVENT.name, *upstream(spec)] if name in plans}
        plans[spec.name] = plan_step(engine, spec, validated, maps, reserve=reserve)
    return plans
