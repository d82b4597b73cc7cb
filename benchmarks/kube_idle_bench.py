# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CPU of the simulated Kubernetes API with its controllers while the cluster is idle.

A world on the demo's Kubernetes scenario (testworld/scenarios/kube-demo.yml) gets
``--nodes`` nodes (one in ten a GPU node), NFD (master and worker DaemonSet) and the
KMM operator; once every node carries its NFD labels nothing changes any more, and the
process's CPU time over ``--seconds`` of wall time is what the idle world costs.

Prints the figure (percent of one core); never pass/fail.

    .venv/bin/python benchmarks/kube_idle_bench.py                # 100 nodes, 10 s
    .venv/bin/python benchmarks/kube_idle_bench.py --nodes 20 --seconds 5
"""

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from testworld.kubernetes import KubeWorld, components  # noqa: E402  pylint: disable=wrong-import-position

NFD_LABEL = 'feature.node.kubernetes.io/kernel-version.full'


def idle_cpu(nodes, seconds, nfd_interval):
    """(settle seconds, CPU share of one core while idle) of a world with `nodes` nodes."""
    started = time.monotonic()
    world = KubeWorld.start(os.path.join(REPO, 'testworld', 'scenarios', 'kube-demo.yml'),
                            state_dir=tempfile.mkdtemp(prefix='kube-idle-bench-'), nfd_interval=nfd_interval)
    try:
        names = ['node-%03d' % i for i in range(nodes)]
        for i, name in enumerate(names):
            world.register_node(name, 'bm.gpu' if i % 10 == 9 else 'bm.compute')
        components.deploy_nfd(world, wait=False)
        components.deploy_kmm(world)
        world.wait_for(lambda: all(NFD_LABEL in world.node_labels(n) for n in names), timeout=600,
                       interval=0.5, what='NFD labels on every node')
        settled = time.monotonic() - started
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        return settled, share
    finally:
        world.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--nodes', type=int, default=100, help='nodes in the cluster (default 100)')
    parser.add_argument('--seconds', type=float, default=10.0, help='idle time measured (default 10)')
    parser.add_argument('--nfd-interval', type=float, default=0.3,
                        help="seconds between the simulated nfd-worker's passes (default 0.3, as in the tests)")
    args = parser.parse_args()
    settled, share = idle_cpu(args.nodes, args.seconds, args.nfd_interval)
    print('simulated Kubernetes API, %d idle nodes (NFD, KMM), nfd-worker interval %.1f s' % (
        args.nodes, args.nfd_interval))
    print('  settled in %.1f s' % settled)
    print('  CPU while idle: %.1f%% of one core (over %.0f s)' % (100 * share, args.seconds))


if __name__ == '__main__':
    main()
