"""A CDK app taking a flow to production: a batchwright environment and the sample flow
``flows/production_flow.py`` deployed onto it as a Step Functions state machine.

``cdk synth --app "python sample_app/production_app.py"`` (from the repository root, the
flow's path is relative to it) needs no AWS account. ``cdk deploy`` deploys both; the
stack outputs ``BatchwrightFlowDailyReportFlowStateMachineArn`` and ``...Name`` say where
the flow went. The existing ``app.py`` is left as it is: this app has only the sample's
small on-demand queue and its own stack name.
"""

from __future__ import annotations

import os

import aws_cdk as cdk

from batchwright_cdk import BatchEnvironmentStack, FlowStateMachine, QueueSpec

#: The stack name (an environment of its own, so it never collides with app.py's).
STACK_NAME = "BatchwrightProduction"
#: The flow file, relative to the directory the CDK app runs in (the repository root).
FLOW_FILE = os.path.join("sample_app", "flows", "production_flow.py")
#: The sample app's small on-demand queue (``SAMPLE_QUEUES`` of ``app.py``), alone.
PRODUCTION_QUEUES = [QueueSpec.on_demand("small", instance_types=["c5.xlarge"], max_vcpus=16)]


def build_app(app: cdk.App | None = None) -> cdk.App:
    """The app with its one stack (tests synthesize it through this function)."""
    app = app or cdk.App()
    region = os.environ.get("CDK_DEFAULT_REGION") or "us-east-1"
    stack = BatchEnvironmentStack(
        app,
        STACK_NAME,
        queues=PRODUCTION_QUEUES,
        env=cdk.Environment(region=region),
        description="batchwright: an AWS Batch environment and a flow deployed onto it",
    )
    FlowStateMachine(
        stack,
        "DailyReport",
        environment=stack.batch_environment,
        flow=FLOW_FILE,
        tags=["sample:production"],
    )
    return app


if __name__ == "__main__":
    build_app().synth()
