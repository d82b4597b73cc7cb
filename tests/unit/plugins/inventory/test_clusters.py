# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hpcops.coe.clusters inventory plugin on in-memory clouds (one per clouds.yaml entry)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from unittest import mock

import pytest
import yaml

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.utils.display import Display

from ansible_collections.hpcops.coe.plugins.inventory import clusters as plugin_module
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeCloud, FakeImage


# Reads retry transient errors with real sleeps; the errors these tests inject need no waiting.
pytestmark = pytest.mark.usefixtures('no_retry_waits')


def write_clouds(path, clouds):
    """clouds: {name: auth_url}."""
    data = {'clouds': dict((name, {'auth': {'auth_url': url, 'username': 'u', 'password': 'secret-%s' % name,
                                            'project_name': 'hpc', 'user_domain_name': 'Default',
                                            'project_domain_name': 'Default'},
                                   'region_name': 'RegionOne'})
                           for name, url in clouds.items())}
    path.write_text(yaml.safe_dump(data))
    return str(path)


class World:
    """clouds.yaml, inventory file and fake clouds; parse() runs the plugin as ansible-inventory does."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.clouds = {}
        self.auth_urls = {}
        self.connections = []

    def cloud(self, name, auth_url=None):
        self.clouds[name] = FakeCloud()
        self.auth_urls[name] = auth_url or 'https://%s.example:5000/v3' % name
        return self.clouds[name]

    def config(self, filename='test.coe_clusters.yml', **options):
        options.setdefault('plugin', 'hpcops.coe.clusters')
        options.setdefault('clouds_yaml_path', [write_clouds(self.tmp / 'clouds.yaml', self.auth_urls)])
        path = self.tmp / filename
        path.write_text(yaml.safe_dump(options))
        return str(path)

    def connect(self, config=None):
        cloud = self.clouds[config.name]
        if isinstance(cloud, Exception):
            raise cloud
        self.connections.append(config.name)
        return cloud

    def parse(self, path, cache=True):
        plugin = inventory_loader.get('hpcops.coe.clusters')
        inventory = InventoryData()
        with mock.patch.object(plugin_module.openstack.connection, 'Connection', side_effect=self.connect), \
                mock.patch.object(plugin_module.os_config_loader, 'CONFIG_FILES', []):
            plugin.parse(inventory, DataLoader(), path, cache=cache)
            if getattr(plugin, '_cache', None) is not None:
                plugin.update_cache_if_changed()
        return inventory

    def calls(self):
        return sum(len(c.calls) for c in self.clouds.values() if isinstance(c, FakeCloud))


def hostvars(inventory, host):
    return inventory.get_host(host).get_vars()


def members(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


@pytest.fixture(autouse=True)
def no_os_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith('OS_'):
            monkeypatch.delenv(key)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    east = w.cloud('east')
    w.heat = east.add_heat_cluster('heat-a', 'heat-a-abcdefghijkl', masters=1, workers=2, extra_ngs={'gpu': 1},
                                   labels={'ssh_user': 'fedora'})
    w.capi = east.add_capi_cluster('capi-b', 'kube-b1c2d', workers={'default-worker': 2, 'gpu-a100': 1})
    east.add_heat_cluster('building', 'building-aaaaaaaaaaaa', workers=1, unbuilt_workers=2,
                          status='CREATE_IN_PROGRESS')
    east.add_server('kube-b1c2dd-default-worker-aaaaa-bbbbb')
    east.add_server('heat-a-abcdefghijkl-bastion')
    east.add_server('jupyter')
    west = w.cloud('west')
    w.west = west.add_capi_cluster('capi-w', 'kube-w0000', workers={'default-worker': 1})
    return w


def test_verify_file_accepts_only_its_names(tmp_path):
    plugin = inventory_loader.get('hpcops.coe.clusters')
    for name, expected in (('prod.coe_clusters.yml', True), ('prod.coe_clusters.yaml', True),
                           ('coe_clusters.yml', True), ('coe_clusters.yaml', True),
                           ('openstack.yml', False), ('my_coe_clusters.yml', False), ('x.coe_clusters.json', False)):
        path = tmp_path / name
        path.write_text('plugin: hpcops.coe.clusters\n')
        assert plugin.verify_file(str(path)) is expected, name
    assert plugin.verify_file(str(tmp_path / 'missing.coe_clusters.yml')) is False


def test_groups_and_hostvars_across_drivers_and_clouds(world):
    inv = world.parse(world.config())
    east = world.clouds['east']
    heat_hosts = sorted(s['name'] for s in east.servers if s['name'].startswith('heat-a-'))
    heat_hosts.remove('heat-a-abcdefghijkl-bastion')
    assert members(inv, 'coe_cluster_heat_a') == heat_hosts
    assert members(inv, 'coe_cluster_capi_b') == [
        'kube-b1c2d-control-plane-00000-x0', 'kube-b1c2d-default-worker-r0000-q0',
        'kube-b1c2d-default-worker-r0001-q1', 'kube-b1c2d-gpu-a100-r0000-q0']
    assert members(inv, 'coe_cluster_capi_b_master') == ['kube-b1c2d-control-plane-00000-x0']
    assert members(inv, 'coe_cluster_capi_b_ng_gpu_a100') == ['kube-b1c2d-gpu-a100-r0000-q0']
    assert members(inv, 'coe_cluster_heat_a_ng_gpu') == [h for h in heat_hosts if h.startswith('heat-a-gpu-')]
    assert members(inv, 'coe_cluster_capi_w') == ['kube-w0000-control-plane-00000-x0',
                                                  'kube-w0000-default-worker-r0000-q0']
    assert len(members(inv, 'coe_masters')) == 3
    assert members(inv, 'coe_cloud_west') == members(inv, 'coe_cluster_capi_w')
    assert set(members(inv, 'coe_driver_heat')) == set(heat_hosts)
    assert 'coe_ng_default_worker' in inv.groups

    everything = set(inv.hosts)
    for stranger in ('kube-b1c2dd-default-worker-aaaaa-bbbbb', 'heat-a-abcdefghijkl-bastion', 'jupyter'):
        assert stranger not in everything
    # The cluster being created is left out by default.
    assert not any(h.startswith('building-') for h in everything)
    assert 'coe_cluster_building' not in inv.groups

    master = hostvars(inv, 'kube-b1c2d-control-plane-00000-x0')
    assert master['coe_role'] == 'master' and master['coe_driver'] == 'capi'
    assert master['coe_cluster'] == 'capi-b' and master['coe_cluster_id'] == world.capi['uuid']
    assert master['coe_cloud'] == 'east' and master['coe_region'] == 'RegionOne'
    assert master['ansible_host'] == master['coe_ips']['cluster-net']
    worker = hostvars(inv, 'kube-b1c2d-default-worker-r0000-q0')
    # No network named: the floating IP wins over the fixed one.
    assert worker['ansible_host'] == worker['coe_floating_ip'] == worker['coe_addresses']['cluster-net']['floating'][0]
    assert 'ansible_user' not in worker
    assert hostvars(inv, heat_hosts[0])['ansible_user'] == 'fedora'  # from the cluster label


def test_host_network_and_ssh_user_rules(world):
    east = world.clouds['east']
    east.images['img-fcos'] = FakeImage('fedora-coreos-40', 'fedora-coreos')
    server = [s for s in east.servers if s['name'] == 'kube-b1c2d-default-worker-r0000-q0'][0]
    server['addresses']['storage-net'] = [{'addr': 'fd00::7', 'OS-EXT-IPS:type': 'fixed'},
                                          {'addr': '10.77.0.7', 'OS-EXT-IPS:type': 'fixed'}]
    inv = world.parse(world.config(host_network='storage-net', ssh_user='cloud-user',
                                   ssh_user_by_image={'fedora-coreos': 'core'}))
    worker = hostvars(inv, 'kube-b1c2d-default-worker-r0000-q0')
    assert worker['ansible_host'] == '10.77.0.7'  # the named network, IPv4 first
    assert worker['coe_ips']['storage-net'] == 'fd00::7'
    other = hostvars(inv, 'kube-b1c2d-default-worker-r0001-q1')
    assert other['ansible_host'] == other['coe_floating_ip']  # not on storage-net: fallback
    assert worker['ansible_user'] == 'core'  # by the image's os_distro
    assert hostvars(inv, 'heat-a-abcdefghijkl-master-0')['ansible_user'] == 'fedora'  # the label wins
    # One look-up per distinct image, per cloud.
    assert east.count('image') == 1


def test_selected_clusters_constructed_and_hostname_by_id(world):
    inv = world.parse(world.config(
        clusters=['capi-b', world.west['uuid'], 'no-such-cluster'], inventory_hostname='id',
        compose={'node_kind': "coe_role ~ '-' ~ coe_nodegroup"},
        groups={'gpu_nodes': "'gpu' in coe_nodegroup"},
        keyed_groups=[{'key': 'coe_flavor', 'prefix': 'flavor'}]))
    east_ids = set(s['id'] for s in world.clouds['east'].servers if s['name'].startswith('kube-b1c2d-'))
    assert set(members(inv, 'coe_cluster_capi_b')) == east_ids
    assert 'coe_cluster_heat_a' not in inv.groups
    assert len(members(inv, 'coe_cluster_capi_w')) == 2
    gpu = members(inv, 'gpu_nodes')
    assert len(gpu) == 1 and hostvars(inv, gpu[0])['node_kind'] == 'worker-gpu-a100'
    assert len(members(inv, 'flavor_bm_large')) == 6


def test_duplicate_names_fall_back_to_ids(world):
    west = world.clouds['west']
    west.add_capi_cluster('capi-b', 'kube-b1c2d', masters=1, workers={})  # same CAPI name in another cloud
    inv = world.parse(world.config())
    twins = [s['id'] for c in world.clouds.values() for s in c.servers
             if s['name'] == 'kube-b1c2d-control-plane-00000-x0']
    assert len(twins) == 2
    assert all(t in inv.hosts for t in twins)
    assert 'kube-b1c2d-control-plane-00000-x0' not in inv.hosts


def test_cache_hit_then_flush(world):
    options = dict(cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(world.tmp / 'cache'))
    path = world.config(**options)
    first = world.parse(path)
    calls = world.calls()
    assert calls > 0 and sorted(world.connections) == ['east', 'west']
    second = world.parse(path)
    assert world.calls() == calls and len(world.connections) == 2
    assert sorted(second.hosts) == sorted(first.hosts)
    assert hostvars(second, 'kube-w0000-control-plane-00000-x0')['coe_cloud'] == 'west'
    world.parse(path, cache=False)  # --flush-cache
    assert world.calls() > calls


def test_cache_never_serves_another_clouds_data(world):
    options = dict(cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(world.tmp / 'cache'))
    world.parse(world.config(clouds=['east'], **options))
    west_only = world.parse(world.config(clouds=['west'], **options))
    assert sorted(west_only.hosts) == ['kube-w0000-control-plane-00000-x0', 'kube-w0000-default-worker-r0000-q0']

    # Same cloud name, another Keystone: the cached 'east' must not be used.
    before = world.clouds['east'].count()
    world.parse(world.config(clouds=['east'], **options))
    assert world.clouds['east'].count() == before  # a hit
    world.auth_urls['east'] = 'https://east-new.example:5000/v3'
    world.clouds['east'] = FakeCloud()
    world.clouds['east'].add_capi_cluster('fresh', 'kube-f0000', workers={})
    moved = world.parse(world.config(clouds=['east'], **options))
    assert sorted(moved.hosts) == ['kube-f0000-control-plane-00000-x0']


def test_cache_key_ignores_secrets_but_not_identity(world, tmp_path):
    from openstack.config import loader
    clouds_yaml = write_clouds(tmp_path / 'c.yaml', {'a': 'https://a.example/v3'})
    region = loader.OpenStackConfig(config_files=[clouds_yaml]).get_one(cloud='a')
    identity = plugin_module.cloud_identity(region)
    assert identity['auth_url'] == 'https://a.example/v3' and identity['project_name'] == 'hpc'
    assert identity['cloud'] == 'a' and identity['region'] == 'RegionOne'
    assert 'secret-a' not in repr(identity)


def test_failing_cloud_is_a_warning_by_default_and_not_cached(world):
    world.clouds['west'] = RuntimeError('Keystone unreachable')
    options = dict(cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(world.tmp / 'cache'))
    path = world.config(**options)
    with mock.patch.object(Display, 'warning') as warning:
        inv = world.parse(path)
    warnings = ' '.join(str(c) for c in warning.call_args_list)
    assert "cloud 'west'" in warnings and 'Keystone unreachable' in warnings
    assert 'coe_cluster_capi_b' in inv.groups and 'coe_cluster_capi_w' not in inv.groups
    # The partial result was not cached: the next run asks the clouds again.
    calls = world.calls()
    world.parse(path)
    assert world.calls() > calls


def test_failing_cloud_fails_the_source_with_fail_on_errors(world):
    world.clouds['west'] = RuntimeError('Keystone unreachable')
    with pytest.raises(AnsibleParserError, match="cloud 'west': Keystone unreachable"):
        world.parse(world.config(fail_on_errors=True))


def test_failing_cluster_is_reported_by_name(world):
    east = world.clouds['east']
    east.faults[('orchestration', '/stacks')] = (500, {'error': {'message': 'engine down'}})
    with pytest.raises(AnsibleParserError, match="cloud 'east', cluster 'heat-a': .*engine down"):
        world.parse(world.config(fail_on_errors=True))
    with mock.patch.object(Display, 'warning') as warning:
        inv = world.parse(world.config())
    assert 'engine down' in str(warning.call_args_list)
    assert 'coe_cluster_heat_a' not in inv.groups and 'coe_cluster_capi_b' in inv.groups


def test_unknown_cloud_name(world):
    with pytest.raises(AnsibleParserError, match="cloud 'nowhere'"):
        world.parse(world.config(clouds=['east', 'nowhere'], fail_on_errors=True))


def test_skip_statuses_can_include_clusters_being_built(world):
    inv = world.parse(world.config(skip_statuses=[]))
    assert members(inv, 'coe_cluster_building') == ['building-aaaaaaaaaaaa-master-0', 'building-aaaaaaaaaaaa-node-0']
