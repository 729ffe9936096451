"""The target database as a Dagster resource.

The URL is not part of the run config on purpose: run config is stored in
Dagster's run storage and shown in the UI, and a URL may carry a password.
It comes from ``EVENT_PIPELINE_DATABASE_URL`` (or the SQLite default).
"""

import dagster as dg
from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.db import get_engine
from event_pipeline.redact import mask


class DatabaseResource(dg.ConfigurableResource):
    """Where events are imported to: any SQLAlchemy URL for SQLite or PostgreSQL."""

    url: str | None = None

    def resolved_url(self) -> str:
        return settings.database_url(self.url)

    def engine(self) -> Engine:
        return get_engine(self.resolved_url())

    def describe(self) -> str:
        """The URL as logs may show it: every form of password masked (:func:`event_pipeline.redact.mask`)."""
        return mask(self.resolved_url())
