"""The nine model assets, generated from the catalog, as one chain in the reference import order.

The graph shows the import order and nothing else: ``archive -> event -> social_links -> ... ->
sessions -> media -> import_result``. Each model depends only on the model before it; what it reads
besides (the validated archive, the id maps of the models it references) are outputs of its
ancestors, which it takes from the run's IO manager (:meth:`stored_output`: this run's objects in
memory, or the pickles of an earlier run in a re-execution from failure) instead of as an input
edge from each. So ``archive`` and ``event`` no longer fan out to every model, and the chain is the
graph's only topological order.
"""

import itertools
from typing import Any

import dagster as dg

from event_pipeline.assets import describe
from event_pipeline.assets.common import ARCHIVES, GROUP, reported
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive, plan_step
from event_pipeline.model.catalog import EVENT, MODELS, ModelSpec, upstream
from event_pipeline.plan.diff import INSERT, UPDATE, ModelPlan, planned_rows
from event_pipeline.resources import DatabaseResource

PREVIEW_FIELDS = 6
PRIVATE_FIELDS = ("email", "mobile", "phone")  # record fields shown in a model's preview table, after id and source_id


def ancestor_output(context: dg.AssetExecutionContext, name: str) -> Any:
    """The output of the ancestor asset ``name`` for this run's partition (the run-cached IO manager)."""
    return context.resources.io_manager.stored_output(dg.AssetKey(name), context.partition_key)


def preview_fields(spec: ModelSpec) -> list[str]:
    """The record fields a preview shows: the one naming a record (``label``) first, then the next ones."""
    # deleted_at: null in every imported row; contact details: not for the run storage and every UI user
    fields = [f for f in spec.record.model_fields if f not in ("deleted_at", *PRIVATE_FIELDS)]
    first = [spec.label] if spec.label in fields else []
    return (first + [f for f in fields if f not in first])[:PREVIEW_FIELDS]


def build_model_asset(spec: ModelSpec, previous: ModelSpec | None) -> dg.AssetsDefinition:
    """The asset of ``spec``: after ``previous`` (or after ``archive`` for the event), outputs its plan."""
    ins = {"archive": dg.AssetIn("archive")} if previous is None else {}
    preview = ["id", "source_id", *preview_fields(spec)]

    @dg.asset(
        name=spec.name,
        ins=ins,
        deps=[previous.name] if previous is not None else [],
        partitions_def=ARCHIVES,
        group_name=GROUP,
        description=describe.model_description(spec),
        kinds=describe.kinds(),
        owners=describe.OWNERS,
        tags=describe.TAGS,
        metadata=describe.model_definition_metadata(spec),
        required_resource_keys={"io_manager", "database"},
    )
    def _model(context: dg.AssetExecutionContext, **inputs) -> ModelPlan:
        require_whole_import(context)  # a partial selection is refused, never a silent no-op
        database: DatabaseResource = context.resources.database
        validated: ValidatedArchive = inputs["archive"] if "archive" in inputs else ancestor_output(context, "archive")
        maps = {name: ancestor_output(context, name).id_map for name in upstream(spec)}
        engine = database.engine()
        with reported():
            plan = plan_step(engine, spec, validated, maps)
        warnings = [w for w in validated.warnings if describe.concerns(spec, w.file)]
        context.log.info(f"{spec.name}: {plan.count} records, {len(warnings)} warnings")
        records = validated.records(spec)
        written = itertools.chain(*(planned_rows(plan, spec, records, maps, kind) for kind in (INSERT, UPDATE)))
        context.add_output_metadata(
            {
                "records": plan.count,
                **plan.diff(),
                # An unchanged archive's plans carry no id map (``_unchanged_plan``): no size to chart for it.
                **({} if validated.unchanged else {"id_map_size": len(plan.id_map)}),
                "dagster/row_count": plan.count,
                "warnings": len(warnings),
                "warnings_table": describe.warnings_table(warnings),
                "rows_written": describe.preview_table(written, preview, plan.created + plan.updated),
            }
        )
        return plan

    return _model


MODEL_ASSETS: list[dg.AssetsDefinition] = [
    build_model_asset(spec, MODELS[i - 1] if i else None) for i, spec in enumerate(MODELS)
]
assert MODELS[0] is EVENT  # the chain starts at the event, the only model fed by the archive edge
