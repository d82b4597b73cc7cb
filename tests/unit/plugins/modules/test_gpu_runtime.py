# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.gpu_runtime as Ansible runs it, on FakeKube instead of an API server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hpcops.coe.plugins.module_utils import kube
from ansible_collections.hpcops.coe.plugins.module_utils.kube_gpu import GPU_LABEL, MIG_STATE_LABEL
from ansible_collections.hpcops.coe.plugins.modules import gpu_runtime
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeKube, node, run_kube_module
from ansible_collections.hpcops.coe.tests.unit.plugins.module_utils.test_kube_gpu import feature


def run(fake, **args):
    return run_kube_module(gpu_runtime.main, fake, args)


def test_a_mig_manager_reporting_failed_ends_the_wait_with_the_node_report():
    nodefeature = dict(feature('gpu-1', ('10de', '0302', '20b5')), apiVersion='nfd.k8s-sigs.io/v1alpha1',
                       kind='NodeFeature')

    def mig_manager(fake, obj):
        # what the MIG manager answers to a profile it cannot apply
        if obj['kind'] == 'Node':
            fake.nodes_list[0]['metadata']['labels'][MIG_STATE_LABEL] = 'failed'

    fake = FakeKube(nodes=[node('gpu-1', labels={GPU_LABEL: 'true'})], on_apply=mig_manager,
                    objects={('nfd.k8s-sigs.io/v1alpha1', 'NodeFeature', None, 'gpu-1'): nodefeature})
    # the real poller, so is_failed is honoured as in a run against an API server
    fake.wait = lambda *args, **kwargs: kube.Kube.wait(fake, *args, **kwargs)
    out = run(fake, mig=[{'profile': '1g.10gb', 'nodes': ['gpu-1']}], wait_sleep=0.01, wait_timeout=30)
    assert out.failed, out.result
    assert 'gpu-1' in out.result['msg'] and '%s=failed' % MIG_STATE_LABEL in out.result['msg'], out.result['msg']
    assert out.result['nodes']['gpu-1']['mig_state'] == 'failed'
    assert out.result['changed'] is True
