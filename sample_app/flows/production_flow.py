"""A flow made for production: deployed as a Step Functions state machine by
``sample_app/production_app.py`` and run by EventBridge Scheduler every day at 00:00 UTC.

A Parameter (``--scale`` on the command line, ``{"Parameters": {"scale": "2"}}`` as an
execution's input), a branch (a Parallel state), a foreach (one AWS Batch array job) and
a @retry (the state's Retry). Runs as well with ``python production_flow.py run``.
"""

from batchwright import FlowSpec, Parameter, batch, retry, schedule, step


@schedule(daily=True)
class DailyReportFlow(FlowSpec):
    scale = Parameter("scale", type=int, default=1, help="multiplies every region's total")

    @batch(cpu=1, memory=1024)
    @step
    def start(self):
        self.regions = ["emea", "amer", "apac"]
        self.next(self.load_orders, self.load_prices)

    @retry(times=2, minutes_between_retries=1)
    @batch(cpu=1, memory=1024)
    @step
    def load_orders(self):
        self.orders = {region: 10 * (i + 1) for i, region in enumerate(self.regions)}
        self.next(self.join_sources)

    @retry(times=2, minutes_between_retries=1)
    @batch(cpu=1, memory=1024)
    @step
    def load_prices(self):
        self.price = 3
        self.next(self.join_sources)

    @batch(cpu=1, memory=1024)
    @step
    def join_sources(self, inputs):
        self.orders = inputs.load_orders.orders
        self.price = inputs.load_prices.price
        self.regions = inputs.load_orders.regions
        self.next(self.region_total, foreach="regions")

    @batch(cpu=2, memory=4096)
    @step
    def region_total(self):
        self.region = self.input
        self.total = self.orders[self.region] * self.price * self.scale
        self.next(self.report)

    @batch(cpu=1, memory=1024)
    @step
    def report(self, inputs):
        self.totals = {i.region: i.total for i in inputs}
        self.next(self.end)

    @batch(cpu=1, memory=1024)
    @step
    def end(self):
        print(self.totals)


if __name__ == "__main__":
    DailyReportFlow()
