# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory entries for the nodes hpcops.coe.cluster_nodes found, named and grouped as the inventory plugin does."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hpcops.coe.plugins.plugin_utils.node_groups import choose_ansible_host, node_groups


def cluster_hosts(result, address_network=None):
    """[{name, groups, ansible_host, role, nodegroup, id, addresses}] of a cluster_nodes result.

    `address_network`: the network whose address becomes ansible_host; empty: a floating IP,
    else the first fixed IP (the inventory plugin's host_network rule).
    """
    if isinstance(result, dict) and result.get('skipped'):
        # cluster_nodes did not run (the role only removes the cluster): no nodes to add.
        return []
    if not isinstance(result, dict) or not isinstance(result.get('nodes'), list) or \
            not isinstance(result.get('cluster'), dict):
        raise AnsibleFilterError('cluster_hosts expects what hpcops.coe.cluster_nodes returned '
                                 '(a mapping with cluster and nodes), got %s' % type(result).__name__)
    cluster = result['cluster']
    name = cluster.get('name') or cluster.get('id')
    hosts = []
    for node in result['nodes']:
        hosts.append({
            'name': node['name'],
            'groups': node_groups(name, node.get('role') or 'worker', node.get('nodegroup'), cluster.get('driver')),
            'ansible_host': choose_ansible_host(node.get('addresses'), address_network or None),
            'role': node.get('role'),
            'nodegroup': node.get('nodegroup'),
            'id': node.get('id'),
            'addresses': node.get('addresses') or {},
        })
    return hosts


class FilterModule(object):
    """Nodes of a cluster as inventory hosts."""

    def filters(self):
        return {'cluster_hosts': cluster_hosts}
