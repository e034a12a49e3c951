"""S3 storage through boto3 (imported only when an ``s3://`` root is used).

Clients come from :mod:`batchwright.aws`, which passes ``AWS_ENDPOINT_URL`` explicitly,
so the local AWS emulator works with no extra configuration even with an old boto3.
Uploads and downloads go through boto3's transfer manager, which switches to multipart
transfers for large blobs. In the orchestrator every call goes through a
:class:`~batchwright.aws.Patience`, so a run outlives throttling and short outages; a
task leaves it out (botocore's own retries are enough inside AWS).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

if TYPE_CHECKING:
    from batchwright.aws import Patience

from batchwright.errors import UserInputError

_T = TypeVar("_T")

#: Blobs up to this size stay in memory when read; larger ones spill to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024
#: Age after which an object reused by a new run is renewed (:meth:`S3Storage.keep`); the
#: construct library's ``DatastoreLifecycle`` expires objects no sooner than twice this.
RENEW_AFTER = timedelta(days=7)


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise UserInputError(f"datastore root {url!r} is not an s3:// URL.")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise UserInputError(
            f"datastore root {url!r} names no bucket. Write it as s3://BUCKET[/PREFIX]."
        )
    return bucket, prefix.strip("/")


class S3Storage:
    """Blobs in an S3 bucket under a prefix."""

    def __init__(
        self, root: str, client: Any | None = None, patience: Patience | None = None
    ) -> None:
        self.root = root
        self.bucket, self.prefix = split_s3_url(root)
        if client is None:
            from batchwright.aws import client as make_client

            client = make_client("s3")
        self._client = client
        self._patience = patience

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _folder(self, prefix: str) -> str:
        """The listing prefix of the folder ``prefix``: ends with ``/``, except the bucket's
        root, which is the empty prefix."""
        folder = self._key(prefix).strip("/")
        return f"{folder}/" if folder else ""

    def _call(self, function: Callable[[], _T]) -> _T:
        """One S3 operation, through the orchestrator's patience when there is one."""
        return self._patience.call(function) if self._patience else function()

    def read_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

        def read() -> bytes | None:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self._client.exceptions.NoSuchKey:
                return None
            body: bytes = response["Body"].read()
            return body

        return self._call(read)

    def write_bytes(self, key: str, data: bytes) -> None:
        """One PutObject (atomic by S3's semantics)."""
        self._call(
            lambda: self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        )

    def write_stream(self, key: str, stream: BinaryIO) -> None:
        """Upload through the transfer manager (multipart for large streams); a retried
        upload starts again from where the stream stood."""
        start = stream.tell() if stream.seekable() else None

        def upload() -> None:
            if start is not None:
                stream.seek(start)
            self._client.upload_fileobj(stream, self.bucket, self._key(key))

        self._call(upload)

    def open_read(self, key: str) -> BinaryIO:
        """Download into a spooled temporary file and return it rewound."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

        def download() -> None:
            spool.seek(0)
            spool.truncate()
            self._client.download_fileobj(self.bucket, self._key(key), spool)

        try:
            self._call(download)
        except Exception as error:
            spool.close()
            if _is_missing(error):
                raise FileNotFoundError(key) from None
            raise
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        """HeadObject."""

        def head() -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as error:
                if _is_missing(error):
                    return False
                raise
            return True

        return self._call(head)

    def size(self, key: str) -> int:
        """HeadObject's ContentLength: nothing is downloaded."""

        def head() -> int | None:
            try:
                response = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as error:
                if _is_missing(error):
                    return None
                raise
            return int(response["ContentLength"])

        size = self._call(head)
        if size is None:
            raise FileNotFoundError(key)
        return size

    def keep(self, key: str) -> bool:
        """HeadObject; an object last written more than :data:`RENEW_AFTER` ago is copied
        onto itself (server-side), so that a lifecycle rule's expiry (``DatastoreLifecycle``
        of the construct library) counts from its last reuse, not its first write."""

        def head() -> datetime | None:
            try:
                response = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as error:
                if _is_missing(error):
                    return None
                raise
            modified: datetime = response["LastModified"]
            return modified

        modified = self._call(head)
        if modified is None:
            return False
        if datetime.now(UTC) - modified > RENEW_AFTER:
            target = self._key(key)
            self._call(
                lambda: self._client.copy(
                    {"Bucket": self.bucket, "Key": target},
                    self.bucket,
                    target,
                    ExtraArgs={"MetadataDirective": "REPLACE"},
                )
            )
        return True

    def list_children(self, prefix: str) -> list[str]:
        """One level of names under ``prefix`` (ListObjectsV2 with a delimiter)."""
        base = self._folder(prefix)
        names: set[str] = set()
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base, "Delimiter": "/"}
        while True:
            page = self._call(lambda: self._client.list_objects_v2(**request))
            for common in page.get("CommonPrefixes", []):
                names.add(common["Prefix"][len(base) :].rstrip("/"))
            for item in page.get("Contents", []):
                names.add(item["Key"][len(base) :])
            if not page.get("IsTruncated"):
                return sorted(n for n in names if n)
            request["ContinuationToken"] = page["NextContinuationToken"]

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2 without a delimiter, paginated)."""
        base = self._folder(prefix)
        pages = self._client.get_paginator("list_objects_v2")

        def listing() -> list[str]:
            return [
                item["Key"][len(base) :]
                for page in pages.paginate(Bucket=self.bucket, Prefix=base)
                for item in page.get("Contents", [])
            ]

        return sorted(self._call(listing))

    def copy(self, source: str, destination: str) -> None:
        """Server-side copy."""
        self._call(
            lambda: self._client.copy(
                {"Bucket": self.bucket, "Key": self._key(source)},
                self.bucket,
                self._key(destination),
            )
        )

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """A ranged GetObject (``Range: bytes=start-(end-1)``)."""

        def read() -> bytes:
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}"
                )
            except self._client.exceptions.NoSuchKey:
                raise FileNotFoundError(key) from None
            body: bytes = response["Body"].read()
            return body

        return self._call(read)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and its ETag."""

        def read() -> tuple[bytes, str] | None:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self._client.exceptions.NoSuchKey:
                return None
            return response["Body"].read(), str(response["ETag"])

        return self._call(read)

    def write_versioned(self, key: str, data: bytes, expected: str | None) -> str | None:
        """A conditional PutObject: ``If-Match`` the expected ETag, or ``If-None-Match: *``
        when there must be no object yet (S3 answers 412 when another writer won)."""
        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}

        def write() -> str | None:
            try:
                response = self._client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, **condition
                )
            except Exception as error:
                # A connection error carries response=None: it goes to the patience.
                response = getattr(error, "response", None) or {}
                code = str(response.get("Error", {}).get("Code", ""))
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey"):
                    return None
                raise
            return str(response["ETag"])

        return self._call(write)


def _is_missing(error: Exception) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
