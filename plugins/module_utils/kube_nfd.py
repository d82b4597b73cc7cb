# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NodeFeatureRule building and checking for hpcops.coe.node_feature_rule.

The friendly rule format (PCI vendor/class/device, loaded kernel modules, a
kernel version pattern) is turned into NFD's matchFeatures/matchAny terms.
Label keys are checked the way nfd-master treats them, because a rule whose
labels nfd-master drops silently is the most common NFD pitfall.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.hpcops.coe.plugins.module_utils.kube import label_key_problem, label_value_problem

NFD_API_VERSION = 'nfd.k8s-sigs.io/v1alpha1'
NFD_PREFIX = 'feature.node.kubernetes.io/'
FEATURE_LABELS_ANNOTATION = 'nfd.node.kubernetes.io/feature-labels'
PCI_FIELDS = ('vendor', 'device', 'class', 'subsystem_vendor', 'subsystem_device')
HEX4 = re.compile(r'^[0-9a-f]{4}$')
HEX_CLASS = re.compile(r'^([0-9a-f]{2}|[0-9a-f]{4})$')


def pci_devices(nodefeatures):
    """(node name, PCI attributes) of every pci.device in NFD's NodeFeature objects (one per node, from nfd-worker)."""
    for nf in nodefeatures or []:
        meta = nf.get('metadata') or {}
        node = (meta.get('labels') or {}).get('nfd.node.kubernetes.io/node-name') or meta.get('name')
        instances = ((nf.get('spec') or {}).get('features') or {}).get('instances') or {}
        for device in (instances.get('pci.device') or {}).get('elements') or []:
            yield node, device.get('attributes') or {}


def pci_matches(attrs, vendor, classes):
    """Whether a device is of `vendor` (4 hex digits) and one of `classes` (2-digit class or 4-digit subclass)."""
    pci_class = str(attrs.get('class', '')).lower()
    return str(attrs.get('vendor', '')).lower() == vendor and any(c in (pci_class[:2], pci_class) for c in classes)


def nodes_with_pci(nodefeatures, vendor, classes):
    """Sorted names of the nodes with at least one such device."""
    return sorted(set(node for node, attrs in pci_devices(nodefeatures) if pci_matches(attrs, vendor, classes)))


def full_label_key(key):
    """The key nfd-master writes: keys without a prefix get feature.node.kubernetes.io/."""
    return key if '/' in key else NFD_PREFIX + key


def label_namespace_problem(key, extra_label_ns=()):
    """Why nfd-master would drop a label with this (full) key, or None."""
    prefix = key.rpartition('/')[0]
    if prefix in ('feature.node.kubernetes.io', 'profile.node.kubernetes.io') or \
            prefix.endswith(('.feature.node.kubernetes.io', '.profile.node.kubernetes.io')):
        return None
    if prefix in ('kubernetes.io', 'k8s.io') or prefix.endswith(('.kubernetes.io', '.k8s.io')):
        return ('nfd-master never writes labels in the %r namespace (kubernetes.io and k8s.io are reserved); use a '
                'key without a prefix (it becomes feature.node.kubernetes.io/<key>)' % prefix)
    if prefix in (extra_label_ns or ()):
        return None
    return ('nfd-master drops labels in the %r namespace unless it runs with -extra-label-ns=%s; use a key without a '
            'prefix (it becomes feature.node.kubernetes.io/<key>), a *.feature.node.kubernetes.io prefix, or add %r '
            'to extra_label_ns (and to the nfd-master arguments)' % (prefix, prefix, prefix))


def _hex_list(value, field, where, problems, pattern, shape):
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        text = str(item).lower()
        if text.startswith('0x'):
            text = text[2:]
        if not pattern.match(text):
            problems.append('%s.%s: %r is not %s' % (where, field, item, shape))
        else:
            out.append(text)
    return out


def pci_term(spec, where, problems):
    """One pci.device matchFeatures term: all given fields must match the same device."""
    if not isinstance(spec, dict):
        problems.append('%s: a PCI match is a mapping with some of %s' % (where, ', '.join(PCI_FIELDS)))
        return None
    unknown = sorted(set(spec) - set(PCI_FIELDS))
    if unknown:
        problems.append('%s: unknown PCI field(s) %s; valid fields are %s' % (
            where, ', '.join(unknown), ', '.join(PCI_FIELDS)))
    exprs = {}
    for field in PCI_FIELDS:
        if spec.get(field) in (None, '', []):
            continue
        if field == 'class':
            classes = _hex_list(spec[field], field, where, problems, HEX_CLASS,
                                'a 2-digit PCI base class (e.g. 02) or a 4-digit class (e.g. 0207)')
            if classes and all(len(c) == 4 for c in classes):
                exprs['class'] = {'op': 'In', 'value': classes}
            elif classes:
                # a 2-digit base class covers every subclass: 02 matches 0200 and 0207
                exprs['class'] = {'op': 'InRegexp',
                                  'value': ['^%s' % c if len(c) == 2 else '^%s$' % c for c in classes]}
        else:
            values = _hex_list(spec[field], field, where, problems, HEX4, 'a 4-digit hex ID (e.g. 10de)')
            if values:
                exprs[field] = {'op': 'In', 'value': values}
    if not exprs:
        problems.append('%s: a PCI match needs at least one of %s' % (where, ', '.join(PCI_FIELDS)))
        return None
    return {'feature': 'pci.device', 'matchExpressions': exprs}


def normalize_labels(labels):
    """Label values as strings: YAML turns `true` and `1` into other types."""
    out = {}
    for key, value in (labels or {}).items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif value is None:
            value = ''
        elif isinstance(value, (int, float)):
            value = str(value)
        out[key] = value
    return out


def build_rule(rule, extra_label_ns, problems):
    """NFD's form of one friendly rule; problems are appended to `problems`."""
    name = rule.get('name')
    where = 'rules[%s]' % name
    labels = normalize_labels(rule.get('labels'))
    if not labels:
        problems.append('%s: labels is required (the node labels the rule sets)' % where)
    for key, value in labels.items():
        problem = label_key_problem(key)
        if problem:
            problems.append('%s: label %r: %s' % (where, key, problem))
            continue
        problem = label_namespace_problem(full_label_key(key), extra_label_ns)
        if problem:
            problems.append('%s: label %r: %s' % (where, key, problem))
        problem = label_value_problem(value)
        if problem:
            problems.append('%s: label %r: %s' % (where, key, problem))
    terms, any_of = [], []
    pci = rule.get('pci')
    if isinstance(pci, list) and len(pci) > 1:
        for i, entry in enumerate(pci):
            term = pci_term(entry, '%s.pci[%d]' % (where, i), problems)
            if term:
                any_of.append({'matchFeatures': [term]})
    elif pci:
        term = pci_term(pci[0] if isinstance(pci, list) else pci, where + '.pci', problems)
        if term:
            terms.append(term)
    modules = rule.get('kernel_modules') or []
    if modules:
        bad = [m for m in modules if not re.match(r'^[A-Za-z0-9_-]+$', str(m))]
        if bad:
            problems.append('%s.kernel_modules: %s are not kernel module names (letters, digits, "_" and "-")'
                            % (where, ', '.join(repr(b) for b in bad)))
        terms.append({'feature': 'kernel.loadedmodule',
                      'matchExpressions': dict((str(m), {'op': 'Exists'}) for m in modules)})
    version = rule.get('kernel_version')
    if version:
        try:
            re.compile(version)
        except re.error as exc:
            problems.append('%s.kernel_version: %r is not a valid regular expression: %s' % (where, version, exc))
        terms.append({'feature': 'kernel.version',
                      'matchExpressions': {'full': {'op': 'InRegexp', 'value': [version]}}})
    if not terms and not any_of:
        problems.append('%s: give at least one of pci, kernel_modules, kernel_version (a rule without conditions '
                        'labels every node)' % where)
    out = {'name': name, 'labels': labels}
    if terms:
        out['matchFeatures'] = terms
    if any_of:
        out['matchAny'] = any_of
    return out


def build_spec(rules, extra_label_ns=()):
    """(spec, problems) for a NodeFeatureRule made of `rules`."""
    problems = []
    names = [r.get('name') for r in rules]
    dupes = sorted(set(n for n in names if names.count(n) > 1))
    if dupes:
        problems.append('rule names must be unique: %s' % ', '.join(dupes))
    spec = {'rules': [build_rule(r, extra_label_ns, problems) for r in rules]}
    return spec, problems


def labelled_nodes(nodes, labels):
    """Names of nodes carrying every label in `labels` (full keys) with its value."""
    out = []
    for node in nodes:
        have = (node.get('metadata') or {}).get('labels') or {}
        if all(have.get(k) == v for k, v in labels.items()):
            out.append(node['metadata']['name'])
    return sorted(out)


def rule_report(spec, nodes):
    """{rule name: [nodes]} and {label: [nodes]} for the rules of `spec`."""
    by_rule, by_label = {}, {}
    for rule in spec.get('rules') or []:
        full = dict((full_label_key(k), v) for k, v in (rule.get('labels') or {}).items())
        by_rule[rule['name']] = labelled_nodes(nodes, full)
        for key, value in full.items():
            by_label[key] = labelled_nodes(nodes, {key: value})
    return by_rule, by_label


def missing_expectations(rules, by_rule):
    """Rules whose expected nodes or minimum count are not met: [(rule, missing nodes, count, min)]."""
    out = []
    for rule in rules:
        have = by_rule.get(rule['name'], [])
        missing = sorted(set(rule.get('expected_nodes') or []) - set(have))
        minimum = rule.get('min_nodes') or 0
        if missing or len(have) < minimum:
            out.append((rule['name'], missing, len(have), minimum))
    return out
