"""An archive's media (logos, photos, audio, video, slides) copied to local or S3 storage.

- ``storage.py``: the two backends, keys and URLs, the served-type allow-list;
- ``check.py``: the media files an archive names, resolved and read at validation;
- ``fetch.py``: the allow-list for URLs in archives (nothing is fetched unless listed);
- ``plan.py``: which objects an import stores, storing them, the rows' new values;
- ``claims.py``: the objects each import relies on; removals that never race; the sweep after a kill.
"""

from event_pipeline.media.fetch import FetchPolicy
from event_pipeline.media.storage import LocalStorage, S3Storage, Storage, StorageError, from_settings
from event_pipeline.media.upload import ARCHIVE_PATHS, MediaPlan, prepare

__all__ = [
    "ARCHIVE_PATHS",
    "FetchPolicy",
    "LocalStorage",
    "MediaPlan",
    "S3Storage",
    "Storage",
    "StorageError",
    "from_settings",
    "prepare",
]
