# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NodeFeatureRule building: friendly rules to NFD's terms, label checks as nfd-master applies them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import kube_nfd


def build(rule, extra=()):
    spec, problems = kube_nfd.build_spec([rule], extra)
    return spec['rules'][0], problems


def test_pci_rule_with_four_digit_classes_uses_in():
    rule, problems = build({'name': 'nic', 'labels': {'pci-15b3.present': True},
                            'pci': {'vendor': '15B3', 'class': ['0200', '0207']}})
    assert problems == []
    assert rule == {'name': 'nic', 'labels': {'pci-15b3.present': 'true'},
                    'matchFeatures': [{'feature': 'pci.device', 'matchExpressions': {
                        'vendor': {'op': 'In', 'value': ['15b3']},
                        'class': {'op': 'In', 'value': ['0200', '0207']}}}]}


def test_base_class_becomes_a_prefix_regexp():
    rule, problems = build({'name': 'gpu', 'labels': {'x': '1'}, 'pci': {'vendor': '10de', 'class': ['03', '1200']}})
    assert problems == []
    assert rule['matchFeatures'][0]['matchExpressions']['class'] == {'op': 'InRegexp', 'value': ['^03', '^1200$']}


def test_pci_list_is_any_of():
    rule, problems = build({'name': 'g', 'labels': {'x': 'y'},
                            'pci': [{'vendor': '10de', 'device': '20b5'}, {'vendor': '10de', 'device': '2330'}]})
    assert problems == [] and 'matchFeatures' not in rule
    devices = [t['matchFeatures'][0]['matchExpressions']['device']['value'] for t in rule['matchAny']]
    assert devices == [['20b5'], ['2330']]


def test_modules_and_kernel_version_are_anded():
    rule, problems = build({'name': 'r', 'labels': {'rdma.ready': 'true'}, 'kernel_modules': ['ib_uverbs'],
                            'kernel_version': r'\.el9_'})
    assert problems == []
    assert rule['matchFeatures'] == [
        {'feature': 'kernel.loadedmodule', 'matchExpressions': {'ib_uverbs': {'op': 'Exists'}}},
        {'feature': 'kernel.version', 'matchExpressions': {'full': {'op': 'InRegexp', 'value': [r'\.el9_']}}}]


@pytest.mark.parametrize('rule, fragment', [
    ({'name': 'r', 'labels': {'x': 'y'}}, 'give at least one of pci'),
    ({'name': 'r', 'labels': {}, 'pci': {'vendor': '10de'}}, 'labels is required'),
    ({'name': 'r', 'labels': {'x': 'y'}, 'pci': {'vendor': 'nvidia'}}, "'nvidia' is not a 4-digit hex ID"),
    ({'name': 'r', 'labels': {'x': 'y'}, 'pci': {'class': '3'}}, "'3' is not a 2-digit PCI base class"),
    ({'name': 'r', 'labels': {'x': 'y'}, 'pci': {'vendr': '10de'}}, 'unknown PCI field(s) vendr'),
    ({'name': 'r', 'labels': {'x': 'y'}, 'kernel_version': '('}, 'not a valid regular expression'),
    ({'name': 'r', 'labels': {'x': 'y'}, 'kernel_modules': ['a b']}, 'are not kernel module names'),
    ({'name': 'r', 'labels': {'bad key': 'y'}, 'pci': {'vendor': '10de'}}, "label 'bad key'"),
    ({'name': 'r', 'labels': {'x': 'y' * 70}, 'pci': {'vendor': '10de'}}, 'must be empty or 1-63'),
])
def test_problems_name_the_input_and_what_is_valid(rule, fragment):
    problems = build(rule)[1]
    assert any(fragment in p for p in problems), problems


def test_label_namespaces_like_nfd_master():
    assert kube_nfd.label_namespace_problem('feature.node.kubernetes.io/x') is None
    assert kube_nfd.label_namespace_problem('gpu.feature.node.kubernetes.io/x') is None
    assert kube_nfd.label_namespace_problem('profile.node.kubernetes.io/x') is None
    assert 'reserved' in kube_nfd.label_namespace_problem('node-role.kubernetes.io/gpu')
    assert '-extra-label-ns=example.org' in kube_nfd.label_namespace_problem('example.org/gpu')
    assert kube_nfd.label_namespace_problem('example.org/gpu', ['example.org']) is None
    problems = build({'name': 'r', 'labels': {'example.org/gpu': 'true'}, 'pci': {'vendor': '10de'}},
                     ['example.org'])[1]
    assert problems == []


def test_duplicate_rule_names():
    problems = kube_nfd.build_spec([{'name': 'a', 'labels': {'x': 'y'}, 'pci': {'vendor': '10de'}}] * 2)[1]
    assert 'rule names must be unique: a' in problems


def test_report_and_expectations():
    nodes = [{'metadata': {'name': 'n1', 'labels': {'feature.node.kubernetes.io/pci-10de.present': 'true'}}},
             {'metadata': {'name': 'n2', 'labels': {'feature.node.kubernetes.io/pci-10de.present': 'false'}}}]
    spec = {'rules': [{'name': 'gpu', 'labels': {'pci-10de.present': 'true'}}]}
    by_rule, by_label = kube_nfd.rule_report(spec, nodes)
    assert by_rule == {'gpu': ['n1']}
    assert by_label == {'feature.node.kubernetes.io/pci-10de.present': ['n1']}
    rules = [{'name': 'gpu', 'expected_nodes': ['n1', 'n2'], 'min_nodes': 2}]
    assert kube_nfd.missing_expectations(rules, by_rule) == [('gpu', ['n2'], 1, 2)]
    assert kube_nfd.missing_expectations([{'name': 'gpu', 'expected_nodes': ['n1']}], by_rule) == []
