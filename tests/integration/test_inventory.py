# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hpcops.coe.clusters inventory plugin, run by ansible-inventory against two simulated clouds.

Cloud "east" runs scenarios/discovery.yml (a Heat-style cluster with a nodegroup
of its own stack, two CAPI-style clusters with nodegroups "gpu" and "gpu-a100",
a cluster being created, look-alike servers); cloud "west" runs the test
world's default scenario. Both are entries of one clouds.yaml.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCENARIO = os.path.join(HERE, 'scenarios', 'discovery.yml')
LOOK_ALIKES = ['login-1', 'heat-a-scratch-node-0', 'kube-zz9zz-default-worker-aaaaa-bbbbb']
# Every test here also runs on the real-services tier (real Keystone and Heat).
pytestmark = pytest.mark.realservices


def sim_cloud_entry(sim):
    with open(sim.clouds_yaml) as f:
        return yaml.safe_load(f)['clouds'][sim.cloud_name]


class Clouds:
    """Two simulated clouds behind one clouds.yaml, and ansible-inventory runs against them."""

    def __init__(self, tmp_path, east, west):
        self.tmp = tmp_path
        self.sims = {'east': east, 'west': west}
        self.entries = {'east': sim_cloud_entry(east), 'west': sim_cloud_entry(west)}
        self.clouds_yaml = str(tmp_path / 'clouds.yaml')
        self.write()

    def write(self):
        with open(self.clouds_yaml, 'w') as f:
            yaml.safe_dump({'clouds': self.entries}, f)

    def reset(self):
        for sim in self.sims.values():
            sim.reset_requests()

    def requests(self, cloud):
        return self.sims[cloud].requests()

    def inventory(self, name='test.coe_clusters.yml', flush=False, **options):
        options.setdefault('plugin', 'hpcops.coe.clusters')
        options.setdefault('clouds', ['east', 'west'])
        options.setdefault('clouds_yaml_path', [self.clouds_yaml])
        path = self.tmp / name
        path.write_text(yaml.safe_dump(options))
        env = dict(os.environ)
        env.update({
            'ANSIBLE_COLLECTIONS_PATH': os.environ.get('ANSIBLE_COLLECTIONS_PATH')
            or os.path.join(REPO, '.cache', 'collections'),
            'ANSIBLE_HOME': str(self.tmp / 'ansible-home'),
            'ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED': 'true',
            'ANSIBLE_NOCOLOR': '1',
            'PYTHONWARNINGS': 'ignore',
        })
        env.pop('OS_CLOUD', None)
        cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-inventory'), '-i', str(path), '--list']
        if flush:
            cmd.append('--flush-cache')
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        return Listing(proc)


def plain(value):
    """ansible-inventory marks values from the cloud as untrusted ({"__ansible_unsafe": v}): unwrap them."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Listing:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        self.data = plain(json.loads(proc.stdout)) if proc.returncode == 0 else {}
        self.hostvars = self.data.get('_meta', {}).get('hostvars', {})

    def hosts(self, group='all'):
        """Hosts of a group and its children, as Ansible resolves the pattern."""
        found = set(self.data.get(group, {}).get('hosts', []))
        for child in self.data.get(group, {}).get('children', []):
            found |= self.hosts(child)
        return found

    def groups(self):
        return set(k for k in self.data if k != '_meta')


@pytest.fixture
def clouds(sim_cloud_factory, tmp_path):
    return Clouds(tmp_path, sim_cloud_factory(SCENARIO), sim_cloud_factory('default'))


def cluster_servers(sim, prefix):
    return set(s['name'] for s in sim.state()['servers'] if s['name'].startswith(prefix))


def test_groups_hostvars_and_look_alikes(clouds):
    east_state = clouds.sims['east'].state()
    capi_b = [c for c in east_state['clusters'] if c['name'] == 'capi-b'][0]
    clouds.reset()
    listing = clouds.inventory(host_network='eth-25g', ssh_user_by_image={'ubuntu': 'ubuntu'},
                               keyed_groups=[{'key': 'coe_flavor', 'prefix': 'flavor'}],
                               groups={'gpu_nodes': "coe_nodegroup.startswith('gpu')"})
    assert listing.rc == 0, listing.stderr

    heat = listing.hosts('coe_cluster_heat_a')
    assert len(heat) == 4, listing.stderr + str(sorted(listing.groups()))
    assert len(listing.hosts('coe_cluster_heat_a_master')) == 1
    assert len(listing.hosts('coe_cluster_heat_a_ng_gpu')) == 1
    capi_prefix = capi_b.get('stack_id') or capi_b.get('cluster_id')
    assert listing.hosts('coe_cluster_capi_b') == cluster_servers(clouds.sims['east'], capi_prefix + '-')
    assert len(listing.hosts('coe_cluster_capi_b_ng_gpu')) == 1
    assert len(listing.hosts('coe_cluster_capi_b_ng_gpu_a100')) == 2
    assert len(listing.hosts('coe_cluster_capi_b_worker')) == 5
    assert len(listing.hosts('coe_cluster_capi_c')) == 2
    assert listing.hosts('coe_cloud_east') == heat | listing.hosts('coe_cluster_capi_b') | listing.hosts('coe_cluster_capi_c')
    # West is the default scenario: its Heat and CAPI clusters, under the same kind of groups.
    assert listing.hosts('coe_cloud_west') == listing.hosts('coe_cluster_hpc_heat') | listing.hosts('coe_cluster_hpc_capi')
    assert listing.hosts('coe_masters') >= listing.hosts('coe_cluster_hpc_heat_master')
    assert listing.hosts('coe_driver_capi') >= listing.hosts('coe_cluster_hpc_capi')
    assert listing.hosts('gpu_nodes') == (listing.hosts('coe_ng_gpu') | listing.hosts('coe_ng_gpu_a100'))
    assert listing.hosts('flavor_bm_gpu') == listing.hosts('gpu_nodes')

    everything = listing.hosts()
    for stranger in LOOK_ALIKES:
        assert stranger not in everything
    # Clusters being created are left out.
    assert 'coe_cluster_building' not in listing.groups() and 'coe_cluster_hpc_building' not in listing.groups()

    heat_worker = sorted(h for h in listing.hosts('coe_cluster_heat_a_worker') if '-gpu-' not in h)[0]
    hv = listing.hostvars[heat_worker]
    assert hv['ansible_host'] == hv['coe_ips']['eth-25g']  # the named network
    assert hv['ansible_user'] == 'core'  # the cluster's ssh_user label
    assert hv['coe_driver'] == 'heat' and hv['coe_role'] == 'worker' and hv['coe_nodegroup'] == 'default-worker'
    assert hv['coe_cloud'] == 'east' and hv['coe_cluster'] == 'heat-a' and hv['coe_flavor'] == 'bm.compute'
    assert set(hv['coe_addresses']) == {'private', 'eth-25g'}
    capi_master = sorted(listing.hosts('coe_cluster_capi_b_master'))[0]
    hv = listing.hostvars[capi_master]
    assert hv['ansible_host'] == hv['coe_ips']['private']  # not on eth-25g: the first fixed IP
    assert hv['ansible_user'] == 'ubuntu'  # by the image's os_distro
    assert hv['coe_server_id'] and hv['coe_status'] == 'ACTIVE' and hv['coe_cluster_id'] == capi_b['uuid']

    # Per cloud: a fixed number of requests, none per node.
    routes = clouds.requests('east')['by_route']
    assert routes['GET /compute/v2.1/servers/detail'] == 1
    assert routes['GET /container-infra/v1/clusters'] == 1
    assert routes['GET /container-infra/v1/clusters/{id}/nodegroups'] == 3
    assert sum(routes.values()) <= 14, routes


def test_cache_hit_flush_and_no_other_clouds_data(clouds):
    cache = dict(cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(clouds.tmp / 'cache'),
                 clouds=['east'])
    first = clouds.inventory(**cache)
    assert first.rc == 0, first.stderr
    assert 'coe_cluster_heat_a' in first.groups()

    clouds.reset()
    second = clouds.inventory(**cache)
    assert second.rc == 0, second.stderr
    assert clouds.requests('east')['total'] == 0  # served from the cache
    assert second.hosts() == first.hosts() and second.hostvars == first.hostvars

    flushed = clouds.inventory(flush=True, **cache)
    assert flushed.rc == 0 and flushed.hosts() == first.hosts()
    assert clouds.requests('east')['by_route']['GET /container-infra/v1/clusters'] == 1

    # "east" now names the other cloud: the cached nodes of the first one must not come back.
    clouds.entries['east'] = sim_cloud_entry(clouds.sims['west'])
    clouds.write()
    clouds.reset()
    moved = clouds.inventory(**cache)
    assert moved.rc == 0, moved.stderr
    assert clouds.requests('west')['total'] > 0
    assert 'coe_cluster_heat_a' not in moved.groups()
    assert 'coe_cluster_hpc_heat' in moved.groups() and moved.hosts('coe_cloud_east') == moved.hosts()

    # Selecting other clouds is another cache entry too.
    clouds.entries['east'] = sim_cloud_entry(clouds.sims['east'])
    clouds.write()
    both = clouds.inventory(**dict(cache, clouds=['east', 'west']))
    assert both.rc == 0 and {'coe_cloud_east', 'coe_cloud_west', 'coe_cluster_heat_a', 'coe_cluster_hpc_heat'} <= both.groups()


def test_failing_cloud_with_and_without_fail_on_errors(clouds):
    clouds.sims['west'].set_faults([{'service': 'magnum', 'path_regex': '/clusters', 'status': 503}])
    cache = dict(cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(clouds.tmp / 'cache'))

    partial = clouds.inventory(**cache)
    assert partial.rc == 0, partial.stderr
    assert "cloud 'west'" in partial.stderr and '503' in partial.stderr
    assert 'coe_cluster_heat_a' in partial.groups() and not partial.hosts('coe_cloud_west')

    # The partial answer was not cached: once west recovers, its nodes appear.
    clouds.sims['west'].clear_faults()
    recovered = clouds.inventory(**cache)
    assert recovered.rc == 0 and recovered.hosts('coe_cloud_west')

    clouds.sims['west'].set_faults([{'service': 'magnum', 'path_regex': '/clusters', 'status': 503}])
    failed = clouds.inventory(fail_on_errors=True)
    assert failed.rc != 0
    assert "cloud 'west'" in failed.stderr and '503' in failed.stderr


def test_cluster_selection_and_clusters_being_built(clouds):
    listing = clouds.inventory(clouds=['east'], clusters=['capi-c', 'building', 'no-such-cluster'],
                               skip_statuses=[], inventory_hostname='id')
    assert listing.rc == 0, listing.stderr
    assert {'coe_cluster_capi_c', 'coe_cluster_building'} <= listing.groups()
    assert 'coe_cluster_heat_a' not in listing.groups() and 'coe_cluster_capi_b' not in listing.groups()
    assert "no cluster named 'no-such-cluster'" in listing.stderr
    state = clouds.sims['east'].state()
    ids = dict((s['name'], s['id']) for s in state['servers'])
    assert all(h in ids.values() for h in listing.hosts())
    assert len(listing.hosts('coe_cluster_building')) == 2


# One transient answer from each service the inventory reads; the shared retry policy must cure them.
ONE_503_EACH = [{'service': s, 'status': 503, 'count': 1} for s in ('container-infra', 'orchestration', 'compute')]


def test_one_503_from_magnum_heat_and_nova_changes_nothing(clouds):
    sim = clouds.sims['east']
    sim.reset_requests()
    clean = clouds.inventory(clouds=['east'])
    assert clean.rc == 0, clean.stderr
    # With the real services tier Heat is real, and only the simulated services can answer 503.
    simulated = set(route.split()[1].split('/')[1] for route in sim.requests()['by_route'])
    rules = [r for r in ONE_503_EACH if r['service'] != 'orchestration' or 'orchestration' in simulated]
    sim.set_faults(rules)
    retried = clouds.inventory(clouds=['east'])
    assert retried.rc == 0, retried.stderr
    assert [r['fired'] for r in sim.faults()] == [1] * len(rules)
    assert 'hpcops.coe.clusters' not in retried.stderr  # no cloud or cluster reported as failing
    assert retried.hosts() == clean.hosts() and len(clean.hosts()) > 0
    assert retried.groups() == clean.groups()
