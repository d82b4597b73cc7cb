# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The accelerators role's filters: device nodes from NodeFeatures, failed steps' messages, the validation record."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hpcops.coe.plugins.filter.accelerators import (
    accelerator_nodes, step_failure, validation_record)

GPU_PCI = {'vendor': '10de', 'class': ['03']}
NIC_PCI = {'vendor': '15b3', 'class': ['02']}


def feature(node, *devices, label=True):
    meta = {'name': 'nf-' + node}
    if label:
        meta['labels'] = {'nfd.node.kubernetes.io/node-name': node}
    return {'metadata': meta, 'spec': {'features': {'instances': {'pci.device': {'elements': [
        {'attributes': {'vendor': v, 'class': c, 'device': d}} for v, c, d in devices]}}}}}


def test_gpu_and_nic_nodes_from_vendor_and_class():
    found = accelerator_nodes([
        feature('gpu-2', ('10DE', '0302', '20b5'), ('15b3', '0207', '101b')),
        feature('gpu-1', ('10de', '0300', '2330'), ('10de', '0300', '2330')),
        feature('cpu-1', ('8086', '0200', '1592')),
        # An NVIDIA audio function (class 04) is not a GPU; a node without the label goes by its object name.
        feature('audio', ('10de', '0403', '22bc'), label=False),
        {'metadata': {'name': 'empty'}},
    ], GPU_PCI, NIC_PCI)
    assert found == {'gpu': ['gpu-1', 'gpu-2'], 'nic': ['gpu-2']}


def test_a_four_digit_class_matches_only_that_subclass():
    nic_ib = {'vendor': '15b3', 'class': ['0207']}
    found = accelerator_nodes([feature('eth', ('15b3', '0200', '1017')), feature('ib', ('15b3', '0207', '101b'))],
                              GPU_PCI, nic_ib)
    assert found['nic'] == ['ib']


def test_a_pci_rule_without_vendor_or_class_is_refused():
    with pytest.raises(AnsibleFilterError, match='nic_pci must be'):
        accelerator_nodes([], GPU_PCI, {'vendor': '15b3'})


STATUS = {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'Forbidden', 'code': 403,
          'message': 'daemonsets.apps is forbidden: User "ci" cannot create resource "daemonsets"'}


def test_the_api_servers_message_replaces_the_quoted_status():
    result = {'failed': True, 'msg': 'Failed to create object: %s' % json.dumps(STATUS)}
    failure = step_failure(result)
    assert failure == {'message': STATUS['message'], 'rbac': True}


def test_a_loop_reports_its_first_failed_item():
    result = {'failed': True, 'msg': 'One or more items failed', 'results': [
        {'failed': False, 'msg': 'fine'}, {'failed': True, 'msg': 'image pull secret x not found'},
        {'failed': True, 'msg': 'later'}]}
    assert step_failure(result) == {'message': 'image pull secret x not found', 'rbac': False}


def test_a_message_without_status_or_with_broken_json_is_kept_whole():
    assert step_failure({'msg': 'timed out'})['message'] == 'timed out'
    broken = 'oops {"kind": "Status", not json}'
    assert step_failure({'msg': broken})['message'] == broken
    assert step_failure(None) == {'message': '', 'rbac': False}


def test_the_validation_record_names_each_check_that_ran():
    results = [
        {'item': {'name': 'gpu', 'resource': 'nvidia.com/gpu', 'runtime_class': 'nvidia'},
         'passed_nodes': ['gpu-1', 'gpu-2'], 'changed': True},
        {'item': {'name': 'rdma', 'resource': 'rdma/ib'}, 'passed_nodes': [], 'changed': True},
        {'item': {'name': 'skipped'}, 'skipped': True},
    ]
    assert validation_record(results) == {
        'gpu': 'nvidia.com/gpu through runtime nvidia: passed on gpu-1, gpu-2',
        'rdma': 'rdma/ib through runtime default: passed on none'}
