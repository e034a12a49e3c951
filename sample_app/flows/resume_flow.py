"""A run that fails mid-way, to be resumed.

Every task appends its name (``start``, ``work1``..``work3``, ``collect``, ``fragile``,
``end``) to the file named by ``--marker``: a side effect the tests use to prove that
resume does not execute finished tasks again. The task whose name is written in the file
named by ``--fail_flag`` fails while that file exists.
"""

import os

from batchwright import FlowSpec, Parameter, step


class ResumeFlow(FlowSpec):
    """start -> foreach(work) -> collect -> fragile -> end."""

    marker = Parameter("marker", help="file each step appends its name to", required=True)
    fail_flag = Parameter("fail_flag", help="names the task that fails", required=True)

    def _mark(self, name):
        with open(self.marker, "a", encoding="utf-8") as out:
            out.write(name + "\n")
        if os.path.exists(self.fail_flag):
            with open(self.fail_flag, encoding="utf-8") as flag:
                if flag.read().strip() == name:
                    raise RuntimeError(f"{name} fails while {self.fail_flag} names it")

    @step
    def start(self):
        """Three items."""
        self._mark("start")
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        """Triple each item."""
        self._mark(f"work{self.input}")
        self.tripled = self.input * 3
        self.next(self.collect)

    @step
    def collect(self, inputs):
        """Sum the results."""
        self._mark("collect")
        self.total = sum(i.tripled for i in inputs)
        self.next(self.fragile)

    @step
    def fragile(self):
        """Fails when the flag file names it."""
        self._mark("fragile")
        self.checked = self.total
        self.next(self.end)

    @step
    def end(self):
        """Done."""
        self._mark("end")


if __name__ == "__main__":
    ResumeFlow()
