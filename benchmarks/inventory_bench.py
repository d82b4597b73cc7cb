# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory of Magnum cluster nodes at scale: hpcops.coe.clusters against openstack.cloud.openstack.

Both inventory plugins read the same simulated cloud in the same run (scenario
``large``: five clusters, Heat- and Cluster-API-style, about 1000 bare-metal
nodes, plus servers outside any cluster), with a simulated latency per HTTP
request. Each plugin is parsed in this process through Ansible's
InventoryManager, as ansible-inventory and ansible-playbook do, after one
untimed warm-up run (imports, first connections); the figures are the median
of the timed runs. A second, smaller cloud shows how the request count of
hpcops.coe.clusters follows the number of clusters, not of nodes.

Prints figures; never passes or fails. Run from the repository root:

    .venv/bin/python benchmarks/inventory_bench.py [--latency-ms 20] [--runs 3]
"""

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
# Ansible reads its configuration when first imported: point it at the collections first.
os.environ.setdefault('ANSIBLE_COLLECTIONS_PATH', os.path.join(REPO, '.cache', 'collections'))
os.environ.setdefault('ANSIBLE_INVENTORY_UNPARSED_WARNING', 'false')
# openstack.cloud's plugin makes groups such as instance-<uuid>: keep the figures free of its warnings.
os.environ.setdefault('ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS', 'ignore')

import yaml  # noqa: E402

OURS = 'hpcops.coe.clusters'
THEIRS = 'openstack.cloud.openstack'


def write_configs(workdir, sim):
    ours = os.path.join(workdir, 'bench.coe_clusters.yml')
    with open(ours, 'w') as f:
        yaml.safe_dump({'plugin': OURS, 'clouds': [sim.cloud_name], 'clouds_yaml_path': [sim.clouds_yaml]}, f)
    theirs = os.path.join(workdir, 'openstack.yml')
    with open(theirs, 'w') as f:
        yaml.safe_dump({'plugin': THEIRS, 'only_clouds': [sim.cloud_name], 'clouds_yaml_path': [sim.clouds_yaml]}, f)
    return {OURS: ours, THEIRS: theirs}


def parse(path):
    """(seconds, hosts) for one parse of an inventory source, as Ansible itself does it."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    start = time.perf_counter()
    inventory = InventoryManager(loader=DataLoader(), sources=[path])
    elapsed = time.perf_counter() - start
    return elapsed, len(inventory.hosts)


def measure(sim, path, runs):
    _seconds, hosts = parse(path)  # warm-up: imports and the first token, outside the figures
    if not hosts:
        raise SystemExit('%s gave no hosts: see the warnings above' % path)
    times, requests, hosts, by_route = [], [], None, None
    for _run in range(runs):
        sim.reset_requests()
        elapsed, hosts = parse(path)
        counts = sim.requests()
        times.append(elapsed)
        requests.append(counts['total'])
        by_route = counts['by_route']
    return {'wall': statistics.median(times), 'walls': times, 'requests': statistics.median(requests),
            'hosts': hosts, 'by_route': by_route}


def cluster_nodes(scenario):
    masters = sum(c.get('master_count', 1) for c in scenario['clusters'])
    workers = sum(c.get('node_count', 1) + sum(ng.get('node_count', 1) for ng in c.get('nodegroups') or [])
                  for c in scenario['clusters'])
    return masters + workers


def shrunk(scenario, factor):
    """The same clusters and nodegroups with ``factor`` times fewer nodes."""
    small = copy.deepcopy(scenario)
    small['name'] = scenario.get('name', 'large') + '-small'
    for cluster in small['clusters']:
        cluster['node_count'] = max(1, cluster.get('node_count', 1) // factor)
        for ng in cluster.get('nodegroups') or []:
            ng['node_count'] = max(1, ng.get('node_count', 1) // factor)
    return small


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--scenario', default='large', help='scenario name or path (default: large)')
    parser.add_argument('--latency-ms', type=float, default=20.0, help='simulated latency per request')
    parser.add_argument('--runs', type=int, default=3, help='timed runs per plugin (median reported)')
    parser.add_argument('--routes', action='store_true', help='also print the requests per route')
    args = parser.parse_args()

    from ansible.plugins.loader import init_plugin_loader
    from testworld.openstack import SimCloud
    from testworld.openstack import scenario as scenario_mod

    init_plugin_loader()

    scenario = scenario_mod.load(args.scenario)
    results = {}
    small_result = None
    with tempfile.TemporaryDirectory(prefix='inventory-bench-') as workdir:
        spawned = time.perf_counter()
        sim = SimCloud.spawn(scenario=scenario, state_dir=os.path.join(workdir, 'sim'))
        try:
            servers = sim.state()['counts']['servers']
            started = time.perf_counter() - spawned
            sim.set_latency(args.latency_ms)
            paths = write_configs(workdir, sim)
            for name in (OURS, THEIRS):
                results[name] = measure(sim, paths[name], args.runs)
        finally:
            sim.stop()

        small_scenario = shrunk(scenario, 10)
        small = SimCloud.spawn(scenario=small_scenario, state_dir=os.path.join(workdir, 'sim-small'))
        try:
            small.set_latency(args.latency_ms)
            small_dir = os.path.join(workdir, 'small')
            os.makedirs(small_dir)
            small_result = measure(small, write_configs(small_dir, small)[OURS], 1)
        finally:
            small.stop()

    ours, theirs = results[OURS], results[THEIRS]
    print('Inventory of Magnum cluster nodes, scenario %s: %d clusters, %d cluster nodes, %d servers in the project'
          % (scenario.get('name', args.scenario), len(scenario['clusters']), cluster_nodes(scenario), servers))
    print('simulated latency %.0f ms per request; median of %d runs after a warm-up; parse time in-process'
          % (args.latency_ms, args.runs))
    print('simulated cloud with %d servers up and answering in %.1f s (separate process, start to first answer)'
          % (servers, started))
    print()
    print('%-28s %10s %10s %8s   %s' % ('plugin', 'wall (s)', 'requests', 'hosts', 'runs (s)'))
    for name in (OURS, THEIRS):
        r = results[name]
        runs = ' '.join('%.3f' % t for t in r['walls'])
        print('%-28s %10.3f %10d %8d   %s' % (name, r['wall'], r['requests'], r['hosts'], runs))
    print()
    print('speed-up (%s wall / %s wall): %.1fx' % (THEIRS, OURS, theirs['wall'] / ours['wall']))
    print('requests (%s / %s): %d / %d' % (OURS, THEIRS, ours['requests'], theirs['requests']))
    print('%s with %dx fewer nodes (%d cluster nodes): %d requests, %.3f s'
          % (OURS, 10, cluster_nodes(small_scenario), small_result['requests'], small_result['wall']))
    if args.routes:
        for name in (OURS, THEIRS):
            print()
            print('requests by route, %s:' % name)
            for route, count in sorted(results[name]['by_route'].items()):
                print('  %5d  %s' % (count, route))


if __name__ == '__main__':
    main()
