"""A @batch step that fails until a marker file exists: the resume hint's test flow."""

import os
from pathlib import Path

from batchwright import FlowSpec, Parameter, batch, step


class FirstHourFailingFlow(FlowSpec):
    """Fails in 'train' the first time; a resume after the marker exists finishes."""

    size = Parameter("size", default=3, help="how many items to count")

    @step
    def start(self):
        """Counts the items (reused by the resume)."""
        self.items = list(range(self.size))
        self.next(self.train)

    @batch(cpu=1, memory=512)
    @step
    def train(self):
        """Fails unless $FIRST_HOUR_MARKER names an existing file."""
        if not Path(os.environ["FIRST_HOUR_MARKER"]).exists():
            raise RuntimeError("the marker is missing")
        self.total = sum(self.items)
        self.next(self.end)

    @step
    def end(self):
        """Prints the total."""
        print(f"total={self.total}")


if __name__ == "__main__":
    FirstHourFailingFlow()
