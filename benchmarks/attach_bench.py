# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attaching extra networks to many bare-metal nodes: hpcops.coe.server_interfaces
against the way the original role did it, in one run on one simulated cloud.

The simulated cloud (spawned as its own process) holds two sets of bare-metal
nodes with one free NIC per extra network each. Nova's attach takes
``--attach-time`` seconds and is serialized per server, servers in parallel.

1. The module, run by ansible-playbook, attaches ``--networks`` networks to the
   first set with its default (or ``--concurrency``) ceiling; the number of servers
   at once adapts (it starts at 10 and grows while the cloud keeps up), and its
   path is printed.
2. The same play again (converged): its requests are counted by route.
3. The baseline on the second set: openstacksdk in this process, one server
   after the other, one attach after the other, like the original role (look
   the server up by name, attach each network, no waiting).

Prints wall times, the ratio between them, the module's time against the ideal
``networks x attach time x ceil(nodes / concurrency)`` for the highest number of
servers at once it reached, and the converged run's requests. Never pass/fail.

    ANSIBLE_COLLECTIONS_PATH=.cache/collections .venv/bin/python benchmarks/attach_bench.py
    ... --nodes 40 --baseline-nodes 10     # a quicker look
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# name, physical network, CIDR, MTU
NETWORKS = [{'name': 'eth-10g', 'physnet': 'physnet10g', 'cidr': '10.10.0.0/16', 'mtu': 9000},
            {'name': 'eth-25g', 'physnet': 'physnet25g', 'cidr': '10.25.0.0/16', 'mtu': 9000},
            {'name': 'ib-100g', 'physnet': 'ib', 'cidr': '10.100.0.0/16', 'mtu': 4092},
            {'name': 'eth-100g', 'physnet': 'physnet100g', 'cidr': '10.200.0.0/16', 'mtu': 9000}]

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Start
      ansible.builtin.set_fact:
        bench_start: "{{ lookup('ansible.builtin.pipe', 'date +%s.%N') }}"
    - name: Attach
      hpcops.coe.server_interfaces:
        servers: "{{ bench_servers }}"
        interfaces: "{{ bench_interfaces }}"
        concurrency: "{{ bench_concurrency | default(omit) }}"
      register: bench_result
    - name: Record
      ansible.builtin.copy:
        dest: "{{ bench_out }}"
        mode: "0600"
        content: >-
          {{ {'seconds': lookup('ansible.builtin.pipe', 'date +%s.%N') | float - bench_start | float,
              'changed': bench_result.changed, 'summary': bench_result.summary,
              'failed_servers': bench_result.failed_servers,
              'concurrency': bench_result.concurrency | default(none)} | to_json }}
"""


def scenario(nodes, baseline_nodes, networks, attach_time):
    nets = NETWORKS[:networks]
    return {
        'name': 'attach-bench',
        'seed': 3,
        'identity': {
            'projects': [{'name': 'hpc'}],
            'users': [{'name': 'admin', 'password': 'secret', 'project': 'hpc',
                       'roles': ['admin', 'member', 'reader']}],
        },
        'timings': {'attach': attach_time, 'detach': 0.5, 'port_bind': 0.2, 'server_build': 0.1},
        'flavors': [{'name': 'bm.bench', 'vcpus': 64, 'ram': 262144, 'disk': 480, 'extra_specs': dict(
            [('resources:CUSTOM_BAREMETAL_BENCH', '1'), ('resources:VCPU', '0')]
            + [('hpcops:physical_nics:%s' % net['physnet'], '1') for net in nets])}],
        'images': [{'name': 'ubuntu-jammy', 'os_distro': 'ubuntu'}],
        'networks': [{'name': 'private', 'primary': True, 'mtu': 1442,
                      'provider': {'network_type': 'geneve', 'segmentation_id': 1001},
                      'subnets': [{'name': 'private-subnet', 'cidr': '10.0.0.0/16'}]}] + [
            {'name': net['name'], 'mtu': net['mtu'],
             'provider': {'network_type': 'vlan', 'physical_network': net['physnet'], 'segmentation_id': 100 + i},
             'subnets': [{'name': net['name'] + '-subnet', 'cidr': net['cidr']}]}
            for i, net in enumerate(nets)],
        'baremetal': {'pools': [{'flavor': 'bm.bench', 'count': nodes + baseline_nodes,
                                 'nics': [{'physical_network': net['physnet'], 'count': 1} for net in nets]}]},
        'servers': [{'name': 'mod-{i}', 'count': nodes, 'flavor': 'bm.bench', 'image': 'ubuntu-jammy',
                     'networks': ['private']}]
        + ([{'name': 'seq-{i}', 'count': baseline_nodes, 'flavor': 'bm.bench', 'image': 'ubuntu-jammy',
             'networks': ['private']}] if baseline_nodes else []),
    }


def run_module(sim, workdir, servers, networks, concurrency):
    out = os.path.join(workdir, 'result-%d.json' % time.monotonic_ns())
    extravars = {'bench_servers': servers, 'bench_interfaces': [{'network': n} for n in networks],
                 'bench_out': out}
    if concurrency:
        extravars['bench_concurrency'] = concurrency
    varsfile = os.path.join(workdir, 'vars.json')
    with open(varsfile, 'w') as f:
        json.dump(extravars, f)
    playbook = os.path.join(workdir, 'attach.yml')
    with open(playbook, 'w') as f:
        f.write(PLAYBOOK)
    env = dict(os.environ)
    env.update(sim.env())
    env.setdefault('ANSIBLE_COLLECTIONS_PATH', os.path.join(REPO, '.cache', 'collections'))
    env['ANSIBLE_LOCALHOST_WARNING'] = '0'
    env['ANSIBLE_INVENTORY_UNPARSED_WARNING'] = '0'
    env['ANSIBLE_PYTHON_INTERPRETER'] = sys.executable
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
           playbook, '-e', '@' + varsfile]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit('the module run failed (rc %d)' % proc.returncode)
    with open(out) as f:
        result = json.load(f)
    result['wall'] = wall
    return result


def sequential_baseline(sim, servers, networks):
    """One server at a time, one attach at a time, as the original role did."""
    import openstack.config
    import openstack.connection

    config = openstack.config.OpenStackConfig(config_files=[sim.clouds_yaml])
    conn = openstack.connection.Connection(config=config.get_one(sim.cloud_name))
    net_ids = [conn.network.find_network(n, ignore_missing=False).id for n in networks]
    start = time.monotonic()
    for name in servers:
        server = conn.compute.find_server(name, ignore_missing=False)
        for net_id in net_ids:
            conn.compute.create_server_interface(server, net_id=net_id)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--nodes', type=int, default=200)
    parser.add_argument('--networks', type=int, default=3, choices=range(1, len(NETWORKS) + 1))
    parser.add_argument('--attach-time', type=float, default=1.0)
    parser.add_argument('--concurrency', type=int, default=None,
                        help='the module\'s concurrency ceiling (default: the module\'s own default)')
    parser.add_argument('--baseline-nodes', type=int, default=None,
                        help='nodes for the sequential baseline (default: --nodes; 0 skips it)')
    args = parser.parse_args()
    baseline_nodes = args.nodes if args.baseline_nodes is None else args.baseline_nodes
    networks = [net['name'] for net in NETWORKS[:args.networks]]

    from testworld.openstack import SimCloud

    with tempfile.TemporaryDirectory(prefix='attach-bench-') as workdir:
        sim = SimCloud.spawn(scenario=scenario(args.nodes, baseline_nodes, args.networks, args.attach_time),
                             state_dir=os.path.join(workdir, 'sim'))
        try:
            print('attach benchmark: %d bare-metal nodes x %d networks, attach %.2f s (serialized per server), '
                  'module concurrency %s' % (args.nodes, args.networks, args.attach_time,
                                             args.concurrency or "the module's default"))
            mod_servers = ['mod-%d' % i for i in range(args.nodes)]
            first = run_module(sim, workdir, mod_servers, networks, args.concurrency)
            pace = first.get('concurrency') or {}
            concurrency = pace.get('highest') or args.concurrency or 1
            ideal = args.networks * args.attach_time * math.ceil(args.nodes / float(concurrency))
            print('module:     %7.1f s in the task, %7.1f s for the whole ansible-playbook run; attached %d, '
                  'failed %d, retries %d' % (first['seconds'], first['wall'], first['summary']['attached'],
                                             first['summary']['failed'], first['summary']['retries']))
            print('concurrency: start %s, ceiling %s, highest %s, final %s, throttled answers %s' % (
                pace.get('start'), pace.get('ceiling'), pace.get('highest'), pace.get('final'), pace.get('throttled')))
            print('            path (seconds: servers at once): %s' % ', '.join(
                '%.1f: %d' % (t, n) for t, n in pace.get('path') or []))
            print('ideal:      %7.1f s (networks x attach time x ceil(nodes / %d, the highest concurrency)); '
                  'module / ideal = %.2f (task), %.2f (whole run)' % (
                      ideal, concurrency, first['seconds'] / ideal, first['wall'] / ideal))

            sim.reset_requests()
            again = run_module(sim, workdir, mod_servers, networks, args.concurrency)
            stats = sim.requests()
            routes = stats['by_route']
            lists = dict((r, n) for r, n in routes.items() if r.startswith('GET') and '{id}' not in r
                         and not r.rstrip('/').endswith(('/v2.1', '/v2.0', '/v3', '/identity')))
            print('converged:  %7.1f s, changed=%s, %d requests in all: %s' % (
                again['seconds'], again['changed'], stats['total'],
                ', '.join('%s %d' % (r, n) for r, n in sorted(routes.items()))))
            print('            list calls: %d (%s)' % (sum(lists.values()), ', '.join(sorted(lists))))

            if baseline_nodes:
                seq = sequential_baseline(sim, ['seq-%d' % i for i in range(baseline_nodes)], networks)
                scale = float(args.nodes) / baseline_nodes
                print('sequential: %7.1f s for %d nodes (one server, one attach at a time, openstacksdk)%s' % (
                    seq, baseline_nodes, '' if scale == 1 else ', %.1f s scaled to %d nodes' % (seq * scale, args.nodes)))
                print('ratio:      sequential / module = %.1f (task), %.1f (whole run)' % (
                    seq * scale / first['seconds'], seq * scale / first['wall']))
        finally:
            sim.stop()


if __name__ == '__main__':
    main()
