"""Cost allocation: tags on every job, propagated to the ECS tasks (and so to the bill).

batchwright adds its own ``batchwright:flow/run/step/task/attempt`` tags; yours come on
top (at most 50 in all, no ``aws:`` prefix). Resize without editing, key by key::

    python tagged_flow.py run --with batch:memory=2048
"""

from batchwright import FlowSpec, batch, step


class TaggedFlow(FlowSpec):
    """A step whose cost lands on a team and a project."""

    @step
    def start(self):
        self.rows = list(range(100))
        self.next(self.aggregate)

    @batch(cpu=1, memory=1024, aws_batch_tags={"cost-center": "ml-research", "project": "churn"})
    @step
    def aggregate(self):
        self.total = sum(self.rows)
        self.next(self.end)

    @step
    def end(self):
        print(f"total {self.total}")


if __name__ == "__main__":
    TaggedFlow()
