"""An archive's media (logos, photos, audio, video, slides) copied to local or S3 storage.

- ``storage.py``: what the backends share: keys, the interface, StorageError;
- ``local_storage.py``, ``s3_storage.py``: the two backends; ``backends.py``: the configured one;
- ``served_types.py``: the served-type allow-list;
- ``check.py``: the media files an archive names, resolved and read at validation;
- ``fetch.py``: the allow-list for URLs in archives (nothing is fetched unless listed);
- ``objects.py``: the shapes (stored objects, one row's media, object keys);
- ``prepare.py``: which objects an import stores and the rows' new values (the ``media`` asset);
- ``media_plan.py``: the resulting plan, applied by the publish step (store, apply, write, clean up);
- ``upload.py``: storing the objects (members read, URLs fetched, uploads on a thread pool);
- ``spool.py``: the bytes of one object on their way (the validated zip, spools, hashing);
- ``removal.py``: removing a failed import's uploads;
- ``referenced.py``: the objects the event's rows point at now;
- ``claims.py``: the objects each import relies on; removals that never race; the sweep after a kill.
"""

from event_pipeline.media.backends import from_settings
from event_pipeline.media.fetch import FetchPolicy
from event_pipeline.media.local_storage import LocalStorage
from event_pipeline.media.media_plan import MediaPlan
from event_pipeline.media.objects import ARCHIVE_PATHS
from event_pipeline.media.prepare import prepare
from event_pipeline.media.s3_storage import S3Storage
from event_pipeline.media.storage import Storage, StorageError

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
