"""Media storage as a Dagster resource: a thin wrapper over ``event_pipeline.media``.

Like the database URL, the settings come from the environment by default
(``EVENT_PIPELINE_MEDIA_URL`` / ``_ROOT`` / ``_BASE_URL``, and
``EVENT_PIPELINE_MEDIA_FETCH_HOSTS`` for the fetch allow-list); credentials
are boto3's own (``AWS_*`` variables, profiles, roles) and never pass through
run config.
"""

import dagster as dg

from event_pipeline.media import FetchPolicy, Storage, from_settings


class MediaStorageResource(dg.ConfigurableResource):
    """Where an archive's media are copied: a local folder, or ``s3://bucket/prefix``."""

    url: str | None = None  # s3://bucket/prefix; default $EVENT_PIPELINE_MEDIA_URL
    root: str | None = None  # local folder; default $EVENT_PIPELINE_MEDIA_ROOT, else <data dir>/media
    base_url: str | None = None  # public URL of the folder or prefix; default $EVENT_PIPELINE_MEDIA_BASE_URL

    def storage(self) -> Storage:
        return from_settings(self.url, self.root, self.base_url)

    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy.from_env()
