"""The code package: deterministic, content-addressed, holding the flow and the runtime."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from batchwright import codepackage
from batchwright.errors import UserInputError


def _names(package: codepackage.CodePackage) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(package.data)) as archive:
        return archive.getnames()


def _flow_dir(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text("print('flow')\n")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "util.py").write_text("VALUE = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "flow.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".batchwright").mkdir()
    (tmp_path / ".batchwright" / "artifact").write_bytes(b"data")
    return tmp_path


def test_same_sources_give_the_same_bytes(tmp_path: Path) -> None:
    folder = _flow_dir(tmp_path)
    first = codepackage.build(folder)
    os.utime(folder / "flow.py", (1, 1))  # timestamps do not matter
    second = codepackage.build(folder)
    assert first.data == second.data
    assert first.key == f"code/{first.sha256}.tar.gz"
    (folder / "flow.py").write_text("print('changed')\n")
    assert codepackage.build(folder).sha256 != first.sha256


def test_holds_the_flow_and_the_runtime_but_no_caches(tmp_path: Path) -> None:
    names = _names(codepackage.build(_flow_dir(tmp_path)))
    assert "flow.py" in names and "helpers/util.py" in names
    assert "batchwright/task.py" in names
    assert "batchwright/environment/instance_types.csv" in names
    assert not any("__pycache__" in n or n.startswith(".batchwright") for n in names)


def test_a_flow_directory_full_of_data_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _flow_dir(tmp_path)
    (folder / "big.bin").write_bytes(b"x" * 6 * 2**20)
    monkeypatch.setattr(codepackage, "MAX_PACKAGE_BYTES", 5 * 2**20)
    with pytest.raises(UserInputError, match=r"largest file big\.bin"):
        codepackage.build(folder)


def test_ships_the_runtime_without_the_local_aws(tmp_path: Path) -> None:
    # The local AWS is a development tool in its own package: no job container needs it.
    names = _names(codepackage.build(_flow_dir(tmp_path)))
    assert "batchwright/task.py" in names
    assert not any(n.startswith(("batchwright_localaws", "batchwright/localaws")) for n in names)
    assert [n for n in names if "localaws" in n] == []  # nor batchwright/cli/localaws.py
