"""A deployed flow that runs by itself every day at 06:30 Berlin time; one step runs
without @batch (a deployment promotes it to AWS Batch), the other has a @timeout (a job
definition of its own)."""

from batchwright import FlowSpec, batch, schedule, step, timeout


@schedule(cron="30 6 * * ? *", timezone="Europe/Berlin")
class ScheduledFlow(FlowSpec):
    @step
    def start(self):
        self.greeting = "good morning"
        self.next(self.end)

    @timeout(minutes=10)
    @batch(cpu=1, memory=512)
    @step
    def end(self):
        print(self.greeting)


if __name__ == "__main__":
    ScheduledFlow()
