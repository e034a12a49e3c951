"""A Neuron step and a Fargate size between valid pairs."""

from batchwright import FlowSpec, batch, step


class RoutingFlow(FlowSpec):
    """Routed by accelerator and by platform."""

    @step
    def start(self):
        """Local."""
        self.next(self.neuron)

    @batch(inferentia=1)
    @step
    def neuron(self):
        """Needs a Neuron queue."""
        self.next(self.odd_fargate)

    @batch(cpu=1, memory=2500, ephemeral_storage=21)
    @step
    def odd_fargate(self):
        """1 vCPU / 2500 MiB is no Fargate size: rounded up to 1 vCPU / 3072 MiB."""
        self.next(self.end)

    @step
    def end(self):
        """Local."""


if __name__ == "__main__":
    RoutingFlow()
