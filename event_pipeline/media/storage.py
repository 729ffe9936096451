"""Where media copies are stored: a local folder, or an S3 bucket (AWS, MinIO, any S3-compatible store).

Both backends store objects under *keys* like
``events/12/speakers/345/photo/<sha256>.jpg`` (see ``plan.py``) and turn a key
into the URL written to the database, and such a URL back into its key. Only
keys of that shape are accepted, so a URL found in a database column can never
make a backend touch anything outside its own folder or prefix.

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
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import quote, unquote

from event_pipeline import settings

MEDIA_URL_ENV = "EVENT_PIPELINE_MEDIA_URL"
MEDIA_ROOT_ENV = "EVENT_PIPELINE_MEDIA_ROOT"
MEDIA_BASE_URL_ENV = "EVENT_PIPELINE_MEDIA_BASE_URL"

# events/<event id>/<folders and record ids>/<sha256>[.ext]: what this pipeline writes, nothing else.
KEY_PATTERN = re.compile(r"events/[1-9]\d*(?:/(?:[a-z_]+|[1-9]\d*))+/[0-9a-f]{64}(?:\.[a-z0-9]{1,10})?")
SINGLE_PUT_MAX = 32 << 20  # larger objects go up in parts
DELETE_BATCH = 1000  # S3's limit per DeleteObjects request


class StorageError(RuntimeError):
    """An object could not be written, listed or deleted."""


def valid_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


def event_prefix(event_id: int) -> str:
    return f"events/{event_id}/"


class Storage(Protocol):
    kind: str

    def describe(self) -> str: ...
    def url(self, key: str) -> str: ...
    def key_for_url(self, url: str) -> str | None: ...
    def list(self, prefix: str) -> dict[str, int]: ...
    def put(self, key: str, data: IO[bytes], size: int, sha256: str, content_type: str | None) -> None: ...
    def delete(self, keys: Iterable[str]) -> int: ...
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
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot delete {path}: {exc.strerror or exc}") from exc
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
            from event_pipeline import s3

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
        extra = {"ContentType": content_type} if content_type else {}
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

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + _checked(key))["Body"].read()


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
