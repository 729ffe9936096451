"""Which runs are imports: whole-import selections only, whatever launched them.

The UI's "Materialize" buttons (graph, asset page, partitions tab, backfill) launch
Dagster's implicit asset job with an asset selection instead of ``import_archive``.
Selecting every import asset is an import like any other; selecting only some of
them would record materializations of tables nobody wrote, so it is refused.
"""

from __future__ import annotations

import dagster as dg

from event_pipeline.model.catalog import MODELS

IMPORT_ASSET_NAMES = frozenset({"archive", *(spec.name for spec in MODELS), "media", "import_result"})
IMPORT_ASSET_KEYS = frozenset(dg.AssetKey(name) for name in IMPORT_ASSET_NAMES)


def missing_import_assets(run: dg.DagsterRun) -> list[str]:
    """The import assets a run's selection leaves out (sorted names; empty for a whole import).

    ``asset_selection`` is None for a job run without a subset (``import_archive``,
    the CLI). A re-execution (it has a parent run) reuses the parent's outputs for
    the steps it skips, so it counts as whole.
    """
    if not run.asset_selection or run.parent_run_id:  # None, or empty (execute_in_process of a job)
        return []
    return sorted(key.to_user_string() for key in IMPORT_ASSET_KEYS - set(run.asset_selection))


def is_import_run(run: dg.DagsterRun, job_name: str) -> bool:
    """Whether the run imports an archive: the import job, or any job whose selection holds every import asset."""
    if run.job_name == job_name:
        return True
    return run.asset_selection is not None and set(run.asset_selection) >= IMPORT_ASSET_KEYS


def require_whole_import(context: dg.AssetExecutionContext | dg.InputContext) -> None:
    """Refuse a run that selects only part of the import (before anything is read or recorded).

    Called by each import asset and, first of all, by the IO manager when it loads an
    input (a model selected alone fails there, before its body runs). Raises
    ``dg.Failure`` naming what is missing: the models are planned from the validated
    archive and written together by ``import_result``, one transaction, so a model
    asset alone has nothing true to record.
    """
    if isinstance(context, dg.InputContext):
        run, asset = context.step_context.dagster_run, context.step_context.step.key
    else:
        run, asset = context.run, context.asset_key.to_user_string()
    missing = missing_import_assets(run)
    if missing:
        raise dg.Failure(
            description=(
                f"{asset} cannot be materialized without the rest of the import "
                f"(missing: {', '.join(missing)}): materialize the whole event_import group for this partition "
                "(or launch the import_archive job)"
            ),
            allow_retries=False,
        )
