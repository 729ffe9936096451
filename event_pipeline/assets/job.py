"""The ``import_archive`` job: every asset of the import group, for one archive (partition) per run.

Its own module so that the sensors and the schedule can target the job object
(and the run-status sensors monitor it) while ``definitions.py`` binds them all.
"""

import dagster as dg

from event_pipeline.assets.common import GROUP

IMPORT_JOB_NAME = "import_archive"

# In-process: the multiprocess executor costs about 2 s per step here, more
# than a whole import; the steps also share the database engine this way.
# A failed step closes the run's import_jobs row as FAILURE with its error (the assets' failure
# hook, see assets/__init__.py), whichever step it is and wherever in it the error arose.
# The same executor is the code location's default (definitions.py), for the UI's asset jobs.
import_job = dg.define_asset_job(
    IMPORT_JOB_NAME,
    selection=dg.AssetSelection.groups(GROUP),
    executor_def=dg.in_process_executor,
    description="Import one Open Event archive (partition = archive key).",
)
