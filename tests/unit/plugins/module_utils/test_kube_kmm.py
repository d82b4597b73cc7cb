# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KMM Module planning: which image KMM would load on which node, and the Module object."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

from ansible_collections.hpcops.coe.plugins.module_utils import kube_kmm

EL94 = '5.14.0-427.13.1.el9_4.x86_64'
EL95 = '5.14.0-503.11.1.el9_5.x86_64'
IMAGE = 'registry.example.com/nvidia:${KERNEL_FULL_VERSION}'


def n(name, kernel, labels=None):
    return {'metadata': {'name': name, 'labels': labels or {'gpu': 'true'}}, 'status': {'nodeInfo': {'kernelVersion': kernel}}}


def test_first_matching_mapping_wins_and_the_kernel_is_substituted():
    mappings = [{'literal': EL94, 'container_image': 'special:${KERNEL_FULL_VERSION}'},
                {'regexp': r'^.+\.el9_[45]\.x86_64$'}]
    assert kube_kmm.image_for(mappings, EL94, IMAGE) == 'special:' + EL94
    assert kube_kmm.image_for(mappings, EL95, IMAGE) == 'registry.example.com/nvidia:' + EL95
    assert kube_kmm.image_for(mappings, '6.8.0-45-generic', IMAGE) is None


def test_regexp_matches_anywhere_like_go():
    assert kube_kmm.image_for([{'regexp': 'el9_4'}], EL94, IMAGE)


def test_plan_lists_selected_nodes_with_missing_mappings():
    nodes = [n('b', EL95), n('a', EL94), n('c', EL94, labels={'cpu': 'true'})]
    plan = kube_kmm.plan(nodes, {'gpu': 'true'}, [{'literal': EL94}], IMAGE)
    assert plan == [{'name': 'a', 'kernel': EL94, 'image': 'registry.example.com/nvidia:' + EL94},
                    {'name': 'b', 'kernel': EL95, 'image': None}]
    msg = kube_kmm.missing_mapping_message('ns', 'nvidia', {'gpu': 'true'}, [plan[1]], [{'literal': EL94}])
    assert 'kernel %s on b' % EL95 in msg and 'literal %s' % EL94 in msg
    assert 'nodesMatchingSelectorNumber > desiredNumber' in msg


def test_validate_mappings():
    assert kube_kmm.validate_mappings([{'literal': EL94}], IMAGE) == []
    assert 'at least one mapping' in kube_kmm.validate_mappings([], IMAGE)[0]
    assert 'exactly one of literal' in kube_kmm.validate_mappings([{'literal': EL94, 'regexp': 'x'}], IMAGE)[0]
    assert 'not a valid regular expression' in kube_kmm.validate_mappings([{'regexp': '('}], IMAGE)[0]
    assert 'container_image is required' in kube_kmm.validate_mappings([{'literal': EL94}], None)[0]


def test_build_module():
    params = {'name': 'nvidia', 'namespace': 'gpu', 'selector': {'gpu': 'true'}, 'module_name': 'nvidia',
              'parameters': ['a=1'], 'firmware_path': '/fw', 'container_image': IMAGE,
              'kernel_mappings': [{'literal': EL94}, {'regexp': '^x$', 'container_image': 'other'}],
              'pull_secret': {'name': 'creds'}, 'tolerations': [{'operator': 'Exists'}],
              'device_plugin': {'image': 'dp:1', 'args': ['-v'], 'env': {'B': 2, 'A': 'x'}}}
    module = kube_kmm.build_module(params)
    spec = module['spec']
    assert module['apiVersion'] == 'kmm.sigs.x-k8s.io/v1beta1'
    assert module['metadata'] == {'name': 'nvidia', 'namespace': 'gpu'}
    assert spec['moduleLoader']['container']['kernelMappings'] == [
        {'literal': EL94, 'containerImage': IMAGE}, {'regexp': '^x$', 'containerImage': 'other'}]
    assert spec['moduleLoader']['container']['modprobe'] == {'moduleName': 'nvidia', 'parameters': ['a=1'],
                                                             'firmwarePath': '/fw'}
    assert spec['imageRepoSecret'] == {'name': 'creds'}
    assert spec['devicePlugin']['container']['env'] == [{'name': 'A', 'value': 'x'}, {'name': 'B', 'value': '2'}]


def test_pull_secret_from_credentials():
    secret = kube_kmm.pull_secret('gpu', {'name': 'creds', 'registry': 'r.example.com', 'username': 'u',
                                          'password': 'p'})
    config = json.loads(base64.b64decode(secret['data']['.dockerconfigjson']))
    assert config['auths']['r.example.com']['auth'] == base64.b64encode(b'u:p').decode()
    assert secret['type'] == 'kubernetes.io/dockerconfigjson'
    assert kube_kmm.pull_secret('gpu', {'name': 'creds'}) is None


def test_status_reached():
    status = {'moduleLoader': {'nodesMatchingSelectorNumber': 2, 'desiredNumber': 2, 'availableNumber': 2}}
    assert kube_kmm.status_reached(status, 2, 2, False)
    assert not kube_kmm.status_reached(status, 2, 3, False)
    assert not kube_kmm.status_reached(status, 2, 2, True)
    status['devicePlugin'] = {'desiredNumber': 2, 'availableNumber': 2}
    assert kube_kmm.status_reached(status, 2, 2, True)
    assert kube_kmm.ready_label('gpu', 'nvidia') == 'kmm.node.kubernetes.io/gpu.nvidia.ready'
