#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_feature_rule
short_description: Manage an NFD NodeFeatureRule from PCI, kernel module and kernel version conditions
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Creates, updates or deletes a Node Feature Discovery C(NodeFeatureRule)
    (C(nfd.k8s-sigs.io/v1alpha1), cluster-scoped, no status) from a short description of each rule
    (PCI vendor, class and device IDs, loaded kernel modules, a kernel version pattern) and the node
    labels it sets.
  - Label keys are checked the way nfd-master treats them before anything is applied. Keys without a
    prefix get C(feature.node.kubernetes.io/); keys in another namespace are dropped by nfd-master unless
    it runs with C(-extra-label-ns), and keys in C(kubernetes.io) or C(k8s.io) namespaces are never
    written. Such keys make the module fail unless their namespace is listed in I(extra_label_ns).
  - NFD's default PCI labels use the class and the vendor (C(pci-0302_10de.present)) and only for the
    classes 03, 0b40 and 12, so network cards (classes 0200 and 0207) get no label by default; a rule is
    the way to label them.
  - The object is written with server-side apply under I(field_manager). In check mode the API server
    validates the object in a dry run and the diff shows what it would store.
  - After applying, the module reports which nodes carry the labels of each rule. nfd-master applies a
    rule on each node after the next nfd-worker pass (60 seconds by default), so with I(wait=true) the
    module waits until every rule labels at least I(rules[].min_nodes) nodes and all of
    I(rules[].expected_nodes).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.kubernetes
  - hpcops.coe.attributes
options:
  name:
    description: Name of the NodeFeatureRule.
    type: str
    required: true
  rules:
    description:
      - The rules. Within a rule every condition must hold (PCI, kernel modules, kernel version); a rule
        sets its I(labels) on every node where it matches.
      - Required with I(state=present).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the rule, unique within the object.
        type: str
        required: true
      labels:
        description:
          - Node labels the rule sets. Keys without a prefix get C(feature.node.kubernetes.io/).
          - Values are strings; YAML booleans and numbers are turned into their lower-case text.
        type: dict
        required: true
      pci:
        description:
          - A PCI device the node must have, as a mapping with some of C(vendor), C(device), C(class),
            C(subsystem_vendor), C(subsystem_device). Each field is a hex ID or a list of them (any of
            them matches); all given fields must match the same device.
          - C(class) takes 4-digit classes (C(0207)) or 2-digit base classes (C(02) matches C(0200) and
            C(0207)).
          - A list of such mappings means any one of the devices.
        type: raw
      kernel_modules:
        description: Kernel modules that must be loaded on the node (all of them).
        type: list
        elements: str
      kernel_version:
        description: A regular expression the node's full kernel version (C(uname -r)) must match.
        type: str
      expected_nodes:
        description: Nodes that must carry the labels; with I(wait=true) the module waits for them.
        type: list
        elements: str
        default: []
      min_nodes:
        description: How many nodes at least must carry the labels; with I(wait=true) the module waits for them.
        type: int
        default: 0
  extra_label_ns:
    description:
      - Label namespaces nfd-master accepts besides its own (its C(-extra-label-ns) argument). Label keys in
        other namespaces are refused.
    type: list
    elements: str
    default: []
  wait:
    description:
      - Wait until the expectations of every rule (I(rules[].min_nodes), I(rules[].expected_nodes)) are met.
        Rules without expectations are not waited for.
      - With I(state=absent), wait until no node carries the labels of the rule any more.
notes:
  - The API server must serve C(nfd.k8s-sigs.io/v1alpha1) (the NFD CRDs must be installed), except in check
    mode, where a missing CRD only produces a warning.
seealso:
  - module: hpcops.coe.kernel_module
  - module: hpcops.coe.device_plugin
'''

EXAMPLES = r'''
- name: Label NVIDIA GPUs and Mellanox/NVIDIA network cards
  hpcops.coe.node_feature_rule:
    name: hpcops-accelerators
    rules:
      - name: nvidia-gpu
        labels: {pci-10de.present: "true"}
        pci: {vendor: "10de", class: ["0300", "0302"]}
      - name: mellanox-nic
        labels: {pci-15b3.present: "true"}
        pci: {vendor: "15b3", class: ["0200", "0207"]}
        expected_nodes: [ib-1, eth-1]

- name: Nodes where the InfiniBand stack is loaded on an el9 kernel
  hpcops.coe.node_feature_rule:
    name: rdma-ready
    rules:
      - name: ib-verbs
        labels: {rdma.ready: "true"}
        kernel_modules: [ib_uverbs, rdma_ucm]
        kernel_version: '\.el9_[0-9]+\.x86_64$'
        min_nodes: 1

- name: Any of two GPU models, label in an allowed extra namespace
  hpcops.coe.node_feature_rule:
    name: gpu-models
    extra_label_ns: [hpc.example.org]
    rules:
      - name: a100-or-h100
        labels: {hpc.example.org/gpu-tier: high}
        pci:
          - {vendor: "10de", device: "20b5"}
          - {vendor: "10de", device: "2330"}

- name: Remove a rule
  hpcops.coe.node_feature_rule:
    name: gpu-models
    state: absent
'''

RETURN = r'''
rule:
  description: The NodeFeatureRule as the API server stores it (or would store it, in check mode).
  returned: state=present
  type: dict
nodes:
  description: For each rule, the nodes that carry all its labels.
  returned: always
  type: dict
  sample: {nvidia-gpu: [gpu-1, gpu-2], mellanox-nic: [gpu-1, ib-1, eth-1]}
labels:
  description: For each label (full key), the nodes that carry it with the rule's value.
  returned: always
  type: dict
  sample: {feature.node.kubernetes.io/pci-10de.present: [gpu-1, gpu-2]}
waited:
  description: Seconds spent waiting for the labels.
  returned: always
  type: float
diff:
  description: The object before and after, without server-maintained fields (with C(--diff)).
  returned: changed and diff mode
  type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils.kube import name_problem
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule
from ansible_collections.hpcops.coe.plugins.module_utils.kube_nfd import (
    NFD_API_VERSION, build_spec, full_label_key, missing_expectations, rule_report)

RULE_OPTIONS = dict(
    name=dict(type='str', required=True),
    labels=dict(type='dict', required=True),
    pci=dict(type='raw'),
    kernel_modules=dict(type='list', elements='str'),
    kernel_version=dict(type='str'),
    expected_nodes=dict(type='list', elements='str', default=[]),
    min_nodes=dict(type='int', default=0),
)


def explain_missing(missing, nodes, spec):
    by_name = dict((n['metadata']['name'], n) for n in nodes)
    rules = dict((r['name'], r) for r in spec['rules'])
    parts = []
    for name, absent, count, minimum in missing:
        labels = ', '.join('%s=%s' % (full_label_key(k), v) for k, v in rules[name]['labels'].items())
        text = 'rule %s (%s) labels %d node(s)' % (name, labels, count)
        if minimum:
            text += ', wanted at least %d' % minimum
        if absent:
            notes = []
            for node in absent:
                if node not in by_name:
                    notes.append('%s: no such node' % node)
                elif not ((by_name[node]['metadata'].get('annotations') or {}).get(
                        'nfd.node.kubernetes.io/feature-labels')):
                    notes.append('%s: NFD has not labelled this node at all (is nfd-worker running there?)' % node)
                else:
                    notes.append('%s: NFD runs there but the rule does not match its features' % node)
            text += '; missing on %s' % '; '.join(notes)
        parts.append(text)
    return '; '.join(parts)


class NodeFeatureRule(CoeKubeModule):
    """One NodeFeatureRule, and the nodes its rules label."""

    argument_spec = dict(
        name=dict(type='str', required=True),
        rules=dict(type='list', elements='dict', options=RULE_OPTIONS),
        extra_label_ns=dict(type='list', elements='str', default=[]),
    )
    module_kwargs = dict(required_if=[('state', 'present', ['rules'])])

    def __init__(self):
        super(NodeFeatureRule, self).__init__()
        self.spec = None

    def problems(self):
        problem = name_problem(self.params['name'])
        if problem:
            self.module.fail_json(msg='%s. Nothing was applied.' % problem)
        if self.params['state'] == 'present':
            self.spec, problems = build_spec(self.params['rules'], self.params['extra_label_ns'])
            if problems:
                self.module.fail_json(msg='Invalid rules, nothing was applied: %s.' % '; '.join(problems))
        return []

    def run(self):
        if self.params['state'] == 'absent':
            self.remove()
        else:
            self.present()

    def remove(self):
        kube, params = self.kube, self.params
        name = params['name']
        before = kube.get(NFD_API_VERSION, 'NodeFeatureRule', name) if kube.served(
            NFD_API_VERSION, 'NodeFeatureRule') else None
        changed = self.delete(NFD_API_VERSION, 'NodeFeatureRule', name)
        waited = 0.0
        if before and changed and params['wait'] and not self.check_mode:
            spec = before.get('spec') or {}
            outcome = self.wait('labels of %s to be withdrawn' % name, kube.nodes,
                                lambda nodes: not any(rule_report(spec, nodes)[0].values()))
            waited = outcome.waited
            if not outcome.done:
                self.fail('NodeFeatureRule %s was deleted but after %.0f s nodes still carry its labels: %s'
                          % (name, waited, rule_report(spec, outcome.value)[0]))
        self.exit(waited=round(waited, 1), diff={'before': before or {}, 'after': {}}, nodes={}, labels={})

    def present(self):
        kube, params, spec = self.kube, self.params, self.spec
        name = params['name']
        definition = {'apiVersion': NFD_API_VERSION, 'kind': 'NodeFeatureRule', 'metadata': {'name': name},
                      'spec': spec}
        applied = self.apply(definition)
        self.diff = applied['diff']
        nodes = kube.nodes()
        expectations = [r for r in params['rules'] if r.get('expected_nodes') or r.get('min_nodes')]
        waited = 0.0
        if params['wait'] and expectations and not self.check_mode:
            outcome = self.wait('NFD to apply %s' % name, kube.nodes,
                                lambda current: not missing_expectations(expectations, rule_report(spec, current)[0]))
            nodes, waited = outcome.value, outcome.waited
            if not outcome.done:
                by_rule, by_label = rule_report(spec, nodes)
                self.fail('NodeFeatureRule %s is applied, but after %.0f s %s.' % (
                    name, waited, explain_missing(missing_expectations(expectations, by_rule), nodes, spec)),
                    nodes=by_rule, labels=by_label, rule=applied['after'])
        by_rule, by_label = rule_report(spec, nodes)
        self.exit(rule=applied['after'], nodes=by_rule, labels=by_label, waited=round(waited, 1))


def main():
    NodeFeatureRule()()


if __name__ == '__main__':
    main()
