# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Device plugin manifests, expected resources and readiness checks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

import yaml

from ansible_collections.hpcops.coe.plugins.module_utils import kube_deviceplugin as dp


def params(**kw):
    base = {'type': 'nvidia-gpu', 'name': None, 'namespace': 'plugins', 'image': None, 'node_selector': None,
            'config_map_name': None, 'tolerations': None, 'image_pull_secrets': None, 'priority_class': None,
            'nvidia': None, 'rdma_resources': None, 'sriov_resources': None}
    base.update(kw)
    return base


def test_nvidia_defaults_and_config():
    p = params(nvidia={'mig_strategy': 'single', 'fail_on_init_error': True, 'time_slicing_replicas': 4})
    cm, ds = dp.manifests(p)
    assert cm['metadata']['name'] == 'nvidia-device-plugin-config'
    config = yaml.safe_load(cm['data']['config.yaml'])
    assert config['flags'] == {'migStrategy': 'single', 'failOnInitError': True}
    assert config['sharing']['timeSlicing']['resources'] == [{'name': 'nvidia.com/gpu', 'replicas': 4}]
    pod = ds['spec']['template']['spec']
    assert pod['nodeSelector'] == {'feature.node.kubernetes.io/pci-10de.present': 'true'}
    assert {'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'} in pod['tolerations']
    assert dp.resources(p) == ['nvidia.com/gpu']
    assert dp.resources(params(nvidia={'mig_strategy': 'mixed'})) == ['nvidia.com/gpu', 'nvidia.com/mig-*']
    # mixed: a node passes with whole GPUs or MIG instances; expected_resources ask for exact instances
    mig = {'status': {'allocatable': {'nvidia.com/mig-1g.10gb': '14'}}}
    whole = {'status': {'allocatable': {'nvidia.com/gpu': '2'}}}
    patterns = ['nvidia.com/gpu', 'nvidia.com/mig-*']
    assert dp.serves(mig, patterns, any_pattern=True) and dp.serves(whole, patterns, any_pattern=True)
    assert not dp.serves(mig, patterns)
    assert dp.serves(mig, patterns, True, {'nvidia.com/mig-1g.10gb': 14})
    assert not dp.serves(whole, patterns, True, {'nvidia.com/mig-1g.10gb': 14})
    assert dp.shown(mig, patterns, any_pattern=True) == {'nvidia.com/mig-1g.10gb': 14}
    assert dp.shown(whole, ['nvidia.com/gpu']) == {'nvidia.com/gpu': 2}
    _cm, runtime = dp.manifests(params(runtime_class='nvidia'))
    assert runtime['spec']['template']['spec']['runtimeClassName'] == 'nvidia'


def test_rdma_config():
    p = params(type='rdma-shared', rdma_resources=[{'name': 'ib', 'vendors': ['15B3'], 'link_types': ['infiniband'],
                                                    'hca_max': 64, 'prefix': None}])
    cm, ds = dp.manifests(p)
    assert cm['metadata']['name'] == 'rdma-devices'
    config = json.loads(cm['data']['config.json'])
    assert config['configList'] == [{'resourceName': 'ib', 'rdmaHcaMax': 64,
                                     'selectors': {'vendors': ['15b3'], 'linkTypes': ['infiniband']}}]
    assert ds['spec']['template']['spec']['hostNetwork'] is True
    assert dp.resources(p) == ['rdma/ib']


def test_sriov_config():
    p = params(type='sriov', sriov_resources=[{'name': 'vf', 'prefix': 'nvidia.com', 'vendors': ['15b3'],
                                               'devices': ['101e'], 'is_rdma': True, 'device_type': None}])
    cm = dp.manifests(p)[0]
    entry = json.loads(cm['data']['config.json'])['resourceList'][0]
    assert entry == {'resourceName': 'vf', 'resourcePrefix': 'nvidia.com', 'deviceType': 'netDevice',
                     'selectors': {'vendors': ['15b3'], 'devices': ['101e'], 'isRdma': True}}
    assert dp.resources(p) == ['nvidia.com/vf']


def test_validate():
    assert 'rdma_resources is required' in dp.validate(params(type='rdma-shared'))[0]
    assert 'sriov_resources is required' in dp.validate(params(type='sriov'))[0]
    assert 'only applies to type=rdma-shared' in dp.validate(params(rdma_resources=[{'name': 'x',
                                                                                    'vendors': ['1']}]))[0]
    problems = dp.validate(params(type='rdma-shared', rdma_resources=[{'name': 'a b'}]))
    assert any('resource name is letters' in p for p in problems)
    assert any('give at least one selector' in p for p in problems)
    assert 'must be 2 or more' in dp.validate(params(nvidia={'time_slicing_replicas': 1}))[0]


def test_eligible_nodes_follow_selector_and_taints():
    ds = dp.manifests(params(node_selector={'gpu': 'true'}))[1]
    nodes = [
        {'metadata': {'name': 'a', 'labels': {'gpu': 'true'}}},
        {'metadata': {'name': 'b', 'labels': {'gpu': 'true'}},
         'spec': {'taints': [{'key': 'nvidia.com/gpu', 'effect': 'NoSchedule'}]}},
        {'metadata': {'name': 'c', 'labels': {'gpu': 'true'}},
         'spec': {'taints': [{'key': 'maintenance', 'effect': 'NoSchedule'}]}},
        {'metadata': {'name': 'd', 'labels': {}}},
    ]
    assert dp.eligible_nodes(nodes, ds) == ['a', 'b']


def test_advertised_and_daemonset_ready():
    node = {'status': {'allocatable': {'nvidia.com/mig-1g.10gb': '7', 'nvidia.com/mig-2g.20gb': '1', 'cpu': '8'}}}
    assert dp.advertised(node, ['nvidia.com/mig-*', 'nvidia.com/gpu']) == {'nvidia.com/mig-*': 8, 'nvidia.com/gpu': 0}
    ds = {'metadata': {'generation': 2},
          'status': {'desiredNumberScheduled': 2, 'numberReady': 2, 'updatedNumberScheduled': 2,
                     'observedGeneration': 2}}
    assert dp.daemonset_ready(ds)
    ds['status']['observedGeneration'] = 1
    assert not dp.daemonset_ready(ds)


def test_config_hash_in_pod_template_follows_the_config():
    cm, ds = dp.manifests(params(nvidia={'time_slicing_replicas': 2}))
    annotations = ds['spec']['template']['metadata']['annotations']
    assert annotations == {'hpcops.coe/config-hash': hashlib.sha256(cm['data']['config.yaml'].encode()).hexdigest()}
    # same configuration, same template: a rerun does not roll the DaemonSet
    assert dp.manifests(params(nvidia={'time_slicing_replicas': 2}))[1] == ds
    # another configuration changes the pod template, so the DaemonSet rolls and the plugins read it
    changed = dp.manifests(params(nvidia={'time_slicing_replicas': 4}))[1]
    assert changed['spec']['template']['metadata']['annotations'] != annotations
    rdma = [{'name': 'ib', 'vendors': ['15b3'], 'hca_max': 64, 'prefix': None}]
    before = dp.manifests(params(type='rdma-shared', rdma_resources=rdma))[1]
    after = dp.manifests(params(type='rdma-shared', rdma_resources=[dict(rdma[0], hca_max=32)]))[1]
    assert before['spec']['template']['metadata']['annotations'] != after['spec']['template']['metadata']['annotations']


def test_driver_modules_gate_the_plugin_on_kmm_ready_labels():
    ds = dp.manifests(params(driver_modules=[{'name': 'nvidia', 'namespace': None},
                                             {'name': 'peermem', 'namespace': 'drivers'}]))[1]
    assert ds['spec']['template']['spec']['nodeSelector'] == {
        'feature.node.kubernetes.io/pci-10de.present': 'true',
        'kmm.node.kubernetes.io/plugins.nvidia.ready': '',
        'kmm.node.kubernetes.io/drivers.peermem.ready': ''}
    gpu = {'feature.node.kubernetes.io/pci-10de.present': 'true'}
    nvidia = {'kmm.node.kubernetes.io/plugins.nvidia.ready': ''}
    peermem = {'kmm.node.kubernetes.io/drivers.peermem.ready': ''}
    nodes = [{'metadata': {'name': 'loaded', 'labels': dict(gpu, **dict(nvidia, **peermem))}},
             {'metadata': {'name': 'half', 'labels': dict(gpu, **nvidia)}},
             {'metadata': {'name': 'none', 'labels': gpu}}]
    assert dp.eligible_nodes(nodes, ds) == ['loaded']
    # without driver modules the selector is the device label alone
    assert dp.manifests(params())[1]['spec']['template']['spec']['nodeSelector'] == gpu
    assert 'driver_modules[0].name is required' in dp.validate(params(driver_modules=[{'name': ''}]))[0]
