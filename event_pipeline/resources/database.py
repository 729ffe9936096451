"""The target database as a Dagster resource.

The URL is never a value in Dagster's config: run config and the job snapshot
(which holds every config field's default) are stored in Dagster's run storage
and shown in the UI, and a URL may carry a password. So the resource is either

- :meth:`DatabaseResource.from_settings` (the code location's): ``url`` is
  ``dg.EnvVar("EVENT_PIPELINE_DATABASE_URL")``, which Dagster stores and shows
  as the variable's name and reads in the process that runs the step; when
  the variable is unset, ``url`` is left empty and the settings' SQLite
  default applies (an ``EnvVar`` of an unset variable fails the run);
- :func:`run_scoped` (the CLI's ``--database-url``): the URL held by the
  resource object of one ``execute_in_process`` call, with no config at all.
"""

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from event_pipeline import settings
from event_pipeline.db import get_engine
from event_pipeline.redact import mask


class DatabaseResource(dg.ConfigurableResource):
    """Where events are imported to: any SQLAlchemy URL for SQLite or PostgreSQL."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; give it as an environment variable ({env: ...}), never as text, since a URL "
        "may carry a password. Empty: the SQLite database in the data folder.",
    )

    @classmethod
    def from_settings(cls) -> "DatabaseResource":
        """The resource the code location binds: the variable by name when it is set, else the SQLite default."""
        if settings.current().database_url:
            return cls(url=dg.EnvVar(settings.DATABASE_URL_ENV))
        return cls()

    def resolved_url(self) -> str:
        """``url``, else the settings' URL (:func:`event_pipeline.settings.database_url`)."""
        return settings.database_url(self.url)

    def engine(self) -> Engine:
        """The shared engine of the URL (:func:`event_pipeline.db.get_engine`: the schema is created on first use)."""
        return get_engine(self.resolved_url())

    def describe(self) -> str:
        """The URL as logs may show it: every form of password masked (:func:`event_pipeline.redact.mask`)."""
        return mask(self.resolved_url())


def run_scoped(url: str) -> dg.ResourceDefinition:
    """A ``database`` resource for one in-process run, holding ``url`` outside any config schema
    (so neither the run config nor the job snapshot in run storage holds it)."""
    return dg.ResourceDefinition.hardcoded_resource(DatabaseResource(url=url), "the --database-url of this run")
