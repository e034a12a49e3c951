"""Static branches joined again: start -> (left, right) -> join -> end."""

from batchwright import FlowSpec, step


class BranchJoinFlow(FlowSpec):
    """Two branches compute different things; the join combines them."""

    @step
    def start(self):
        """Shared input for both branches."""
        self.base = 10
        self.next(self.left, self.right)

    @step
    def left(self):
        """Double the base."""
        self.value = self.base * 2
        self.side = "left"
        self.next(self.join)

    @step
    def right(self):
        """Add one to the base."""
        self.value = self.base + 1
        self.next(self.join)

    @step
    def join(self, inputs):
        """Combine both values; keep the artifacts the branches agree on."""
        self.values = {"left": inputs.left.value, "right": inputs.right.value}
        self.total = sum(i.value for i in inputs)
        self.merge_artifacts(inputs, exclude=["value"])
        self.next(self.end)

    @step
    def end(self):
        """Nothing left to do."""
        self.summary = f"{self.base}: {self.total}"


if __name__ == "__main__":
    BranchJoinFlow()
