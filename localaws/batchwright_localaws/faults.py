"""A fault-injecting HTTP proxy between batchwright and the local AWS.

Real AWS throttles, fails with 5xx, resets connections, is eventually consistent, keeps
jobs waiting with capacity reasons and reclaims Spot instances; the moto server does none
of that. :class:`FaultProxy` sits on loopback between the orchestrator (whose
``AWS_ENDPOINT_URL`` points at :attr:`FaultProxy.endpoint`) and the moto server, forwards
every request unchanged, and injects those faults on demand. Job containers keep talking
to moto directly.

moto serves every service on one port, so the proxy tells them apart the way moto does:
by the SigV4 credential scope (``Credential=<key>/<date>/<region>/<service>/aws4_request``),
falling back to the request's shape (``POST /v1/<operation>`` is Batch, an
``X-Amz-Target`` header is an awsJson service, a form body with ``Action=`` is a query
service, anything else is S3). Only Batch, CloudWatch Logs and S3 can be given errors;
everything else passes through untouched (an outage still resets it).

Faults the proxy cannot fake: it only sees requests that go through it, so a job
container's own calls to moto never fail, and a SubmitJob that another client made is never
hidden. A reclaimed job's container really is killed (moto records exit code 137 and
FAILED); moto's own view keeps that exit code, the proxy's answers drop it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

#: Error kinds :meth:`FaultProxy.set_error_rate` can inject.
KINDS: Final = ("throttle", "500", "503", "reset")
#: Services :meth:`FaultProxy.set_error_rate` can give errors to.
SERVICES: Final = ("batch", "logs", "s3")
#: How long a reclaim keeps looking for the job's container (moto starts it a moment
#: after it reports the job RUNNING).
KILL_DEADLINE_SECONDS: Final = 60.0
#: Timeout of one forwarded request to the upstream.
UPSTREAM_TIMEOUT_SECONDS: Final = 300.0
#: Reason of a reclaimed EC2 Spot job; ``{instance}`` is a made-up ``i-<17 hex>`` id.
EC2_RECLAIM_REASON: Final = "Host EC2 (instance {instance}) terminated."
#: Reason of a reclaimed Fargate Spot job.
FARGATE_RECLAIM_REASON: Final = "Your Spot Task was interrupted."

_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    ]
)
_SCOPE = re.compile(r"Credential=[^/\s,]+/\d{8}/[^/\s,]+/([^/\s,]+)/aws4_request")
#: awsJson target prefixes that do not spell their signing name.
_TARGET_SERVICES = {"Logs_20140328": "logs"}
_BATCH_OPERATIONS = {
    name.lower(): name
    for name in [
        "CancelJob",
        "CancelJobs",
        "CreateComputeEnvironment",
        "CreateConsumableResource",
        "CreateJobQueue",
        "CreateQuotaShare",
        "CreateSchedulingPolicy",
        "CreateServiceEnvironment",
        "DeleteComputeEnvironment",
        "DeleteConsumableResource",
        "DeleteJobQueue",
        "DeleteQuotaShare",
        "DeleteSchedulingPolicy",
        "DeleteServiceEnvironment",
        "DeregisterJobDefinition",
        "DescribeComputeEnvironments",
        "DescribeConsumableResource",
        "DescribeJobDefinitions",
        "DescribeJobQueues",
        "DescribeJobs",
        "DescribeQuotaShare",
        "DescribeSchedulingPolicies",
        "DescribeServiceEnvironments",
        "DescribeServiceJob",
        "GetJobQueueSnapshot",
        "ListConsumableResources",
        "ListJobs",
        "ListJobsByConsumableResource",
        "ListQuotaShares",
        "ListSchedulingPolicies",
        "ListServiceJobs",
        "RegisterJobDefinition",
        "SubmitJob",
        "SubmitServiceJob",
        "TerminateJob",
        "TerminateJobs",
        "TerminateServiceJob",
        "TerminateServiceJobs",
        "UpdateComputeEnvironment",
        "UpdateConsumableResource",
        "UpdateJobQueue",
        "UpdateQuotaShare",
        "UpdateSchedulingPolicy",
        "UpdateServiceEnvironment",
        "UpdateServiceJob",
    ]
}
_BATCH_TAG_OPERATIONS = {
    "GET": "ListTagsForResource",
    "POST": "TagResource",
    "DELETE": "UntagResource",
}


@dataclass(frozen=True)
class ErrorAnswer:
    """One injected error: HTTP status, the service's error code and its message."""

    status: int
    code: str
    message: str


#: What each error kind looks like per service, in that service's error format: Batch is
#: REST-JSON (``x-amzn-ErrorType`` header), CloudWatch Logs awsJson1.1 (``__type`` in the
#: body), S3 REST-XML (``<Error><Code>``). The codes are the ones each service documents
#: (Batch's modeled ``ServerException``, the common ``InternalFailure``/``ServiceUnavailable``
#: errors, S3's ``InternalError``/``SlowDown``), so a client's exception classes match.
ERROR_ANSWERS: Final[Mapping[str, Mapping[str, ErrorAnswer]]] = {
    "batch": {
        "throttle": ErrorAnswer(429, "TooManyRequestsException", "Too Many Requests"),
        "500": ErrorAnswer(500, "ServerException", "Internal server error"),
        "503": ErrorAnswer(503, "ServiceUnavailableException", "Service Unavailable"),
    },
    "logs": {
        "throttle": ErrorAnswer(400, "ThrottlingException", "Rate exceeded"),
        "500": ErrorAnswer(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
        "503": ErrorAnswer(
            503, "ServiceUnavailableException", "The service cannot complete the request."
        ),
    },
    "s3": {
        "throttle": ErrorAnswer(503, "SlowDown", "Please reduce your request rate."),
        "500": ErrorAnswer(
            500, "InternalError", "We encountered an internal error. Please try again."
        ),
        "503": ErrorAnswer(503, "ServiceUnavailable", "Reduce your request rate."),
    },
}


@dataclass(frozen=True)
class FaultStats:
    """A snapshot of what a :class:`FaultProxy` saw and did since it was created."""

    #: Faults injected, by kind: ``throttle``, ``500``, ``503``, ``reset`` (from the error
    #: rate) and ``outage`` (requests reset during an outage).
    injected: Mapping[str, int] = field(default_factory=dict)
    #: Requests received, by ``(service, operation)``, faulted ones included, e.g.
    #: ``("batch", "DescribeJobs")``, ``("logs", "GetLogEvents")``, ``("s3", "PutObject")``.
    requests: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: Ids of the jobs reclaimed, in the order they were reclaimed.
    reclaimed: tuple[str, ...] = ()
    #: Job records left out of DescribeJobs/ListJobs answers by :meth:`FaultProxy.hide_new_jobs`.
    hidden: int = 0
    #: RUNNABLE job records given a reason by :meth:`FaultProxy.waiting_reason`.
    waiting_reasons: int = 0

    @property
    def faults(self) -> int:
        """All faults injected (error rate and outage)."""
        return sum(self.injected.values())

    def requests_to(self, service: str, operation: str | None = None) -> int:
        """Requests received by ``service`` (optionally only of ``operation``)."""
        return sum(
            n
            for (s, o), n in self.requests.items()
            if s == service and (operation is None or o == operation)
        )


@dataclass(frozen=True)
class _Request:
    service: str
    operation: str


@dataclass(frozen=True)
class _Submitted:
    job_id: str
    queue: str
    at: float


@dataclass
class _ReclaimOrder:
    queue: str
    remaining: int
    fargate: bool


@dataclass(frozen=True)
class _Reclaimed:
    job_id: str
    job_name: str
    reason: str
    stopped_at_ms: int
    nodes: int


class FaultProxy:
    """An HTTP proxy on loopback that forwards to ``upstream`` (the moto server) and
    injects AWS-like faults on demand.

    Args:
        upstream: The moto server's endpoint, e.g. ``http://127.0.0.1:5000``.
        host: Address to listen on (loopback).
        port: Port to listen on; 0 (the default) picks a free one at :meth:`start`.
        seed: Seed of the random choices (which requests fail, with which kind, the made-up
            instance ids), so a run can be repeated; ``None`` seeds from the system.

    All fault settings are thread-safe and can change while the proxy runs. Without any
    fault set, requests and answers pass through byte for byte.
    """

    def __init__(
        self, upstream: str, *, host: str = "127.0.0.1", port: int = 0, seed: int | None = None
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"upstream must be an http(s) URL like http://127.0.0.1:5000, got {upstream!r}"
            )
        #: The endpoint requests are forwarded to.
        self.upstream = upstream.rstrip("/")
        #: Address the proxy listens on.
        self.host = host
        #: Seed of the random choices (None: seeded from the system).
        self.seed = seed
        self._requested_port = port
        self._upstream_https = parts.scheme == "https"
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or (443 if self._upstream_https else 80)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # faults
        self._error_rate = 0.0
        self._error_kinds: tuple[str, ...] = ()
        self._error_services: frozenset[str] = frozenset()
        self._outage_until = 0.0
        self._hide_seconds = 0.0
        self._reasons: dict[str | None, str] = {}
        self._orders: list[_ReclaimOrder] = []
        # what went through
        self._submitted: dict[str, _Submitted] = {}
        self._reclaimed: dict[str, _Reclaimed] = {}
        self._injected: Counter[str] = Counter()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._hidden = 0
        self._reasons_shown = 0
        # serving
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._docker: Any = None
        self._docker_lock = threading.Lock()
        #: Called with (operation, request, answer) for every SubmitJob, DescribeJobs and
        #: ListJobs answer after the proxy's own rewriting, to do what the emulator will
        #: not (a benchmark runs the tasks of an array job and reports them RUNNING until
        #: they end). It may change ``answer`` in place and returns whether it did.
        self.on_batch_answer: Callable[[str, Mapping[str, Any], dict[str, Any]], bool] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Starts serving (a ``ThreadingHTTPServer`` in a daemon thread); returns the proxy.
        Starting a running proxy does nothing."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"fault-proxy-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, closes open client connections and ends pending reclaims' searches
        for containers. Stopping a stopped proxy does nothing."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._docker_lock:
            if self._docker is not None:
                with contextlib.suppress(Exception):
                    self._docker.close()
                self._docker = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The proxy's URL, e.g. ``http://127.0.0.1:43123``; use it as ``AWS_ENDPOINT_URL``.

        Raises:
            RuntimeError: the proxy is not started.
        """
        if self._server is None:
            raise RuntimeError(
                "the FaultProxy is not started; call start() or use it in a with block"
            )
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- faults ---------------------------------------------------------------------------

    def set_error_rate(
        self,
        rate: float,
        *,
        kinds: Sequence[str] = KINDS,
        services: Sequence[str] = SERVICES,
    ) -> None:
        """Makes a share ``rate`` (0 to 1) of the requests to ``services`` fail with one of
        ``kinds``, chosen at random; replaces the previous error rate.

        Kinds: ``throttle`` (the service's own throttling error: Batch HTTP 429
        ``TooManyRequestsException``, Logs HTTP 400 ``ThrottlingException``, S3 HTTP 503
        ``SlowDown``), ``500`` and ``503`` (a server error in the service's format, see
        :data:`ERROR_ANSWERS`), ``reset`` (the connection is closed with a TCP RST and no
        answer). A failed request never reaches moto.

        Raises:
            ValueError: ``rate`` outside 0..1, or an unknown kind or service.
        """
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        services = (services,) if isinstance(services, str) else tuple(services)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate!r}")
        unknown_kinds = sorted(set(kinds) - set(KINDS))
        if not kinds or unknown_kinds:
            raise ValueError(f"kinds must be some of {KINDS}, got {kinds!r}")
        unknown_services = sorted(set(services) - set(SERVICES))
        if not services or unknown_services:
            raise ValueError(f"services must be some of {SERVICES}, got {services!r}")
        with self._lock:
            self._error_rate = float(rate)
            self._error_kinds = kinds
            self._error_services = frozenset(services)

    def outage(self, seconds: float) -> None:
        """Resets the connection of every request (any service) from now on for ``seconds``;
        0 ends a running outage.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._outage_until = time.monotonic() + seconds

    def hide_new_jobs(self, seconds: float) -> None:
        """Leaves each job submitted through the proxy out of DescribeJobs and ListJobs
        answers for ``seconds`` after its SubmitJob, as AWS's eventual consistency does right
        after a submit; array children (``<id>:<n>``) too. 0 stops hiding.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._hide_seconds = float(seconds)

    def waiting_reason(self, reason: str | None, *, queue: str | None = None) -> None:
        """Shows ``reason`` as the ``statusReason`` of RUNNABLE jobs in DescribeJobs and
        ListJobs answers, e.g. ``"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot
        fulfill the capacity requested for instance type [g5.xlarge]"``.

        Args:
            reason: The reason; ``None`` removes the reason set for ``queue``.
            queue: Only jobs whose job queue ARN or name contains this text; ``None`` (the
                default) means every queue. A queue's own reason wins over the every-queue
                one. ``waiting_reason(None)`` removes every reason.
        """
        with self._lock:
            if reason is None:
                if queue is None:
                    self._reasons.clear()
                else:
                    self._reasons.pop(queue, None)
            else:
                self._reasons[queue] = reason

    def reclaim(self, queue: str, count: int = 1, *, fargate: bool = False) -> None:
        """Reclaims the next ``count`` jobs seen RUNNING in a DescribeJobs answer on a queue
        whose ARN or name contains ``queue``, the way AWS does it.

        The answer that shows a job RUNNING passes unchanged; then the job's container is
        killed (through Docker) and from then on every DescribeJobs/ListJobs record of the
        job says FAILED, with ``statusReason`` ``Host EC2 (instance i-…) terminated.``
        (Fargate: ``Your Spot Task was interrupted.``) on the job and its last attempt and no
        container exit code (moto would report 137, which reads as out-of-memory). A
        reclaim stays for the proxy's lifetime, :meth:`clear` included. Array parents are
        never reclaimed; their children are.

        Raises:
            ValueError: ``queue`` is empty or ``count`` < 1.
        """
        if not queue:
            raise ValueError("queue must name (part of) a job queue's name or ARN, got ''")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        with self._lock:
            self._orders.append(_ReclaimOrder(queue, count, fargate))

    def clear(self) -> None:
        """Removes every fault: error rate, outage, hiding, waiting reasons and pending
        reclaims. Jobs already reclaimed stay reclaimed; :attr:`stats` is kept."""
        with self._lock:
            self._error_rate = 0.0
            self._error_kinds = ()
            self._error_services = frozenset()
            self._outage_until = 0.0
            self._hide_seconds = 0.0
            self._reasons.clear()
            self._orders.clear()

    @property
    def stats(self) -> FaultStats:
        """What the proxy saw and injected so far (a snapshot)."""
        with self._lock:
            return FaultStats(
                injected=dict(self._injected),
                requests=dict(self._requests),
                reclaimed=tuple(self._reclaimed),
                hidden=self._hidden,
                waiting_reasons=self._reasons_shown,
            )

    # --- serving one request --------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        body = _read_body(handler)
        path, query = _split_target(handler.path)
        request = _classify(handler.command, path, query, handler.headers, body)
        fault = self._decide(request)
        if fault in ("reset", "outage"):
            _reset(handler)
            return
        if fault is not None:
            _send_error(handler, request.service, ERROR_ANSWERS[request.service][fault])
            return
        connection: http.client.HTTPConnection
        if self._upstream_https:
            connection = http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
            )
        else:
            connection = http.client.HTTPConnection(
                self._upstream_host, self._upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
            )
        try:
            try:
                _send_upstream(connection, handler, path, query, body)
                response = connection.getresponse()
            except OSError as error:
                log.warning("fault proxy: upstream %s unreachable: %s", self.upstream, error)
                _send_plain(
                    handler, 502, f"fault proxy: upstream {self.upstream} unreachable: {error}"
                )
                return
            self._relay(handler, request, body, response)
        finally:
            connection.close()

    def _decide(self, request: _Request) -> str | None:
        with self._lock:
            self._requests[(request.service, request.operation)] += 1
            if time.monotonic() < self._outage_until:
                self._injected["outage"] += 1
                return "outage"
            if (
                self._error_rate > 0
                and request.service in self._error_services
                and self._rng.random() < self._error_rate
            ):
                kind = self._rng.choice(self._error_kinds)
                self._injected[kind] += 1
                return kind
        return None

    def _relay(
        self,
        handler: _Handler,
        request: _Request,
        request_body: bytes,
        response: http.client.HTTPResponse,
    ) -> None:
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        if (
            request.service == "batch"
            and request.operation in ("SubmitJob", "DescribeJobs", "ListJobs")
            and response.status == 200
            and response.getheader("Content-Encoding", "identity").lower() == "identity"
        ):
            payload = self._after_batch(request.operation, request_body, response.read())
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            _send_head(handler, response, [*headers, ("Content-Length", str(len(payload)))])
            handler.wfile.write(payload)
            return
        if handler.command == "HEAD" or response.status in (204, 304) or response.status < 200:
            _send_head(handler, response, headers)
            return
        if response.getheader("Content-Length") is not None:
            _send_head(handler, response, headers)
            while chunk := response.read(_CHUNK):
                handler.wfile.write(chunk)
            return
        if handler.request_version == "HTTP/1.1":  # relay a chunked answer chunked
            _send_head(handler, response, [*headers, ("Transfer-Encoding", "chunked")])
            while chunk := response.read(_CHUNK):
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.write(b"0\r\n\r\n")
            return
        payload = response.read()
        _send_head(handler, response, [*headers, ("Content-Length", str(len(payload)))])
        handler.wfile.write(payload)

    # --- Batch answers --------------------------------------------------------------------

    def _after_batch(self, operation: str, request_body: bytes, payload: bytes) -> bytes:
        try:
            answer = json.loads(payload)
            asked = json.loads(request_body) if request_body else {}
        except ValueError:
            return payload
        if not isinstance(answer, dict) or not isinstance(asked, dict):
            return payload
        changed = False
        if operation == "SubmitJob":
            self._record_submit(asked, answer)
        else:
            key = "jobs" if operation == "DescribeJobs" else "jobSummaryList"
            records = answer.get(key)
            if not isinstance(records, list):
                return payload
            status_filter = asked.get("jobStatus") if not asked.get("filters") else None
            kept, changed = self._rewrite(
                records,
                describe=operation == "DescribeJobs",
                queue_hint=str(asked.get("jobQueue") or ""),
                status_filter=status_filter if isinstance(status_filter, str) else None,
            )
            answer[key] = kept
        if self.on_batch_answer is not None:
            changed = self.on_batch_answer(operation, asked, answer) or changed
        return json.dumps(answer).encode() if changed else payload

    def _record_submit(self, asked: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        job_id = answer.get("jobId")
        if isinstance(job_id, str):
            with self._lock:
                self._submitted[job_id] = _Submitted(
                    job_id, str(asked.get("jobQueue") or ""), time.monotonic()
                )

    def _rewrite(
        self,
        records: list[Any],
        *,
        describe: bool,
        queue_hint: str,
        status_filter: str | None,
    ) -> tuple[list[Any], bool]:
        """Applies hiding, reclaims and waiting reasons to job records (in place)."""
        now = time.monotonic()
        kept: list[Any] = []
        changed = False
        to_kill: list[_Reclaimed] = []
        with self._lock:
            for record in records:
                if not isinstance(record, dict):
                    kept.append(record)
                    continue
                job_id = str(record.get("jobId", ""))
                submitted = self._submitted.get(job_id.split(":", 1)[0])
                if submitted is not None and now < submitted.at + self._hide_seconds:
                    self._hidden += 1
                    changed = True
                    continue
                queue = str(record.get("jobQueue") or (submitted and submitted.queue) or queue_hint)
                reclaimed = self._reclaimed.get(job_id)
                if reclaimed is not None:
                    _as_reclaimed(record, reclaimed, describe=describe)
                    changed = True
                    if status_filter is not None and status_filter != "FAILED":
                        continue
                elif describe and record.get("status") == "RUNNING":
                    new = self._take_reclaim(record, queue)
                    if new is not None:
                        to_kill.append(new)
                elif record.get("status") == "RUNNABLE":
                    reason = self._reason_for(queue)
                    if reason is not None:
                        record["statusReason"] = reason
                        self._reasons_shown += 1
                        changed = True
                kept.append(record)
        for reclaimed in to_kill:
            threading.Thread(
                target=self._kill_containers,
                args=(reclaimed,),
                name=f"fault-proxy-reclaim-{reclaimed.job_id}",
                daemon=True,
            ).start()
        return kept, changed

    def _reason_for(self, queue: str) -> str | None:
        for pattern, reason in self._reasons.items():
            if pattern is not None and queue and pattern in queue:
                return reason
        return self._reasons.get(None)

    def _take_reclaim(self, record: Mapping[str, Any], queue: str) -> _Reclaimed | None:
        array = record.get("arrayProperties")
        if isinstance(array, Mapping) and "size" in array and "index" not in array:
            return None  # an array parent: AWS reclaims instances, which run children
        order = next((o for o in self._orders if queue and o.queue in queue), None)
        if order is None:
            return None
        order.remaining -= 1
        if order.remaining <= 0:
            self._orders.remove(order)
        if order.fargate:
            reason = FARGATE_RECLAIM_REASON
        else:
            reason = EC2_RECLAIM_REASON.format(instance=f"i-{self._rng.getrandbits(68):017x}")
        nodes = record.get("nodeProperties")
        job_id = str(record["jobId"])
        reclaimed = _Reclaimed(
            job_id=job_id,
            job_name=str(record.get("jobName", "")),
            reason=reason,
            stopped_at_ms=int(time.time() * 1000),
            nodes=int(nodes.get("numNodes", 1)) if isinstance(nodes, Mapping) else 0,
        )
        self._reclaimed[job_id] = reclaimed
        return reclaimed

    # --- killing a reclaimed job's containers ---------------------------------------------

    def _docker_client(self) -> Any:
        with self._docker_lock:
            if self._docker is None:
                import docker

                self._docker = docker.from_env(timeout=10)
            return self._docker

    def _kill_containers(self, reclaimed: _Reclaimed) -> None:
        """Kills the job's container(s) (moto names them ``<jobName>-<jobId with : as ->``,
        multi-node ``<jobName>-<jobId>-<node>``), waiting for moto to start them."""
        base = f"{reclaimed.job_name}-{reclaimed.job_id.replace(':', '-')}"
        expected = max(reclaimed.nodes, 1)
        pattern = re.compile(re.escape(base) + (r"-\d+" if reclaimed.nodes else ""))
        deadline = time.monotonic() + KILL_DEADLINE_SECONDS
        done: set[str] = set()
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                for container in self._docker_client().containers.list(
                    all=True, filters={"name": base}
                ):
                    if container.name in done or not pattern.fullmatch(container.name):
                        continue
                    if container.status == "running":
                        container.kill()
                        done.add(container.name)
                    elif container.status in ("exited", "dead"):
                        done.add(container.name)
            except Exception as error:  # not found yet, being removed, docker hiccup
                log.debug("fault proxy: reclaiming %s: %s", reclaimed.job_id, error)
            if len(done) >= expected:
                return
            self._stopping.wait(0.1)
        if not self._stopping.is_set():
            log.warning(
                "fault proxy: no running container of reclaimed job %s (%s) within %.0f s",
                reclaimed.job_id,
                base,
                KILL_DEADLINE_SECONDS,
            )

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


def _as_reclaimed(record: dict[str, Any], reclaimed: _Reclaimed, *, describe: bool) -> None:
    """Rewrites one job record (DescribeJobs or ListJobs) as AWS shows a reclaimed job."""
    record["status"] = "FAILED"
    record["statusReason"] = reclaimed.reason
    record["stoppedAt"] = reclaimed.stopped_at_ms
    container = record.get("container")
    if isinstance(container, dict):
        container.pop("exitCode", None)
        if not container and not describe:
            del record["container"]
    if not describe:
        return
    attempts = record.get("attempts")
    if not isinstance(attempts, list) or not attempts or not isinstance(attempts[-1], dict):
        attempts = [
            {"container": {}, "startedAt": record.get("startedAt", reclaimed.stopped_at_ms)}
        ]
        record["attempts"] = attempts
    last = attempts[-1]
    last["statusReason"] = reclaimed.reason
    last["stoppedAt"] = reclaimed.stopped_at_ms
    attempt_container = last.get("container")
    if isinstance(attempt_container, dict):
        attempt_container.pop("exitCode", None)


# --- telling services and operations apart --------------------------------------------------


def _split_target(target: str) -> tuple[str, str]:
    """Path and query of a request target (origin-form, or absolute-form as proxies get)."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path, query


def _classify(method: str, path: str, query: str, headers: Any, body: bytes) -> _Request:
    params = parse_qs(query, keep_blank_values=True)
    scope = _SCOPE.search(headers.get("Authorization", "") or "")
    presigned = params.get("X-Amz-Credential", [""])[0].split("/")
    service = scope.group(1) if scope else (presigned[3] if len(presigned) == 5 else "")
    target = headers.get("X-Amz-Target")
    action = params.get("Action", [""])[0]
    content_type = (headers.get("Content-Type") or "").lower()
    if not action and content_type.startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]

    if path.startswith("/moto-api"):
        return _Request("moto-api", path)
    if target:
        prefix, _, operation = target.partition(".")
        return _Request(service or _TARGET_SERVICES.get(prefix, prefix.lower()), operation)
    if (service == "batch" or not service) and path.startswith("/v1/"):
        return _Request("batch", _batch_operation(method, path))
    if action:
        return _Request(service or "query", action)
    if service and service != "s3":
        return _Request(service, f"{method} {path}")
    return _Request("s3", _s3_operation(method, path, params, headers))


def _batch_operation(method: str, path: str) -> str:
    name = path[len("/v1/") :].split("/", 1)[0].lower()
    if name == "tags":
        return _BATCH_TAG_OPERATIONS.get(method, f"{method} tags")
    return _BATCH_OPERATIONS.get(name, name)


_S3_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}
_S3_BUCKET_SUBRESOURCES = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "tagging",
    "versioning",
    "website",
]


def _s3_operation(method: str, path: str, params: Mapping[str, Any], headers: Any) -> str:
    """The S3 operation of a path-style request (close enough for statistics)."""
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if key:
        if "uploadId" in params:
            return {
                "PUT": "UploadPart",
                "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload",
                "GET": "ListParts",
            }.get(method, f"{method} object")
        if "uploads" in params and method == "POST":
            return "CreateMultipartUpload"
        if "tagging" in params and method in _S3_VERBS:
            return f"{_S3_VERBS[method]}ObjectTagging"
        if method == "PUT":
            return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
        return {
            "GET": "GetObject",
            "HEAD": "HeadObject",
            "DELETE": "DeleteObject",
            "POST": "PostObject",
        }.get(method, f"{method} object")
    if "delete" in params and method == "POST":
        return "DeleteObjects"
    if "versions" in params:
        return "ListObjectVersions"
    if "uploads" in params:
        return "ListMultipartUploads"
    sub = next((s for s in _S3_BUCKET_SUBRESOURCES if s in params), None)
    if sub is not None and method in _S3_VERBS:
        words = "".join(w[:1].upper() + w[1:] for w in sub.split("-"))
        return f"{_S3_VERBS[method]}Bucket{words}"
    return {
        "PUT": "CreateBucket",
        "DELETE": "DeleteBucket",
        "HEAD": "HeadBucket",
        "GET": "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects",
    }.get(method, f"{method} bucket")


# --- HTTP plumbing ----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not hold stop() up
    allow_reuse_address = True
    request_queue_size = 128
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Logs what escaped a handler (clients going away are not worth a word)."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            log.warning("fault proxy: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection is closed after this
    # Head and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add about 40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server
    #: Whether this request's answer has started (then an error can only close).
    responded = False

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log
        pass

    def _handle(self) -> None:
        self.responded = False
        try:
            self.server.proxy._serve(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as error:
            self.close_connection = True
            log.warning("fault proxy: %s %s failed: %r", self.command, self.path, error)
            if not self.responded:
                with contextlib.suppress(OSError):
                    _send_plain(self, 502, f"fault proxy error: {error!r}")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


def _read_body(handler: _Handler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        return _read_chunked(handler.rfile)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int(stream.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline(65537).strip():  # trailers
                pass
            return b"".join(parts)
        parts.append(stream.read(size))
        stream.readline(65537)


def _send_upstream(
    connection: http.client.HTTPConnection,
    handler: _Handler,
    path: str,
    query: str,
    body: bytes,
) -> None:
    connection.putrequest(
        handler.command,
        f"{path}?{query}" if query else path,
        skip_host=True,
        skip_accept_encoding=True,
    )
    has_length = False
    for name, value in handler.headers.items():
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower == "content-length":
            has_length = has_length or lower == "content-length"
            continue
        connection.putheader(name, value)
    if body or has_length or handler.command in ("POST", "PUT", "PATCH"):
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body or None)


def _send_head(
    handler: _Handler, response: http.client.HTTPResponse, headers: list[tuple[str, str]]
) -> None:
    handler.responded = True
    handler.send_response_only(response.status, response.reason)
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()


def _send_plain(handler: _Handler, status: int, text: str) -> None:
    payload = text.encode()
    handler.responded = True
    handler.send_response_only(status)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(payload)


def _send_error(handler: _Handler, service: str, error: ErrorAnswer) -> None:
    """Answers with ``error`` in ``service``'s error format."""
    request_id = str(uuid.uuid4())
    headers: list[tuple[str, str]]
    if service == "s3":
        host_id = uuid.uuid4().hex
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error.code}</Code><Message>{error.message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
        ).encode()
        headers = [
            ("Content-Type", "application/xml"),
            ("x-amz-request-id", request_id),
            ("x-amz-id-2", host_id),
        ]
    elif service == "batch":
        payload = json.dumps({"message": error.message}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", error.code),
            ("x-amzn-RequestId", request_id),
        ]
    else:
        payload = json.dumps({"__type": error.code, "message": error.message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", request_id),
        ]
    if handler.command == "HEAD":
        payload = b""  # S3 answers HEAD errors with headers only
    handler.responded = True
    handler.send_response_only(error.status)
    for name, value in [*headers, ("Content-Length", str(len(payload)))]:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)


def _reset(handler: _Handler) -> None:
    """Closes the client connection with a TCP RST (SO_LINGER 0) and no answer."""
    handler.responded = True
    handler.close_connection = True
    connection = handler.connection
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The socket's file descriptor closes (and the RST leaves) when the last reader does.
    with contextlib.suppress(OSError):
        handler.rfile.close()
    with contextlib.suppress(OSError):
        connection.close()
