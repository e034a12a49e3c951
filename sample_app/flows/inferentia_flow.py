"""Inference on AWS Inferentia: ``inferentia=N`` maps /dev/neuron0..N-1 into the job and
routes the step to the Neuron queue (``trainium=N`` is the same for Trainium)."""

from batchwright import FlowSpec, batch, step


class InferentiaFlow(FlowSpec):
    """Compile once, then serve a batch of requests on one Neuron device."""

    @step
    def start(self):
        self.requests = [f"request {i}" for i in range(8)]
        self.next(self.infer)

    @batch(inferentia=1, cpu=4, memory=7000)
    @step
    def infer(self):
        self.answers = [text.upper() for text in self.requests]
        self.next(self.end)

    @step
    def end(self):
        print(f"{len(self.answers)} answers")


if __name__ == "__main__":
    InferentiaFlow()
