from batchwright import FlowSpec, step


class FirstHourUndocumentedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FirstHourUndocumentedFlow()
