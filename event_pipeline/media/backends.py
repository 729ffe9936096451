"""The configured media storage backend, from arguments or the environment.

``EVENT_PIPELINE_MEDIA_URL``
    ``s3://bucket/prefix``: store in S3. The endpoint comes from the standard
    ``AWS_ENDPOINT_URL`` and credentials from the usual AWS variables, as
    boto3 reads them.
``EVENT_PIPELINE_MEDIA_ROOT``
    Otherwise, the local folder (default ``<data dir>/media``).
``EVENT_PIPELINE_MEDIA_BASE_URL``
    The public URL of the folder or prefix, e.g. ``https://cdn.example.org/media``.
    Default: the folder's ``file://`` URI, or for S3 ``<endpoint>/<bucket>``.
"""

from __future__ import annotations

from event_pipeline import settings
from event_pipeline.media.local_storage import LocalStorage
from event_pipeline.media.s3_storage import S3Storage
from event_pipeline.media.storage import Storage, StorageError

MEDIA_URL_ENV = "EVENT_PIPELINE_MEDIA_URL"


def from_settings(url: str | None = None, root: str | None = None, base_url: str | None = None) -> Storage:
    """The configured backend: explicit arguments first, then the environment, then the local default."""
    configured = settings.current()
    url = url or configured.media_url
    base_url = base_url or configured.media_base_url
    if url:
        if not url.startswith("s3://"):
            raise StorageError(f"{MEDIA_URL_ENV} must be an s3://bucket/prefix URL, got {url!r}")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StorageError(f"{MEDIA_URL_ENV} names no bucket: {url!r}")
        return S3Storage(bucket, prefix, base_url)
    root = root or str(configured.media_root or settings.data_dir() / "media")
    return LocalStorage(root, base_url)
