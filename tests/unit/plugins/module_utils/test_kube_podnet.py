# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pod networks: ranges Neutron never hands out, CNI configurations, input checks, the role's plan."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import kube_podnet as pn

POOL = [{'start': '10.25.0.2', 'end': '10.25.191.254'}]


def test_largest_run_outside_the_pools_is_taken():
    rng = pn.safe_range('10.25.0.0/16', POOL, '10.25.0.1')
    assert rng == {'cidr': '10.25.0.0/16', 'first': '10.25.191.255', 'last': '10.25.255.254', 'size': 16384}


def test_gateway_and_port_addresses_outside_the_pools_are_left_out():
    # pool in the middle: runs below (after the gateway) and above; a port holds an address above
    rng = pn.safe_range('10.0.0.0/24', [{'start': '10.0.0.50', 'end': '10.0.0.199'}], '10.0.0.1',
                        reserved=['10.0.0.220'])
    # free runs: .2-.49 (48), .200-.219 (20), .221-.254 (34): the largest wins
    assert (rng['first'], rng['last'], rng['size']) == ('10.0.0.2', '10.0.0.49', 48)
    rng = pn.safe_range('10.0.0.0/24', [{'start': '10.0.0.2', 'end': '10.0.0.199'}], '10.0.0.1',
                        reserved=['10.0.0.220'])
    assert (rng['first'], rng['last']) == ('10.0.0.221', '10.0.0.254')


def test_ipv6_subnet():
    rng = pn.safe_range('fd00:25::/64', [{'start': 'fd00:25::2', 'end': 'fd00:25::ffff'}], 'fd00:25::1')
    assert rng['first'] == 'fd00:25::1:0' and rng['last'] == 'fd00:25::ffff:ffff:ffff:ffff'


def test_pools_covering_the_subnet_leave_no_safe_range():
    with pytest.raises(pn.RangeError) as err:
        pn.safe_range('10.25.0.0/24', [{'start': '10.25.0.2', 'end': '10.25.0.254'}], '10.25.0.1', network='eth-25g')
    text = str(err.value)
    assert 'no safe range' in text and 'eth-25g' in text and 'allocation pool' in text
    with pytest.raises(pn.RangeError) as err:
        pn.safe_range('10.25.0.0/24', [{'start': '10.25.0.2', 'end': '10.25.0.250'}], '10.25.0.1', min_addresses=8)
    assert '10.25.0.251-10.25.0.254 (4 addresses)' in str(err.value) and 'min_addresses=8' in str(err.value)


def test_a_given_range_inside_a_pool_is_refused():
    with pytest.raises(pn.RangeError) as err:
        pn.safe_range('10.25.0.0/16', POOL, '10.25.0.1', requested='10.25.100.0/24', network='eth-25g')
    text = str(err.value)
    assert 'overlaps the allocation pool 10.25.0.2-10.25.191.254' in text
    assert 'free runs: 10.25.191.255-10.25.255.254' in text


def test_a_given_range_is_checked_against_subnet_gateway_and_ports():
    assert pn.safe_range('10.25.0.0/16', POOL, requested='10.25.200.0/21')['size'] == 2048
    assert pn.safe_range('10.25.0.0/16', POOL, requested='10.25.200.10-10.25.200.20')['size'] == 11
    with pytest.raises(pn.RangeError, match='not inside the host addresses'):
        pn.safe_range('10.25.0.0/16', POOL, requested='10.26.0.0/24')
    with pytest.raises(pn.RangeError, match='holds the gateway'):
        pn.safe_range('10.25.0.0/16', [{'start': '10.25.0.2', 'end': '10.25.0.100'}], '10.25.255.1',
                      requested='10.25.255.0-10.25.255.10')
    with pytest.raises(pn.RangeError, match='10.25.250.5, which a Neutron port holds'):
        pn.safe_range('10.25.0.0/16', POOL, reserved=['10.25.250.5'], requested='10.25.250.0-10.25.250.9')
    with pytest.raises(pn.RangeError, match='host bits zero'):
        pn.safe_range('10.25.0.0/16', POOL, requested='10.25.200.1/21')


def params(**kw):
    base = {'name': 'eth-25g', 'namespace': 'default', 'network': 'eth-25g', 'type': 'macvlan',
            'link_type': 'ethernet', 'interface': 'ens2', 'mode': None, 'mtu': 9000, 'network_mtu': 9000,
            'subnet': {'cidr': '10.25.0.0/16', 'gateway_ip': '10.25.0.1', 'allocation_pools': POOL},
            'reserved_addresses': [], 'range': None, 'min_addresses': 8, 'resource_name': None,
            'rdma_resource': None, 'validate': False, 'validation_nodes': None}
    base.update(kw)
    return base


def test_cni_configurations_per_plugin():
    p = params()
    rng = pn.ipam_range(p)
    config = pn.cni_config(p, rng)
    assert config == {'cniVersion': '0.4.0', 'name': 'eth-25g', 'type': 'macvlan', 'master': 'ens2', 'mode': 'bridge',
                      'mtu': 9000, 'ipam': {'type': 'whereabouts', 'range': '10.25.0.0/16', 'network_name': 'eth-25g',
                                            'range_start': '10.25.191.255', 'range_end': '10.25.255.254',
                                            'gateway': '10.25.0.1'}}
    ib = params(name='ib-100g', type='ipoib', link_type='infiniband', interface='ibp65s0', mtu=4092)
    config = pn.cni_config(ib, rng)
    assert config['type'] == 'ipoib' and config['master'] == 'ibp65s0' and 'mtu' not in config
    assert pn.cni_config(params(type='ipvlan'), rng)['mode'] == 'l2'
    hd = pn.cni_config(params(type='host-device'), rng)
    assert hd['device'] == 'ens2' and 'master' not in hd
    sriov = params(type='sriov', interface=None, resource_name='intel.com/vf_25g')
    nad = pn.nad_manifest(sriov, rng)
    assert nad['metadata']['annotations'] == {pn.RESOURCE_ANNOTATION: 'intel.com/vf_25g'}
    assert 'master' not in json.loads(nad['spec']['config'])


def test_nad_is_stable_text():
    p = params()
    rng = pn.ipam_range(p)
    one, two = pn.nad_manifest(p, rng), pn.nad_manifest(dict(p), pn.ipam_range(dict(p)))
    assert one == two and one['spec']['config'] == json.dumps(json.loads(one['spec']['config']), sort_keys=True)
    assert one['metadata']['labels'][pn.NETWORK_LABEL] == 'eth-25g'


def test_input_checks_name_the_problem():
    assert pn.validate(params()) == []
    (msg,) = pn.validate(params(link_type='infiniband', type='macvlan', mtu=4092))
    assert 'type=macvlan cannot run on InfiniBand network eth-25g' in msg and 'type=ipoib' in msg
    assert 'ib-sriov' not in ' '.join(pn.validate(params(link_type='infiniband', type='sriov', mtu=4092)))
    assert any('resource_name' in m for m in pn.validate(params(type='sriov', interface=None)))
    assert any('interface is required' in m for m in pn.validate(params(interface=None)))
    assert any('larger than the MTU 1500' in m for m in pn.validate(params(network_mtu=1500)))
    assert any('two nodes' in m for m in pn.validate(params(validate=True, validation_nodes=['a', 'a'])))


def test_operator_owned_nads_are_recognised():
    nad = {'metadata': {'name': 'ib-100g', 'namespace': 'default'}}
    assert pn.operator_owner(nad, []) is None
    ipoib = {'kind': 'IPoIBNetwork', 'metadata': {'name': 'ib-100g'}, 'spec': {'networkNamespace': 'default'}}
    assert 'IPoIBNetwork ib-100g' in pn.operator_owner(nad, [ipoib])
    other_ns = dict(ipoib, spec={'networkNamespace': 'hpc'})
    assert pn.operator_owner(nad, [other_ns]) is None
    owned = {'metadata': {'name': 'x', 'namespace': 'y', 'ownerReferences': [
        {'apiVersion': 'mellanox.com/v1alpha1', 'kind': 'MacvlanNetwork', 'name': 'x'}]}}
    assert 'MacvlanNetwork x' in pn.operator_owner(owned, [])


def test_network_status_and_peers():
    pod = {'metadata': {'annotations': {pn.NETWORK_STATUS_ANNOTATION: json.dumps(
        [{'name': 'k8s-pod-network', 'default': True, 'ips': ['192.168.0.4']},
         {'name': 'default/eth-25g', 'interface': 'net1', 'ips': ['10.25.192.1']}])}}}
    assert pn.network_status(pod, 'default/eth-25g')['ips'] == ['10.25.192.1']
    assert pn.network_status(pod, 'default/ib') is None
    assert pn.in_range('10.25.192.1', {'first': '10.25.191.255', 'last': '10.25.255.254'})
    assert not pn.in_range('10.25.0.9', {'first': '10.25.191.255', 'last': '10.25.255.254'})
    assert pn.ring_peers(['b', 'a', 'c']) == {'a': 'b', 'b': 'c', 'c': 'a'}


SITE = [{'name': 'eth-25g', 'mtu': 9000}, {'name': 'ib-100g', 'kind': 'infiniband', 'mtu': 4092}]
NEUTRON = {
    'eth-25g': {'mtu': 9000, 'reserved': ['10.25.0.5'], 'subnets': [
        {'id': 's6', 'cidr': 'fd00::/64', 'ip_version': 6, 'allocation_pools': []},
        {'id': 's4', 'cidr': '10.25.0.0/16', 'ip_version': 4, 'gateway_ip': '10.25.0.1', 'allocation_pools': POOL}]},
    'ib-100g': {'mtu': 4092, 'reserved': [], 'subnets': [
        {'id': 'ib', 'cidr': '10.100.0.0/16', 'ip_version': 4, 'gateway_ip': None,
         'allocation_pools': [{'start': '10.100.0.2', 'end': '10.100.127.254'}]}]},
}


def test_node_links_come_from_the_networks_role_facts():
    hosts = {
        'node-0': {'interfaces': [{'network': 'eth-25g', 'mac': 'B4:96:00:02:00:00', 'ifname': None},
                                  {'network': 'ib-100g', 'mac': 'b4:96:00:03:00:00', 'ifname': 'ibp65s0'}],
                   'links': [{'name': 'ens2', 'address': 'b4:96:00:02:00:00'}]},
        'node-1': {'interfaces': [{'network': 'eth-25g', 'mac': 'b4:96:00:02:00:01', 'ifname': None},
                                  {'network': 'ib-100g', 'error': 'no link'}],
                   'links': [{'name': 'ens2', 'address': 'b4:96:00:02:00:01'}]},
    }
    assert pn.node_interface_names(hosts) == {'eth-25g': {'node-0': 'ens2', 'node-1': 'ens2'},
                                              'ib-100g': {'node-0': 'ibp65s0'}}


def test_plan_of_a_site():
    out = pn.plan([{'network': 'eth-25g'}, {'network': 'ib-100g', 'rdma': True}], SITE, NEUTRON,
                  {'eth-25g': {'n0': 'ens2', 'n1': 'ens2'}, 'ib-100g': {'n0': 'ibp65s0', 'n1': 'ibp65s0'}},
                  namespace='hpc')
    assert out['errors'] == []
    eth, ib = out['nads']
    assert (eth['type'], eth['interface'], eth['mtu']) == ('macvlan', 'ens2', 9000)
    assert eth['subnet']['cidr'] == '10.25.0.0/16'
    assert eth['reserved_addresses'] == ['10.25.0.5'] and eth['nodes'] == ['n0', 'n1'] and eth['namespace'] == 'hpc'
    assert (ib['type'], ib['link_type'], ib['rdma_resource']) == ('ipoib', 'infiniband', 'rdma/ib_100g')
    assert out['rdma_pools'] == [{'name': 'ib_100g', 'if_names': ['ibp65s0'], 'link_types': ['infiniband']}]
    assert out['components'] == ['multus', 'cni-plugins', 'whereabouts', 'ipoib-cni']


def test_plan_refuses_what_it_cannot_derive():
    out = pn.plan([{'network': 'eth-10g'}, {'network': 'eth-25g'}, {'network': 'ib-100g'}], SITE, {
        'eth-25g': NEUTRON['eth-25g']}, {'eth-25g': {'n0': 'ens2', 'n1': 'ens3'}})
    text = ' | '.join(out['errors'])
    assert "network 'eth-10g' is not in networks_list" in text
    assert 'ens2 on n0; ens3 on n1' in text
    assert "Neutron does not show network 'ib-100g'" in text
    assert out['nads'] == [] and out['components'] == []


def test_neutron_facts_from_openstack_cloud_results():
    nets = [{'id': 'n1', 'name': 'eth-25g', 'mtu': 9000}]
    subnets = [{'id': 's1', 'network_id': 'n1', 'cidr': '10.25.0.0/16'}, {'id': 's2', 'network_id': 'other'}]
    ports = [{'network_id': 'n1', 'fixed_ips': [{'subnet_id': 's1', 'ip_address': '10.25.0.7'}]},
             {'network_id': 'n2', 'fixed_ips': [{'subnet_id': 's2', 'ip_address': '10.9.0.7'}]}]
    facts = pn.neutron_facts(nets, subnets, ports)
    assert facts['eth-25g']['reserved'] == ['10.25.0.7'] and [s['id'] for s in facts['eth-25g']['subnets']] == ['s1']
    assert facts['n1'] is facts['eth-25g']


def test_no_entries_means_every_network_of_the_site():
    out = pn.plan([], SITE, NEUTRON, {'eth-25g': 'ens2', 'ib-100g': 'ibp65s0'})
    assert [(n['name'], n['type']) for n in out['nads']] == [('eth-25g', 'macvlan'), ('ib-100g', 'ipoib')]
    assert out['nads'][0]['nodes'] is None


def test_host_facts_tolerate_hosts_without_them():
    hostvars = {'a': {'networks_node_interfaces': [{'network': 'x', 'ifname': 'ib0'}]}, 'b': {}}
    assert pn.host_facts(hostvars, ['a', 'b', 'c']) == {
        'a': {'interfaces': [{'network': 'x', 'ifname': 'ib0'}], 'links': []},
        'b': {'interfaces': [], 'links': []}, 'c': {'interfaces': [], 'links': []}}


def test_other_owners_are_found():
    policy = {'metadata': {'name': 'nic-cluster-policy'},
              'spec': {'secondaryNetwork': {'multus': {'image': 'multus-cni'}, 'ipoib': {'image': 'ipoib-cni'}},
                       'rdmaSharedDevicePlugin': {'image': 'k8s-rdma-shared-dev-plugin'}}}
    ds = {'metadata': {'name': 'kube-multus-ds', 'namespace': 'kube-system'},
          'spec': {'template': {'spec': {'containers': [{'image': 'ghcr.io/k8snetworkplumbingwg/multus-cni:v4.1.0'}]}}}}
    ours = {'metadata': {'name': 'multus', 'namespace': 'hpcops-network'},
            'spec': {'template': {'spec': {'containers': [{'image': 'ghcr.io/k8snetworkplumbingwg/multus-cni:v4'}]}}}}
    out = pn.foreign_owners([policy], [ds, ours], 'hpcops-network')
    assert out['components'] == ['ipoib-cni', 'multus', 'rdma-shared']
    assert out['owners'] == ['NicClusterPolicy nic-cluster-policy (NVIDIA network operator): multus, ipoib-cni, '
                             'rdma-shared', 'DaemonSet kube-system/kube-multus-ds: multus']
    assert pn.foreign_owners([], [ours], 'hpcops-network') == {'components': [], 'owners': []}
    # The accelerators role's RDMA device plugin is this collection's own: its pools are not the role's.
    accelerators = {'metadata': {'name': 'rdma-shared-device-plugin', 'namespace': 'hpcops-accelerators',
                                 'labels': {'app.kubernetes.io/managed-by': 'hpcops.coe'}},
                    'spec': {'template': {'spec': {'containers': [
                        {'image': 'ghcr.io/mellanox/k8s-rdma-shared-dev-plugin:v1.5.1'}]}}}}
    assert pn.foreign_owners([], [accelerators], 'hpcops-network') == {'components': [], 'owners': []}
    foreign = dict(accelerators, metadata={'name': 'rdma', 'namespace': 'network-operator'})
    assert pn.foreign_owners([], [foreign], 'hpcops-network')['components'] == ['rdma-shared']
