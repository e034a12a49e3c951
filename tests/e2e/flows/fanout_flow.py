"""A foreach of Batch steps (one array job) that work for a while: long enough to be
interrupted, to lose the orchestrator, or to live through throttling and an outage.

With ``--gate s3://bucket/key`` each step also waits, after its ``--seconds``, until that
object exists: a test decides when the jobs may finish instead of guessing how long its
own checks take on a loaded machine."""

import time
from urllib.parse import urlparse

from batchwright import FlowSpec, Parameter, batch, step


class FanoutFlow(FlowSpec):
    seconds = Parameter("seconds", default=20, help="how long each Batch step works")
    width = Parameter("width", default=4, help="how many Batch steps")
    label = Parameter("label", default="", help="tells one test's runs apart")
    gate = Parameter("gate", default="", help="an S3 object each Batch step waits for")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @batch(cpu=1, memory=1024)
    @step
    def work(self):
        time.sleep(self.seconds)
        if self.gate:
            wait_for_object(self.gate, limit=900)
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("squares", self.squares)


def wait_for_object(url, limit):
    """Returns once the S3 object at ``url`` exists; fails after ``limit`` seconds."""
    import boto3

    s3, where = boto3.client("s3"), urlparse(url)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=where.netloc, Prefix=where.path.lstrip("/"))
        if listed.get("KeyCount"):
            return
        time.sleep(1)
    raise RuntimeError(f"{url} did not appear within {limit} s")


if __name__ == "__main__":
    FanoutFlow()
