#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cluster_nodes
short_description: The nodes of a Magnum cluster, whatever its driver
version_added: "0.1.0"
author: hpcops.coe maintainers (@hpcops)
description:
  - Lists the nodes (Nova servers) of one Magnum cluster in one shape for
    every driver, with their role, nodegroup, status, per-network addresses
    and flavor.
  - Heat-driver clusters are read through their Heat stacks (the cluster's and
    one per non-default nodegroup); the nodes are the C(OS::Nova::Server)
    resources of the C(kube_masters) and C(kube_minions) groups.
  - Cluster-API-driver clusters (magnum-cluster-api, magnum-capi-helm) have no
    stack; their nodes are the servers named after the cluster's Cluster-API
    name, masters being C(<name>-control-plane-...) and workers
    C(<name>-<nodegroup>-...).
  - Servers come from paged C(GET /servers/detail) calls filtered by name,
    never one call per node.
  - A cluster still being created yields the nodes that exist so far.
  - Read only; never reports a change.
options:
  cluster:
    description:
      - Name or UUID of the cluster.
    type: str
    required: true
  roles:
    description:
      - Only nodes with these roles.
    type: list
    elements: str
    choices: [master, worker]
  nodegroups:
    description:
      - Only nodes of these nodegroups (names as Magnum lists them).
    type: list
    elements: str
requirements:
  - python >= 3.9
  - openstacksdk >= 1.0.0
  - python-magnumclient >= 4.0.0
attributes:
  platform:
    platforms: all
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
  - hpcops.coe.attributes.info_module
'''

EXAMPLES = r'''
- name: All nodes of a cluster
  hpcops.coe.cluster_nodes:
    cloud: mycloud
    cluster: hpc-k8s
  register: found

- name: Add the workers to the in-memory inventory
  ansible.builtin.add_host:
    name: "{{ item.name }}"
    groups: [k8s_workers]
    ansible_host: "{{ item.addresses['private'].fixed[0] }}"
  loop: "{{ found.nodes | selectattr('role', 'equalto', 'worker') }}"
  loop_control:
    label: "{{ item.name }}"

- name: Only the GPU nodegroup
  hpcops.coe.cluster_nodes:
    cloud: mycloud
    cluster: legacy-k8s
    nodegroups: [gpu]
'''

RETURN = r'''
cluster:
  description: The cluster.
  returned: always
  type: dict
  contains:
    id:
      description: Cluster UUID.
      type: str
    name:
      description: Cluster name.
      type: str
    status:
      description: Cluster status, for example C(CREATE_COMPLETE) or C(CREATE_IN_PROGRESS).
      type: str
    driver:
      description: How the nodes were found, V(heat) or V(capi); V(null) before the cluster has a stack ID.
      type: str
    stack_id:
      description: The Heat stack ID, or the Cluster-API cluster name.
      type: str
    labels:
      description: Cluster labels.
      type: dict
    master_count:
      description: Number of masters Magnum reports.
      type: int
    node_count:
      description: Number of workers Magnum reports.
      type: int
    cluster_template_id:
      description: The cluster template.
      type: str
    keypair:
      description: The cluster's key pair.
      type: str
nodegroups:
  description: Names of the cluster's nodegroups (empty when the Magnum API has no nodegroups).
  returned: always
  type: list
  elements: str
  sample: [default-master, default-worker, gpu-a100]
missing_nodes:
  description:
    - Nodegroups for which Nova has fewer servers than Magnum's C(node_count) (servers deleted outside
      Magnum, or never built); the module also warns about them. Nodegroups being created or resized
      are not counted.
  returned: always
  type: list
  elements: dict
  sample: [{nodegroup: default-worker, node_count: 20, servers: 19, missing: 1}]
  contains:
    nodegroup:
      description: Nodegroup name.
      type: str
    node_count:
      description: The nodegroup's node count in Magnum.
      type: int
    servers:
      description: Servers of the nodegroup found in Nova.
      type: int
    missing:
      description: The difference.
      type: int
nodes:
  description: The nodes, masters first, then by nodegroup and name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Server name.
      type: str
      sample: kube-ab12c-default-worker-x7k2p-9fz4q
    id:
      description: Server ID.
      type: str
    role:
      description: V(master) or V(worker).
      type: str
    nodegroup:
      description: Nodegroup name.
      type: str
      sample: default-worker
    status:
      description: Nova status of the server, for example C(ACTIVE) or C(BUILD).
      type: str
    addresses:
      description:
        - Per network name, the fixed and floating IPs and the MAC address of the server's port.
      type: dict
      sample: {"cluster-net": {"fixed": ["10.0.0.12"], "floating": ["172.24.4.31"], "mac": "fa:16:3e:00:00:01"}}
    flavor:
      description: Flavor name (the flavor ID where the cloud does not report names).
      type: str
    image:
      description: Image ID (V(null) for servers booted from a volume).
      type: str
    availability_zone:
      description: Availability zone of the server.
      type: str
    driver:
      description: V(heat) or V(capi), the way the node was discovered.
      type: str
    cluster_id:
      description: UUID of the cluster.
      type: str
    cluster_name:
      description: Name of the cluster.
      type: str
'''

from ansible_collections.hpcops.coe.plugins.module_utils.openstack import CoeOpenStackModule
from ansible_collections.hpcops.coe.plugins.module_utils import discovery


class ClusterNodesModule(CoeOpenStackModule):
    argument_spec = dict(
        cluster=dict(type='str', required=True),
        roles=dict(type='list', elements='str', choices=list(discovery.ROLES)),
        nodegroups=dict(type='list', elements='str'),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        self.current_op, self.current_obj = 'list', 'clusters'
        clusters = discovery.list_clusters(self.conn)
        cluster = discovery.find_cluster(clusters, self.params['cluster'])

        self.current_op, self.current_obj = 'discover the nodes of', "cluster '%s'" % cluster.get('name')
        plan = discovery.plan_cluster(self.conn, cluster)
        ng_names = [ng.get('name') for ng in plan.nodegroups]
        wanted_ngs = self.params['nodegroups']
        if wanted_ngs and plan.nodegroups:
            unknown = sorted(set(wanted_ngs) - set(ng_names))
            if unknown:
                self.fail_json(msg="nodegroups %s do not exist in cluster '%s'. Valid nodegroups: %s" % (
                    ', '.join(unknown), cluster.get('name'), ', '.join(sorted(ng_names))))

        found = discovery.nodes_of(self.conn, [plan], clusters)[plan.cluster_id]
        missing = discovery.missing_nodes(plan, found)
        if missing:
            self.warn(discovery.describe_missing(cluster.get('name'), missing))
        roles = self.params['roles']
        found = [n for n in found
                 if (not roles or n['role'] in roles) and (not wanted_ngs or n['nodegroup'] in wanted_ngs)]
        return {
            'changed': False,
            'cluster': discovery.cluster_summary(cluster, plan.driver),
            'nodegroups': ng_names,
            'nodes': found,
            'missing_nodes': missing,
        }


def main():
    module = ClusterNodesModule()
    module()


if __name__ == '__main__':
    main()
