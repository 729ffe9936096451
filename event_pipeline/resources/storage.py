"""Media storage as a Dagster resource: a thin wrapper over ``event_pipeline.media``.

Like the database URL, the fields are bound to their environment variables
(``EVENT_PIPELINE_MEDIA_URL`` / ``_ROOT`` / ``_BASE_URL``) with ``dg.EnvVar``
when those are set (:meth:`MediaStorageResource.from_settings`), so the
launchpad shows the variables' names; unset, the settings' defaults apply.
The fetch allow-list comes from the settings (``EVENT_PIPELINE_MEDIA_FETCH_*``).
Credentials are boto3's own (``AWS_*`` variables, profiles, roles) and never
pass through run config.
"""

import dagster as dg
from pydantic import Field

from event_pipeline import settings
from event_pipeline.media import FetchPolicy, Storage, from_settings

_FIELDS = ("url", "root", "base_url")


class MediaStorageResource(dg.ConfigurableResource):
    """Where an archive's media are copied: a local folder, or ``s3://bucket/prefix``."""

    url: str | None = Field(default=None, description="s3://bucket/prefix; empty: the local folder")
    root: str | None = Field(default=None, description="local folder; empty: <data dir>/media")
    base_url: str | None = Field(default=None, description="public URL of the folder or prefix")

    @classmethod
    def from_settings(cls) -> "MediaStorageResource":
        """Each field bound to its variable (``EVENT_PIPELINE_MEDIA_<FIELD>``) when that is set."""
        configured = settings.current()
        bound = {
            name: dg.EnvVar(settings.variable(f"media_{name}"))
            for name in _FIELDS
            if getattr(configured, f"media_{name}")
        }
        return cls(**bound)

    def storage(self) -> Storage:
        """The backend: these fields first, then the settings (:func:`event_pipeline.media.from_settings`)."""
        return from_settings(self.url, self.root, self.base_url)

    def fetch_policy(self) -> FetchPolicy:
        """Which media URLs may be fetched, and within what bounds (the settings)."""
        return FetchPolicy.from_env()
