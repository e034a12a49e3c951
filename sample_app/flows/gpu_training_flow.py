"""GPU training: one NVIDIA GPU, data loaders with a large /dev/shm, retried on failure.

``python gpu_training_flow.py plan`` shows the GPU queue and the g5 sizes that fit.
Resize the training step for one run without touching the code, key by key::

    python gpu_training_flow.py run --with train/batch:gpu=4,memory=180000

``train/`` scopes the option to that step. Without it, ``--with batch:...`` applies to
every step: ``start`` and ``end`` would get ``@batch(gpu=4, memory=180000)`` too and
wait for GPU instances.
"""

from batchwright import FlowSpec, Parameter, batch, current, retry, step


class GpuTrainingFlow(FlowSpec):
    """Train on a GPU, evaluate locally."""

    epochs = Parameter("epochs", default=3, help="training epochs")

    @step
    def start(self):
        self.learning_rate = 0.01
        self.next(self.train)

    # PyTorch data loader workers share batches through /dev/shm: give it 8 GiB.
    @retry(times=1)
    @batch(gpu=1, cpu=4, memory=15000, shared_memory=8192)
    @step
    def train(self):
        """A stand-in for a training loop (the model is a number here)."""
        self.loss_curve = [1.0 / (epoch + 1) for epoch in range(self.epochs)]
        batch_info = getattr(current, "batch", None)
        self.trained_in = batch_info.job_id if batch_info else "local"
        self.next(self.end)

    @step
    def end(self):
        print(f"final loss {self.loss_curve[-1]:.3f} (trained in {self.trained_in})")


if __name__ == "__main__":
    GpuTrainingFlow()
