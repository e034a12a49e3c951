"""The batchwright job image: a recipe (``Dockerfile`` and pinned ``requirements.txt`` in
this directory) and the construct that builds it at ``cdk deploy``.

The image holds Python and boto3 and nothing else, so no job installs anything when it
starts. :class:`JobImage` is a CDK ``DockerImageAsset``: ``cdk synth`` only stages this
directory (no Docker needed), ``cdk deploy`` builds the image and pushes it to the
bootstrap ECR repository. The local AWS builds an equivalent image offline with the same
pinned requirements (:func:`pinned_requirements`).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

#: The directory holding the recipe.
RECIPE_DIRECTORY = Path(__file__).parent


def pinned_requirements() -> list[str]:
    """The ``name==version`` lines of the recipe's ``requirements.txt``."""
    text = (RECIPE_DIRECTORY / "requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


class JobImage(Construct):
    """The job image, built and pushed by ``cdk deploy`` (x86_64).

    Attributes:
        asset: The ``DockerImageAsset``.
        image_uri: Where the pushed image lives (a deploy-time value).
    """

    def __init__(self, scope: Construct, construct_id: str):
        super().__init__(scope, construct_id)
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(RECIPE_DIRECTORY),
            exclude=["__init__.py", "__pycache__"],
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.image_uri = self.asset.image_uri
