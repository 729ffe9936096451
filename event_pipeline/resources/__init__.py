"""Dagster resources: thin wrappers over the plain modules."""

from event_pipeline.resources.database import DatabaseResource

__all__ = ["DatabaseResource"]
