"""A @batch step that reads a database password from Secrets Manager: ECS puts it in the
job's environment when the job starts (the emulator registers the reference but does not
resolve it)."""

import os

from batchwright import FlowSpec, Parameter, batch, step


class SecretFlow(FlowSpec):
    label = Parameter("label", default="", help="tells one test's runs apart")

    @step
    def start(self):
        self.next(self.connect)

    @batch(
        cpu=1,
        memory=512,
        secrets={"DB_PASSWORD": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"},
    )
    @step
    def connect(self):
        self.password_given = "DB_PASSWORD" in os.environ
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SecretFlow()
