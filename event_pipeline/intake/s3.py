"""Archives on S3 (or MinIO, or a moto server): list, check, download.

The import itself reads a local file, so an ``s3://`` archive is downloaded
to a mirror under the data folder, ``<data dir>/s3/<bucket>/<object key>``.
The mirror's path maps back to its ``s3://`` URL, so a re-import of a key
last imported from S3 (the schedule, a UI launch without a path) fetches the
object again instead of re-reading a stale copy.

The endpoint comes from the standard ``AWS_ENDPOINT_URL`` and credentials
from the usual AWS variables, as boto3 reads them.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from event_pipeline import settings
from event_pipeline.problems import ImportFailed, Problem, first_line

SCHEME = "s3://"


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str
    size: int

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_s3(path: str | None) -> bool:
    return path is not None and path.startswith(SCHEME)


def split(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    rest = url.removeprefix(SCHEME)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"not an S3 URL: {url!r}")
    return bucket, key


def client():
    """A boto3 S3 client; region defaults to us-east-1 so a bare endpoint works."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # One client per configuration: creating one costs far more than a listing.
    return _client(region, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ACCESS_KEY_ID"))


@functools.lru_cache(maxsize=8)
def _client(region: str, endpoint: str | None, access_key: str | None):
    import boto3

    return boto3.client("s3", region_name=region)


def list_archives(url: str, s3=None) -> Iterator[S3Object]:
    """Objects directly under the prefix (like files in a folder), any name; paginated."""
    bucket, prefix = split(url)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    s3 = s3 or client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue
            yield S3Object(bucket, item["Key"], item["ETag"].strip('"'), item["Size"])


def existing(urls: list[str], s3=None) -> set[str]:
    """Which of these ``s3://`` URLs exist: one listing per folder, not one request per object."""
    folders: dict[str, set[str]] = {}
    for url in urls:
        bucket, key = split(url)
        parent = str(PurePosixPath(key).parent)
        folders.setdefault(f"{SCHEME}{bucket}/{'' if parent == '.' else parent}", set()).add(url)
    found: set[str] = set()
    s3 = s3 or client()
    for folder, wanted in folders.items():
        found |= {obj.url for obj in list_archives(folder, s3)} & wanted
    return found


def mirror_root() -> Path:
    return settings.data_dir() / "s3"


def mirror_path(url: str) -> Path:
    """Where the object is downloaded to; refuses keys that would leave the mirror."""
    bucket, key = split(url)
    parts = [bucket, *key.split("/")]
    if not key or any(part in ("", ".", "..") for part in parts):
        raise ImportFailed([Problem(None, None, None, f"unsupported S3 object name: {url}")])
    return mirror_root().joinpath(*parts)


def source_for(path: str) -> str:
    """The ``s3://`` URL a mirror file came from; any other path unchanged."""
    try:
        relative = Path(path).resolve().relative_to(mirror_root().resolve())
    except (ValueError, OSError):
        return path
    return SCHEME + "/".join(relative.parts)


def fetch(url: str, s3=None) -> Path:
    """Download the object to its mirror path (atomically); ImportFailed if it cannot be read."""
    bucket, key = split(url)
    target = mirror_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    s3 = s3 or client()
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".download-", suffix=".zip")
    os.close(handle)
    try:
        s3.download_file(bucket, key, temp)
        os.replace(temp, target)
    except Exception as exc:
        Path(temp).unlink(missing_ok=True)
        message = f"cannot download {url}: {type(exc).__name__}: {first_line(exc)}"
        raise ImportFailed([Problem(PurePosixPath(key).name, None, None, message)]) from exc
    return target
