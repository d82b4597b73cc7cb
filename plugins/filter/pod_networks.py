# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the pod_networks role: the decisions live in module_utils/kube_podnet.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hpcops.coe.plugins.module_utils.kube_podnet import (
    foreign_owners, host_facts, neutron_facts, node_interface_names, plan)


def pod_network_plan(pod_networks, networks, neutron, interfaces, namespace='default', rdma_prefix='rdma'):
    return plan(pod_networks, networks, neutron, interfaces, namespace=namespace, rdma_prefix=rdma_prefix)


def pod_network_interfaces(hosts, hostvars):
    """{network: {node: link name}} from the networks role's facts on `hosts` (inventory names are node names)."""
    return node_interface_names(host_facts(hostvars, hosts))


def pod_network_neutron(networks, subnets, ports):
    return neutron_facts(networks, subnets, ports)


def pod_network_owners(nic_policies, daemonsets, namespace):
    return foreign_owners(nic_policies, daemonsets, namespace)


class FilterModule(object):
    """Pod networks from the site's Neutron networks and the links the nodes have."""

    def filters(self):
        return {
            'pod_network_plan': pod_network_plan,
            'pod_network_interfaces': pod_network_interfaces,
            'pod_network_neutron': pod_network_neutron,
            'pod_network_owners': pod_network_owners,
        }
