# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the collection names and reaches a cluster's nodes in an inventory.

Used by the hpcops.coe.clusters inventory plugin and, through the
hpcops.coe.cluster_hosts filter, by the cluster role when it adds the nodes it
has just provisioned to the in-memory inventory: a play written against one
works against the other.

Groups (characters other than letters, digits and ``_`` become ``_``):

- ``coe_nodes``: every node;
- ``coe_masters``, ``coe_workers``: the nodes of that role, in every cluster;
- ``coe_cluster_<cluster>``, ``coe_cluster_<cluster>_master``,
  ``coe_cluster_<cluster>_worker``: one cluster's nodes, and those of each role;
- ``coe_cluster_<cluster>_ng_<nodegroup>``, ``coe_ng_<nodegroup>``: a nodegroup of
  one cluster, and the nodegroups of that name in every cluster;
- ``coe_cloud_<cloud>`` and ``coe_driver_heat`` or ``coe_driver_capi``, when the
  cloud and the cluster's driver are known.

The ``coe_`` prefix keeps them apart from a site's own groups; ``cluster_`` in a
cluster's groups keeps a cluster named ``workers`` from joining ``coe_workers``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.inventory.group import to_safe_group_name

# Every node of every cluster, and the nodes of each role (role 'worker' -> 'coe_workers').
ALL_NODES = 'coe_nodes'


def group_name(name):
    """`name` as a group name Ansible accepts without a warning."""
    return to_safe_group_name(name, force=True, silent=True)


def node_groups(cluster, role, nodegroup=None, driver=None, cloud=None):
    """The groups of one node of `cluster` (its name) with `role` ('master' or 'worker')."""
    prefix = 'coe_cluster_%s' % cluster
    groups = [ALL_NODES, 'coe_%ss' % role, prefix, '%s_%s' % (prefix, role)]
    if nodegroup:
        groups += ['%s_ng_%s' % (prefix, nodegroup), 'coe_ng_%s' % nodegroup]
    if cloud:
        groups.append('coe_cloud_%s' % cloud)
    if driver:
        groups.append('coe_driver_%s' % driver)
    return [group_name(g) for g in groups]


def choose_ansible_host(addresses, network=None):
    """The address to reach a node at: the named network's, else a floating IP, else the first fixed IP.

    `addresses` is {network: {'fixed': [...], 'floating': [...]}} as cluster_nodes and the
    inventory plugin report it; IPv4 is preferred over IPv6 within each choice.
    """
    def first(ips):
        ips = [ip for ip in ips if ip]
        v4 = [ip for ip in ips if ':' not in ip]
        return (v4 or ips or [None])[0]

    addresses = addresses or {}
    if network and network in addresses:
        picked = first(addresses[network].get('fixed') or []) or first(addresses[network].get('floating') or [])
        if picked:
            return picked
    floating = [ip for net in addresses.values() for ip in net.get('floating') or []]
    fixed = [ip for net in addresses.values() for ip in net.get('fixed') or []]
    return first(floating) or first(fixed)
