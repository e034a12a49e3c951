"""batchwright: Metaflow-style flows whose heavy steps run on AWS Batch environments
built by the batchwright CDK constructs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
