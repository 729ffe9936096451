"""Where media copies are stored: a local folder, or an S3 bucket (AWS, MinIO, any S3-compatible store).

Both backends store objects under *keys* like
``db-0123456789abcdef/events/12/<sha256>.jpg`` (see ``prepare.py``): the
database's media namespace (``database_identity``), the event, and the sha256
of the bytes. They turn a key into the URL written to the database, and such a
URL back into its key. Only keys of that shape are accepted, so a URL found in a
database column can never make a backend touch anything outside its own folder
or prefix, nor another database's objects.

An object's served type comes from an allow-list of extensions
(:data:`SERVED_TYPES`: images, audio, video, PDF, slides); anything else
(HTML, SVG, scripts, unknown) is stored without an extension and, on S3, as
``application/octet-stream``, so a media host never serves an archive's
markup or script as such.

Settings (environment, read by :func:`from_settings`):

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

import base64
import contextlib
import os
import re
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO, Protocol
from urllib.parse import quote, unquote

from event_pipeline import settings

MEDIA_URL_ENV = "EVENT_PIPELINE_MEDIA_URL"
MEDIA_ROOT_ENV = "EVENT_PIPELINE_MEDIA_ROOT"
MEDIA_BASE_URL_ENV = "EVENT_PIPELINE_MEDIA_BASE_URL"

# db-<namespace>/events/<event id>/<sha256>[.ext]: what this pipeline writes, nothing else.
NAMESPACE_PATTERN = re.compile(r"db-[0-9a-f]{16}")
KEY_PATTERN = re.compile(r"(db-[0-9a-f]{16})/events/([1-9]\d{0,18})/[0-9a-f]{64}(?:\.[a-z0-9]{1,10})?")
SINGLE_PUT_MAX = 32 << 20  # larger objects go up in parts
DELETE_BATCH = 1000  # S3's limit per DeleteObjects request
OCTET_STREAM = "application/octet-stream"

# The extensions kept in keys, and the type each object is served as. Nothing that a
# browser would run or render as a page: SVG and HTML can carry scripts.
SERVED_TYPES = {
    **dict.fromkeys((".jpg", ".jpeg"), "image/jpeg"),
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".ico": "image/vnd.microsoft.icon",
    **dict.fromkeys((".tif", ".tiff"), "image/tiff"),
    ".mp3": "audio/mpeg",
    **dict.fromkeys((".ogg", ".oga"), "audio/ogg"),
    ".opus": "audio/opus",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".flac": "audio/flac",
    ".weba": "audio/webm",
    **dict.fromkeys((".mp4", ".m4v"), "video/mp4"),
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    **dict.fromkeys((".mpg", ".mpeg"), "video/mpeg"),
    ".pdf": "application/pdf",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".ppt": "application/vnd.ms-powerpoint",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".key": "application/vnd.apple.keynote",
}
_EXTENSION_OF_TYPE = {t: ext for ext, t in reversed(list(SERVED_TYPES.items()))}  # the first extension per type


KILL_ENV = "EVENT_PIPELINE_TEST_KILL_AT"
_kill_hits: dict[str, int] = {}


class StorageError(RuntimeError):
    """An object could not be written, listed or deleted."""


def kill_point(name: str) -> None:
    """A test hook: ``EVENT_PIPELINE_TEST_KILL_AT=<name>[:<n>]`` kills this process with SIGKILL the n-th
    time (default the first) it passes the point ``name`` (``media-put``: a local upload's temporary file
    is written, not yet renamed; ``media-stored``: every object is uploaded, nothing committed). Unset,
    as it always is outside tests, it does nothing."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _kill_hits[name] = _kill_hits.get(name, 0) + 1
    if _kill_hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def valid_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


def key_event(key: str) -> tuple[str, int] | None:
    """(namespace, event id) of a valid key, else None."""
    match = KEY_PATTERN.fullmatch(key)
    return (match[1], int(match[2])) if match else None


def event_prefix(namespace: str, event_id: int) -> str:
    """The folder of one event's objects in one database's namespace, ``db-<namespace>/events/<id>/``."""
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise StorageError(f"unexpected media namespace {namespace!r}")
    return f"{namespace}/events/{event_id}/"


def served_type(name: str, declared: str | None = None) -> tuple[str, str]:
    """(key suffix, content type) of a file called ``name``: an allow-listed extension keeps its type;
    else ``declared`` (a fetched file's Content-Type) if it is an allow-listed type; else no suffix and
    ``application/octet-stream``."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in SERVED_TYPES:
        return suffix, SERVED_TYPES[suffix]
    declared = (declared or "").split(";")[0].strip().lower()
    if declared in _EXTENSION_OF_TYPE:
        return _EXTENSION_OF_TYPE[declared], declared
    return "", OCTET_STREAM


class Storage(Protocol):
    kind: str

    def describe(self) -> str: ...
    def url(self, key: str) -> str: ...
    def key_for_url(self, url: str) -> str | None: ...
    def list(self, prefix: str) -> dict[str, int]: ...
    def put(self, key: str, data: IO[bytes], size: int, sha256: str, content_type: str | None) -> None: ...
    def delete(self, keys: Iterable[str]) -> int: ...
    def remove_partial(self, keys: Iterable[str]) -> int: ...
    def read(self, key: str) -> bytes: ...


def _key_from(url: str, base: str) -> str | None:
    if not url.startswith(base + "/"):
        return None
    key = unquote(url[len(base) + 1 :])
    return key if valid_key(key) else None


def _checked(key: str) -> str:
    if not valid_key(key):
        raise StorageError(f"refusing unexpected media key {key!r}")
    return key


def _unlink(path: Path) -> bool:
    """Delete a file; False if it was not there. Raises StorageError for any other failure."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    return True


class LocalStorage:
    """A folder; objects are written to a temporary file, synced, then renamed into place."""

    kind = "local"

    def __init__(self, root: str | Path, base_url: str | None = None):
        self.root = Path(root).expanduser().resolve()
        self.base_url = (base_url or self.root.as_uri()).rstrip("/")

    def describe(self) -> str:
        return f"local folder {self.root}"

    def path(self, key: str) -> Path:
        return self.root.joinpath(*_checked(key).split("/"))

    def url(self, key: str) -> str:
        return f"{self.base_url}/{quote(_checked(key))}"

    def key_for_url(self, url: str) -> str | None:
        return _key_from(url, self.base_url)

    def list(self, prefix: str) -> dict[str, int]:
        folder = self.root.joinpath(*[p for p in prefix.split("/") if p])
        found: dict[str, int] = {}
        if not folder.is_dir():
            return found
        for directory, _dirs, files in os.walk(folder):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                with contextlib.suppress(OSError):
                    found[key] = path.stat().st_size
        return found

    def put(self, key: str, data: IO[bytes], size: int, sha256: str, content_type: str | None) -> None:
        target = self.path(key)
        temp = target.with_name(f".tmp-{secrets.token_hex(6)}-{target.name}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as out:
                written = 0
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            kill_point("media-put")
            if written != size:
                raise StorageError(f"{target}: wrote {written} bytes, expected {size}")
            os.replace(temp, target)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    def delete(self, keys: Iterable[str]) -> int:
        deleted = 0
        for key in keys:
            path = self.path(key)
            if _unlink(path):
                deleted += 1
                self._prune(path.parent)
        return deleted

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty, up to the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def remove_partial(self, keys: Iterable[str]) -> int:
        """Remove the temporary files a killed upload of these keys left (``.tmp-<random>-<name>``)."""
        removed = 0
        for key in keys:
            path = self.path(key)
            folder = path.parent
            if not folder.is_dir():
                continue
            removed += sum(_unlink(temp) for temp in folder.glob(f".tmp-*-{path.name}"))
            self._prune(folder)
        return removed

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()


class S3Storage:
    """A bucket and prefix, through boto3. The client is made on first use and not pickled."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", base_url: str | None = None, client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._base_url = base_url.rstrip("/") if base_url else None
        self._client = client

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    @property
    def client(self):
        if self._client is None:
            from event_pipeline.intake import s3

            self._client = s3.client()
        return self._client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self._base_url = f"{self.client.meta.endpoint_url.rstrip('/')}/{quote(self.bucket)}"
        return self._base_url

    def url(self, key: str) -> str:
        return f"{self.base_url}/{quote(self.prefix + _checked(key))}"

    def key_for_url(self, url: str) -> str | None:
        if not url.startswith(self.base_url + "/"):
            return None
        full = unquote(url[len(self.base_url) + 1 :])
        if not full.startswith(self.prefix):
            return None
        key = full[len(self.prefix) :]
        return key if valid_key(key) else None

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        error = getattr(exc, "response", None)
        if isinstance(error, dict) and isinstance(error.get("Error"), dict):  # botocore's ClientError
            code, detail = error["Error"].get("Code"), error["Error"].get("Message")
        else:
            code, detail = type(exc).__name__, (str(exc).strip().splitlines() or [""])[0]
        return StorageError(f"cannot {action} s3://{self.bucket}/{self.prefix}{key}: {code}: {detail}")

    def list(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    found[item["Key"][len(self.prefix) :]] = item["Size"]
        except Exception as exc:  # botocore's errors share no base class with its connection errors
            raise self._error("list", prefix, exc) from exc
        return found

    def put(self, key: str, data: IO[bytes], size: int, sha256: str, content_type: str | None) -> None:
        full = self.prefix + _checked(key)
        # Whatever the caller says, only an allow-listed type is served as such.
        extra = {"ContentType": content_type if content_type in _EXTENSION_OF_TYPE else OCTET_STREAM}
        try:
            if size <= SINGLE_PUT_MAX:
                # One request; the store checks the bytes against our sha256 and refuses a mismatch.
                checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ChecksumSHA256=checksum, **extra)
            else:
                from boto3.s3.transfer import TransferConfig

                self.client.upload_fileobj(
                    data,
                    self.bucket,
                    full,
                    ExtraArgs={**extra, "ChecksumAlgorithm": "SHA256"},
                    Config=TransferConfig(multipart_threshold=SINGLE_PUT_MAX, max_concurrency=4),
                )
        except Exception as exc:
            raise self._error("upload", key, exc) from exc

    def delete(self, keys: Iterable[str]) -> int:
        keys = [_checked(k) for k in keys]
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": self.prefix + k} for k in batch], "Quiet": True}
                )
            except Exception as exc:
                raise self._error("delete", batch[0], exc) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"cannot delete s3://{self.bucket}/{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
                )
            deleted += len(batch)
        return deleted

    def remove_partial(self, keys: Iterable[str]) -> int:
        """Abort the multipart uploads of these keys that a killed import left unfinished."""
        aborted = 0
        for key in keys:
            full = self.prefix + _checked(key)
            try:
                paginator = self.client.get_paginator("list_multipart_uploads")
                for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                    for upload in page.get("Uploads", []):
                        if upload["Key"] == full:
                            self.client.abort_multipart_upload(
                                Bucket=self.bucket, Key=full, UploadId=upload["UploadId"]
                            )
                            aborted += 1
            except Exception as exc:
                raise self._error("abort the unfinished uploads of", key, exc) from exc
        return aborted

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + _checked(key))["Body"].read()

    def content_type(self, key: str) -> str | None:
        """The type the store serves the object as."""
        return self.client.head_object(Bucket=self.bucket, Key=self.prefix + _checked(key)).get("ContentType")


def from_settings(url: str | None = None, root: str | None = None, base_url: str | None = None) -> Storage:
    """The configured backend: explicit arguments first, then the environment, then the local default."""
    url = url or os.environ.get(MEDIA_URL_ENV) or None
    base_url = base_url or os.environ.get(MEDIA_BASE_URL_ENV) or None
    if url:
        if not url.startswith("s3://"):
            raise StorageError(f"{MEDIA_URL_ENV} must be an s3://bucket/prefix URL, got {url!r}")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StorageError(f"{MEDIA_URL_ENV} names no bucket: {url!r}")
        return S3Storage(bucket, prefix, base_url)
    root = root or os.environ.get(MEDIA_ROOT_ENV) or str(settings.data_dir() / "media")
    return LocalStorage(root, base_url)
