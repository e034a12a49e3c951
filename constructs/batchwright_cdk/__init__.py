"""batchwright_cdk: CDK constructs for a complete AWS Batch environment that publishes a
machine-readable description of itself for the batchwright runtime."""

from __future__ import annotations

__all__: list[str] = []
