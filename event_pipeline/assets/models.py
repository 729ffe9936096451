"""The nine model assets, generated from the catalog.

Each takes the validated archive and the id maps of the models it points
at, and outputs its own plan, whose ``id_map`` is what downstream assets
use. Besides those inputs, each model depends on the one before it in the
catalog, so the graph's only topological order is the reference import
order.
"""

import dagster as dg

from event_pipeline.assets.common import ARCHIVES, GROUP, reported
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive, plan_step
from event_pipeline.model.catalog import EVENT, MODELS, ModelSpec, upstream
from event_pipeline.plan.diff import ModelPlan
from event_pipeline.read.fields import fold_key
from event_pipeline.resources import DatabaseResource


def _inputs(spec: ModelSpec) -> list[str]:
    names = ["archive"] if spec is EVENT else ["archive", EVENT.name]
    return names + [name for name in upstream(spec) if name not in names]


def _concerns(spec: ModelSpec, file: str | None) -> bool:
    """Whether a problem's file is this model's: its own file, or its list inside the event file."""
    if not file:
        return False
    head, _, embedded = file.partition(":")
    return fold_key(embedded) in spec.embedded_in_event if embedded else head in spec.files


def build_model_asset(spec: ModelSpec, previous: ModelSpec | None) -> dg.AssetsDefinition:
    ins = {name: dg.AssetIn(name) for name in _inputs(spec)}
    deps = [previous.name] if previous and previous.name not in ins else []

    @dg.asset(
        name=spec.name,
        ins=ins,
        deps=deps,
        partitions_def=ARCHIVES,
        group_name=GROUP,
        description=f"Rows of `{spec.table}` for one archive; outputs its id map (source id -> database id).",
    )
    def _model(context: dg.AssetExecutionContext, database: DatabaseResource, **inputs) -> ModelPlan:
        require_whole_import(context)  # a partial selection is refused, never a silent no-op
        validated: ValidatedArchive = inputs.pop("archive")
        maps = {name: plan.id_map for name, plan in inputs.items()}
        engine = database.engine()
        with reported():
            plan = plan_step(engine, spec, validated, maps)
        warnings = sum(1 for w in validated.warnings if _concerns(spec, w.file))
        context.log.info(f"{spec.name}: {plan.count} records, {warnings} warnings")
        context.add_output_metadata({"records": plan.count, **plan.diff(), "id_map_size": len(plan.id_map)})
        return plan

    return _model


MODEL_ASSETS: list[dg.AssetsDefinition] = [
    build_model_asset(spec, MODELS[i - 1] if i else None) for i, spec in enumerate(MODELS)
]
