# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What hpcops.coe.pod_network checks again: the nodes whose inputs changed since they passed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hpcops.coe.plugins.modules.pod_network import (
    cni_daemonset_images, node_digests, nodes_to_check)
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import node

PARAMS = {'validation_image': 'busybox:1.36.1', 'rdma_resource': None, 'tolerations': None}
NAD = {'kind': 'NetworkAttachmentDefinition', 'spec': {'config': '{"type": "macvlan"}'}}


def daemonset(name, image, host_paths):
    return {'metadata': {'name': name, 'namespace': 'net'},
            'spec': {'template': {'spec': {'containers': [{'name': 'c', 'image': image}],
                                           'volumes': [{'name': 'v%d' % i, 'hostPath': {'path': p}}
                                                       for i, p in enumerate(host_paths)]}}}}


def registered(name, boot='boot-1'):
    obj = node(name)
    obj['metadata']['uid'] = 'uid-' + name
    obj['status']['nodeInfo']['bootID'] = boot
    return obj


def test_only_changed_nodes_are_checked_with_a_peer_when_alone():
    digests = {'a': '1', 'b': '2', 'c': '3'}
    assert nodes_to_check(['a', 'b', 'c'], digests, digests) == []
    assert nodes_to_check(['a', 'b', 'c'], digests, dict(digests, b='old')) == ['a', 'b']
    assert nodes_to_check(['a', 'b', 'c'], digests, {'a': '1'}) == ['b', 'c']
    assert nodes_to_check(['a', 'b', 'c'], digests, {}) == ['a', 'b', 'c']
    assert nodes_to_check(['a', 'b', 'c'], digests, digests, force=True) == ['a', 'b', 'c']


def test_the_digest_follows_the_nad_the_node_and_the_cni_daemonsets():
    nodes = [registered('a'), registered('b')]
    images = cni_daemonset_images([daemonset('multus', 'multus:4.1', ['/opt/cni/bin', '/etc/cni/net.d']),
                                   daemonset('exporter', 'exporter:1', ['/var/lib/kubelet'])])
    assert images == {'net/multus': ['multus:4.1']}
    base = node_digests(PARAMS, NAD, nodes, images)
    assert node_digests(PARAMS, NAD, [registered('b'), registered('a')], images) == base
    assert base['a'] != base['b']
    other_nad = {'kind': 'NetworkAttachmentDefinition', 'spec': {'config': '{"type": "ipvlan"}'}}
    assert node_digests(PARAMS, other_nad, nodes, images)['a'] != base['a']
    assert node_digests(PARAMS, NAD, nodes, {'net/multus': ['multus:4.2']})['a'] != base['a']
    assert node_digests(dict(PARAMS, validation_image='busybox:1.37'), NAD, nodes, images)['a'] != base['a']
    assert node_digests(PARAMS, NAD, [registered('a', boot='boot-2')], images)['a'] != base['a']
    # with an RDMA resource, the devices the node advertises count too
    rdma = dict(PARAMS, rdma_resource='rdma/ib')
    with_devices = registered('a')
    with_devices['status']['allocatable']['rdma/ib'] = '1000'
    assert node_digests(rdma, NAD, [with_devices], images)['a'] != node_digests(rdma, NAD, nodes, images)['a']
