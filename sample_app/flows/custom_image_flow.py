"""A step in a container image of your own: the image needs Python (and boto3, which the
job installs with pip when it is missing); batchwright ships the flow's code with it."""

from batchwright import FlowSpec, batch, step


class CustomImageFlow(FlowSpec):
    """Run one step in a pinned Python 3.12 image."""

    @step
    def start(self):
        self.next(self.crunch)

    @batch(image="public.ecr.aws/docker/library/python:3.12-slim", cpu=2, memory=4096)
    @step
    def crunch(self):
        import sys

        self.python = sys.version.split()[0]
        self.next(self.end)

    @step
    def end(self):
        print(f"crunched on Python {self.python}")


if __name__ == "__main__":
    CustomImageFlow()
