"""The import graph: archive -> the nine models (reference order) -> media -> import_result."""

from event_pipeline.assets.archive import archive
from event_pipeline.assets.common import ARCHIVES, GROUP, record_import_failure
from event_pipeline.assets.media import media
from event_pipeline.assets.models import MODEL_ASSETS
from event_pipeline.assets.result import import_result

# The failure hook sits on the assets, not on a job: whichever job runs them (import_archive,
# the UI's implicit asset job, a backfill) closes the import_jobs row of a failed import.
IMPORT_ASSETS = [a.with_hooks({record_import_failure}) for a in (archive, *MODEL_ASSETS, media, import_result)]

__all__ = ["ARCHIVES", "GROUP", "IMPORT_ASSETS"]
