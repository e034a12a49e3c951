"""S3 storage through boto3 (imported only when an ``s3://`` root is used).

Clients come from :mod:`batchwright.aws`, which passes ``AWS_ENDPOINT_URL`` explicitly,
so the local AWS emulator works with no extra configuration even with an old boto3.
Uploads and downloads go through boto3's transfer manager, which switches to multipart
transfers for large blobs.
"""

from __future__ import annotations

import tempfile
from typing import Any, BinaryIO

from batchwright.errors import UserInputError

#: Blobs up to this size stay in memory when read; larger ones spill to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024


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

    def __init__(self, root: str, client: Any | None = None) -> None:
        self.root = root
        self.bucket, self.prefix = split_s3_url(root)
        if client is None:
            from batchwright.aws import client as make_client

            client = make_client("s3")
        self._client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._client.exceptions.NoSuchKey:
            return None
        body: bytes = response["Body"].read()
        return body

    def write_bytes(self, key: str, data: bytes) -> None:
        """One PutObject (atomic by S3's semantics)."""
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def write_stream(self, key: str, stream: BinaryIO) -> None:
        """Upload through the transfer manager (multipart for large streams)."""
        self._client.upload_fileobj(stream, self.bucket, self._key(key))

    def open_read(self, key: str) -> BinaryIO:
        """Download into a spooled temporary file and return it rewound."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            self._client.download_fileobj(self.bucket, self._key(key), spool)
        except Exception as error:
            spool.close()
            if _is_missing(error):
                raise FileNotFoundError(key) from None
            raise
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        """HeadObject."""
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as error:
            if _is_missing(error):
                return False
            raise
        return True

    def list_children(self, prefix: str) -> list[str]:
        """One level of names under ``prefix`` (ListObjectsV2 with a delimiter)."""
        base = self._key(prefix).rstrip("/") + "/"
        names: set[str] = set()
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.add(common["Prefix"][len(base) :].rstrip("/"))
            for item in page.get("Contents", []):
                names.add(item["Key"][len(base) :])
        return sorted(n for n in names if n)

    def copy(self, source: str, destination: str) -> None:
        """Server-side copy."""
        self._client.copy(
            {"Bucket": self.bucket, "Key": self._key(source)}, self.bucket, self._key(destination)
        )


def _is_missing(error: Exception) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
