# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.accelerator_validation as Ansible runs it, on FakeKube instead of an API server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest


from ansible_collections.hpcops.coe.plugins.module_utils.kube import KubeError
from ansible_collections.hpcops.coe.plugins.modules import accelerator_validation
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeKube, node, run_kube_module


def run(fake, check=False, **args):
    args.setdefault('name', 'gpu-check')
    args.setdefault('namespace', 'gpu')
    args.setdefault('resource', 'nvidia.com/gpu')
    args.setdefault('image', 'cuda')
    args.setdefault('command', ['nvidia-smi', '-L'])
    return run_kube_module(accelerator_validation.main, fake, args, check=check)


def finish(outcomes):
    """A kubelet and Job controller: each Job's pod runs and ends as `outcomes[node]` says."""
    def react(fake, job):
        if job['kind'] != 'Job':
            return
        node_name = job['spec']['template']['spec']['nodeSelector']['kubernetes.io/hostname']
        ok, log = outcomes[node_name]
        job['status'] = {'conditions': [{'type': 'Complete' if ok else 'Failed', 'status': 'True',
                                         'reason': 'BackoffLimitExceeded' if not ok else 'CompletionsReached'}]}
        pod = '%s-pod' % job['metadata']['name']
        fake.objects[('v1', 'Pod', 'gpu', pod)] = {
            'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'name': pod, 'namespace': 'gpu',
                         'labels': dict(job['metadata']['labels'], **{'job-name': job['metadata']['name']})},
            'status': {'phase': 'Succeeded' if ok else 'Failed', 'containerStatuses': [{'name': 'check', 'state': {
                'terminated': {'exitCode': 0 if ok else 1, 'reason': 'Completed' if ok else 'Error',
                               'message': None if ok else log}}}]}}
        fake.logs[('gpu', pod)] = log
    return react


def gpu_nodes():
    return [node('g1', allocatable={'nvidia.com/gpu': '2'}), node('g2', allocatable={'nvidia.com/gpu': '1'}),
            node('c1')]


def test_passes_per_node_and_cleans_up():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (True, 'GPU 0: L40S')}))
    out = run(fake, expect_output='^GPU 0: ')
    assert not out.failed, out.result
    # it created and deleted Jobs: a change, even though nothing of them is left
    assert out.result['passed_nodes'] == ['g1', 'g2'] and out.result['changed']
    assert out.result['validated_nodes'] == ['g1', 'g2'] and out.result['unchanged_nodes'] == []
    job = fake.created[0]
    assert job['spec']['template']['spec']['containers'][0]['resources'] == {'limits': {'nvidia.com/gpu': '1'}}
    assert job['spec']['backoffLimit'] == 0
    assert not [k for k in fake.objects if k[1] in ('Job', 'Pod')]


def test_failure_is_reported_with_output():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (False, 'GPU is lost')}))
    out = run(fake)
    assert out.failed and out.result['failed_nodes'] == ['g2'] and out.result['passed_nodes'] == ['g1']
    assert '1 of 2 node(s) failed: g2: container check exited with 1 (Error): GPU is lost' in out.result['msg']


def test_output_mismatch_fails():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'nothing'), 'g2': (True, 'GPU 0: x')}))
    out = run(fake, expect_output='^GPU 0: ')
    assert out.failed and out.result['failed_nodes'] == ['g1']


def test_count_and_listed_nodes():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'ok')}))
    out = run(fake, count=2, nodes=['g1', 'g2', 'nope'])
    assert out.failed
    reasons = {r['node']: r['reason'] for r in out.result['results']}
    assert reasons['g2'] == 'the node advertises 1 nvidia.com/gpu (allocatable), 2 needed'
    assert reasons['nope'] == 'no such node' and reasons['g1'] is None


def test_no_node_with_the_resource():
    out = run(FakeKube(nodes=[node('c1')]))
    assert out.failed and 'No node advertises nvidia.com/gpu' in out.result['msg']


def test_check_mode_lists_nodes_only():
    fake = FakeKube(nodes=gpu_nodes())
    out = run(fake, check=True)
    assert not out.failed and [r['node'] for r in out.result['results']] == ['g1', 'g2'] and fake.created == []


@pytest.mark.parametrize('args, fragment', [
    ({'resource': 'gpu'}, 'is not an extended resource name'),
    ({'count': 0}, 'count must be 1 or more'),
    ({'expect_output': '('}, 'not a valid regular expression'),
])
def test_invalid_parameters(args, fragment):
    out = run(FakeKube(nodes=gpu_nodes()), **args)
    assert out.failed and fragment in out.result['msg']


def test_long_node_names_give_valid_job_names():
    name = accelerator_validation.job_name('gpu-check', 'n' * 70)
    assert len(name) <= 63 and name.startswith('gpu-check-')


def plugin_daemonset(image):
    return {'apiVersion': 'apps/v1', 'kind': 'DaemonSet',
            'metadata': {'name': 'nvidia-device-plugin', 'namespace': 'gpu',
                         'labels': {'app.kubernetes.io/component': 'device-plugin'}},
            'spec': {'template': {'spec': {'containers': [{'name': 'plugin', 'image': image}]}}}}


def validated_world():
    """A world where g1 and g2 passed once: the record ConfigMap holds their digests."""
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (True, 'GPU 0: L40S')}))
    fake.objects[('apps/v1', 'DaemonSet', 'gpu', 'nvidia-device-plugin')] = plugin_daemonset('plugin:0.15')
    out = run(fake, expect_output='^GPU 0: ')
    assert not out.failed and out.result['changed'], out.result
    record = fake.objects[('v1', 'ConfigMap', 'gpu', 'gpu-check-validated')]
    assert sorted(json.loads(record['data']['digests'])) == ['g1', 'g2']
    fake.created, fake.log_reads, fake.applied, fake.deleted_collections = [], [], [], []
    return fake


def test_unchanged_inputs_skip_the_jobs():
    fake = validated_world()
    out = run(fake, expect_output='^GPU 0: ')
    assert not out.failed and not out.result['changed'], out.result
    assert out.result['unchanged_nodes'] == ['g1', 'g2'] and out.result['validated_nodes'] == []
    assert out.result['passed_nodes'] == ['g1', 'g2']
    assert [r['ran'] for r in out.result['results']] == [False, False]
    # no write of any kind
    assert fake.created == [] and fake.applied == [] and fake.deleted_collections == [] and fake.log_reads == []


def test_check_mode_predicts_the_skip():
    fake = validated_world()
    out = run(fake, check=True, expect_output='^GPU 0: ')
    assert not out.result['changed'] and out.result['validated_nodes'] == []
    fake.nodes_list[0]['status']['nodeInfo']['kernelVersion'] = '5.14.0-503.11.1.el9_5.x86_64'
    out = run(fake, check=True, expect_output='^GPU 0: ')
    assert out.result['changed'] and out.result['validated_nodes'] == ['g1'] and fake.created == []


@pytest.mark.parametrize('what, change, again', [
    ('a new kernel', lambda f: f.nodes_list[0]['status']['nodeInfo'].update(kernelVersion='5.14.0-503'), ['g1']),
    ('a reboot', lambda f: f.nodes_list[1]['status']['nodeInfo'].update(bootID='b2'), ['g2']),
    ('a node registered again', lambda f: f.nodes_list[1]['metadata'].update(uid='new'), ['g2']),
    ('a driver label', lambda f: f.nodes_list[0]['metadata']['labels'].update({'nvidia.com/cuda.driver.major': '560'}),
     ['g1']),
    ('fewer GPUs advertised', lambda f: f.nodes_list[0]['status']['allocatable'].update({'nvidia.com/gpu': '1'}),
     ['g1']),
    ('a new device plugin image', lambda f: f.objects.update({
        ('apps/v1', 'DaemonSet', 'gpu', 'nvidia-device-plugin'): plugin_daemonset('plugin:0.16')}), ['g1', 'g2']),
    ('a new driver from the GPU operator', lambda f: f.objects.update({
        ('apps/v1', 'DaemonSet', 'gpu', 'nvidia-driver-daemonset'): dict(
            plugin_daemonset('nvcr.io/nvidia/driver:560'), metadata={
                'name': 'nvidia-driver-daemonset', 'namespace': 'gpu',
                'ownerReferences': [{'kind': 'ClusterPolicy', 'name': 'cluster-policy'}]})}), ['g1', 'g2']),
    ('an unrelated label', lambda f: f.nodes_list[0]['metadata']['labels'].update({'team': 'hpc'}), []),
    ('a GFD timestamp', lambda f: f.nodes_list[0]['metadata']['labels'].update({'nvidia.com/gfd.timestamp': '9'}), []),
    ('a monitoring DaemonSet', lambda f: f.objects.update({('apps/v1', 'DaemonSet', 'gpu', 'dcgm'): dict(
        plugin_daemonset('dcgm:3'), metadata={'name': 'dcgm', 'namespace': 'gpu',
                                              'labels': {'app.kubernetes.io/component': 'gpu-metrics'}})}), []),
])
def test_what_makes_a_node_checked_again(what, change, again):
    fake = validated_world()
    change(fake)
    out = run(fake, expect_output='^GPU 0: ')
    assert not out.failed, out.result
    assert out.result['validated_nodes'] == again, what
    assert out.result['changed'] == bool(again), what
    assert sorted(j['spec']['template']['spec']['nodeSelector']['kubernetes.io/hostname']
                  for j in fake.created) == again, what


def test_a_changed_check_runs_everywhere_and_force_too():
    fake = validated_world()
    out = run(fake, expect_output='^GPU 0: ', image='cuda:12.5')
    assert out.result['validated_nodes'] == ['g1', 'g2']
    out = run(fake, expect_output='^GPU 0: ', image='cuda:12.5', force=True)
    assert out.result['changed'] and out.result['validated_nodes'] == ['g1', 'g2']


def test_a_failed_node_is_checked_again_and_the_passed_one_is_not():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (False, 'GPU is lost')}))
    out = run(fake)
    assert out.failed and out.result['changed'] and out.result['failed_nodes'] == ['g2']
    record = fake.objects[('v1', 'ConfigMap', 'gpu', 'gpu-check-validated')]
    assert sorted(json.loads(record['data']['digests'])) == ['g1']
    fake.on_apply = finish({'g1': (True, 'GPU 0: A100'), 'g2': (True, 'GPU 0: A100')})
    out = run(fake)
    assert not out.failed and out.result['validated_nodes'] == ['g2'] and out.result['unchanged_nodes'] == ['g1']


def test_jobs_and_pods_go_in_one_request_each_and_logs_only_for_failures():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (False, 'GPU is lost')}))
    out = run(fake)
    assert out.failed
    assert fake.deleted == []
    assert fake.deleted_collections == [('batch/v1', 'Job', 'gpu', 'hpcops.coe/validation=gpu-check'),
                                        ('v1', 'Pod', 'gpu', 'hpcops.coe/validation=gpu-check')]
    assert not [k for k in fake.objects if k[1] in ('Job', 'Pod')]
    # without expect_output only the failed pod's log is read
    assert fake.log_reads == [('gpu', 'gpu-check-g2-pod')]


def test_no_diff_in_diff_mode_and_no_desired_state_options():
    fake = FakeKube(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (True, 'GPU 0: A100')}))
    out = run(fake, _ansible_diff=True)
    assert not out.failed and out.result['changed'] and 'diff' not in out.result
    for option, value in (('state', 'absent'), ('wait', False), ('force_conflicts', True)):
        fake = FakeKube(nodes=gpu_nodes())
        out = run(fake, **{option: value})
        assert out.failed and 'Unsupported parameters' in out.result['msg'] and option in out.result['msg']
        assert fake.created == []


class LogsUnreadable(FakeKube):
    def pod_log(self, namespace, name, tail_lines=20):
        raise KubeError('reading the log of Pod %s/%s failed: 503 Service Unavailable' % (namespace, name))


def test_an_api_error_after_the_jobs_were_created_fails_as_changed():
    fake = LogsUnreadable(nodes=gpu_nodes(), on_apply=finish({'g1': (True, 'GPU 0: A100'), 'g2': (False, 'lost')}))
    out = run(fake)
    assert out.failed and out.result['changed'] is True and 'reading the log of Pod gpu/' in out.result['msg']
    assert len(fake.created) == 2
