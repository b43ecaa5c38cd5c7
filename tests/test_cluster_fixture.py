"""The cluster fixture itself (tests/_cluster.py): three joined nodes, a quorum queue
replicated on all of them, and finding which node a process is connected to."""

from __future__ import annotations

import subprocess
import sys

from _cluster import QueueCounter

HOLD_CONNECTION = """
import sys, pika
params = pika.URLParameters(sys.argv[1])
conn = pika.BlockingConnection(params)
print("connected", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.close()
"""


def test_three_joined_nodes_share_a_quorum_queue_replicated_on_all(cluster):
    queue = cluster.declare_quorum_queue()
    try:
        info = cluster.queue_info(queue)
        assert info["type"] == "quorum"
        assert sorted(info["members"]) == sorted(n.node for n in cluster.nodes)
        assert cluster.leader(queue).node == info["leader"]
        first, last = cluster.nodes[0], cluster.nodes[-1]
        first.publish(queue, {"hello": 1})
        with QueueCounter(queue, [last]) as counter:
            counter.wait_for("the message published on node 1", lambda seen: seen, 30)
        assert [(c.body, c.node) for c in counter.seen] == [({"hello": 1}, last.node)]
    finally:
        cluster.delete_queue(queue)


def test_the_node_a_process_is_connected_to_is_found_directly_and_through_a_proxy(cluster):
    for via_proxy, node in ((False, cluster.nodes[1]), (True, cluster.nodes[2])):
        url = cluster.amqp_urls(via_proxy=via_proxy)[node.index - 1]
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_CONNECTION, url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "connected\n"
            found = cluster.wait_client_node(proc.pid, alive=lambda p=proc: p.poll() is None)
            assert found is node
            assert cluster.client_nodes(proc.pid) == [node]
        finally:
            proc.communicate("", timeout=30)
