"""Steps that can never run on the sample environment, one reason each."""

from batchwright import FlowSpec, batch, step


class RefusalFlow(FlowSpec):
    """Every middle step is refused by the plan."""

    @step
    def start(self):
        """Fine."""
        self.next(self.too_much_memory)

    @batch(memory=8192, queue="small")
    @step
    def too_much_memory(self):
        """8,192 MiB never fits a c5.xlarge after the ECS reserve."""
        self.next(self.too_many_gpus)

    @batch(gpu=16)
    @step
    def too_many_gpus(self):
        """No instance of the GPU queue has 16 GPUs."""
        self.next(self.neuron_on_gpu_queue)

    @batch(inferentia=1, queue="gpu")
    @step
    def neuron_on_gpu_queue(self):
        """The GPU queue has no Neuron devices."""
        self.next(self.efa_on_spot)

    @batch(efa=1, queue="spot")
    @step
    def efa_on_spot(self):
        """EFA runs on on-demand EC2 only."""
        self.next(self.fargate_too_big)

    @batch(cpu=16, memory=131072, ephemeral_storage=50)
    @step
    def fargate_too_big(self):
        """Beyond Fargate's largest size (16 vCPU / 120 GiB)."""
        self.next(self.storage_on_ec2)

    @batch(ephemeral_storage=30, queue="cpu")
    @step
    def storage_on_ec2(self):
        """ephemeral_storage exists on Fargate only."""
        self.next(self.end)

    @step
    def end(self):
        """Fine."""


if __name__ == "__main__":
    RefusalFlow()
