# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.device_plugin as Ansible runs it, on FakeKube instead of an API server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import pytest


from ansible_collections.hpcops.coe.plugins.modules import device_plugin
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeKube, node, run_kube_module

DS = ('apps/v1', 'DaemonSet', 'plugins', 'nvidia-device-plugin')
GPU_LABEL = {'feature.node.kubernetes.io/pci-10de.present': 'true'}


def run(fake, check=False, **args):
    args.setdefault('namespace', 'plugins')
    return run_kube_module(device_plugin.main, fake, args, check=check)


def rolled_out(ready=True, resources=None):
    def react(fake, obj):
        if obj['kind'] != 'DaemonSet':
            return
        obj['metadata']['generation'] = 1
        selected = [n for n in fake.nodes_list
                    if all(n['metadata']['labels'].get(k) == v
                           for k, v in obj['spec']['template']['spec']['nodeSelector'].items())]
        obj['status'] = {'desiredNumberScheduled': len(selected), 'numberReady': len(selected) if ready else 0,
                         'updatedNumberScheduled': len(selected), 'observedGeneration': 1}
        for n in selected:
            n['status']['allocatable'].update(resources or {})
    return react


def test_nvidia_plugin_waits_for_allocatable():
    fake = FakeKube(nodes=[node('g1', labels=GPU_LABEL), node('c1')], on_apply=rolled_out(resources={'nvidia.com/gpu': '2'}))
    out = run(fake, type='nvidia-gpu')
    assert not out.failed, out.result
    assert out.result['nodes'] == {'g1': {'nvidia.com/gpu': 2}} and out.result['resources'] == ['nvidia.com/gpu']
    assert DS in fake.objects and ('v1', 'ConfigMap', 'plugins', 'nvidia-device-plugin-config') in fake.objects


def test_running_plugin_without_resource_is_explained():
    fake = FakeKube(nodes=[node('g1', labels=GPU_LABEL)], on_apply=rolled_out(resources={}))

    def with_pod(kube, obj):
        rolled_out(resources={})(kube, obj)
        if obj['kind'] == 'DaemonSet':
            obj['metadata']['uid'] = 'ds-uid'
            kube.objects[('v1', 'Pod', 'plugins', 'p1')] = {
                'apiVersion': 'v1', 'kind': 'Pod',
                'metadata': {'name': 'p1', 'namespace': 'plugins', 'ownerReferences': [{'uid': 'ds-uid'}]},
                'spec': {'nodeName': 'g1'},
                'status': {'phase': 'Running', 'containerStatuses': [{'name': 'c', 'state': {'running': {}}}]}}

    fake.on_apply = with_pod
    out = run(fake, type='nvidia-gpu', wait_timeout=1)
    assert out.failed
    assert 'g1: the plugin runs (pod p1) but the node advertises no nvidia.com/gpu' in out.result['msg']


def test_crashing_plugin_shows_reason_and_log():
    fake = FakeKube(nodes=[node('g1', labels=GPU_LABEL)])

    def crash(kube, obj):
        rolled_out(ready=False)(kube, obj)
        if obj['kind'] == 'DaemonSet':
            obj['metadata']['uid'] = 'ds-uid'
            kube.objects[('v1', 'Pod', 'plugins', 'p1')] = {
                'apiVersion': 'v1', 'kind': 'Pod',
                'metadata': {'name': 'p1', 'namespace': 'plugins', 'ownerReferences': [{'uid': 'ds-uid'}]},
                'spec': {'nodeName': 'g1'},
                'status': {'phase': 'Running', 'containerStatuses': [{'name': 'c', 'state': {'waiting': {
                    'reason': 'CrashLoopBackOff', 'message': 'back-off'}}}]}}
            kube.logs[('plugins', 'p1')] = 'failed to initialize NVML'

    fake.on_apply = crash
    out = run(fake, type='nvidia-gpu', wait_timeout=1)
    assert out.failed and 'pod p1: CrashLoopBackOff: back-off; log: failed to initialize NVML' in out.result['msg']


def test_node_outside_the_selector_is_named():
    fake = FakeKube(nodes=[node('g1', labels=GPU_LABEL), node('c1')], on_apply=rolled_out(resources={'nvidia.com/gpu': '1'}))
    out = run(fake, type='nvidia-gpu', expected_nodes=['g1', 'c1'], wait_timeout=1)
    assert out.failed and 'c1: the plugin cannot run there' in out.result['msg']


def test_plugin_waits_for_the_driver_kmm_loads():
    ready = 'kmm.node.kubernetes.io/drivers.nvidia.ready'
    fake = FakeKube(nodes=[node('g1', labels=dict(GPU_LABEL, **{ready: ''})), node('g2', labels=GPU_LABEL)],
                    on_apply=rolled_out(resources={'nvidia.com/gpu': '1'}))
    out = run(fake, type='nvidia-gpu', driver_modules=[{'name': 'nvidia', 'namespace': 'drivers'}],
              expected_nodes=['g1', 'g2'], wait_timeout=1)
    selector = fake.objects[DS]['spec']['template']['spec']['nodeSelector']
    assert selector == dict(GPU_LABEL, **{ready: ''})
    assert out.failed and out.result['nodes'] == {'g1': {'nvidia.com/gpu': 1}, 'g2': {'nvidia.com/gpu': 0}}
    assert 'g2: the plugin waits for its driver: KMM has not loaded it there (no node label %s)' % ready \
        in out.result['msg']


def test_config_change_changes_the_pod_template():
    fake = FakeKube(nodes=[node('g1', labels=GPU_LABEL)], on_apply=rolled_out(resources={'nvidia.com/gpu': '2'}))
    assert not run(fake, type='nvidia-gpu').failed
    first = fake.objects[DS]['spec']['template']['metadata']['annotations']['hpcops.coe/config-hash']
    out = run(fake, type='nvidia-gpu', nvidia={'time_slicing_replicas': 2})
    assert not out.failed and out.result['changed']
    assert fake.objects[DS]['spec']['template']['metadata']['annotations']['hpcops.coe/config-hash'] != first


@pytest.mark.parametrize('args, fragment', [
    ({'type': 'rdma-shared'}, 'rdma_resources is required'),
    ({'type': 'sriov'}, 'sriov_resources is required'),
    ({'type': 'nvidia-gpu', 'namespace': 'Bad_NS'}, "namespace 'Bad_NS'"),
])
def test_invalid_parameters(args, fragment):
    fake = FakeKube(nodes=[])
    out = run(fake, **args)
    assert out.failed and fragment in out.result['msg'] and fake.applied == []


def test_check_mode_applies_nothing_and_warns_without_nodes():
    fake = FakeKube(nodes=[])
    out = run(fake, check=True, type='sriov', sriov_resources=[{'name': 'vf', 'vendors': ['15b3']}])
    assert not out.failed and out.result['changed'] and fake.objects == {}
    assert any('No node matches node_selector' in w for w in fake.warnings)


def test_absent_removes_daemonset_and_config():
    fake = FakeKube(nodes=[], objects={DS: {'metadata': {'name': DS[3]}},
                                       ('v1', 'ConfigMap', 'plugins', 'nvidia-device-plugin-config'): {'metadata': {}}})
    out = run(fake, type='nvidia-gpu', state='absent')
    assert out.result['changed'] and fake.objects == {}
