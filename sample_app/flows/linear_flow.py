"""A linear flow: start -> transform -> end."""

from batchwright import FlowSpec, current, step


class LinearFlow(FlowSpec):
    """Three steps in a row, each reading what the previous one stored."""

    @step
    def start(self):
        """Make the data."""
        self.numbers = [1, 2, 3]
        print("starting", current.pathspec)
        self.next(self.transform)

    @step
    def transform(self):
        """Square every number."""
        self.squares = [n * n for n in self.numbers]
        self.next(self.end)

    @step
    def end(self):
        """Sum up."""
        self.total = sum(self.squares)
        print("total", self.total)


if __name__ == "__main__":
    LinearFlow()
