# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml on a 100-node simulated bare-metal cluster: first run and rerun.

The demo cloud (testworld/scenarios/default.yml) with enough Ironic-backed nodes,
and the demo inventory (playbooks/inventory/demo) with the cluster grown to
``--workers`` default workers plus ``--gpu`` GPU workers and one control-plane
node: the cluster is built, every worker gets its three extra networks
(10G and 25G Ethernet, 100G InfiniBand) attached and configured, and the
accelerator stack is rolled out. Then the same run again, which must change
nothing; its OpenStack requests are counted by service and route.

Prints wall times and request counts. Never pass/fail (the rerun's changed
count is printed, not asserted).

    .venv/bin/python benchmarks/site_bench.py                 # 100 nodes
    .venv/bin/python benchmarks/site_bench.py --workers 8 --gpu 1   # a quicker look
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from testworld.openstack import SimCloud  # noqa: E402  pylint: disable=wrong-import-position


def scenario(workers, gpu):
    """The demo cloud with bare-metal pools large enough for the cluster (and some spare)."""
    with open(os.path.join(REPO, 'testworld', 'scenarios', 'default.yml')) as f:
        scn = yaml.safe_load(f)
    for pool in scn['baremetal']['pools']:
        pool['count'] = max(pool['count'], (workers + 1 if pool['flavor'] == 'bm.compute' else gpu) + 4)
    # Only the demo's own cluster: the scenario's are not part of the measurement.
    scn['clusters'] = []
    return scn


def start_world(name, scenario_file):
    out = subprocess.run(['bash', 'tools/testworld.sh', 'start', name, scenario_file,
                          'testworld/scenarios/kube-demo.yml'],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    env = dict(os.environ)
    with open(os.path.join(REPO, out)) as f:
        for line in f:
            key, _sep, value = line.strip()[len('export '):].partition('=')
            env[key] = value
    return env


def recap(log):
    """{'ok': n, 'changed': n, 'failed': n} summed over the hosts of the PLAY RECAP."""
    totals = {'ok': 0, 'changed': 0, 'failed': 0, 'unreachable': 0}
    for line in log.split('PLAY RECAP')[-1].splitlines():
        for key in totals:
            found = re.search(r'\b%s=(\d+)' % key, line)
            if found:
                totals[key] += int(found.group(1))
    return totals


def run_site(env, extra_vars, forks, log_path):
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'playbooks/inventory/demo',
           'playbooks/site.yml', '-e', '@' + extra_vars, '--forks', str(forks)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    with open(log_path, 'w') as f:
        f.write(proc.stdout + proc.stderr)
    return proc.returncode, seconds, recap(proc.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--workers', type=int, default=90, help='default-nodegroup workers (default 90)')
    parser.add_argument('--gpu', type=int, default=9, help='workers of the GPU nodegroup (default 9)')
    parser.add_argument('--forks', type=int, default=25, help="Ansible's forks for the node-side tasks")
    args = parser.parse_args()
    nodes = 1 + args.workers + args.gpu

    work = tempfile.mkdtemp(prefix='site-bench-')
    scenario_file = os.path.join(work, 'cloud.yml')
    with open(scenario_file, 'w') as f:
        yaml.safe_dump(scenario(args.workers, args.gpu), f)
    extra_vars = os.path.join(work, 'vars.json')
    with open(extra_vars, 'w') as f:
        # The demo inventory expects at least 2 GPU nodes: expect what this cluster has.
        json.dump({'cluster_node_count': args.workers, 'cluster_timeout': 3600,
                   'accelerators_gpu_min_nodes': min(args.gpu, 2),
                   'cluster_nodegroups': [{'name': 'gpu', 'flavor': 'bm.gpu', 'node_count': args.gpu,
                                           'min_node_count': 1, 'max_node_count': args.gpu + 4}]}, f)

    env = start_world('site-bench', scenario_file)
    try:
        cloud = SimCloud()
        cloud.url = env['HPCOPS_SIM_URL']
        print('site run on a simulated cluster of %d bare-metal nodes (1 control plane, %d workers, %d GPU workers), '
              '3 extra networks per worker, forks %d' % (nodes, args.workers, args.gpu, args.forks))
        print('  logs and inputs in %s' % work)
        rc, first, first_recap = run_site(env, extra_vars, args.forks, os.path.join(work, 'first.log'))
        print('  first run:  %7.1f s  rc %d  %s' % (first, rc, first_recap))
        if rc != 0:
            print('  the first run failed; see %s' % shlex.quote(os.path.join(work, 'first.log')))
            return
        cloud.reset_requests()
        rc, second, second_recap = run_site(env, extra_vars, args.forks, os.path.join(work, 'rerun.log'))
        counted = cloud.requests()
        print('  rerun:      %7.1f s  rc %d  %s' % (second, rc, second_recap))
        print('  rerun / first run: %.2f' % (second / first))
        by_service = {}
        for route, n in counted['by_route'].items():
            service = route.split(' ', 1)[1].split('/')[1]
            by_service[service] = by_service.get(service, 0) + n
        print('  OpenStack requests of the rerun: %d (%s)' % (
            counted['total'], ', '.join('%s %d' % kv for kv in sorted(by_service.items()))))
        for route, n in sorted(counted['by_route'].items(), key=lambda kv: -kv[1])[:12]:
            print('    %5d  %s' % (n, route))
    finally:
        subprocess.run(['bash', 'tools/testworld.sh', 'stop', 'site-bench'], cwd=REPO, check=False)


if __name__ == '__main__':
    main()
