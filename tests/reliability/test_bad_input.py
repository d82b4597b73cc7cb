# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input: every case gets a clear error that names the input and what would
be valid, and it comes before any change.

Two kinds of cases:

* generated from the argument specs (each module's DOCUMENTATION, each role's
  meta/argument_specs.yml): a value of the wrong type for every typed option
  and suboption, a value outside `choices`, a missing required option, an
  unknown option;
* written by hand, per module and role: unknown networks, flavors, templates,
  images, keypairs and clusters, malformed labels, conflicting options, names
  Magnum rejects, negative counts, more networks than the nodes have free NICs,
  kernel mappings that leave a selected node out, and so on.

The generated cases are checked with the code that checks them in a real run,
in this process: each module's own main() under Ansible's module-argument
patch (argument validation is the first thing a module does, so nothing else of
it runs), each role's spec with Ansible's ArgumentSpecValidator over the role's
defaults. One generated case per module and per role also goes through
ansible-playbook, to show the operator sees the same message. The hand-written
cases all run through ansible-playbook, many tasks to a play (each task
`ignore_errors`), a few plays side by side, each against a fresh cloud or
Kubernetes world. "Before any change" is checked on the worlds' own records:
not one POST/PUT/PATCH/DELETE reached the cloud, not one write reached the
Kubernetes API, and the state snapshot is the same before and after.
"""

import ast
import contextlib
import copy
import glob
import importlib
import io
import json
import os
import sys
import tempfile
import warnings
from unittest import mock

import pytest
import yaml

from reliability_kit import (
    FIGURES,
    REPO,
    census,
    kube_writes,
    leftovers,
    run_playbook,
    run_together,
    unclear_reason,
    writes,
)
from testworld.kubernetes import components

EL94 = '5.14.0-427.13.1.el9_4.x86_64'
EL95 = '5.14.0-503.11.1.el9_5.x86_64'
NS = 'hpcops-rel'

# Minimal arguments of each module, harmless on their own: if a generated bad value
# slipped through, the module would still change nothing (it would fail on these).
MODULE_BASE = {
    'cluster': {'name': 'rel-nothing'},
    'cluster_template': {'name': 'rel-nothing'},
    'cluster_nodegroup': {'cluster': 'no-such-cluster', 'name': 'rel-nothing'},
    'cluster_info': {'name': 'no-such-cluster'},
    'cluster_kubeconfig': {'cluster': 'no-such-cluster', 'return_content': True},
    'cluster_nodes': {'cluster': 'no-such-cluster'},
    'stack_facts': {'stack': 'no-such-stack'},
    'server_interfaces': {'servers': ['no-such-server']},
    'node_feature_rule': {'name': 'rel-nothing', 'state': 'absent'},
    'kernel_module': {'name': 'rel-nothing', 'namespace': 'no-such-namespace', 'state': 'absent'},
    'device_plugin': {'type': 'nvidia-gpu', 'namespace': 'no-such-namespace', 'state': 'absent'},
    'pod_network': {'name': 'rel-nothing', 'namespace': 'no-such-namespace', 'state': 'absent'},
    'gpu_runtime': {'namespace': 'no-such-namespace', 'state': 'absent'},
    'gpu_monitoring': {'namespace': 'no-such-namespace', 'state': 'absent'},
    'accelerator_validation': {'name': 'rel-nothing', 'namespace': 'no-such-namespace',
                               'resource': 'example.com/nothing', 'image': 'none', 'command': ['true']},
    # Below a character device, so the directory can never be created.
    'node_network_files': {'directory': '/dev/null/rel-nothing'},
    'node_network_info': {'root': '/nonexistent/rel-nothing'},
    'node_mounts': {'root': '/nonexistent/rel-nothing'},
}
KUBE_MODULES = ('node_feature_rule', 'kernel_module', 'device_plugin', 'accelerator_validation', 'pod_network',
                'gpu_runtime', 'gpu_monitoring')

# A value of the wrong type per type, and the word the error must use for the type.
WRONG = {'int': ('twelve', 'int'), 'float': ('fast', 'float'), 'bool': ('maybe', 'bool'),
         'dict': ('not-a-mapping', 'dict')}
DUMMY = {'str': 'x', 'int': 1, 'float': 1.0, 'bool': True, 'dict': {'a': 'b'}, 'list': ['x'], 'raw': 'x',
         'path': '/nonexistent', None: 'x'}


class Case(object):
    """One bad input: where it goes, what the error must say, and what is valid."""

    def __init__(self, group, ident, module, args, says, valid=(), role_vars=None, nested=False, defaulted=False):
        self.group = group
        self.ident = ident
        self.module = module
        self.args = args
        self.says = list(says)          # every one must be in the message (case-insensitive)
        self.valid = list(valid)        # what would be valid: must be named too
        self.role_vars = role_vars
        self.nested = nested            # a non-mapping given to an option with suboptions
        self.defaulted = defaulted      # a "missing" role variable that the role's defaults set

    def task(self):
        return {'name': self.ident, 'hpcops.coe.' + self.module: self.args, 'ignore_errors': True}

    def problem(self, record):
        """None when the case got the error it deserves, else why not."""
        if record is None:
            return 'did not run'
        result = record['result']
        if record['status'] not in ('failed', 'ignored') and not result.get('failed'):
            return 'accepted (status %s): %s' % (record['status'], str(result.get('msg'))[:300])
        why = unclear_reason(result)
        if why:
            return why
        msg = result['msg'].lower()
        missing = [s for s in self.says + self.valid if s.lower() not in msg]
        if missing:
            return 'the message lacks %s: %s' % (missing, result['msg'][:500])
        return None


# --------------------------------------------------------------------------- generated from the specs

class _FragmentFiles(object):
    """Doc fragments read from the collections' files, for ansible's own add_fragments().

    Reading them here rather than through ansible's plugin loader keeps this process's
    collection finder (which other cases configure their own way) out of it.
    """

    def __init__(self):
        self.root = os.environ.get('ANSIBLE_COLLECTIONS_PATH') or os.path.join(REPO, '.cache', 'collections')

    def get(self, name):
        parts = name.split('.')
        if len(parts) != 3:
            return None
        path = os.path.join(self.root, 'ansible_collections', parts[0], parts[1], 'plugins', 'doc_fragments',
                            parts[2] + '.py')
        if not os.path.exists(path):
            return None
        with open(path) as f:
            tree = ast.parse(f.read())
        texts = dict((node.targets[0].id, node.value.value)
                     for cls in tree.body if isinstance(cls, ast.ClassDef)
                     for node in cls.body
                     if isinstance(node, ast.Assign) and isinstance(getattr(node, 'value', None), ast.Constant))
        return type('ModuleDocFragment', (object,), dict(texts, ansible_name=name))


def module_options(module):
    """The options as ansible-doc shows them: the module's own merged with its doc fragments."""
    from ansible.utils.plugin_docs import add_fragments

    path = os.path.join(REPO, 'plugins', 'modules', module + '.py')
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'DOCUMENTATION':
            doc = yaml.safe_load(node.value.value)
            add_fragments(doc, os.path.abspath(path), _FragmentFiles(), is_module=True)
            return json.loads(json.dumps(doc['options']))
    raise AssertionError('%s has no DOCUMENTATION' % module)


def role_options(role):
    with open(os.path.join(REPO, 'roles', role, 'meta', 'argument_specs.yml')) as f:
        return yaml.safe_load(f)['argument_specs']['main']['options']


def minimal(options):
    """A valid element for a dict option: its required suboptions with plain values."""
    out = {}
    for name, spec in (options or {}).items():
        if spec.get('required'):
            if spec.get('choices'):
                out[name] = spec['choices'][0]
            else:
                out[name] = copy.deepcopy(DUMMY.get(spec.get('type', 'str'), 'x'))
    return out


def type_cases(options, place, ident_prefix):
    """(ident, arguments, says, valid, nested) for every typed option of `options`.

    `place(name, value)` returns the full arguments with `name` set to `value`
    (or removed, for _MISSING) inside whatever parent structure it needs.
    """
    cases = []
    for name, spec in options.items():
        kind = spec.get('type', 'str')
        subs = spec.get('suboptions') or spec.get('options')
        where = '%s%s' % (ident_prefix, name)
        if kind in WRONG:
            value, word = WRONG[kind]
            cases.append((where + ' wrong type', place(name, value), [name, word], [], bool(subs)))
        if kind == 'list' and spec.get('elements') == 'dict':
            cases.append((where + ' elements not mappings', place(name, ['not-a-mapping']), [name, 'dict'], [],
                          bool(subs)))
        if spec.get('choices'):
            bad = ['no-such-choice'] if kind == 'list' else 'no-such-choice'
            cases.append((where + ' outside choices', place(name, bad), [name], [str(c) for c in spec['choices']],
                          False))
        if spec.get('required') and spec.get('default') is None:
            cases.append((where + ' missing', place(name, _MISSING), [name, 'missing required'], [], False))
        if subs:
            # A tuple of items: a dict default would be shared between calls.
            elem = tuple(minimal(subs).items())

            def sub_place(sub, value, name=name, kind=kind, elem=elem):
                e = dict(elem)
                if value is _MISSING:
                    e.pop(sub, None)
                else:
                    e[sub] = value
                return place(name, [e] if kind == 'list' else e)

            cases.extend(type_cases(subs, sub_place, where + '.'))
    return cases


class _Missing(object):
    pass


_MISSING = _Missing()


def generated_module_cases(module):
    base = MODULE_BASE[module]

    def place(name, value):
        args = copy.deepcopy(base)
        if value is _MISSING:
            args.pop(name, None)
        else:
            args[name] = value
        return args

    out = []
    for ident, args, says, valid, nested in type_cases(module_options(module), place, module + ' '):
        out.append(Case('generated (module specs)', ident, module, args, says, valid, nested=nested))
    unknown = dict(copy.deepcopy(base), no_such_option=1)
    out.append(Case('generated (module specs)', module + ' unknown option', module, unknown,
                    ['no_such_option', 'unsupported'], ['supported parameters']))
    return out


ROLE_BASE = {
    'cluster': {'cluster_name': 'rel-nothing', 'cluster_template': {'name': 'rel-nothing-template'},
                'cluster_cloud': 'hpcops-sim', 'cluster_add_hosts': False},
    'networks': {'networks_list': [{'name': 'eth-10g'}], 'networks_cluster': 'no-such-cluster',
                 'networks_cloud': 'hpcops-sim', 'networks_configure_nodes': False},
    'accelerators': {'accelerators_wait_timeout': 5, 'accelerators_wait_sleep': 1},
    'storage': {'storage_mounts': [{'path': '/rel-nothing', 'type': 'nfs', 'servers': ['192.0.2.1'],
                                    'source': '/export'}],
                'storage_target_root': '/nonexistent/rel-nothing', 'storage_install_packages': False},
    'pod_networks': {'pod_networks_wait_timeout': 5, 'pod_networks_wait_sleep': 1},
}
# A site with one 25G network whose subnet keeps its top quarter out of the allocation pool.
POD_SUBNET = {'cidr': '10.25.0.0/16', 'gateway_ip': '10.25.0.1',
              'allocation_pools': [{'start': '10.25.0.2', 'end': '10.25.191.254'}]}
POD_SITE = {'pod_networks_site_networks': [{'name': 'eth-25g', 'mtu': 9000},
                                           {'name': 'ib-100g', 'kind': 'infiniband', 'mtu': 4092}],
            'pod_networks_neutron': {'eth-25g': {'mtu': 9000, 'subnets': [POD_SUBNET]},
                                     'ib-100g': {'mtu': 4092, 'subnets': [dict(POD_SUBNET, cidr='10.100.0.0/16')]}},
            'pod_networks_interfaces': {'eth-25g': 'eno1', 'ib-100g': 'ib0'}}


def generated_role_cases(role):
    base = ROLE_BASE[role]
    defaults = role_defaults(role)

    def place(name, value):
        args = copy.deepcopy(base)
        if value is _MISSING:
            args.pop(name, None)
        else:
            args[name] = value
        return args

    out = []
    for ident, role_vars, says, valid, _nested in type_cases(role_options(role), place, 'role %s ' % role):
        top = ident.split(' ')[2].split('.')[0]
        defaulted = ident.endswith(' missing') and '.' not in ident.split(' ')[2] and top in defaults
        out.append(Case('generated (role specs)', ident, role, None, says, valid, role_vars=role_vars,
                        defaulted=defaulted))
    return out


# --------------------------------------------------------------------------- written by hand

def C(ident, module, args, says, valid=()):
    return Case('hand-written (OpenStack)' if module not in KUBE_MODULES else 'hand-written (Kubernetes)',
                ident, module, args, says, valid)


LONG_NAME = 'a' + 'b' * 242


def openstack_cases(workdir):
    tpl = {'name': 'rel-new-template', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key',
           'external_network': 'public', 'flavor': 'm1.small', 'master_flavor': 'm1.large'}
    new = {'name': 'rel-new', 'cluster_template': 'k8s-heat-fcos'}
    workers = {'cluster': 'hpc-heat', 'nodegroups': ['default-worker']}
    nics = [{'physical_network': 'physnet10g', 'count': 1}, {'physical_network': 'physnet25g', 'count': 1},
            {'physical_network': 'ib', 'count': 1}]
    os.makedirs(os.path.join(workdir, 'a-directory'), exist_ok=True)
    return [
        # cluster templates
        C('template unknown image', 'cluster_template', dict(tpl, image='no-such-image'),
          ["image 'no-such-image'", 'given in image', 'does not exist'],
          ['fedora-coreos-40', 'ubuntu-jammy-kube-v1.30.4']),
        C('template image without os_distro', 'cluster_template', dict(tpl, image='cirros-0.6'),
          ['cirros-0.6', 'os_distro'], ['os_distro=']),
        C('template unknown flavor', 'cluster_template', dict(tpl, flavor='no-such-flavor'),
          ["flavor 'no-such-flavor'", 'given in flavor'], ['m1.small', 'bm.compute']),
        C('template unknown master flavor', 'cluster_template', dict(tpl, master_flavor='no-such-flavor'),
          ["flavor 'no-such-flavor'", 'given in master_flavor'], ['m1.large']),
        C('template unknown keypair', 'cluster_template', dict(tpl, keypair='no-such-key'),
          ["keypair 'no-such-key'", 'given in keypair'], ['hpc-key']),
        C('template unknown external network', 'cluster_template', dict(tpl, external_network='no-such-net'),
          ["network 'no-such-net'", 'given in external_network'], ['public']),
        C('template unknown fixed network', 'cluster_template', dict(tpl, fixed_network='no-such-net'),
          ["network 'no-such-net'", 'given in fixed_network'], ['private', 'eth-25g']),
        C('template unknown fixed subnet', 'cluster_template',
          dict(tpl, fixed_network='private', fixed_subnet='no-such-subnet'),
          ["subnet 'no-such-subnet'", 'given in fixed_subnet'], ['private-subnet']),
        C('template without image', 'cluster_template', {'name': 'rel-new-template'}, ['image'], ['image is needed']),
        C('template floating IPs without external network', 'cluster_template',
          dict(tpl, external_network=None, floating_ip_enabled=True), ['floating_ip_enabled', 'external_network'],
          []),
        C('template zero volume', 'cluster_template', dict(tpl, docker_volume_size=0), ['docker_volume_size', '0'],
          ['1 (gb) or more']),
        C('template port out of range', 'cluster_template', dict(tpl, apiserver_port=70000),
          ['apiserver_port', '70000'], ['1 to 65535']),
        C('template label with a list', 'cluster_template', dict(tpl, labels={'nets': ['a', 'b']}),
          ["label 'nets'", 'list value'], ['separator']),
        C('template label with a mapping', 'cluster_template', dict(tpl, labels={'nested': {'a': 1}}),
          ["label 'nested'", 'mapping value'], ['flat strings']),
        C('template bad coe', 'cluster_template', dict(tpl, coe='nomad'), ['coe', 'nomad'], ['kubernetes']),
        C('template driver change on an existing template', 'cluster_template',
          {'name': 'k8s-heat-fcos', 'server_type': 'bm'}, ['server_type', 'nothing was changed'],
          ['new template']),
        C('template in use cannot change', 'cluster_template', {'name': 'k8s-heat-fcos', 'labels': {'a': 'b'}},
          ['clusters use it', 'hpc-heat', 'labels'], ['public and hidden']),
        C('template in use cannot go', 'cluster_template', {'name': 'k8s-heat-fcos', 'state': 'absent'},
          ['clusters use it', 'hpc-heat'], []),
        # clusters
        C('cluster name starts with a digit', 'cluster', dict(new, name='1cluster'), ["'1cluster'"],
          ['start with a letter', 'letters, digits']),
        C('cluster name with a space', 'cluster', dict(new, name='my cluster'), ["'my cluster'"],
          ['start with a letter']),
        C('cluster name with a slash', 'cluster', dict(new, name='a/b'), ["'a/b'"], ['start with a letter']),
        C('cluster name too long', 'cluster', dict(new, name=LONG_NAME), ['243 characters'], ['at most 242']),
        C('cluster name is an unknown UUID', 'cluster', dict(new, name='0b5e1f6c-1c2d-4e3f-8a9b-0c1d2e3f4a5b'),
          ['0b5e1f6c-1c2d-4e3f-8a9b-0c1d2e3f4a5b'], ['give a name']),
        C('cluster unknown template', 'cluster', dict(new, cluster_template='no-such-template'),
          ["cluster template 'no-such-template'", 'given in cluster_template'], ['k8s-heat-fcos', 'k8s-capi-v1.30']),
        C('cluster without template', 'cluster', {'name': 'rel-new'}, ['cluster_template'], ['needed to create']),
        C('cluster unknown flavor', 'cluster', dict(new, flavor='no-such-flavor'),
          ["flavor 'no-such-flavor'", 'given in flavor'], ['m1.small', 'bm.gpu']),
        C('cluster unknown master flavor', 'cluster', dict(new, master_flavor='no-such-flavor'),
          ["flavor 'no-such-flavor'", 'given in master_flavor'], ['m1.large']),
        C('cluster unknown keypair', 'cluster', dict(new, keypair='no-such-key'),
          ["keypair 'no-such-key'", 'given in keypair'], ['hpc-key']),
        C('cluster unknown fixed network', 'cluster', dict(new, fixed_network='no-such-net'),
          ["network 'no-such-net'", 'given in fixed_network'], ['private']),
        C('cluster unknown fixed subnet', 'cluster', dict(new, fixed_subnet='no-such-subnet'),
          ["subnet 'no-such-subnet'", 'given in fixed_subnet'], ['private-subnet']),
        C('cluster zero masters', 'cluster', dict(new, master_count=0), ['master_count', 'got 0'], ['1 or more']),
        C('cluster negative workers', 'cluster', dict(new, node_count=-2), ['node_count', '-2'], ['0 or more']),
        C('cluster zero volume', 'cluster', dict(new, docker_volume_size=0), ['docker_volume_size'], ['1 (gb) or more']),
        C('cluster zero create_timeout', 'cluster', dict(new, create_timeout=0), ['create_timeout', 'minutes'],
          ['1 or more']),
        C('cluster zero batch', 'cluster', dict(new, max_batch_size=0), ['max_batch_size'], ['1 or more']),
        C('cluster negative timeout', 'cluster', dict(new, timeout=-5), ['timeout', '-5'], ['0 or more']),
        C('cluster nodes_to_remove without node_count', 'cluster', dict(new, nodes_to_remove=['x']),
          ['nodes_to_remove', 'node_count'], ['needs node_count']),
        C('cluster nodes_to_remove twice', 'cluster', {'name': 'hpc-heat', 'node_count': 0,
                                                       'nodes_to_remove': ['a', 'a']},
          ['nodes_to_remove', 'more than once'], []),
        C('cluster label with a list', 'cluster', dict(new, labels={'nets': ['a']}), ["label 'nets'", 'list value'],
          ['separator']),
        C('cluster master count cannot change', 'cluster', {'name': 'hpc-heat', 'master_count': 3},
          ['master_count', 'is 1', 'wanted 3', 'nothing was changed'], ['delete and recreate']),
        C('cluster flavor cannot change', 'cluster', {'name': 'hpc-heat', 'flavor': 'bm.gpu'},
          ['flavor_id', 'nothing was changed'], ['delete and recreate']),
        C('cluster labels cannot change', 'cluster', {'name': 'hpc-heat', 'labels': {'kube_tag': 'v9'},
                                                      'merge_labels': True},
          ['labels', 'kube_tag', 'nothing was changed'], []),
        C('cluster shrink removes more nodes than it drops', 'cluster',
          {'name': 'hpc-heat', 'node_count': 1, 'nodes_to_remove': ['a', 'b']},
          ['nodes_to_remove lists 2', 'from 2 to 1'], ['removes only 1']),
        C('cluster resize above the nodegroup maximum', 'cluster_nodegroup',
          {'cluster': 'hpc-heat', 'name': 'gpu', 'node_count': 9}, ['node_count 9', 'max_node_count 4'],
          ['min_node_count/max_node_count']),
        # nodegroups
        C('nodegroup master role', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng', 'role': 'master'},
          ["role 'master'"], ['worker role']),
        C('nodegroup name starts with a digit', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': '9gpu'},
          ["'9gpu'"], ['start with a letter']),
        C('nodegroup unknown cluster', 'cluster_nodegroup', {'cluster': 'no-such-cluster', 'name': 'rel-ng'},
          ["cluster 'no-such-cluster'", 'given in cluster'], ['hpc-heat', 'hpc-capi']),
        C('nodegroup unknown flavor', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                            'flavor': 'no-such-flavor'},
          ["flavor 'no-such-flavor'"], ['bm.gpu']),
        C('nodegroup unknown image', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                           'image': 'no-such-image'},
          ["image 'no-such-image'"], ['fedora-coreos-40']),
        C('nodegroup negative count', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                            'node_count': -1}, ['node_count', '-1'], ['0 or more']),
        C('nodegroup min above max', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                           'min_node_count': 5, 'max_node_count': 2},
          ['min_node_count (5)', 'max_node_count (2)'], ['greater than']),
        C('nodegroup zero maximum', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                          'max_node_count': 0}, ['max_node_count', 'got 0'],
          ['1 or more']),
        C('nodegroup minimum without count', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                                   'min_node_count': 3},
          ['min_node_count 3'], ['set node_count']),
        C('nodegroup delete the default workers', 'cluster_nodegroup',
          {'cluster': 'hpc-heat', 'name': 'default-worker', 'state': 'absent'}, ["'default-worker'", 'default'],
          ['resize it instead']),
        C('nodegroup flavor cannot change', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu',
                                                                  'flavor': 'm1.small'},
          ['flavor_id', 'nothing was changed'], ['create a new nodegroup']),
        C('nodegroup label with a mapping', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'rel-ng',
                                                                  'labels': {'gpu': {'a': 1}}},
          ["label 'gpu'", 'mapping'], ['flat strings']),
        # kubeconfig, nodes, stacks
        C('kubeconfig with nowhere to go', 'cluster_kubeconfig', {'cluster': 'hpc-heat'}, ['dest'],
          ['return_content']),
        C('kubeconfig dest is a directory', 'cluster_kubeconfig',
          {'cluster': 'hpc-heat', 'dest': os.path.join(workdir, 'a-directory')}, ['is a directory'],
          ['path of the kubeconfig file']),
        C('kubeconfig unknown cluster', 'cluster_kubeconfig', {'cluster': 'no-such-cluster', 'return_content': True},
          ["cluster 'no-such-cluster'"], ['hpc-heat', 'hpc-capi']),
        C('kubeconfig negative renewal', 'cluster_kubeconfig', {'cluster': 'hpc-heat', 'return_content': True,
                                                                'renew_before_days': -1},
          ['renew_before_days', '-1'], ['0 or more']),
        C('nodes unknown cluster', 'cluster_nodes', {'cluster': 'no-such-cluster'}, ["cluster 'no-such-cluster'"],
          ['hpc-heat', 'hpc-capi']),
        C('nodes unknown nodegroup', 'cluster_nodes', {'cluster': 'hpc-heat', 'nodegroups': ['no-such-group']},
          ['no-such-group'], ['default-worker', 'gpu']),
        C('stack both stack and cluster', 'stack_facts', {'stack': 'x', 'cluster': 'hpc-heat'},
          ['mutually exclusive', 'stack', 'cluster'], []),
        C('stack neither stack nor cluster', 'stack_facts', {}, ['one of the following is required'],
          ['stack', 'cluster']),
        C('stack nodegroup without cluster', 'stack_facts', {'stack': 'x', 'nodegroup': 'gpu'},
          ['nodegroup', 'cluster'], []),
        C('stack negative depth', 'stack_facts', {'cluster': 'hpc-heat', 'nested_depth': -1},
          ['nested_depth', '-1'], ['0 or more']),
        C('stack unknown nodegroup', 'stack_facts', {'cluster': 'hpc-heat', 'nodegroup': 'no-such-group'},
          ["nodegroup 'no-such-group'"], ['default-worker', 'gpu']),
        C('stack unknown cluster', 'stack_facts', {'cluster': 'no-such-cluster'}, ["cluster 'no-such-cluster'"],
          ['hpc-heat']),
        # interfaces
        C('interfaces unknown network', 'server_interfaces', dict(workers, interfaces=[{'network': 'no-such-net'}]),
          ["network 'no-such-net'", 'interfaces[0]'], ['eth-10g', 'ib-100g']),
        C('interfaces unknown server', 'server_interfaces', {'servers': ['no-such-server'],
                                                             'interfaces': [{'network': 'eth-10g'}]},
          ['no-such-server', 'not found'], ['login-1']),
        C('interfaces unknown cluster', 'server_interfaces', {'cluster': 'no-such-cluster',
                                                              'interfaces': [{'network': 'eth-10g'}]},
          ["cluster 'no-such-cluster'"], ['hpc-heat']),
        C('interfaces unknown nodegroup', 'server_interfaces', {'cluster': 'hpc-heat', 'nodegroups': ['nope'],
                                                                'interfaces': [{'network': 'eth-10g'}]},
          ['nope', 'not found'], ['default-worker']),
        C('interfaces servers and cluster', 'server_interfaces', {'servers': ['login-1'], 'cluster': 'hpc-heat'},
          ['mutually exclusive', 'servers', 'cluster'], []),
        C('interfaces entry without a network', 'server_interfaces', dict(workers, interfaces=[{'mtu': 9000}]),
          ['interfaces[0]'], ['network, port or ports']),
        C('interfaces port and ports', 'server_interfaces',
          dict(workers, interfaces=[{'port': 'a', 'ports': {'b': 'c'}}]), ['interfaces[0]', 'port and ports'],
          ['mutually exclusive']),
        C('interfaces fixed_ip and fixed_ips', 'server_interfaces',
          dict(workers, interfaces=[{'network': 'eth-10g', 'fixed_ip': '10.10.0.5', 'fixed_ips': {'a': 'b'}}]),
          ['fixed_ip and fixed_ips'], ['mutually exclusive']),
        C('interfaces port with a subnet', 'server_interfaces',
          {'servers': ['login-1'], 'interfaces': [{'port': 'p', 'subnet': 'eth-10g-subnet'}]},
          ['interfaces[0]', 'subnet'], ['drop']),
        C('interfaces fixed_ip for many servers', 'server_interfaces',
          dict(workers, interfaces=[{'network': 'eth-10g', 'fixed_ip': '10.10.0.5'}]),
          ['fixed_ip', '2 are targeted'], ['fixed_ips']),
        C('interfaces address outside the subnet', 'server_interfaces',
          {'servers': ['login-1'], 'interfaces': [{'network': 'eth-10g', 'fixed_ip': '192.168.7.7'}]},
          ['192.168.7.7', 'outside'], ['10.10.0.0/16']),
        C('interfaces not an address', 'server_interfaces',
          {'servers': ['login-1'], 'interfaces': [{'network': 'eth-10g', 'fixed_ip': 'ten.ten'}]},
          ["'ten.ten'"], ['not an ip address']),
        C('interfaces MTU larger than the network', 'server_interfaces',
          dict(workers, interfaces=[{'network': 'private', 'mtu': 9000}]), ["'private'", 'mtu 1442', '9000'], []),
        C('interfaces MTU below the minimum', 'server_interfaces',
          dict(workers, interfaces=[{'network': 'eth-10g', 'mtu': 40}]), ['mtu 40'], ['minimum of 68']),
        C('interfaces bad port name pattern', 'server_interfaces',
          dict(workers, interfaces=[{'network': 'eth-10g', 'port_name': '{host}-x'}]), ["'{host}-x'"],
          ['{server}', '{network}']),
        C('interfaces too many networks for the free NICs', 'server_interfaces',
          dict(workers, physical_nics=nics, interfaces=[{'network': 'eth-10g'}, {'network': 'eth-10g'}]),
          ['not enough free physical nics', 'physnet10g'], []),
        C('interfaces a second 25G network where the NIC is taken', 'server_interfaces',
          dict(workers, physical_nics=nics, state='present',
               interfaces=[{'network': 'eth-25g'}, {'network': 'eth-25g'}]),
          ['not enough free physical nics', 'physnet25g'], []),
        C('interfaces unknown primary network', 'server_interfaces',
          dict(workers, primary_network=['no-such-net'], interfaces=[{'network': 'eth-10g'}]),
          ["'no-such-net'", 'primary_network'], ['private']),
        C('interfaces zero concurrency', 'server_interfaces', dict(workers, concurrency=0), ['concurrency', 'got 0'],
          ['1 or more']),
        C('interfaces negative retries', 'server_interfaces', dict(workers, retries=-1), ['retries', '-1'],
          ['0 or more']),
        C('interfaces negative NIC count', 'server_interfaces',
          dict(workers, physical_nics=[{'physical_network': 'ib', 'count': -1}]), ['physical_nics[0].count'],
          ['0 or more']),
        C('interfaces empty server list', 'server_interfaces', {'servers': ['']}, ['servers is empty'], []),
    ]


def kube_cases():
    rule = {'name': 'gpu', 'labels': {'rel-gpu': 'true'}, 'pci': {'vendor': '10de'}}
    mod = {'name': 'nvidia', 'namespace': NS, 'module_name': 'nvidia', 'selector': {'hpcops.example/gpu': 'true'},
           'container_image': 'registry.example.com/nvidia:${KERNEL_FULL_VERSION}', 'kernels': [EL94, EL95]}
    check = {'name': 'gpu-check', 'namespace': NS, 'resource': 'nvidia.com/gpu', 'image': 'cuda',
             'command': ['nvidia-smi']}
    podnet = {'name': 'eth-25g', 'namespace': NS, 'network': 'eth-25g', 'type': 'macvlan', 'interface': 'eno1',
              'subnet': POD_SUBNET}
    return [
        C('pod network macvlan on InfiniBand', 'pod_network',
          dict(podnet, network='ib-100g', link_type='infiniband', interface='ib0'),
          ['type=macvlan', 'InfiniBand network ib-100g'], ['type=ipoib']),
        C('pod network range inside the allocation pool', 'pod_network', dict(podnet, range='10.25.100.0/24'),
          ['range 10.25.100.0/24', 'overlaps the allocation pool 10.25.0.2-10.25.191.254'],
          ['outside every allocation pool', '10.25.191.255-10.25.255.254']),
        C('pod network without a safe range', 'pod_network',
          dict(podnet, subnet=dict(POD_SUBNET, allocation_pools=[{'start': '10.25.0.2', 'end': '10.25.255.254'}])),
          ['no safe range', 'eth-25g', '10.25.0.0/16'], ['shrink an allocation pool']),
        C('pod network sriov without its resource', 'pod_network', dict(podnet, type='sriov', interface=None),
          ['resource_name'], ['intel.com/']),
        C('pod network MTU above the network', 'pod_network', dict(podnet, mtu=9000, network_mtu=1500),
          ['mtu 9000', 'MTU 1500'], []),
        C('pod network name with capitals', 'pod_network', dict(podnet, name='Eth25G'), ["'Eth25G'"],
          ['lower case']),
        C('rule name with capitals', 'node_feature_rule', {'name': 'GPU_Rules', 'rules': [rule]}, ["'GPU_Rules'"],
          ['lower case']),
        C('rule without rules', 'node_feature_rule', {'name': 'rel-rules'}, ['rules'], ['state']),
        C('rule label in a reserved namespace', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, labels={'node-role.kubernetes.io/gpu': 'true'})]},
          ['kubernetes.io', 'reserved'], ['without a prefix']),
        C('rule label in a foreign namespace', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, labels={'example.org/gpu': 'true'})]},
          ["'example.org'"], ['-extra-label-ns=example.org', 'extra_label_ns']),
        C('rule malformed label key', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, labels={'has space!': 'true'})]}, ['has space!'],
          ['1-63 characters']),
        C('rule malformed label value', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, labels={'gpu': 'not ok!'})]}, ['not ok!'],
          ['1-63 characters']),
        C('rule PCI vendor not hex', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, pci={'vendor': 'nvidia'})]}, ["'nvidia'"], ['4-digit hex']),
        C('rule PCI class too short', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, pci={'class': '3'})]}, ["'3'"], ['base class']),
        C('rule kernel version not a regexp', 'node_feature_rule',
          {'name': 'rel-rules', 'rules': [dict(rule, kernel_version='([')]}, ['kernel_version', '(['], []),
        C('rule two rules with one name', 'node_feature_rule', {'name': 'rel-rules', 'rules': [rule, rule]},
          ['rule names', 'gpu'], ['unique']),
        C('module without mappings', 'kernel_module', dict(mod, kernels=None), ['kernel_mappings'],
          ['literal', 'regexp']),
        C('module mapping with literal and regexp', 'kernel_module',
          dict(mod, kernels=None, kernel_mappings=[{'literal': EL94, 'regexp': '^5'}]), ['kernel_mappings[0]'],
          ['exactly one of literal', 'regexp']),
        C('module mapping with neither', 'kernel_module',
          dict(mod, kernels=None, kernel_mappings=[{'container_image': 'x'}]), ['kernel_mappings[0]'],
          ['exactly one of literal']),
        C('module mapping regexp does not compile', 'kernel_module',
          dict(mod, kernels=None, kernel_mappings=[{'regexp': '^5.14.0-(['}]),
          ['kernel_mappings[0].regexp', 'not a valid regular expression'],
          []),
        C('module mapping without image', 'kernel_module', dict(mod, container_image=None),
          ['kernel_mappings[0]', 'container_image'], ['module-wide container_image']),
        C('module a selected node has no mapping', 'kernel_module', dict(mod, kernels=[EL94]),
          ['gpu-2', EL95, 'no kernel mapping', 'nothing was applied'], ['literal ' + EL94]),
        C('module regexp mapping misses a node', 'kernel_module',
          dict(mod, kernels=None, kernel_mappings=[{'regexp': r'\.el9_4\.'}]),
          ['gpu-2', EL95, 'no kernel mapping'], ['regexp']),
        C('module without module_name', 'kernel_module', dict(mod, module_name=None), ['module_name'],
          ['modprobe']),
        C('module loading order starts elsewhere', 'kernel_module', dict(mod, modules_loading_order=['a', 'nvidia']),
          ['modules_loading_order', 'nvidia'], ['start with module_name']),
        C('module pull secret half given', 'kernel_module',
          dict(mod, pull_secret={'name': 'creds', 'registry': 'registry.example.com'}),
          ['pull_secret', 'password', 'username'], ['go together']),
        C('module selector value not a string', 'kernel_module', dict(mod, selector={'gpu': True}),
          ['selector gpu'], ['strings']),
        C('module namespace with capitals', 'kernel_module', dict(mod, namespace='HPC_ns'), ["'HPC_ns'"],
          ['lower case']),
        C('plugin rdma without resources', 'device_plugin', {'type': 'rdma-shared', 'namespace': NS},
          ['rdma_resources'], ['required with type=rdma-shared']),
        C('plugin sriov without resources', 'device_plugin', {'type': 'sriov', 'namespace': NS},
          ['sriov_resources'], ['required with type=sriov']),
        C('plugin resources of another type', 'device_plugin',
          {'type': 'nvidia-gpu', 'namespace': NS, 'rdma_resources': [{'name': 'ib', 'vendors': ['15b3']}]},
          ['rdma_resources'], ['only applies to type=rdma-shared']),
        C('plugin resource name with a slash', 'device_plugin',
          {'type': 'rdma-shared', 'namespace': NS, 'rdma_resources': [{'name': 'rdma/ib', 'vendors': ['15b3']}]},
          ["'rdma/ib'"], ['letters, digits']),
        C('plugin resource without selectors', 'device_plugin',
          {'type': 'sriov', 'namespace': NS, 'sriov_resources': [{'name': 'vf'}]}, ['sriov_resources[0]'],
          ['at least one selector']),
        C('plugin duplicate resource names', 'device_plugin',
          {'type': 'rdma-shared', 'namespace': NS,
           'rdma_resources': [{'name': 'ib', 'vendors': ['15b3']}, {'name': 'ib', 'drivers': ['mlx5_core']}]},
          ['ib'], ['must be unique']),
        C('plugin time slicing of one', 'device_plugin',
          {'type': 'nvidia-gpu', 'namespace': NS, 'nvidia': {'time_slicing_replicas': 1}},
          ['time_slicing_replicas'], ['2 or more']),
        C('plugin name with capitals', 'device_plugin', {'type': 'nvidia-gpu', 'namespace': NS, 'name': 'GPU'},
          ["'GPU'"], ['lower case']),
        C('validation resource without a domain', 'accelerator_validation', dict(check, resource='gpu'),
          ["'gpu'"], ['vendor-domain/name', 'nvidia.com/gpu']),
        C('validation zero count', 'accelerator_validation', dict(check, count=0), ['count'], ['1 or more']),
        C('validation output pattern does not compile', 'accelerator_validation', dict(check, expect_output='(['),
          ['expect_output', 'not a valid regular expression'], []),
        C('validation name with capitals', 'accelerator_validation', dict(check, name='GPU_check'),
          ["'GPU_check'"], ['lower case']),
        C('runtime MIG profile of no GPU', 'gpu_runtime', {'namespace': NS, 'mig': [{'nodes': ['gpu-2'],
                                                                                     'profile': '1g.11gb'}]},
          ["mig[0].profile '1g.11gb'"], ['1g.10gb', 'disabled']),
        C('runtime MIG profile the GPU model lacks', 'gpu_runtime',
          {'namespace': NS, 'mig': [{'nodes': ['gpu-2'], 'profile': '1g.10gb'}]},
          ['gpu-2', '10de:26b9', 'does not support MIG'], ['A100 80GB', 'H100 80GB']),
        C('runtime MIG profile of another A100', 'gpu_runtime',
          {'namespace': NS, 'mig': [{'nodes': ['gpu-1'], 'profile': '1g.5gb'}]},
          ['gpu-1', 'MIG profile 1g.5gb does not exist on the A100 80GB'], ['1g.10gb', '7g.80gb']),
        C('runtime both stacks asked', 'gpu_runtime', {'namespace': NS, 'gpu_operator': {'driver': False}},
          ['gpu_operator', 'both stacks'], ['stack=gpu-operator']),
        C('runtime MIG with the operator', 'gpu_runtime',
          {'stack': 'gpu-operator', 'mig': [{'nodes': ['gpu-1'], 'profile': '1g.10gb'}]},
          ['mig applies with stack=collection'], ['nvidia.com/mig.config']),
        C('runtime toolkit on a node without a GPU', 'gpu_runtime', {'namespace': NS, 'expected_nodes': ['cpu-1']},
          ['cpu-1', 'without an NVIDIA GPU'], ['node_selector or expected_nodes']),
        C('runtime class with capitals', 'gpu_runtime', {'namespace': NS, 'runtime_class': 'NVIDIA'},
          ["'NVIDIA'"], ['lower case']),
        C('monitoring temperature beyond any GPU', 'gpu_monitoring', {'namespace': NS, 'gpu_temperature_limit': 500},
          ['gpu_temperature_limit 500'], ['20 to 120']),
        C('validation resource nobody advertises', 'accelerator_validation',
          dict(check, resource='example.com/nothing'), ['example.com/nothing', 'no node advertises'],
          ['device plugin']),
    ]


def role_cases(kube_broken):
    """Semantic cases of the roles: checks beyond the argument specs."""
    acc = {'accelerators_kubeconfig': kube_broken}
    return [
        Case('hand-written (roles)', 'networks duplicate names', 'networks', None, ['unique names'], ['eth-10g'],
             role_vars=dict(ROLE_BASE['networks'], networks_list=[{'name': 'eth-10g'}, {'name': 'eth-10g'}])),
        Case('hand-written (roles)', 'networks MTU below the minimum', 'networks', None, ['mtus between 68'], [],
             role_vars=dict(ROLE_BASE['networks'], networks_list=[{'name': 'eth-10g', 'mtu': 40}])),
        Case('hand-written (roles)', 'networks unknown network', 'networks', None, ["network 'no-such-net'"],
             ['eth-10g'], role_vars=dict(ROLE_BASE['networks'], networks_cluster='hpc-heat',
                                         networks_list=[{'name': 'no-such-net'}])),
        Case('hand-written (roles)', 'networks too many for the free NICs', 'networks', None,
             ['not enough free physical nics'], ['physnet10g'],
             role_vars=dict(ROLE_BASE['networks'], networks_cluster='hpc-heat', networks_nodegroups=['default-worker'],
                            networks_list=[{'name': 'eth-10g'}],
                            networks_physical_nics=[{'physical_network': 'physnet10g', 'count': 0}])),
        Case('hand-written (roles)', 'accelerators device plugin of an unknown type', 'accelerators', None,
             ['accelerators_device_plugins', 'type'], ['nvidia-gpu', 'rdma-shared', 'sriov'],
             role_vars=dict(acc, accelerators_device_plugins=[{'type': 'amd-gpu'}])),
        Case('hand-written (roles)', 'accelerators kernel module without selector', 'accelerators', None,
             ['selector'], [], role_vars=dict(acc, accelerators_kernel_modules=[{'name': 'nvidia'}])),
        Case('hand-written (roles)', 'pod networks unknown network', 'pod_networks', None,
             ["network 'eth-10g' is not in networks_list"], ['eth-25g', 'ib-100g'],
             role_vars=dict(POD_SITE, pod_networks_kubeconfig=kube_broken,
                            pod_networks_list=[{'network': 'eth-10g'}])),
        Case('hand-written (roles)', 'pod networks macvlan on InfiniBand', 'pod_networks', None,
             ['type=macvlan cannot run on InfiniBand network ib-100g'], ['type=ipoib'],
             role_vars=dict(POD_SITE, pod_networks_kubeconfig=kube_broken,
                            pod_networks_list=[{'network': 'ib-100g', 'type': 'macvlan'}])),
        Case('hand-written (roles)', 'pod networks range inside the allocation pool', 'pod_networks', None,
             ['overlaps the allocation pool'], ['outside every allocation pool'],
             role_vars=dict(POD_SITE, pod_networks_kubeconfig=kube_broken,
                            pod_networks_list=[{'network': 'eth-25g', 'range': '10.25.1.0/24'}])),
    ]


# --------------------------------------------------------------------------- running the cases

def collections_paths():
    raw = os.environ.get('ANSIBLE_COLLECTIONS_PATH') or os.path.join(REPO, '.cache', 'collections')
    return [p for p in raw.split(os.pathsep) if p]


def run_module_in_process(module, args, env=None, tmpdir=None):
    """The module's result for `args`, from its own main() in this process.

    `env` points the module at a world (OS_CLOUD..., K8S_AUTH_KUBECONFIG); without
    it connections point nowhere, so a case that got past argument validation
    fails on them instead of reaching anything.
    """
    for path in reversed(collections_paths()):
        if path not in sys.path:
            sys.path.insert(0, path)
    from ansible.module_utils.testing import patch_module_args

    code = importlib.import_module('ansible_collections.hpcops.coe.plugins.modules.' + module)
    out = io.StringIO()
    environ = {'OS_CLOUD': 'no-such-cloud', 'OS_CLIENT_CONFIG_FILE': os.devnull, 'K8S_AUTH_KUBECONFIG': os.devnull}
    environ.update(env or {})
    # kubernetes.core caches API discovery per server under the temporary directory.
    # Ansible tells a module its name; messages such as "Unsupported parameters for (...)" quote it.
    args = dict(args, _ansible_module_name='hpcops.coe.' + module)
    with patch_module_args(args), contextlib.redirect_stdout(out), mock.patch.dict(os.environ, environ), \
            mock.patch.object(tempfile, 'tempdir', tmpdir or tempfile.gettempdir()), warnings.catch_warnings():
        # A module's Python warnings never reach the operator (Ansible runs it in a process of its own).
        warnings.simplefilter('ignore')
        try:
            code.main()
        except SystemExit:
            pass
    text = out.getvalue().strip()
    try:
        return json.loads(text.splitlines()[-1] if text else '')
    except ValueError:
        return {'failed': True, 'msg': 'MODULE FAILURE: %s' % text[:500]}


def role_defaults(role):
    with open(os.path.join(REPO, 'roles', role, 'defaults', 'main.yml')) as f:
        return yaml.safe_load(f) or {}


def validate_role_in_process(role, role_vars):
    """What Ansible's role argument validation says about `role_vars` (over the role's defaults)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    provided = role_defaults(role)
    provided.update(copy.deepcopy(role_vars))
    result = ArgumentSpecValidator(copy.deepcopy(role_options(role))).validate(provided)
    if result.error_messages:
        return {'failed': True, 'msg': 'Validation of arguments failed:\n' + '\n'.join(result.error_messages)}
    return {'failed': False, 'msg': 'The arg spec validation passed'}


def as_record(result):
    return {'status': 'failed' if result.get('failed') else 'ok', 'result': result}


def module_play(cases):
    return [{'name': 'bad input', 'hosts': 'localhost', 'gather_facts': False,
             'module_defaults': {'group/hpcops.coe.openstack': {'cloud': 'hpcops-sim'}},
             'tasks': [c.task() for c in cases]}]


def role_play(cases):
    """One block per case: the role's failure is rescued and kept, so the next case runs."""
    tasks = [{'name': 'start', 'ansible.builtin.set_fact': {'rel_failures': {}}}]
    for c in cases:
        tasks.append({
            'name': 'case ' + c.ident,
            'block': [{'name': c.ident, 'ansible.builtin.include_role': {'name': 'hpcops.coe.' + c.module},
                       'vars': c.role_vars}],
            'rescue': [{'name': 'keep ' + c.ident, 'ansible.builtin.set_fact': {
                'rel_failures': '{{ rel_failures | combine({%s: ansible_failed_result}) }}' % json.dumps(c.ident)}}],
        })
    tasks.append({'name': 'report', 'ansible.builtin.debug': {'var': 'rel_failures'}})
    return [{'name': 'bad role input', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]


def role_records(run, cases):
    """{case: a record like a module task's} from the rescued failures."""
    report = run.result('report').get('rel_failures') or {}
    out = {}
    for c in cases:
        failure = report.get(c.ident)
        out[c.ident] = ({'status': 'ok', 'result': {'msg': 'the role went through'}} if failure is None
                        else {'status': 'failed', 'result': dict(failure, failed=True)})
    return out


def broken_kubeconfig(path):
    """A kubeconfig whose server refuses connections: a role that got past its checks fails at once."""
    with open(path, 'w') as f:
        yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'nowhere',
                        'clusters': [{'name': 'nowhere', 'cluster': {'server': 'https://127.0.0.1:9'}}],
                        'users': [{'name': 'nowhere', 'user': {'token': 'none'}}],
                        'contexts': [{'name': 'nowhere', 'context': {'cluster': 'nowhere', 'user': 'nowhere'}}]}, f)
    os.chmod(path, 0o600)
    return path


def snapshot(c):
    return (sorted((x['name'], x['status'], x['node_count']) for x in c['clusters']),
            sorted(t['name'] for t in c['templates']), len(c['servers']), len(c['ports']), len(c['stacks']))


class Matrix(object):
    """Hand-written cases run by ansible-playbook on their own worlds, then judged."""

    def __init__(self, name, chunks, workdir, openstack=None, kube=None, roles=False):
        self.name = name
        self.chunks = [c for c in chunks if c]
        self.cases = [c for chunk in self.chunks for c in chunk]
        self.workdir = workdir
        self.openstack = openstack
        self.kube = kube
        self.roles = roles
        self.runs = []

    def go(self):
        before = census(self.openstack) if self.openstack is not None else None
        if self.openstack is not None:
            self.openstack.reset_requests()
        seen = len(self.kube.requests()) if self.kube is not None else 0

        def one(i, chunk):
            playbook = role_play(chunk) if self.roles else module_play(chunk)
            return run_playbook(playbook, os.path.join(self.workdir, str(i)), openstack=self.openstack,
                                kube=self.kube)

        self.runs = run_together(*[lambda i=i, c=c: one(i, c) for i, c in enumerate(self.chunks)])
        self.cloud_writes = writes(self.openstack.requests()) if self.openstack is not None else {}
        self.kube_writes = kube_writes(self.kube, seen) if self.kube is not None else []
        self.changed = []
        if self.openstack is not None:
            after = census(self.openstack)
            self.changed = [k for k, v in leftovers(before, after).items() if v]
            if snapshot(before) != snapshot(after):
                self.changed.append('state snapshot')
        return self

    def records(self):
        out = {}
        for chunk, run in zip(self.chunks, self.runs):
            if self.roles:
                out.update(role_records(run, chunk))
            else:
                for c in chunk:
                    hits = [r for r in run.records if r['task'] == c.ident]
                    out[c.ident] = hits[-1] if hits else None
        return out

    def judge(self, record_figures=True):
        records = self.records()
        problems = dict((c.ident, c.problem(records.get(c.ident))) for c in self.cases)
        if record_figures:
            for group in sorted(set(c.group for c in self.cases)):
                mine = [c for c in self.cases if c.group == group]
                FIGURES.bad(group, len(mine), sum(1 for c in mine if problems[c.ident] is None))
        bad = ['%s: %s' % (k, v) for k, v in sorted(problems.items()) if v]
        if self.cloud_writes:
            bad.append('requests that change the cloud were sent: %s' % self.cloud_writes)
        if self.kube_writes:
            bad.append('writes reached the Kubernetes API: %s' % [
                '%s %s %s' % (r['verb'], r['resource'], r.get('name')) for r in self.kube_writes])
        if self.changed:
            bad.append('the cloud changed: %s' % self.changed)
        return bad


MODULES = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(REPO, 'plugins', 'modules', '*.py')))
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
               for p in glob.glob(os.path.join(REPO, 'roles', '*', 'meta', 'argument_specs.yml')))


def split(items, parts):
    return [items[i::parts] for i in range(parts)]


# --------------------------------------------------------------------------- generated cases

def test_every_module_and_role_is_in_the_matrix():
    assert set(MODULE_BASE) == set(MODULES), set(MODULE_BASE) ^ set(MODULES)
    assert set(ROLE_BASE) == set(ROLES), set(ROLE_BASE) ^ set(ROLES)


def generated_cases():
    return [c for m in MODULES for c in generated_module_cases(m)]


def test_module_argument_specs_refuse_bad_values_by_name():
    cases = [c for c in generated_cases() if not c.nested]
    problems = ['%s: %s' % (c.ident, c.problem(as_record(run_module_in_process(c.module, c.args)))) for c in cases]
    problems = [p for p in problems if not p.endswith(': None')]
    FIGURES.bad('generated (module specs)', len(cases), len(cases) - len(problems))
    assert not problems, '\n'.join(problems)


def test_options_with_suboptions_refuse_non_mappings_by_name():
    cases = [c for c in generated_cases() if c.nested]
    assert len(cases) >= 9, [c.ident for c in cases]
    problems = ['%s: %s' % (c.ident, c.problem(as_record(run_module_in_process(c.module, c.args)))) for c in cases]
    problems = [p for p in problems if not p.endswith(': None')]
    FIGURES.bad('generated (module specs, suboptions)', len(cases), len(cases) - len(problems))
    assert not problems, '\n'.join(problems)


def generated_role_cases_all():
    return [c for r in ROLES for c in generated_role_cases(r)]


def test_role_argument_specs_refuse_bad_values_by_name():
    cases = [c for c in generated_role_cases_all() if not c.defaulted]
    problems = ['%s: %s' % (c.ident, c.problem(as_record(validate_role_in_process(c.module, c.role_vars))))
                for c in cases]
    problems = [p for p in problems if not p.endswith(': None')]
    FIGURES.bad('generated (role specs)', len(cases), len(cases) - len(problems))
    assert not problems, '\n'.join(problems)


# --------------------------------------------------------------------------- hand-written, in process

def judge_in_process(cases, env=None, tmpdir=None):
    problems = []
    for c in cases:
        why = c.problem(as_record(run_module_in_process(c.module, c.args, env, tmpdir)))
        if why:
            problems.append('%s: %s' % (c.ident, why))
    for group in sorted(set(c.group for c in cases)):
        mine = [c for c in cases if c.group == group]
        FIGURES.bad(group, len(mine), len(mine) - sum(1 for p in problems if p.split(': ')[0] in
                                                      set(c.ident for c in mine)))
    return problems


def test_openstack_cases_are_refused_clearly_before_any_change(cloud, tmp_path):
    before = census(cloud)
    cloud.reset_requests()
    problems = judge_in_process(openstack_cases(str(tmp_path)),
                                {'OS_CLIENT_CONFIG_FILE': cloud.clouds_yaml, 'OS_CLOUD': 'hpcops-sim'})
    sent = writes(cloud.requests())
    after = census(cloud)
    assert sent == {}, 'requests that change the cloud were sent: %s' % sent
    assert snapshot(before) == snapshot(after) and not any(leftovers(before, after).values())
    assert not problems, '%d problem(s):\n  %s' % (len(problems), '\n  '.join(problems))


def node_cases(target):
    def F(ident, args, says, valid=()):
        return Case('hand-written (node side)', ident, 'node_network_files', dict({'directory': target}, **args),
                    says, valid)
    link = {'name': '50-hpcops-eth.link', 'content': '[Match]\n'}
    return [
        F('files name with a path', {'files': [{'name': '../etc/passwd', 'content': 'x'}]},
          ['../etc/passwd', 'not a file name'], ['no path']),
        F('files name dot-dot', {'files': [{'name': '..', 'content': 'x'}]}, ["'..'", 'not a file name']),
        F('files name twice', {'files': [link, link]}, ['50-hpcops-eth.link', 'more than once'], ['each name once']),
        F('files and keep overlap', {'files': [link], 'keep': [link['name']]}, ['50-hpcops-eth.link', 'keep'],
          ['either written or kept']),
        F('keep name with a path', {'keep': ['sub/x.network']}, ['keep', 'sub/x.network', 'not a file name']),
        F('mode not octal', {'files': [link], 'mode': 'rw-r--r--'}, ['mode', 'rw-r--r--'], ['0644']),
        F('mode out of range', {'files': [link], 'mode': '17777'}, ['mode', '17777'], ['0644']),
        F('directory_mode not octal', {'files': [link], 'directory_mode': '0o7x'}, ['directory_mode', '0o7x'],
          ['0644']),
        F('prune pattern with a path', {'prune': ['../*.network']}, ['prune', '../*.network'],
          ['file-name pattern inside directory']),
        F('prune pattern empty', {'prune': ['']}, ['prune', 'file-name pattern']),
        Case('hand-written (node side)', 'info root without sysfs', 'node_network_info', {'root': target},
             [target, 'no sys/class/net'], ['root of a Linux node']),
    ] + mount_cases(target.rsplit('/etc/', 1)[0])


def mount_cases(root):
    """node_mounts on a node root that has no network configured: every case fails before a file is written."""
    networks = [{'name': 'eth-25g', 'mtu': 9000}, {'name': 'ib-100g', 'kind': 'infiniband'}]
    gluster = {'path': '/scratch', 'type': 'glusterfs', 'servers': ['10.100.0.10'], 'source': 'scratch',
               'network': 'ib-100g'}

    def M(ident, mounts, says, valid=(), **args):
        return Case('hand-written (node side)', ident, 'node_mounts',
                    dict({'root': root, 'networks': networks, 'mounts': mounts, 'os_family': 'debian'}, **args),
                    says, valid)
    return [
        M('mount on an unknown network', [dict(gluster, network='eth-400g')], ['eth-400g', 'not one of'],
          ['eth-25g', 'ib-100g']),
        M('rdma over plain ethernet', [dict(gluster, network='eth-25g', transport='rdma')],
          ['transport rdma', 'eth-25g', 'without RDMA'], ['ib-100g']),
        M('cephfs without its secret', [{'path': '/ceph', 'type': 'cephfs', 'servers': ['10.25.0.5']}],
          ['/ceph', 'ceph_secret'], ['ceph auth get-key']),
        M('two mounts on one path', [gluster, dict(gluster, type='nfs', source='/export')],
          ['/scratch', 'each path once']),
        M('option with a comma', [dict(gluster, options=['ro,exec'])], ['ro,exec'], ['one mount option']),
        M('nfs version 3', [dict(gluster, type='nfs', source='/x', nfs_version='3')], ['nfs_version', '3'],
          ['4.2']),
        M('network not configured on the node', [gluster], ['ib-100g', 'not configured on this node'],
          ['networks role']),
        M('lustre on fedora coreos', [dict(gluster, type='lustre', source='work', network='')],
          ['/scratch', 'Fedora CoreOS has no Lustre client'], ['RHEL-like'], os_family='fedora-coreos'),
    ]


def test_node_side_cases_are_refused_clearly_before_any_change(tmp_path):
    target = str(tmp_path / 'etc' / 'systemd' / 'network')
    problems = judge_in_process(node_cases(target))
    assert not os.path.exists(target), 'a refused case created %s' % target
    assert os.listdir(str(tmp_path)) == [], 'refused cases wrote %s' % os.listdir(str(tmp_path))
    assert not problems, '%d problem(s):\n  %s' % (len(problems), '\n  '.join(problems))


def kube_world_for_cases(factory):
    world = factory.kube()
    components.install_crds(world, ['nfd', 'kmm'])
    components.namespace(world, NS)
    for node in ('gpu-1', 'gpu-2'):
        world.label_node(node, {'hpcops.example/gpu': 'true'})
    # what nfd-worker reports, for the GPU models behind MIG profiles and nodes without GPUs
    for node, devices in (('gpu-1', [('0302', '20b5')]), ('gpu-2', [('0302', '26b9')]), ('cpu-1', [('0200', '1592')])):
        world.apply({'apiVersion': 'nfd.k8s-sigs.io/v1alpha1', 'kind': 'NodeFeature',
                     'metadata': {'name': node, 'namespace': NS, 'labels': {'nfd.node.kubernetes.io/node-name': node}},
                     'spec': {'features': {'instances': {'pci.device': {'elements': [
                         {'attributes': {'class': cls, 'vendor': '10de' if cls.startswith('03') else '8086',
                                         'device': dev}} for cls, dev in devices]}}}}})
    return world


def test_kubernetes_cases_are_refused_clearly_before_any_change(cloud_factory, tmp_path):
    world = kube_world_for_cases(cloud_factory)
    seen = len(world.requests())
    problems = judge_in_process(kube_cases(), {'K8S_AUTH_KUBECONFIG': world.kubeconfig}, str(tmp_path))
    stored = [(r['verb'], r['resource'], r.get('name')) for r in kube_writes(world, seen)]
    assert stored == [], 'writes reached the Kubernetes API: %s' % stored
    assert not problems, '%d problem(s):\n  %s' % (len(problems), '\n  '.join(problems))


# --------------------------------------------------------------------------- through ansible-playbook

def sample_of(cases, group):
    """The first case of each module, as a case of `group` (the same input, run another way)."""
    out, seen = [], set()
    for c in cases:
        if c.module in seen:
            continue
        seen.add(c.module)
        copy_ = copy.copy(c)
        copy_.group = group
        copy_.ident = 'e2e ' + c.ident
        out.append(copy_)
    return out


@pytest.fixture(scope='module')
def through_playbook(module_factory, tmp_path_factory):
    """Roles, and one generated and one hand-written case of every module, by ansible-playbook.

    Three plays side by side, each on its own fresh worlds.
    """
    base = str(tmp_path_factory.mktemp('bad-input'))
    kube_broken = broken_kubeconfig(os.path.join(base, 'broken-kubeconfig'))
    generated = sample_of([c for c in generated_cases() if not c.nested], 'generated, through ansible-playbook')
    written = sample_of(openstack_cases(base) + kube_cases(), 'hand-written, through ansible-playbook')
    role_generated = sample_of([c for c in generated_role_cases_all() if not c.defaulted
                                and c.ident.endswith('wrong type')], 'generated, through ansible-playbook')
    openstack_sample = [c for c in generated + written if c.module not in KUBE_MODULES]
    kube_sample = [c for c in generated + written if c.module in KUBE_MODULES]
    groups = {
        'openstack': Matrix('openstack', [openstack_sample], os.path.join(base, 'openstack'),
                            openstack=module_factory.cloud()),
        'kubernetes': Matrix('kubernetes', [kube_sample], os.path.join(base, 'kubernetes'),
                             kube=kube_world_for_cases(module_factory)),
        'roles': Matrix('roles', [role_cases(kube_broken) + role_generated], os.path.join(base, 'roles'),
                        openstack=module_factory.cloud(), kube=module_factory.kube(), roles=True),
    }
    run_together(*[m.go for m in groups.values()])
    return groups


@pytest.mark.parametrize('group', ['openstack', 'kubernetes', 'roles'])
def test_through_ansible_playbook_refused_clearly_before_any_change(through_playbook, group):
    problems = through_playbook[group].judge()
    assert not problems, '%d problem(s):\n  %s' % (len(problems), '\n  '.join(problems))


def _same(a, b):
    # Ansible lists the valid booleans from a set: their order changes from one process to the next.
    return (a or '').split('Valid booleans include')[0] == (b or '').split('Valid booleans include')[0]


def test_operators_see_the_in_process_message(through_playbook, tmp_path):
    """The module-level verdicts above are what ansible-playbook shows: the same message."""
    differ = []
    for name in ('openstack', 'kubernetes'):
        matrix = through_playbook[name]
        env = {'K8S_AUTH_KUBECONFIG': matrix.kube.kubeconfig} if matrix.kube is not None else \
            {'OS_CLIENT_CONFIG_FILE': matrix.openstack.clouds_yaml, 'OS_CLOUD': 'hpcops-sim'}
        records = matrix.records()
        for c in matrix.cases:
            direct = run_module_in_process(c.module, c.args, env, str(tmp_path))['msg']
            seen = ((records.get(c.ident) or {}).get('result') or {}).get('msg')
            if not _same(seen, direct):
                differ.append('%s:\n    playbook:   %r\n    in process: %r' % (c.ident, seen, direct))
    roles = through_playbook['roles']
    records = roles.records()
    for c in roles.cases:
        if c.group.startswith('generated'):
            expected = validate_role_in_process(c.module, c.role_vars)['msg'].rsplit('\n', maxsplit=1)[-1]
            seen = ((records.get(c.ident) or {}).get('result') or {}).get('msg') or ''
            if expected.split('Valid booleans include')[0] not in seen:
                differ.append('%s: %r lacks %r' % (c.ident, seen, expected))
    assert not differ, '\n'.join(differ)


# --------------------------------------------------------------------------- roles: defects found

def one_role_case(role, role_vars, workdir, openstack=None, kube=None):
    case = Case('hand-written (roles)', 'the case', role, None, [], role_vars=role_vars)
    run = run_playbook(role_play([case]), workdir, openstack=openstack, kube=kube)
    return role_records(run, [case])['the case']


def test_networks_role_refuses_a_missing_network_list(cloud, tmp_path):
    role_vars = dict(ROLE_BASE['networks'], networks_cluster='hpc-heat', networks_state='exact')
    del role_vars['networks_list']
    record = one_role_case('networks', role_vars, str(tmp_path), openstack=cloud)
    assert record['status'] == 'failed', record
    assert 'networks_list' in record['result']['msg'] and 'required' in record['result']['msg']
    assert writes(cloud.requests()) == {}


def test_cluster_role_names_a_missing_cluster_name(cloud, tmp_path):
    role_vars = dict(ROLE_BASE['cluster'])
    del role_vars['cluster_name']
    record = one_role_case('cluster', role_vars, str(tmp_path), openstack=cloud)
    assert record['status'] == 'failed'
    assert 'missing required' in record['result']['msg'] and 'cluster_name' in record['result']['msg'], record


def test_cluster_role_refuses_a_bad_cluster_name_before_any_change(cloud, tmp_path):
    role_vars = dict(ROLE_BASE['cluster'], cluster_name='bad name!', cluster_kubeconfig_path=str(tmp_path / 'kc'),
                     cluster_template={'name': 'rel-new-template', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key',
                                       'external_network': 'public', 'flavor': 'm1.small', 'master_flavor': 'm1.large'})
    record = one_role_case('cluster', role_vars, str(tmp_path), openstack=cloud)
    assert record['status'] == 'failed' and 'start with a letter' in record['result']['msg'], record
    assert writes(cloud.requests()) == {}


def test_accelerators_role_refuses_a_missing_kernel_mapping_before_any_change(kube_world, tmp_path):
    kube_world.label_node('gpu-2', {'feature.node.kubernetes.io/pci-10de.present': 'true'})
    role_vars = {'accelerators_require_cert_manager': False, 'accelerators_check_single_owner': False,
                 'accelerators_wait_timeout': 5, 'accelerators_wait_sleep': 1,
                 'accelerators_kernel_modules': [{
                     'name': 'nvidia', 'module_name': 'nvidia',
                     'selector': {'feature.node.kubernetes.io/pci-10de.present': 'true'},
                     'image': 'registry.example.com/nvidia:${KERNEL_FULL_VERSION}', 'kernels': [EL94]}]}
    seen = len(kube_world.requests())
    record = one_role_case('accelerators', role_vars, str(tmp_path), kube=kube_world)
    assert record['status'] == 'failed' and 'no kernel mapping' in record['result']['msg'], record
    assert [(r['verb'], r['resource'], r.get('name')) for r in kube_writes(kube_world, seen)] == []
