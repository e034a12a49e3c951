"""The checks a job's bootstrap runs before anything it downloaded
(:mod:`batchwright.entrypoint.integrity`): a digest that differs, and archive members that
would land outside the code folder (absolute paths, ``..``, links pointing out, device
files), are refused before anything is written. Each check is exercised with Python's
``data`` filter and without it, as on Debian bookworm's Python 3.11.2, the local AWS's
own job image."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchwright.entrypoint.integrity import (
    IntegrityError,
    check_digest,
    safe_extract,
    unsafe_member,
)


@pytest.fixture(params=["data filter", "no data filter"])
def python_tarfile(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Runs the test with ``tarfile.data_filter`` as this Python has it, and without it."""
    if request.param == "no data filter" and hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")
    yield request.param


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _archive(tmp_path: Path, *members: tarfile.TarInfo) -> str:
    """A tar file holding a safe ``flow.py``, then ``members``."""
    path = tmp_path / "package.tar"
    with tarfile.open(path, "w") as tar:
        data = b"print('flow')\n"
        info = tarfile.TarInfo("flow.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for member in members:
            tar.addfile(member, io.BytesIO(b"") if member.isfile() else None)
    return str(path)


def test_a_digest_that_differs_is_refused_with_both_digests() -> None:
    data = b"the package"
    check_digest(data, hashlib.sha256(data).hexdigest(), "code package s3://b/code/x.tar.gz")
    expected = hashlib.sha256(b"what was uploaded").hexdigest()
    with pytest.raises(IntegrityError) as refused:
        check_digest(data, expected, "code package s3://b/code/x.tar.gz")
    assert str(refused.value) == (
        f"code package s3://b/code/x.tar.gz has SHA-256 {hashlib.sha256(data).hexdigest()}, "
        f"but the job was given {expected}: it was changed after upload, so none of it runs."
    )


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (_member("/etc/cron.d/job"), "has an absolute path"),
        (_member("../outside.py"), "climbs out of the code folder with '..'"),
        (_member("pkg/../../outside.py"), "climbs out of the code folder with '..'"),
        (_member("link", tarfile.SYMTYPE, "../../etc/passwd"), "is a link (to '../../etc/passwd')"),
        (_member("pkg/link", tarfile.SYMTYPE, "../.."), "is a link (to '../..')"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "is a link (to '/etc/passwd')"),
        (_member("hard", tarfile.LNKTYPE, "../secret"), "is a link (to '../secret')"),
        # Each link reads as inside; chained, they lead out (a -> code, a/up -> its parent).
        (_member("a", tarfile.SYMTYPE, "."), "is a link (to '.')"),
        (_member("same.py", tarfile.LNKTYPE, "flow.py"), "is a link (to 'flow.py')"),
        (_member("console", tarfile.CHRTYPE), "is a device file"),
        (_member("disk", tarfile.BLKTYPE), "is a device file"),
        (_member("pipe", tarfile.FIFOTYPE), "is a FIFO"),
    ],
    ids=lambda value: value.name if isinstance(value, tarfile.TarInfo) else "",
)
def test_unsafe_members_are_refused_before_anything_is_written(
    tmp_path: Path, python_tarfile: str, member: tarfile.TarInfo, problem: str
) -> None:
    archive = _archive(tmp_path, member)
    folder = tmp_path / "code"
    folder.mkdir()
    with pytest.raises(IntegrityError) as refused:
        safe_extract(archive, str(folder), "code package s3://b/code/x.tar.gz")
    assert str(refused.value).startswith(
        f"code package s3://b/code/x.tar.gz: member {member.name!r} {problem}"
    )
    assert list(folder.iterdir()) == []  # not even the safe flow.py before it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["code", "package.tar"]


def test_a_safe_package_unpacks(tmp_path: Path, python_tarfile: str) -> None:
    archive = _archive(tmp_path, _member("pkg/", tarfile.DIRTYPE), _member("pkg/empty.py"))
    folder = tmp_path / "code"
    folder.mkdir()
    safe_extract(archive, str(folder), "code package")
    assert (folder / "flow.py").read_text() == "print('flow')\n"
    assert (folder / "pkg" / "empty.py").read_text() == ""


def test_chained_links_never_lead_out(tmp_path: Path, python_tarfile: str) -> None:
    # a -> . (the code folder), a/up -> .. (read as code/a/.., really code/..), then a
    # file through up/: each name and target reads as inside, the file would land outside.
    archive = _archive(
        tmp_path,
        _member("a", tarfile.SYMTYPE, "."),
        _member("a/up", tarfile.SYMTYPE, ".."),
        _member("up/evil.txt"),
    )
    folder = tmp_path / "code"
    folder.mkdir()
    with pytest.raises(IntegrityError, match="member 'a' is a link"):
        safe_extract(archive, str(folder), "code package")
    assert not (tmp_path / "evil.txt").exists() and list(folder.iterdir()) == []


def test_a_corrupt_archive_is_refused_as_such(tmp_path: Path) -> None:
    archive = tmp_path / "package.tar"
    archive.write_bytes(b"not a tar archive at all" * 40)
    with pytest.raises(IntegrityError, match="code package: "):
        safe_extract(str(archive), str(tmp_path), "code package")


@given(st.lists(st.sampled_from(["a", "b", "..", ".", ""]), min_size=1, max_size=6))
def test_a_member_that_passes_lands_inside_the_folder(parts: list[str]) -> None:
    folder = os.path.realpath("/tmp/batchwright-code")
    name = "/".join(parts)
    for member in (_member(name), _member(name, tarfile.SYMTYPE, name)):
        if unsafe_member(member, folder):
            continue
        landing = os.path.normpath(os.path.join(folder, member.name))
        assert os.path.commonpath([folder, landing]) == folder
        if member.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(landing), member.linkname))
            assert os.path.commonpath([folder, target]) == folder
