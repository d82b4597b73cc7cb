# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml on a 100-node simulated bare-metal cluster: first run, rerun and Ansible's floor.

The demo cloud (testworld/scenarios/default.yml) with enough Ironic-backed nodes,
and the demo inventory (playbooks/inventory/demo) with the cluster grown to
``--workers`` default workers plus ``--gpu`` GPU workers and one control-plane
node: the cluster is built, every worker gets its three extra networks
(10G and 25G Ethernet, 100G InfiniBand) attached and configured, and the
accelerator stack is rolled out (the demo's MIG nodegroup, gpu-mig, keeps its one node). Then the same run again, which must change
nothing; its OpenStack requests are counted by service and route.

The floor is what Ansible itself costs for that rerun: a trivial playbook on the
same hosts, connection and forks in which every host runs as many tasks (pings
and set_facts) as it ran in the rerun, run right after it. The rerun's slowest
tasks and its task results per host come from the callback in
benchmarks/callback_plugins/bench_timing.py.

Besides, for the rerun: the Kubernetes API requests by route (counted by the
Kubernetes test world, GET /_sim/requests), the module runs per host by action,
and the CPU seconds of ansible-playbook with its workers and of each simulator
process, so what the collection costs and what the test world costs are told apart.

Prints wall times, the rerun against the floor, and request counts. Never
pass/fail (the rerun's changed count is printed, not asserted).

    .venv/bin/python benchmarks/site_bench.py                 # 100 nodes
    .venv/bin/python benchmarks/site_bench.py --workers 8 --gpu 1   # a quicker look
    .venv/bin/python benchmarks/site_bench.py --nodes 12 34   # two sizes, and the per-node ratio
"""

import argparse
import base64
import glob
import json
import os
import re
import resource
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from testworld.openstack import SimCloud  # noqa: E402  pylint: disable=wrong-import-position


def scenario(workers, gpu):
    """The demo cloud with bare-metal pools large enough for the cluster (and some spare)."""
    with open(os.path.join(REPO, 'testworld', 'scenarios', 'default.yml')) as f:
        scn = yaml.safe_load(f)
    for pool in scn['baremetal']['pools']:
        pool['count'] = max(pool['count'], (workers + 1 if pool['flavor'] == 'bm.compute' else gpu + 1) + 4)
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


def kube_requests(env, method='GET'):
    """The Kubernetes test world's request counts ({"total", "by_route"}), or reset them (DELETE)."""
    with open(env['K8S_AUTH_KUBECONFIG']) as f:
        cluster = yaml.safe_load(f)['clusters'][0]['cluster']
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster['certificate-authority-data']).decode())
    req = urllib.request.Request(env['HPCOPS_KUBE_URL'] + '/_sim/requests', method=method)
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:
        return json.loads(resp.read())


def simulator_cpu(env):
    """{simulator: CPU seconds (user + system) so far} of the test world's processes (their pidfiles)."""
    ticks = os.sysconf('SC_CLK_TCK')
    out = {}
    for pidfile in sorted(glob.glob(os.path.join(env['HPCOPS_TESTWORLD_DIR'], '*.pid'))):
        with open(pidfile) as f:
            pid = f.read().strip()
        try:
            with open('/proc/%s/stat' % pid) as f:
                # the fields after the command name (which may hold spaces) in parentheses; utime, stime are 14, 15
                fields = f.read().rpartition(')')[2].split()
        except OSError:
            continue
        out[os.path.basename(pidfile)[:-len('.pid')]] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def recap(log):
    """{'ok': n, 'changed': n, 'failed': n} summed over the hosts of the PLAY RECAP."""
    totals = {'ok': 0, 'changed': 0, 'failed': 0, 'unreachable': 0}
    for line in log.split('PLAY RECAP')[-1].splitlines():
        for key in totals:
            found = re.search(r'\b%s=(\d+)' % key, line)
            if found:
                totals[key] += int(found.group(1))
    return totals


def run_playbook(env, args, log_path):
    """(rc, seconds, recap, timing) of one ansible-playbook run; timing is bench_timing's record."""
    timing_path = log_path + '.timing.json'
    env = dict(env, ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, 'benchmarks', 'callback_plugins'),
               ANSIBLE_CALLBACKS_ENABLED='bench_timing', HPCOPS_BENCH_TIMING=timing_path)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')] + args
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    with open(log_path, 'w') as f:
        f.write(proc.stdout + proc.stderr)
    timing = {'tasks': [], 'runs': {}, 'skipped': {}}
    if os.path.exists(timing_path):
        with open(timing_path) as f:
            timing = json.load(f)
    return proc.returncode, seconds, recap(proc.stdout), timing


def run_site(env, extra_vars, forks, log_path):
    return run_playbook(env, ['-i', 'playbooks/inventory/demo', 'playbooks/site.yml', '-e', '@' + extra_vars,
                              '--forks', str(forks)], log_path)


def run_floor(env, runs, forks, work):
    """Ansible's own cost for a rerun whose hosts ran runs[host] tasks: the same hosts, local connection and
    forks, each host running that many trivial tasks. Hosts with the same count share a play; plays run one
    after another like the site's do."""
    inventory = {'all': {'hosts': dict((host, {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable})
                                       for host in runs)}}
    by_count = {}
    for host, n in sorted(runs.items()):
        by_count.setdefault(n, []).append(host)
    plays = []
    for n, hosts in sorted(by_count.items()):
        tasks = [{'name': 'ping %d' % i, 'ansible.builtin.ping': {}} if i % 2 == 0 else
                 {'name': 'set_fact %d' % i, 'ansible.builtin.set_fact': {'floor_fact': i}} for i in range(n)]
        plays.append({'name': '%d host(s), %d tasks' % (len(hosts), n), 'hosts': ','.join(hosts),
                      'gather_facts': False, 'tasks': tasks})
    inventory_path = os.path.join(work, 'floor-inventory.yml')
    playbook_path = os.path.join(work, 'floor.yml')
    with open(inventory_path, 'w') as f:
        yaml.safe_dump(inventory, f)
    with open(playbook_path, 'w') as f:
        yaml.safe_dump(plays, f, sort_keys=False)
    return run_playbook(env, ['-i', inventory_path, playbook_path, '--forks', str(forks)],
                        os.path.join(work, 'floor.log'))


def print_actions(actions):
    """Module runs per host by action: localhost's, then the nodes grouped by identical counts."""
    def line(counts):
        return ', '.join('%s %d' % kv for kv in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    print('  module runs per host by action (loop items counted, skipped ones not):')
    if 'localhost' in actions:
        print('    localhost (%d): %s' % (sum(actions['localhost'].values()), line(actions['localhost'])))
    alike = {}
    for host, counts in sorted(actions.items()):
        if host != 'localhost':
            alike.setdefault(json.dumps(counts, sort_keys=True), []).append(host)
    for key, hosts in sorted(alike.items(), key=lambda kv: -len(kv[1])):
        counts = json.loads(key)
        print('    %d node(s) like %s (%d): %s' % (len(hosts), hosts[0], sum(counts.values()), line(counts)))


def task_seconds(timing, pattern):
    return sum(t[3] for t in timing['tasks'] if re.search(pattern, t[1]))


def measure(args, workers, gpu):
    """One cluster size: the figures as a dict (or None when the first run failed)."""
    nodes = 1 + workers + gpu + 1

    work = tempfile.mkdtemp(prefix='site-bench-')
    scenario_file = os.path.join(work, 'cloud.yml')
    with open(scenario_file, 'w') as f:
        yaml.safe_dump(scenario(workers, gpu), f)
    extra_vars = os.path.join(work, 'vars.json')
    with open(extra_vars, 'w') as f:
        # The demo inventory expects at least 2 GPU nodes: expect what this cluster has.
        json.dump({'cluster_node_count': workers, 'cluster_timeout': 3600,
                   'accelerators_gpu_min_nodes': min(gpu, 2),
                   'cluster_nodegroups': [{'name': 'gpu', 'flavor': 'bm.gpu', 'node_count': gpu,
                                           'min_node_count': 1, 'max_node_count': gpu + 4},
                                          {'name': 'gpu-mig', 'flavor': 'bm.gpu', 'node_count': 1,
                                           'min_node_count': 1, 'max_node_count': 2}]}, f)

    env = start_world('site-bench', scenario_file)
    try:
        cloud = SimCloud()
        cloud.url = env['HPCOPS_SIM_URL']
        print('site run on a simulated cluster of %d bare-metal nodes (1 control plane, %d workers, %d GPU workers, '
              '1 MIG worker), 3 extra networks per worker, forks %d' % (nodes, workers, gpu, args.forks))
        print('  logs and inputs in %s' % work)
        rc, first, first_recap, _timing = run_site(env, extra_vars, args.forks, os.path.join(work, 'first.log'))
        print('  first run:  %7.1f s  rc %d  %s' % (first, rc, first_recap))
        if rc != 0:
            print('  the first run failed; see %s' % shlex.quote(os.path.join(work, 'first.log')))
            return None
        cloud.reset_requests()
        kube_requests(env, 'DELETE')
        sim_cpu_before, own_cpu_before = simulator_cpu(env), children_cpu()
        rc, second, second_recap, timing = run_site(env, extra_vars, args.forks, os.path.join(work, 'rerun.log'))
        own_cpu = children_cpu() - own_cpu_before
        sim_cpu = dict((name, sec - sim_cpu_before.get(name, 0.0)) for name, sec in simulator_cpu(env).items())
        counted = cloud.requests()
        kube_counted = kube_requests(env)
        print('  rerun:      %7.1f s  rc %d  %s' % (second, rc, second_recap))
        print('  rerun / first run: %.2f' % (second / first))
        runs = timing['runs']
        floor_rc, floor, _recap, _floor_timing = run_floor(env, runs, args.forks, work)
        print('  floor:      %7.1f s  rc %d  (%d hosts, %d tasks in all, the rerun\'s task results per host)' % (
            floor, floor_rc, len(runs), sum(runs.values())))
        print('  rerun / floor: %.2f' % (second / floor))
        print('  rerun seconds per node: %.2f' % (second / nodes))
        validation = task_seconds(timing, r'Validate accelerators')
        networks = sum(t[3] for t in timing['tasks'] if t[0].startswith('Attach the high-speed networks'))
        print('  rerun validation task: %.1f s; networks play: %.1f s' % (validation, networks))
        per_host = sorted(runs.items(), key=lambda kv: -kv[1])
        node_runs = sorted(set(n for host, n in per_host if host != 'localhost'))
        print('  task results per host (not skipped): localhost %d, nodes %s' % (
            runs.get('localhost', 0), ' / '.join(str(n) for n in node_runs) or '-'))
        print_actions(timing.get('actions', {}))
        print('  CPU seconds of the rerun: ansible-playbook and its workers %.1f; %s (machine: %d cores, shared)' % (
            own_cpu, ', '.join('%s simulator %.1f' % kv for kv in sorted(sim_cpu.items())), os.cpu_count()))
        print('  slowest rerun tasks:')
        for play, name, _action, sec in sorted(timing['tasks'], key=lambda t: -t[3])[:10]:
            print('    %6.1f s  %s | %s' % (sec, play, name))
        by_service = {}
        for route, n in counted['by_route'].items():
            service = route.split(' ', 1)[1].split('/')[1]
            by_service[service] = by_service.get(service, 0) + n
        print('  OpenStack requests of the rerun: %d (%s)' % (
            counted['total'], ', '.join('%s %d' % kv for kv in sorted(by_service.items()))))
        for route, n in sorted(counted['by_route'].items(), key=lambda kv: -kv[1])[:12]:
            print('    %5d  %s' % (n, route))
        print('  Kubernetes API requests of the rerun: %d (%d routes)' % (
            kube_counted['total'], len(kube_counted['by_route'])))
        for route, n in sorted(kube_counted['by_route'].items(), key=lambda kv: (-kv[1], kv[0]))[:12]:
            print('    %5d  %s' % (n, route))
        return {'nodes': nodes, 'first': first, 'rerun': second, 'floor': floor, 'validation': validation}
    finally:
        subprocess.run(['bash', 'tools/testworld.sh', 'stop', 'site-bench'], cwd=REPO, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--workers', type=int, default=89, help='default-nodegroup workers (default 89)')
    parser.add_argument('--gpu', type=int, default=9, help='workers of the GPU nodegroup (default 9)')
    parser.add_argument('--nodes', type=int, nargs='+',
                        help='cluster sizes to measure one after another (1 control plane, 1 MIG worker, a GPU worker '
                             'per 11 nodes, the rest workers); overrides --workers and --gpu')
    parser.add_argument('--forks', type=int, default=25, help="Ansible's forks for the node-side tasks")
    args = parser.parse_args()
    sizes = [(args.workers, args.gpu)]
    if args.nodes:
        sizes = [(n - 2 - max(1, (n - 1) // 11), max(1, (n - 1) // 11)) for n in args.nodes]
    figures = [f for f in (measure(args, workers, gpu) for workers, gpu in sizes) if f]
    if len(figures) > 1:
        print('summary:')
        header = ('nodes', 'first s', 'rerun s', 'floor s', 'r/floor', 'validate s', 'rerun s/node')
        print('  %6s %9s %9s %9s %8s %11s %13s' % header)
        for f in figures:
            print('  %6d %9.1f %9.1f %9.1f %8.2f %11.1f %13.2f' % (
                f['nodes'], f['first'], f['rerun'], f['floor'], f['rerun'] / f['floor'], f['validation'],
                f['rerun'] / f['nodes']))
        small, large = figures[0], figures[-1]
        print('  rerun seconds per node, %d nodes / %d nodes: %.2f' % (
            large['nodes'], small['nodes'], (large['rerun'] / large['nodes']) / (small['rerun'] / small['nodes'])))


if __name__ == '__main__':
    main()
