# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One group naming scheme and one ansible_host rule for the inventory plugin and the cluster role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hpcops.coe.plugins.filter.cluster_hosts import cluster_hosts
from ansible_collections.hpcops.coe.plugins.plugin_utils.node_groups import choose_ansible_host, node_groups


def test_a_node_gets_the_all_role_cluster_and_nodegroup_groups():
    assert node_groups('hpc-k8s', 'worker', 'gpu-a100', 'capi', 'east') == [
        'coe_nodes', 'coe_workers', 'coe_cluster_hpc_k8s', 'coe_cluster_hpc_k8s_worker',
        'coe_cluster_hpc_k8s_ng_gpu_a100', 'coe_ng_gpu_a100', 'coe_cloud_east', 'coe_driver_capi']


def test_unknown_nodegroup_cloud_and_driver_add_no_group():
    assert node_groups('k8s', 'master') == ['coe_nodes', 'coe_masters', 'coe_cluster_k8s', 'coe_cluster_k8s_master']


def test_a_cluster_named_like_a_role_group_stays_apart():
    assert 'coe_workers' not in node_groups('workers', 'master')


def test_choose_ansible_host():
    addrs = {'a': {'fixed': ['fd00::1', '10.0.0.1'], 'floating': [], 'mac': None},
             'b': {'fixed': ['10.1.0.1'], 'floating': ['172.24.4.1'], 'mac': None}}
    assert choose_ansible_host(addrs, 'a') == '10.0.0.1'
    assert choose_ansible_host(addrs, 'zzz') == '172.24.4.1'
    assert choose_ansible_host(addrs) == '172.24.4.1'
    assert choose_ansible_host({'a': addrs['a']}) == '10.0.0.1'
    assert choose_ansible_host({'v6': {'fixed': ['fd00::2'], 'floating': []}}) == 'fd00::2'
    assert choose_ansible_host({}) is None and choose_ansible_host(None) is None


NODES = {
    'cluster': {'name': 'hpc-k8s', 'id': 'c1', 'driver': 'heat'},
    'nodes': [
        {'name': 'hpc-k8s-master-0', 'role': 'master', 'nodegroup': 'default-master', 'id': 's1',
         'addresses': {'private': {'fixed': ['10.0.0.5'], 'floating': ['172.24.4.9'], 'mac': 'fa:16:3e:00:00:01'}}},
        {'name': 'hpc-k8s-node-0', 'role': 'worker', 'nodegroup': 'default-worker', 'id': 's2',
         'addresses': {'private': {'fixed': ['10.0.0.6'], 'floating': [], 'mac': 'fa:16:3e:00:00:02'}}},
    ],
}


def test_cluster_hosts_names_groups_and_addresses_the_nodes_as_the_plugin_does():
    hosts = cluster_hosts(NODES)
    assert [h['name'] for h in hosts] == ['hpc-k8s-master-0', 'hpc-k8s-node-0']
    assert hosts[0]['groups'] == node_groups('hpc-k8s', 'master', 'default-master', 'heat')
    assert 'coe_workers' in hosts[1]['groups'] and 'coe_driver_heat' in hosts[1]['groups']
    # No network named: a floating IP first, else the first fixed IP.
    assert [h['ansible_host'] for h in hosts] == ['172.24.4.9', '10.0.0.6']
    assert [h['ansible_host'] for h in cluster_hosts(NODES, 'private')] == ['10.0.0.5', '10.0.0.6']
    assert hosts[1]['id'] == 's2' and hosts[1]['addresses'] == NODES['nodes'][1]['addresses']


def test_a_skipped_cluster_nodes_task_has_no_hosts():
    assert cluster_hosts({'changed': False, 'skipped': True, 'skip_reason': 'Conditional result was False'}) == []


@pytest.mark.parametrize('bad', [None, [], {'nodes': []}, {'cluster': {}, 'nodes': 'x'}])
def test_cluster_hosts_names_what_it_expects(bad):
    with pytest.raises(AnsibleFilterError, match='what hpcops.coe.cluster_nodes returned'):
        cluster_hosts(bad)
