# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the accelerators role: which nodes have which devices, what a failed step said, what validation passed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.hpcops.coe.plugins.module_utils.kube_nfd import nodes_with_pci

# kubernetes.core quotes the API server's Status object in its messages; its `message` is the readable part.
STATUS_START = '{"kind": "Status"'
# What a failed loop task says instead of its items' messages.
LOOP_FAILED = 'One or more items failed'


def accelerator_nodes(nodefeatures, gpu_pci, nic_pci):
    """{'gpu': [...], 'nic': [...]}: the nodes whose NodeFeature lists a device of that vendor and class."""
    out = {}
    for kind, pci in (('gpu', gpu_pci), ('nic', nic_pci)):
        if not isinstance(pci, dict) or not pci.get('vendor') or not pci.get('class'):
            raise AnsibleFilterError('accelerator_nodes: %s_pci must be {vendor: 4 hex digits, class: [2 or 4 hex '
                                     'digits, ...]}, got %r' % (kind, pci))
        out[kind] = nodes_with_pci(nodefeatures, str(pci['vendor']).lower(), [str(c).lower() for c in pci['class']])
    return out


def step_failure(result):
    """{'message', 'rbac'} of a failed task's result: its message (a loop's first failed item's), with the
    API server's own message in place of kubernetes.core's quoted Status object, and whether RBAC refused it."""
    result = result if isinstance(result, dict) else {}
    msg = result.get('msg') or ''
    if msg == LOOP_FAILED or (not msg and result.get('results')):
        msg = next((item.get('msg') or '' for item in result.get('results') or []
                    if isinstance(item, dict) and item.get('failed')), '')
    msg = str(msg)
    readable = msg
    start, end = msg.find(STATUS_START), msg.rfind('}')
    if start >= 0 and end > start:
        try:
            readable = json.loads(msg[start:end + 1]).get('message') or msg
        except ValueError:
            pass
    return {'message': readable, 'rbac': 'forbidden' in msg.lower()}


def validation_record(results):
    """{check name: '<resource> through runtime <class>: passed on <nodes>'} of the checks that ran."""
    record = {}
    for result in results or []:
        if 'passed_nodes' not in result:
            continue
        item = result.get('item') or {}
        record[item.get('name')] = '%s through runtime %s: passed on %s' % (
            item.get('resource'), item.get('runtime_class') or 'default', ', '.join(result['passed_nodes']) or 'none')
    return record


class FilterModule(object):
    """The accelerators role's decisions."""

    def filters(self):
        return {
            'accelerator_nodes': accelerator_nodes,
            'accelerator_step_failure': step_failure,
            'accelerator_validation_record': validation_record,
        }
