"""The pairing: @batch steps routed to the sample environment's queues, no configuration.

Nothing here names a queue, role, bucket or image. ``python pairing_flow.py plan`` shows
where each step goes (from ``cdk.out`` alone before deploying); ``run`` finds the
environment (the ``batchwright:defaultEnvironment`` of ``cdk.json``), and
``run --run-batch-locally`` runs the @batch steps on this machine after planning them.

- ``featurize``: a plain CPU request -> the on-demand CPU queue;
- ``train``: ``@retry`` -> the Spot queue (a reclaimed instance costs a retry, not a run);
- ``export``: ``ephemeral_storage`` exists on Fargate only -> the Fargate queue;
- ``score``: one GPU -> the GPU queue.

Artifacts flow local -> Batch -> Batch -> local.
"""

from batchwright import FlowSpec, batch, current, retry, step


class PairingFlow(FlowSpec):
    """A small pipeline whose middle runs on AWS Batch."""

    @step
    def start(self):
        """Make the raw data locally."""
        self.rows = list(range(1, 11))
        self.next(self.featurize)

    @batch(cpu=2, memory=4096)
    @step
    def featurize(self):
        """Square every row (CPU, on demand)."""
        self.features = [r * r for r in self.rows]
        self.featurize_job = current.batch.job_id if getattr(current, "batch", None) else None
        self.next(self.train)

    @retry(times=2, minutes_between_retries=0)
    @batch(cpu=2, memory=4096)
    @step
    def train(self):
        """Fit a trivial model; safe to retry, so Spot is fine."""
        self.weight = sum(self.features) / len(self.features)
        self.next(self.export)

    @batch(cpu=1, memory=2048, ephemeral_storage=30)
    @step
    def export(self):
        """Write the model to scratch space (Fargate's ephemeral storage)."""
        import os
        import tempfile

        path = os.path.join(tempfile.gettempdir(), "model.txt")
        with open(path, "w", encoding="utf-8") as out:
            out.write(str(self.weight))
        self.model_bytes = os.path.getsize(path)
        self.next(self.score)

    @batch(gpu=1, memory=8192)
    @step
    def score(self):
        """Score the rows with the model (a GPU step)."""
        self.scores = [self.weight * r for r in self.rows]
        self.next(self.end)

    @step
    def end(self):
        """Report locally."""
        print(f"weight={self.weight:g} model_bytes={self.model_bytes} top={max(self.scores):g}")


if __name__ == "__main__":
    PairingFlow()
