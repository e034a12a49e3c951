"""A linear flow whose one @batch step reads an artifact of a local step and leaves one
for the next local step."""

from batchwright import FlowSpec, Parameter, batch, current, step


class CrossingFlow(FlowSpec):
    word = Parameter("word", default="hello")

    @step
    def start(self):
        self.greeting = f"{self.word} from local"
        self.next(self.shout)

    @batch(cpu=1, memory=1024)
    @step
    def shout(self):
        self.loud = self.greeting.upper()
        self.job_id = current.batch.job_id
        print(f"shouted {self.loud}")
        self.next(self.end)

    @step
    def end(self):
        self.echoed = f"{self.loud} and back"


if __name__ == "__main__":
    CrossingFlow()
