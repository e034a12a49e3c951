"""The one place where batchwright writes to the terminal.

Library code never prints: it returns values, raises errors or emits events, and the CLI
shows them through a :class:`Console`. Colour is used only on a terminal and when
``NO_COLOR`` is unset. On a terminal, :meth:`Console.live` keeps a few lines refreshed in
place below the others (``rich``'s live display: the orchestrator side only, job
containers never import this module).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, TextIO

_STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


class Console:
    """Line-oriented terminal output, safe to call from several threads."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()
        tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.color = tty and "NO_COLOR" not in os.environ
        #: Whether :meth:`live` refreshes lines in place (a terminal, not a log or CI).
        self.live_capable = tty and os.environ.get("TERM") != "dumb"
        self._live: Any = None

    def live(self, lines: list[str]) -> None:
        """Shows ``lines`` refreshed in place below the other output (terminal only);
        an empty list ends the live region."""
        if not self.live_capable:
            return
        with self._lock:
            if not lines:
                if self._live is not None:
                    self._live.stop()
                    self._live = None
                return
            from rich.console import Console as RichConsole
            from rich.live import Live
            from rich.text import Text

            if self._live is None:
                self._live = Live(
                    console=RichConsole(file=self.out), auto_refresh=False, transient=True
                )
                self._live.start()
            self._live.update(Text("\n".join(lines)), refresh=True)

    def _write(self, stream: TextIO, text: str) -> None:
        # Above the live region when there is one, so it stays the last thing shown.
        if self._live is not None and stream is self.out:
            self._live.console.print(text, markup=False, highlight=False, end="", soft_wrap=True)
        else:
            stream.write(text)
            stream.flush()

    def style(self, text: str, *styles: str) -> str:
        """``text`` wrapped in ANSI styles when colour is on."""
        if not self.color or not styles:
            return text
        codes = ";".join(_STYLES[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"

    def line(self, text: str = "") -> None:
        """One line on standard output."""
        with self._lock:
            self._write(self.out, text + "\n")

    def info(self, text: str) -> None:
        """A status line."""
        self.line(text)

    def notice(self, text: str) -> None:
        """Something the user should know but that is not a problem."""
        self.line(self.style("note: ", "cyan") + text)

    def warn(self, text: str) -> None:
        """A warning on standard error."""
        with self._lock:
            self.err.write(self.style("warning: ", "yellow", "bold") + text + "\n")
            self.err.flush()

    def error(self, text: str) -> None:
        """An error on standard error (one paragraph, no traceback)."""
        with self._lock:
            self.err.write(self.style("error: ", "red", "bold") + text + "\n")
            self.err.flush()

    def task_output(self, pathspec: str, text: str, *, stream: str = "stdout") -> None:
        """Lines a task printed, each prefixed by the task's pathspec."""
        prefix = self.style(f"[{pathspec}]", "dim" if stream == "stdout" else "magenta")
        with self._lock:
            self._write(self.out, "".join(f"{prefix} {piece}\n" for piece in text.splitlines()))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """A plain aligned table."""
        widths = [len(h) for h in header]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        self.line(self.style(fmt.format(*header), "bold"))
        for row in rows:
            self.line(fmt.format(*row))
