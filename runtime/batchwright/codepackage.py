"""The code package: what a Batch container needs of the flow and of batchwright.

A package is a gzip'd tar whose root holds the flow's directory (so the flow imports its
neighbour modules as it does locally) and the ``batchwright`` runtime itself (so a stock
image with Python and boto3 runs tasks). It is built deterministically — sorted entries,
fixed timestamps, owners and modes — so the same sources give the same bytes, and it is
stored content-addressed under ``<datastore root>/code/<sha256>.tar.gz``, uploaded only
when absent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batchwright.errors import UserInputError

#: The folder of the datastore, under its root, that holds what jobs run: code packages
#: (``code/<sha256>.tar.gz``) and offloaded command payloads (``code/payloads/``). Only
#: the submitter may write it; the job role may read it (``batchwright_cdk`` denies the
#: job role every write there), and every job checks what it fetches from it.
CODE_FOLDER = "code"

#: Directories never packed: caches, virtual environments, datastores, build output.
EXCLUDED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "node_modules",
        "cdk.out",
        ".batchwright",
        ".localaws",
        "build",
        "dist",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
#: A flow directory larger than this is almost certainly data, not code.
MAX_PACKAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CodePackage:
    """The bytes of one package and their content address."""

    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        """The datastore-relative key of this package."""
        return f"{CODE_FOLDER}/{self.sha256}.tar.gz"


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_symlink():
            continue
        if path.is_dir():
            if path.name not in EXCLUDED_DIRECTORIES and not path.name.endswith(".egg-info"):
                yield from _files(path)
        elif path.is_file() and not path.name.endswith(EXCLUDED_SUFFIXES):
            yield path


def _add(archive: tarfile.TarFile, path: Path, name: str) -> None:
    data = path.read_bytes()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def build(flow_directory: Path) -> CodePackage:
    """Packs ``flow_directory`` and the batchwright runtime into one deterministic archive."""
    # This module sits at the root of the runtime package it packs.
    runtime_root = Path(__file__).resolve().parent
    flow_directory = flow_directory.resolve()
    entries: dict[str, Path] = {}
    for path in _files(flow_directory):
        relative = path.relative_to(flow_directory).as_posix()
        if relative.split("/", 1)[0] == "batchwright":
            continue  # the runtime below is the one that runs
        entries[relative] = path
    for path in _files(runtime_root):
        entries["batchwright/" + path.relative_to(runtime_root).as_posix()] = path
    total = sum(p.stat().st_size for p in entries.values())
    if total > MAX_PACKAGE_BYTES:
        biggest = max(entries.items(), key=lambda item: item[1].stat().st_size)
        raise UserInputError(
            f"the code package of {flow_directory} would hold {total // 2**20} MiB "
            f"(limit {MAX_PACKAGE_BYTES // 2**20} MiB; largest file {biggest[0]}). Move data "
            "out of the flow's directory (read it from S3 or pass it with IncludeFile)."
        )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(entries):
            _add(archive, entries[name], name)
    compressed = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    return CodePackage(compressed, hashlib.sha256(compressed).hexdigest())
