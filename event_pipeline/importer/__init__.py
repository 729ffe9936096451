"""The one importer: plain Python, no Dagster, that every entry point calls.

The import is three steps, which the Dagster assets call one by one:

1. :func:`validate_archive` (``validating``): read and normalise the whole
   archive; any error stops the import before a single write.
2. :func:`plan_step` / :func:`plan_all` (``planning``): each model's id map
   and planned writes, in the reference server's order.
3. :func:`publish_step` (``publishing``): every plan in one transaction, with
   the SUCCESS row of ``import_jobs``.

:func:`import_archive` (``whole``) runs all of them for one archive under the
key's lock (the bulk job); :func:`record_failure` (``failures``) is the one
failure path; ``validate`` calls step 1 and plans without reserving ids.
"""

from event_pipeline.collector import release_frozen
from event_pipeline.importer.failures import interrupted, record_failure
from event_pipeline.importer.planning import plan_all, plan_step, summarise
from event_pipeline.importer.publishing import PUBLISH_ATTEMPTS, publish_step
from event_pipeline.importer.validating import ValidatedArchive, validate_archive
from event_pipeline.importer.whole import import_archive, open_source

__all__ = [
    "PUBLISH_ATTEMPTS",
    "ValidatedArchive",
    "import_archive",
    "interrupted",
    "open_source",
    "plan_all",
    "plan_step",
    "publish_step",
    "record_failure",
    "release_frozen",
    "summarise",
    "validate_archive",
]
