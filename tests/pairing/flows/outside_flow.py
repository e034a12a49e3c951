"""A step sent to a queue that is not part of any environment."""

from batchwright import FlowSpec, batch, step


class OutsideFlow(FlowSpec):
    """The queue's platform is only known from AWS."""

    @step
    def start(self):
        """Local."""
        self.next(self.elsewhere)

    @batch(queue="outside-queue", ephemeral_storage=30)
    @step
    def elsewhere(self):
        """ephemeral_storage: fine on Fargate, refused on EC2."""
        self.next(self.end)

    @step
    def end(self):
        """Local."""


if __name__ == "__main__":
    OutsideFlow()
