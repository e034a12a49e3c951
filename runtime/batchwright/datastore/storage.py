"""Storage backends: where the datastore's bytes live (a local folder or S3).

A storage backend knows nothing about flows; it stores byte blobs under ``/``-separated
keys relative to its root. Writes are atomic (a reader never sees half a file) and large
blobs are streamed from and to file objects rather than held in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from typing import BinaryIO, Protocol


class Storage(Protocol):
    """The operations the datastore needs from a place that holds bytes."""

    #: The root as the user wrote it (a folder path or ``s3://bucket/prefix``).
    root: str

    def read_bytes(self, key: str) -> bytes | None:
        """The blob at ``key``, or None when absent."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically (replacing any blob there)."""
        ...

    def write_stream(self, key: str, stream: BinaryIO) -> None:
        """Store the rest of ``stream`` at ``key`` atomically, without loading it whole."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A readable binary file object for ``key``; FileNotFoundError when absent."""
        ...

    def exists(self, key: str) -> bool:
        """True when a blob is stored at ``key``."""
        ...

    def size(self, key: str) -> int:
        """The size in bytes of the blob at ``key``, without reading it (a ``stat``, or
        one HeadObject on S3); FileNotFoundError when absent."""
        ...

    def keep(self, key: str) -> bool:
        """True when a blob is stored at ``key``, which is about to be used again (a
        content-addressed artifact or code package a new run reuses): storage whose
        objects expire by age renews an old one, so expiry counts from its last use."""
        ...

    def list_children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (one level, like ``ls``), sorted."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` at any depth, relative to it, sorted: one listing
        (a page per 1,000 keys on S3) instead of a request per key."""
        ...

    def copy(self, source: str, destination: str) -> None:
        """Copy a blob within this storage."""
        ...

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the blob at ``key``; FileNotFoundError
        when absent."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The blob at ``key`` and a version token for :meth:`write_versioned`, or None."""
        ...

    def write_versioned(self, key: str, data: bytes, expected: str | None) -> str | None:
        """Store ``data`` only if the blob is still at version ``expected`` (``None``: only
        if there is none); returns the new version, or None when it was not stored. Two
        writers racing on one key: exactly one wins."""
        ...


class LocalStorage:
    """A folder on the local disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = str(root)
        # os.path rather than pathlib: this module is imported by every task process.
        self._base = os.path.abspath(os.path.expanduser(self.root))
        self._made: set[str] = set()

    def _path(self, key: str) -> str:
        return os.path.join(self._base, key)

    def _parent_ready(self, path: str) -> str:
        parent = os.path.dirname(path)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        return parent

    def read_bytes(self, key: str) -> bytes | None:
        """The file's bytes, or None."""
        try:
            with open(self._path(key), "rb") as data:
                return data.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write to a temporary file beside the target, then rename over it."""
        path = self._path(key)
        parent = self._parent_ready(path)
        handle, temporary = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            _remove_quietly(temporary)
            raise

    def write_stream(self, key: str, stream: BinaryIO) -> None:
        """Copy ``stream`` to a temporary file, then rename it into place."""
        path = self._path(key)
        parent = self._parent_ready(path)
        handle, temporary = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            os.replace(temporary, path)
        except BaseException:
            _remove_quietly(temporary)
            raise

    def open_read(self, key: str) -> BinaryIO:
        """The file opened for reading."""
        return open(self._path(key), "rb")

    def exists(self, key: str) -> bool:
        """True when the file exists."""
        return os.path.exists(self._path(key))

    def size(self, key: str) -> int:
        """The file's size (``os.stat``)."""
        return os.stat(self._path(key)).st_size

    def keep(self, key: str) -> bool:
        """True when the file exists (nothing on a local disk expires)."""
        return self.exists(key)

    def list_children(self, prefix: str) -> list[str]:
        """Entries of the folder ``prefix`` (temporary files excluded)."""
        try:
            names = os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith(".tmp-") and not n.endswith(".lock"))

    def list_keys(self, prefix: str) -> list[str]:
        """Files under the folder ``prefix`` at any depth (temporary files excluded)."""
        base = self._path(prefix)
        keys = []
        for folder, _, files in os.walk(base):
            relative = os.path.relpath(folder, base)
            for name in files:
                if not name.startswith(".tmp-") and not name.endswith(".lock"):
                    keys.append(name if relative == "." else f"{relative}/{name}")
        return sorted(k.replace(os.sep, "/") for k in keys)

    def copy(self, source: str, destination: str) -> None:
        """Copy one file."""
        with self.open_read(source) as stream:
            self.write_stream(destination, stream)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """A slice of the file."""
        with open(self._path(key), "rb") as data:
            data.seek(start)
            return data.read(end - start)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The file's bytes, versioned by their SHA-256."""
        data = self.read_bytes(key)
        return None if data is None else (data, hashlib.sha256(data).hexdigest())

    def write_versioned(self, key: str, data: bytes, expected: str | None) -> str | None:
        """Compare and swap under an exclusive lock on a lock file beside the target."""
        path = self._path(key)
        self._parent_ready(path)
        with open(path + ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read_versioned(key)
            if (current[1] if current else None) != expected:
                return None
            self.write_bytes(key, data)
            return hashlib.sha256(data).hexdigest()


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def stream_sha256(stream: BinaryIO) -> str:
    """The SHA-256 (hex) of the rest of ``stream``, read 1 MiB at a time."""
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def holds(storage: Storage, key: str, sha256: str) -> bool:
    """True when ``key`` exists and its bytes have the SHA-256 ``sha256``: a
    content-addressed object that is there and was not changed (one GET)."""
    try:
        stream = storage.open_read(key)
    except FileNotFoundError:
        return False
    with stream:
        return stream_sha256(stream) == sha256
