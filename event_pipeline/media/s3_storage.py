"""Media stored in an S3 bucket under a prefix (AWS, MinIO, any S3-compatible store), through boto3.

Objects up to ``SINGLE_PUT_MAX`` bytes go up in one request that the store checks
against our sha256; larger ones in parts. Only an allow-listed type
(``served_types.py``) is sent as the object's Content-Type, anything else as
``application/octet-stream``. Deletes go in batches of ``DELETE_BATCH`` (S3's
limit); :meth:`S3Storage.remove_partial` aborts multipart uploads a killed import
left. Every failure is a :class:`~event_pipeline.media.storage.StorageError`
naming the bucket, key and S3's error code.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import IO
from urllib.parse import quote, unquote

from event_pipeline.media.served_types import EXTENSION_OF_TYPE, OCTET_STREAM
from event_pipeline.media.storage import StorageError, checked_key, valid_key

SINGLE_PUT_MAX = 32 << 20  # larger objects go up in parts
DELETE_BATCH = 1000  # S3's limit per DeleteObjects request


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
        return f"{self.base_url}/{quote(self.prefix + checked_key(key))}"

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
        full = self.prefix + checked_key(key)
        # Whatever the caller says, only an allow-listed type is served as such.
        extra = {"ContentType": content_type if content_type in EXTENSION_OF_TYPE else OCTET_STREAM}
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
        keys = [checked_key(k) for k in keys]
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
            full = self.prefix + checked_key(key)
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
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + checked_key(key))["Body"].read()

    def content_type(self, key: str) -> str | None:
        """The type the store serves the object as."""
        return self.client.head_object(Bucket=self.bucket, Key=self.prefix + checked_key(key)).get("ContentType")
