"""One step asking the small queue (c5.xlarge) for more memory than it has."""

from batchwright import FlowSpec, batch, step


class MemoryFlow(FlowSpec):
    """Refused before anything runs."""

    @step
    def start(self):
        """Would write a marker if it ever ran."""
        self.ran = True
        self.next(self.big)

    @batch(memory=8192, queue="small")
    @step
    def big(self):
        """8,192 MiB on a queue of c5.xlarge."""
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    MemoryFlow()
