"""A run that fails mid-way, to be resumed.

Every step appends its name to the file named by ``--marker`` (a side effect the tests
use to prove that resume does not execute finished steps again). The ``fragile`` step
fails while the file named by ``--fail-flag`` exists.
"""

import os

from batchwright import FlowSpec, Parameter, step


class ResumeFlow(FlowSpec):
    """start -> foreach(work) -> collect -> fragile -> end."""

    marker = Parameter("marker", help="file each step appends its name to", required=True)
    fail_flag = Parameter("fail_flag", help="fragile fails while this file exists", required=True)

    def _mark(self, name):
        with open(self.marker, "a", encoding="utf-8") as out:
            out.write(name + "\n")

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
        """Fails while the flag file exists."""
        self._mark("fragile")
        if os.path.exists(self.fail_flag):
            raise RuntimeError("the flag file exists: failing on purpose")
        self.checked = self.total
        self.next(self.end)

    @step
    def end(self):
        """Done."""
        self._mark("end")


if __name__ == "__main__":
    ResumeFlow()
