"""The progress of a wide foreach as people see it: live on a terminal (a pseudo-terminal
here, its screen rendered by a terminal emulator), one line now and then in a log."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte

from ._support import REPO

WIDTH = 80
COLUMNS, ROWS = 120, 40

FLOW = f"""
import time

from batchwright import FlowSpec, step


class WideLocal(FlowSpec):
    @step
    def start(self):
        self.items = list(range({WIDTH}))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        time.sleep(0.05)
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    WideLocal()
"""

SUMMARY = re.compile(rf"\[WideLocal/\d+/work\] {WIDTH} tasks: (\d+) done")
PER_TASK = re.compile(r"work/\d+\] (started|finished)")


def _command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    flow = tmp_path / "wide_local.py"
    flow.write_text(FLOW)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI")}
    env.update(
        TERM="xterm-256color",
        PYTHONPATH=os.pathsep.join(str(REPO / p) for p in ("runtime", "localaws")),
        BATCHWRIGHT_DATASTORE_ROOT=str(tmp_path / "datastore"),
    )
    return [sys.executable, str(flow), "run", "--max-workers", "4"], env


def _run_in_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> list[bytes]:
    """Runs ``argv`` with a pseudo-terminal of COLUMNS x ROWS as its stdio; returns what
    it wrote, chunk by chunk as it arrived."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        process.wait(timeout=30)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return chunks


def test_on_a_terminal_the_summary_refreshes_in_place(tmp_path: Path) -> None:
    argv, env = _command(tmp_path)
    chunks = _run_in_terminal(argv, env, tmp_path)
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    seen_done: set[int] = set()
    most_at_once = 0
    for chunk in chunks:
        stream.feed(chunk)
        found = [int(m.group(1)) for line in screen.display if (m := SUMMARY.search(line))]
        seen_done.update(found)
        most_at_once = max(most_at_once, len(found))
    final = [line.rstrip() for line in screen.display if line.strip()]
    text = "\n".join(final)
    # While it ran, the summary counted the tasks done so far, in place: never more than
    # one copy of it on the screen (a scrolling display would leave one per refresh).
    assert any(0 < n < WIDTH for n in seen_done), text
    assert most_at_once == 1, text
    # What stays is the step's last state, once, and no line per task.
    assert [line for line in final if SUMMARY.search(line)] == [
        line for line in final if f"{WIDTH} tasks: {WIDTH} done" in line
    ], text
    assert len([line for line in final if SUMMARY.search(line)]) == 1, text
    assert not PER_TASK.search(text), text
    assert re.search(r"Run \d+ succeeded\.", text), text
    assert f"total {sum(range(WIDTH))}" in text


def test_in_a_log_the_summary_is_plain_lines(tmp_path: Path) -> None:
    argv, env = _command(tmp_path)
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "\x1b[" not in output  # no cursor movement, no colour
    summaries = [line for line in output.splitlines() if SUMMARY.search(line)]
    # When the step began and when it ended (it takes less than LOG_EVERY_SECONDS).
    assert [int(SUMMARY.search(line).group(1)) for line in summaries] == [0, WIDTH]  # type: ignore[union-attr]
    assert not PER_TASK.search(output), output
    assert len(output.splitlines()) < 20, output
