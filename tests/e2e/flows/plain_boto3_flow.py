"""A @batch step that calls AWS itself, the way step code does on AWS: a plain
boto3.client("s3"), no endpoint argument."""

from batchwright import FlowSpec, Parameter, batch, step


class PlainBoto3Flow(FlowSpec):
    bucket = Parameter("bucket", help="where the step writes")
    key = Parameter("key", help="the object the step writes")

    @step
    def start(self):
        self.next(self.write)

    @batch(cpu=1, memory=512)
    @step
    def write(self):
        import boto3

        boto3.client("s3").put_object(
            Bucket=self.bucket, Key=self.key, Body=f"boto3 {boto3.__version__}".encode()
        )
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PlainBoto3Flow()
