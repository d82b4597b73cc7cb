# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.kernel_module as Ansible runs it, on FakeKube instead of an API server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest


from ansible_collections.hpcops.coe.plugins.module_utils import kube
from ansible_collections.hpcops.coe.plugins.modules import kernel_module
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeKube, node, run_kube_module

EL94 = '5.14.0-427.13.1.el9_4.x86_64'
EL95 = '5.14.0-503.11.1.el9_5.x86_64'
MOD = ('kmm.sigs.x-k8s.io/v1beta1', 'Module', 'gpu', 'nvidia')
READY = 'kmm.node.kubernetes.io/gpu.nvidia.ready'
IMAGE = 'registry.example.com/nvidia:${KERNEL_FULL_VERSION}'


def run(fake, check=False, **args):
    args.setdefault('name', 'nvidia')
    args.setdefault('namespace', 'gpu')
    args.setdefault('module_name', 'nvidia')
    args.setdefault('selector', {'gpu': 'true'})
    args.setdefault('container_image', IMAGE)
    return run_kube_module(kernel_module.main, fake, args, check=check)


def kmm(fake, module):
    """What KMM would do: status and ready labels for the mapped nodes."""
    if module['kind'] != 'Module':
        return
    from ansible_collections.hpcops.coe.plugins.module_utils.kube_kmm import plan
    mappings = [{'literal': m.get('literal'), 'regexp': m.get('regexp'), 'container_image': m['containerImage']}
                for m in module['spec']['moduleLoader']['container']['kernelMappings']]
    entries = plan(fake.nodes_list, module['spec']['selector'], mappings)
    mapped = [e for e in entries if e['image'] and 'broken' not in e['image']]
    for n in fake.nodes_list:
        if n['metadata']['name'] in [e['name'] for e in mapped]:
            n['metadata']['labels'][READY] = ''
    module['status'] = {'moduleLoader': {'nodesMatchingSelectorNumber': len(entries),
                                         'desiredNumber': len([e for e in entries if e['image']]),
                                         'availableNumber': len(mapped)}}


def gpus():
    return [node('g1', EL94, {'gpu': 'true'}), node('g2', EL95, {'gpu': 'true'}), node('c1', EL95)]


def test_loads_on_every_mapped_node():
    fake = FakeKube(nodes=gpus(), on_apply=kmm)
    out = run(fake, kernels=[EL94, EL95])
    assert not out.failed, out.result
    assert [(n['name'], n['ready'], n['image']) for n in out.result['nodes']] == [
        ('g1', True, 'registry.example.com/nvidia:' + EL94), ('g2', True, 'registry.example.com/nvidia:' + EL95)]
    mappings = fake.objects[MOD]['spec']['moduleLoader']['container']['kernelMappings']
    assert mappings == [{'literal': EL94, 'containerImage': IMAGE}, {'literal': EL95, 'containerImage': IMAGE}]
    assert not run(fake, kernels=[EL94, EL95]).result['changed']


def test_missing_mapping_fails_before_applying_even_in_check_mode():
    fake = FakeKube(nodes=gpus())
    for check in (False, True):
        out = run(fake, check=check, kernel_mappings=[{'literal': EL94}])
        assert out.failed and out.result['missing_mappings'] == [{'node': 'g2', 'kernel': EL95}]
        assert 'kernel %s on g2' % EL95 in out.result['msg'] and 'Nothing was applied' in out.result['msg']
    assert fake.applied == []


def test_allow_missing_mappings_warns():
    fake = FakeKube(nodes=gpus(), on_apply=kmm)
    out = run(fake, kernels=[EL94], allow_missing_mappings=True)
    assert not out.failed, out.result
    assert out.result['missing_mappings'] == [{'node': 'g2', 'kernel': EL95}]


def test_timeout_names_each_node_and_its_worker_pod():
    fake = FakeKube(nodes=gpus(), on_apply=kmm)
    fake.objects[('v1', 'Pod', 'gpu', 'kmm-worker-g2-nvidia')] = {
        'apiVersion': 'v1', 'kind': 'Pod',
        'metadata': {'name': 'kmm-worker-g2-nvidia', 'namespace': 'gpu',
                     'labels': {'kmm.node.kubernetes.io/module.name': 'nvidia'}},
        'spec': {'nodeName': 'g2', 'containers': [{'image': 'broken'}]},
        'status': {'phase': 'Pending', 'containerStatuses': [{'name': 'worker', 'state': {'waiting': {
            'reason': 'ImagePullBackOff', 'message': 'Back-off pulling image "registry.example.com/broken"'}}}]}}
    out = run(fake, kernel_mappings=[{'literal': EL94}, {'literal': EL95, 'container_image': 'registry/broken'}],
              wait_timeout=1)
    assert out.failed
    msg = out.result['msg']
    assert 'not ready after 1 s on 1 of 2 node(s)' in msg
    assert 'g2 (kernel %s, image registry/broken): worker pod kmm-worker-g2-nvidia: ImagePullBackOff' % EL95 in msg
    assert {n['name']: n['ready'] for n in out.result['nodes']} == {'g1': True, 'g2': False}


@pytest.mark.parametrize('args, fragment', [
    ({'kernel_mappings': [{'literal': EL94, 'regexp': 'x'}]}, 'exactly one of literal'),
    ({'kernels': [EL94], 'module_name': None}, 'module_name is required'),
    ({'kernels': [EL94], 'modules_loading_order': ['mlx5_ib', 'nvidia']}, 'must start with module_name'),
    ({'kernels': [EL94], 'pull_secret': {'name': 's', 'username': 'u'}}, 'registry, username and password go together'),
    ({'kernels': [EL94], 'namespace': 'Bad'}, "namespace 'Bad'"),
    ({'kernels': [EL94], 'selector': {'gpu': True}}, 'values are strings'),
])
def test_invalid_parameters(args, fragment):
    fake = FakeKube(nodes=gpus())
    out = run(fake, **args)
    assert out.failed and fragment in out.result['msg'] and fake.applied == []


def test_pull_secret_is_created_and_password_not_returned():
    fake = FakeKube(nodes=gpus(), on_apply=kmm)
    out = run(fake, kernels=[EL94, EL95], pull_secret={'name': 'creds', 'registry': 'r', 'username': 'u',
                                                       'password': 'hunter2'})
    assert not out.failed
    assert ('v1', 'Secret', 'gpu', 'creds') in fake.objects
    assert 'hunter2' not in json.dumps(out.result, default=str)


def test_absent_waits_for_unload():
    fake = FakeKube(nodes=gpus(), objects={MOD: {'apiVersion': MOD[0], 'kind': 'Module',
                                                 'metadata': {'name': 'nvidia', 'namespace': 'gpu'}}})
    out = run(fake, state='absent')
    assert out.result['changed'] and MOD not in fake.objects


def test_kernel_changing_during_the_wait_fails_naming_the_node_and_kernels():
    """A node rebooted into a kernel without a mapping ends the wait with a clear failure, not a traceback."""
    el96 = '5.14.0-570.12.1.el9_6.x86_64'
    fake = FakeKube(nodes=gpus())  # KMM never reports ready: only the changed kernel can end the wait early
    looks = []

    def nodes():
        looks.append(1)
        if len(looks) > 2:  # planned and applied on EL95; g2 then comes back on EL96
            fake.nodes_list[1]['status']['nodeInfo']['kernelVersion'] = el96
        return FakeKube.nodes(fake)

    fake.nodes = nodes
    # the real poller, so is_failed is honoured as in a run against an API server
    fake.wait = lambda *args, **kwargs: kube.Kube.wait(fake, *args, **kwargs)
    out = run(fake, kernels=[EL94, EL95], wait_sleep=0.01, wait_timeout=30)
    assert out.failed, out.result
    msg = out.result['msg']
    assert 'g2' in msg and EL95 in msg and el96 in msg, msg
    assert 'changed' in msg and 'while waiting' in msg, msg
    assert out.result['missing_mappings'] == [{'node': 'g2', 'kernel': el96}]
    assert out.result['changed'] is True
