"""Distributed training on several nodes at once: one step, three nodes, one join.

``self.next(self.train, num_parallel=3)`` runs ``train`` on three nodes together: on AWS
Batch one multi-node parallel job on the EFA queue (its nodes in one cluster placement
group, each with an EFA interface), with ``--run-batch-locally`` or without an
environment three processes on this machine. Each node finds the others through
``current.parallel``: its ``node_index``, ``num_nodes``, and ``main_ip``, the address
where node 0 listens. Here the nodes compute a partial sum each and meet over plain TCP
for a sum all-reduce, the exchange that torchrun (``--master_addr main_ip``) or MPI
would do over EFA; the join then sees one input per node.

    python distributed_training_flow.py run
"""

import socket
import time

from batchwright import FlowSpec, batch, current, parallel, step, timeout

#: How long a node keeps trying to reach node 0 (which may start later than it).
CONNECT_SECONDS = 120


def rendezvous_port(run_id: str) -> int:
    """A port every node of this run computes alike, different between runs."""
    return 20000 + int(run_id) % 20000 if run_id.isdigit() else 29500


def all_reduce_sum(value: int) -> int:
    """The sum of ``value`` over every node of the parallel step: node 0 collects the
    values and sends back the total."""
    node = current.parallel
    port = rendezvous_port(current.run_id or "")
    if node.num_nodes == 1:
        return value
    if node.node_index == 0:
        with socket.create_server(("0.0.0.0", port), reuse_port=False) as server:
            peers = []
            total = value
            while len(peers) < node.num_nodes - 1:
                peer, _ = server.accept()
                total += int(peer.makefile().readline())
                peers.append(peer)
            for peer in peers:
                with peer:
                    peer.sendall(f"{total}\n".encode())
            return total
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        try:
            connection = socket.create_connection((node.main_ip, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with connection:
        connection.sendall(f"{value}\n".encode())
        return int(connection.makefile().readline())


class DistributedTrainingFlow(FlowSpec):
    """Three nodes, each with a shard of the data, agree on a global sum."""

    @step
    def start(self):
        """Split the work into one shard per node."""
        self.data = list(range(1, 31))
        self.next(self.train, num_parallel=3)

    @batch(cpu=2, memory=4096, efa=1)
    @timeout(minutes=30)  # bounds the whole multi-node job, should a node be lost
    @parallel
    @step
    def train(self):
        """Each node sums its shard, then every node learns the total (an all-reduce)."""
        node = current.parallel
        shard = self.data[node.node_index :: node.num_nodes]
        self.rank = node.node_index
        self.world = node.num_nodes
        self.local_sum = sum(shard)
        self.total = all_reduce_sum(self.local_sum)
        print(
            f"node {self.rank} of {self.world}: local sum {self.local_sum}, "
            f"all-reduced total {self.total} (main node at {node.main_ip})"
        )
        self.next(self.join)

    @step
    def join(self, inputs):
        """One input per node, in node order."""
        self.ranks = [i.rank for i in inputs]
        self.totals = [i.total for i in inputs]
        self.total = self.totals[0]
        assert self.total == sum(i.local_sum for i in inputs), self.totals
        self.next(self.end)

    @step
    def end(self):
        """Report what the nodes agreed on."""
        print(f"{len(self.ranks)} nodes agreed on the total {self.total}")


if __name__ == "__main__":
    DistributedTrainingFlow()
