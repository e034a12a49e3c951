"""Contract 1: the environment descriptor (constructs -> runtime).

A versioned JSON document describing one deployed (or synthesized) batchwright
environment. The construct library builds it with deploy-time tokens in place of ARNs
and publishes it as a stack output and an SSM parameter; the runtime parses it here.

Compactness matters (stack outputs and SSM parameters are size-limited), so compute
environments list instance type *names* only; their capacities come from the table
shipped with the package (:mod:`batchwright.environment.instances`). Types the table
does not know travel in the descriptor's ``instance_types`` section.

``DESCRIPTOR_SCHEMA`` (``descriptor.schema.json`` beside this module) is the JSON Schema
of version 1; :func:`EnvironmentDescriptor.from_dict` enforces the same rules without
needing a schema library, so job containers can parse descriptors with boto3 alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Literal, cast

# The platform vocabulary is AWS Batch's, shared with the job spec and the constructs.
from batchwright.batch.platforms import FARGATE_PLATFORMS, PLATFORMS, SPOT_PLATFORMS, Platform
from batchwright.environment.instances import InstanceCapacity, lookup
from batchwright.errors import DescriptorError

DESCRIPTOR_VERSION = 1
#: Stack output key (and SSM parameter suffix) under which the descriptor is published.
DESCRIPTOR_OUTPUT_KEY = "BatchwrightEnvironment"
#: Stack output key of the Metaflow profile JSON.
METAFLOW_PROFILE_OUTPUT_KEY = "BatchwrightMetaflowProfile"
#: Stack output key of the SSM parameter name that holds the descriptor.
DESCRIPTOR_PARAMETER_OUTPUT_KEY = "BatchwrightEnvironmentParameter"
#: The SSM path under which every environment publishes its descriptor, one parameter per
#: stack (:func:`descriptor_parameter_name`): one GetParametersByPath lists an account's
#: environments in a region.
DESCRIPTOR_PARAMETER_PATH = "/batchwright/environments"


def descriptor_parameter_name(stack_name: str) -> str:
    """The SSM parameter holding the descriptor of the environment in stack ``stack_name``."""
    return f"{DESCRIPTOR_PARAMETER_PATH}/{stack_name}"


#: The fix of a malformed descriptor.
_REDEPLOY = (
    "The descriptor is written by batchwright_cdk: redeploy the environment with it "
    "rather than editing the document, or point at another source (--environment, "
    "--outputs-file)."
)

Accelerator = Literal["none", "gpu", "neuron", "efa"]
ACCELERATORS: tuple[Accelerator, ...] = ("none", "gpu", "neuron", "efa")


def _schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("descriptor.schema.json").read_text()
    return cast(dict[str, Any], json.loads(text))


@dataclass(frozen=True)
class ComputeEnvironmentDescription:
    """One compute environment behind a queue, in the queue's order."""

    arn: str
    platform: Platform
    order: int
    max_vcpus: int
    instance_types: tuple[str, ...] = ()
    min_vcpus: int = 0
    accelerator: Accelerator = "none"
    #: Fargate only: whether its jobs need a public IP to reach AWS (public subnets without
    #: a NAT). False in private or isolated subnets, whose routes (NAT, VPC endpoints) need
    #: none. Documents older than the field say nothing, and keep the public IP.
    assign_public_ip: bool = True
    #: Whether its instances have EFA interfaces (one per network card): an EFA-only CPU
    #: environment (``accelerator`` "efa", which implies it) or GPU / Neuron instances
    #: with EFA. Documents older than the field say nothing: read as ``accelerator ==
    #: "efa"``.
    efa: bool = False

    def __post_init__(self) -> None:
        # Accelerator "efa" means EFA-only instances: the flag cannot say otherwise.
        if self.accelerator == "efa":
            object.__setattr__(self, "efa", True)

    @property
    def is_fargate(self) -> bool:
        """Whether this is a Fargate or Fargate Spot environment."""
        return self.platform in FARGATE_PLATFORMS


@dataclass(frozen=True)
class QueueDescription:
    """One job queue: what it is called, where it runs and what it can take."""

    key: str
    name: str
    arn: str
    platform: Platform
    compute_environments: tuple[ComputeEnvironmentDescription, ...]
    priority: int = 1
    #: Whether the queue can run multi-node parallel jobs: every compute environment is
    #: EC2 on-demand (not Spot, not Fargate) in private or isolated subnets. Documents
    #: older than this meaning set it for EFA queues only (a subset of the queues that can).
    multi_node: bool = False
    accelerator: Accelerator = "none"

    @property
    def max_vcpus(self) -> int:
        """The sum of the compute environments' max vCPUs."""
        return sum(ce.max_vcpus for ce in self.compute_environments)

    @property
    def is_fargate(self) -> bool:
        """Whether the queue runs on Fargate (all of its environments do)."""
        return self.platform in FARGATE_PLATFORMS

    @property
    def is_spot(self) -> bool:
        """Whether the queue's first choice is Spot capacity."""
        return self.platform in SPOT_PLATFORMS

    @property
    def efa(self) -> bool:
        """Whether every compute environment of the queue has EFA interfaces (so a job
        asking for EFA devices finds them wherever it lands)."""
        return all(ce.efa for ce in self.compute_environments)

    @property
    def assign_public_ip(self) -> bool:
        """Whether the queue's Fargate jobs get a public IP: when any of its Fargate
        compute environments needs one (a job may land in any of them). False for a queue
        without Fargate environments, where the setting does not exist."""
        return any(ce.assign_public_ip for ce in self.compute_environments if ce.is_fargate)


@dataclass(frozen=True)
class EnvironmentDescriptor:
    """Everything the runtime needs to run flows on one batchwright environment."""

    name: str
    region: str
    bucket: str
    prefix: str
    job_role_arn: str
    execution_role_arn: str
    log_group: str
    default_image: str
    queues: tuple[QueueDescription, ...]
    instance_types: dict[str, InstanceCapacity] = field(default_factory=dict)
    #: Flows deployed with the environment as Step Functions state machines
    #: (``FlowStateMachine`` in the environment's stack): flow name -> state machine ARN.
    flows: dict[str, str] = field(default_factory=dict)
    version: int = DESCRIPTOR_VERSION
    #: Where the document was read from (not part of the published document).
    source: str = field(default="", compare=False)

    def queue(self, name_or_arn_or_key: str) -> QueueDescription | None:
        """The queue with this key, name or ARN, if the environment has it."""
        for q in self.queues:
            if name_or_arn_or_key in (q.key, q.name, q.arn):
                return q
        return None

    def capacity(self, instance_type: str) -> InstanceCapacity | None:
        """Capacity of a type named by this environment: its own section first, then the
        shipped table."""
        return self.instance_types.get(instance_type) or lookup(instance_type)

    @property
    def datastore_root(self) -> str:
        """The S3 URL of the datastore root (``s3://bucket/prefix``)."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # --- serialization -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the published document)."""
        doc: dict[str, Any] = {
            "version": self.version,
            "name": self.name,
            "region": self.region,
            "datastore": {"bucket": self.bucket, "prefix": self.prefix},
            "job_role_arn": self.job_role_arn,
            "execution_role_arn": self.execution_role_arn,
            "log_group": self.log_group,
            "default_image": self.default_image,
            "queues": [
                {
                    "key": q.key,
                    "name": q.name,
                    "arn": q.arn,
                    "platform": q.platform,
                    "priority": q.priority,
                    "multi_node": q.multi_node,
                    "accelerator": q.accelerator,
                    "compute_environments": [
                        {
                            "arn": ce.arn,
                            "platform": ce.platform,
                            "order": ce.order,
                            "min_vcpus": ce.min_vcpus,
                            "max_vcpus": ce.max_vcpus,
                            "accelerator": ce.accelerator,
                            "instance_types": list(ce.instance_types),
                            "assign_public_ip": ce.assign_public_ip,
                            "efa": ce.efa,
                        }
                        for ce in q.compute_environments
                    ],
                }
                for q in self.queues
            ],
        }
        if self.flows:
            doc["flows"] = dict(self.flows)
        if self.instance_types:
            doc["instance_types"] = {
                name: {k: v for k, v in asdict(c).items() if k != "name"}
                for name, c in self.instance_types.items()
            }
        return doc

    def to_json(self, *, indent: int | None = None) -> str:
        """The published JSON text (compact unless ``indent`` is given)."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, separators=separators, sort_keys=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "descriptor") -> EnvironmentDescriptor:
        """Parses a published document; ``source`` names where it came from in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DescriptorError(f"{source} is not valid JSON ({e}). {_REDEPLOY}") from e
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "descriptor") -> EnvironmentDescriptor:
        """Parses and checks the JSON form against version 1 of the contract."""
        r = _Reader(source)
        doc = r.obj(data, "")
        version = r.int_(doc, "version")
        if version != DESCRIPTOR_VERSION:
            raise DescriptorError(
                f"{source} has version {version}; this batchwright reads version "
                f"{DESCRIPTOR_VERSION}. Upgrade batchwright or redeploy the environment "
                "with a matching batchwright_cdk."
            )
        store = r.obj(doc.get("datastore"), "datastore")
        queues = []
        for i, qd in enumerate(r.list_(doc, "queues")):
            q = r.obj(qd, f"queues[{i}]")
            ces = []
            for j, cd in enumerate(r.list_(q, "compute_environments", f"queues[{i}]")):
                where = f"queues[{i}].compute_environments[{j}]"
                c = r.obj(cd, where)
                accelerator = r.accelerator(c, where)
                ces.append(
                    ComputeEnvironmentDescription(
                        arn=r.str_(c, "arn", where),
                        platform=r.platform(c, where),
                        order=r.int_(c, "order", where),
                        max_vcpus=r.int_(c, "max_vcpus", where),
                        min_vcpus=r.int_(c, "min_vcpus", where, default=0),
                        accelerator=accelerator,
                        instance_types=tuple(
                            r.str_list(c.get("instance_types", []), f"{where}.instance_types")
                        ),
                        # Absent from documents older than the field: today's behaviour.
                        assign_public_ip=r.bool_(c, "assign_public_ip", where, default=True),
                        # Absent from documents older than the field: only EFA-only
                        # environments had EFA interfaces then.
                        efa=r.bool_(c, "efa", where, default=accelerator == "efa"),
                    )
                )
            if not 1 <= len(ces) <= 3:
                raise DescriptorError(
                    f"{source}: queues[{i}] has {len(ces)} compute environments; "
                    "a queue has 1 to 3."
                )
            queues.append(
                QueueDescription(
                    key=r.str_(q, "key", f"queues[{i}]"),
                    name=r.str_(q, "name", f"queues[{i}]"),
                    arn=r.str_(q, "arn", f"queues[{i}]"),
                    platform=r.platform(q, f"queues[{i}]"),
                    priority=r.int_(q, "priority", f"queues[{i}]", default=1),
                    multi_node=bool(q.get("multi_node", False)),
                    accelerator=r.accelerator(q, f"queues[{i}]"),
                    compute_environments=tuple(sorted(ces, key=lambda ce: ce.order)),
                )
            )
        extra: dict[str, InstanceCapacity] = {}
        for name, cd in r.obj(doc.get("instance_types", {}), "instance_types").items():
            c = r.obj(cd, f"instance_types.{name}")
            try:
                extra[name] = InstanceCapacity(name=name, **c)
            except TypeError as e:
                raise DescriptorError(f"{source}: instance_types.{name}: {e}") from e
        flows = r.obj(doc.get("flows", {}), "flows")
        for flow, arn in flows.items():
            if not isinstance(arn, str) or not arn:
                raise DescriptorError(
                    f"{source}: flows.{flow} must be a state machine ARN, got {arn!r}. {_REDEPLOY}"
                )
        return cls(
            version=version,
            name=r.str_(doc, "name"),
            region=r.str_(doc, "region"),
            bucket=r.str_(store, "bucket", "datastore"),
            prefix=r.str_(store, "prefix", "datastore", allow_empty=True),
            job_role_arn=r.str_(doc, "job_role_arn"),
            execution_role_arn=r.str_(doc, "execution_role_arn"),
            log_group=r.str_(doc, "log_group"),
            default_image=r.str_(doc, "default_image"),
            queues=tuple(queues),
            instance_types=extra,
            # Absent from documents older than the field: no deployed flows.
            flows=dict(flows),
            source=source,
        )


#: The JSON Schema of version 1 of the descriptor.
DESCRIPTOR_SCHEMA: dict[str, Any] = _schema()


class _Reader:
    """Small typed accessors that turn shape errors into DescriptorErrors naming the path."""

    def __init__(self, source: str):
        self.source = source

    def _fail(self, where: str, what: str) -> DescriptorError:
        path = where or "document"
        return DescriptorError(f"{self.source}: {path} {what}. {_REDEPLOY}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._fail(where, "must be a JSON object")
        return value

    def list_(self, d: dict[str, Any], key: str, where: str = "") -> list[Any]:
        value = d.get(key)
        if not isinstance(value, list):
            raise self._fail(f"{where}.{key}".lstrip("."), "must be a list")
        return value

    def str_list(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(where, "must be a list of strings")
        return value

    def str_(self, d: dict[str, Any], key: str, where: str = "", allow_empty: bool = False) -> str:
        value = d.get(key)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self._fail(f"{where}.{key}".lstrip("."), "must be a non-empty string")
        return value

    def int_(self, d: dict[str, Any], key: str, where: str = "", default: int | None = None) -> int:
        value = d.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(f"{where}.{key}".lstrip("."), "must be an integer")
        return value

    def bool_(self, d: dict[str, Any], key: str, where: str = "", default: bool = False) -> bool:
        value = d.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(f"{where}.{key}".lstrip("."), "must be true or false")
        return value

    def platform(self, d: dict[str, Any], where: str) -> Platform:
        value = d.get("platform")
        if value not in PLATFORMS:
            raise self._fail(f"{where}.platform", f"must be one of {', '.join(PLATFORMS)}")
        return cast(Platform, value)

    def accelerator(self, d: dict[str, Any], where: str) -> Accelerator:
        value = d.get("accelerator", "none")
        if value not in ACCELERATORS:
            raise self._fail(f"{where}.accelerator", f"must be one of {', '.join(ACCELERATORS)}")
        return cast(Accelerator, value)
