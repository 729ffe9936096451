"""The import graph: archive -> the nine models (reference order) -> media -> import_result."""

from event_pipeline.assets.archive import archive
from event_pipeline.assets.common import ARCHIVES, GROUP
from event_pipeline.assets.media import media
from event_pipeline.assets.models import MODEL_ASSETS
from event_pipeline.assets.result import import_result

IMPORT_ASSETS = [archive, *MODEL_ASSETS, media, import_result]

__all__ = ["ARCHIVES", "GROUP", "IMPORT_ASSETS"]
