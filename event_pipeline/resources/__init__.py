"""Dagster resources: thin wrappers over the plain modules."""

from event_pipeline.resources.database import DatabaseResource
from event_pipeline.resources.storage import MediaStorageResource

__all__ = ["DatabaseResource", "MediaStorageResource"]
