"""What a job checks before it runs anything it downloaded: the object's SHA-256, and the
members of the code package's archive.

A job container fetches its code package and, for a command too big for Batch's overrides,
its command payload from S3. Both are stored under ``code/`` of the datastore, which only
the submitter may write (the job role is denied it), and the job's command carries the
SHA-256 each must have. The container bootstraps (:mod:`batchwright.entrypoint.bootstrap`)
run this module's source before anything of the download: a digest that differs, or an
archive member that would land outside the code folder, ends the job with
:data:`~batchwright.entrypoint.EXIT_INTEGRITY` and a message naming the object; nothing of
it ran.

Standard library only, and self-contained: the bootstraps embed this file's code (without
docstrings) in the job's command, where batchwright is not installed yet.
"""

from __future__ import annotations

import hashlib
import os
import tarfile


class IntegrityError(Exception):
    """A downloaded object is not what the job was given to run."""


def check_digest(data: bytes, expected: str, what: str) -> None:
    """Raises :class:`IntegrityError` unless ``data`` has the SHA-256 ``expected`` (hex).

    ``what`` names the object in the message (``code package s3://...``).
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise IntegrityError(
            f"{what} has SHA-256 {actual}, but the job was given {expected}: it was changed "
            "after upload, so none of it runs."
        )


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([folder, path]) == folder


def unsafe_member(member: tarfile.TarInfo, folder: str) -> str:
    """Why extracting ``member`` into ``folder`` would be unsafe; ``""`` when it is not.

    Refused: absolute names, names that climb out with ``..``, every symbolic or hard link
    (a code package batchwright builds holds none, and links chained through each other
    can point out of the folder however each one reads), device files and FIFOs.
    """
    folder = os.path.realpath(folder)
    name = member.name
    if os.path.isabs(name) or name.startswith(("/", "\\")):
        return "has an absolute path"
    target = os.path.normpath(os.path.join(folder, name))
    if ".." in name.replace("\\", "/").split("/") or not _inside(target, folder):
        return "climbs out of the code folder with '..'"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a FIFO"
    if member.issym() or member.islnk():
        return f"is a link (to {member.linkname!r}); code packages hold regular files only"
    return ""


def safe_extract(archive: str, folder: str, what: str) -> None:
    """Unpacks the tar file ``archive`` into ``folder`` after checking every member with
    :func:`unsafe_member`; the first unsafe one raises :class:`IntegrityError` before
    anything is written. Python's ``data`` filter is used as well where it exists (3.12,
    and 3.8 to 3.11 from their security releases of 2023 on); what it or ``tarfile``
    refuses (a corrupt archive) is an :class:`IntegrityError` too.
    """
    try:
        _extract(archive, folder, what)
    except tarfile.TarError as error:
        raise IntegrityError(f"{what}: {error}, so nothing of the package is run.") from None


def _extract(archive: str, folder: str, what: str) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            problem = unsafe_member(member, folder)
            if problem:
                raise IntegrityError(
                    f"{what}: member {member.name!r} {problem}, so nothing of the package "
                    "is unpacked or run."
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, members=members, filter="data")
        else:
            tar.extractall(folder, members=members)
