# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.node_feature_rule as Ansible runs it, on FakeKube instead of an API server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hpcops.coe.plugins.modules import node_feature_rule
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeKube, node, run_kube_module

NFR = ('nfd.k8s-sigs.io/v1alpha1', 'NodeFeatureRule', None)
GPU_LABEL = 'feature.node.kubernetes.io/pci-10de.present'


def run(fake, check=False, diff=False, **args):
    return run_kube_module(node_feature_rule.main, fake, args, check=check, diff=diff)


RULES = [{'name': 'gpu', 'labels': {'pci-10de.present': 'true'}, 'pci': {'vendor': '10de', 'class': ['0302']},
          'expected_nodes': ['g1']}]


def test_applies_and_reports_labelled_nodes():
    fake = FakeKube(nodes=[node('g1', labels={GPU_LABEL: 'true'}), node('c1')])
    out = run(fake, name='acc', rules=RULES, diff=True)
    assert not out.failed, out.result
    assert out.result['changed'] and out.result['nodes'] == {'gpu': ['g1']}
    assert fake.objects[NFR + ('acc',)]['spec']['rules'][0]['matchFeatures'][0]['matchExpressions']['vendor'] == \
        {'op': 'In', 'value': ['10de']}
    assert out.result['diff']['before'] == {}
    again = run(fake, name='acc', rules=RULES)
    assert not again.result['changed']


def test_invalid_label_fails_before_any_call():
    fake = FakeKube(nodes=[])
    out = run(fake, name='acc', rules=[{'name': 'r', 'labels': {'example.org/x': 'true'}, 'pci': {'vendor': '10de'}}])
    assert out.failed and 'nothing was applied' in out.result['msg'] and fake.applied == []


def test_bad_object_name():
    out = run(FakeKube(), name='Bad_Name', rules=RULES)
    assert out.failed and "name 'Bad_Name'" in out.result['msg']


def test_wait_timeout_explains_missing_nodes():
    fake = FakeKube(nodes=[node('g1'), node('g2', annotations={'nfd.node.kubernetes.io/feature-labels': 'x'})])
    rules = [dict(RULES[0], expected_nodes=['g1', 'g2', 'g3'], min_nodes=3)]
    out = run(fake, name='acc', rules=rules, wait_timeout=1)
    assert out.failed
    msg = out.result['msg']
    assert 'labels 0 node(s), wanted at least 3' in msg
    assert 'g1: NFD has not labelled this node at all' in msg
    assert 'g2: NFD runs there but the rule does not match' in msg and 'g3: no such node' in msg


def test_check_mode_writes_nothing():
    fake = FakeKube(nodes=[])
    out = run(fake, check=True, name='acc', rules=RULES)
    assert out.result['changed'] and fake.objects == {} and fake.wait_calls == []


def test_absent():
    stored = {'apiVersion': NFR[0], 'kind': NFR[1], 'metadata': {'name': 'acc'}, 'spec': {'rules': []}}
    fake = FakeKube(nodes=[], objects={NFR + ('acc',): stored})
    out = run(fake, name='acc', state='absent')
    assert out.result['changed'] and fake.objects == {}
    assert not run(fake, name='acc', state='absent').result['changed']
