#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: stack_facts
short_description: Status, outputs and nested resources of a Heat stack
version_added: "0.1.0"
author: hpcops.coe maintainers (@hpcops)
description:
  - Reads one Heat stack, given by name or ID or as the stack of a Heat-driver
    Magnum cluster, and returns its status, its outputs as a mapping and its
    resources, optionally from nested stacks and filtered by type and name.
  - Resources are listed with Heat's C(nested_depth) parameter, which
    openstacksdk's own resource listing drops; the servers of a Heat-driver
    Kubernetes cluster sit at depth 2 (ResourceGroup, member stack, server).
  - Cluster-API-driver clusters have no Heat stack; for them O(stack) is
    returned as V(null) together with the cluster's driver.
  - The result is also set as the fact C(coe_stack).
  - Read only; never reports a change.
options:
  stack:
    description:
      - Name or ID of the stack.
      - Exactly one of O(stack) and O(cluster) is required.
    type: str
  cluster:
    description:
      - Name or UUID of a Magnum cluster whose stack to read.
      - With O(nodegroup), the stack of that nodegroup (non-default nodegroups
        of Heat-driver clusters have a stack of their own).
    type: str
  nodegroup:
    description:
      - Name of a nodegroup of O(cluster) whose stack to read.
    type: str
  resources:
    description:
      - Whether to list the stack's resources.
    type: bool
    default: true
  nested_depth:
    description:
      - How many levels of nested stacks to include in the resources; V(0) lists
        only the stack's own resources.
    type: int
    default: 0
  resource_types:
    description:
      - Only resources of these types, for example V(OS::Nova::Server).
    type: list
    elements: str
  resource_names:
    description:
      - Only resources with these logical names, for example V(kube_masters).
    type: list
    elements: str
  resolve_outputs:
    description:
      - Whether to read the stack's outputs. Heat computes every output when
        asked, which takes a while on large stacks.
    type: bool
    default: true
requirements:
  - python >= 3.9
  - openstacksdk >= 1.0.0
  - python-magnumclient >= 4.0.0 (to find the stack of a I(cluster))
attributes:
  platform:
    platforms: all
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
  - hpcops.coe.attributes.info_module
'''

EXAMPLES = r'''
- name: Read the stack of a Heat-driver cluster and its servers
  hpcops.coe.stack_facts:
    cloud: mycloud
    cluster: legacy-k8s
    nested_depth: 2
    resource_types: [OS::Nova::Server]
  register: stack

- name: Show the API address and the masters' floating IPs
  ansible.builtin.debug:
    msg: "{{ stack.stack.outputs.api_address }} {{ stack.stack.outputs.kube_masters }}"

- name: Any stack, by name or ID, without resources
  hpcops.coe.stack_facts:
    cloud: mycloud
    stack: "{{ stack.stack.name }}"
    resources: false

- name: The stack of a non-default nodegroup
  hpcops.coe.stack_facts:
    cloud: mycloud
    cluster: legacy-k8s
    nodegroup: gpu
    nested_depth: 2
    resource_names: [kube-minion]
'''

RETURN = r'''
stack:
  description: The stack, or V(null) when there is none (unknown name, or a Cluster-API-driver cluster).
  returned: always
  type: dict
  contains:
    id:
      description: Stack ID.
      type: str
      sample: 5b4d5c2e-3f0e-4b68-9a55-0e3b2c1d7f10
    name:
      description: Stack name.
      type: str
      sample: k8s-hpc-abcdefghijkl
    status:
      description: Stack status, C(<ACTION>_<STATE>).
      type: str
      sample: CREATE_COMPLETE
    status_reason:
      description: Why the stack has its status.
      type: str
    outputs:
      description: Outputs as a mapping of output key to value (V(null) when Heat could not resolve it).
      type: dict
      sample: {"api_address": "10.0.0.5", "kube_masters": ["172.24.4.10"]}
    output_errors:
      description: Output key to error, for outputs Heat failed to resolve.
      type: dict
    parameters:
      description: Stack parameters.
      type: dict
    parent:
      description: ID of the parent stack for a nested stack.
      type: str
    tags:
      description: Stack tags.
      type: list
      elements: str
    timeout_mins:
      description: Stack timeout in minutes.
      type: int
    creation_time:
      description: When the stack was created.
      type: str
    updated_time:
      description: When the stack was last updated.
      type: str
resources:
  description: The matching resources, including nested ones down to O(nested_depth).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Logical resource name.
      type: str
      sample: kube-master
    type:
      description: Resource type.
      type: str
      sample: OS::Nova::Server
    physical_id:
      description: ID of the underlying object (for a server, its Nova ID).
      type: str
    status:
      description: Resource status, C(<ACTION>_<STATE>).
      type: str
      sample: CREATE_COMPLETE
    action:
      description: The action part of the status.
      type: str
      sample: CREATE
    state:
      description: The state part of the status.
      type: str
      sample: COMPLETE
    status_reason:
      description: Why the resource has its status.
      type: str
    stack_id:
      description: ID of the (possibly nested) stack the resource belongs to.
      type: str
    parent_resource:
      description: For a nested resource, the name of the resource owning its stack.
      type: str
    required_by:
      description: Names of resources depending on this one.
      type: list
      elements: str
    creation_time:
      description: When the resource was created.
      type: str
    updated_time:
      description: When the resource was last updated.
      type: str
cluster:
  description: The cluster whose stack was read, when O(cluster) was given.
  returned: when O(cluster) is given
  type: dict
  contains:
    id:
      description: Cluster UUID.
      type: str
    name:
      description: Cluster name.
      type: str
    status:
      description: Cluster status.
      type: str
    driver:
      description: V(heat) or V(capi) (V(null) before the cluster has a stack ID).
      type: str
    stack_id:
      description: The cluster's stack ID, or its Cluster-API cluster name.
      type: str
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    coe_stack:
      description: RV(stack) with RV(resources) added under the key C(resources).
      type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils.openstack import CoeOpenStackModule
from ansible_collections.hpcops.coe.plugins.module_utils import heat
from ansible_collections.hpcops.coe.plugins.module_utils import discovery


class StackFactsModule(CoeOpenStackModule):
    argument_spec = dict(
        stack=dict(type='str'),
        cluster=dict(type='str'),
        nodegroup=dict(type='str'),
        resources=dict(type='bool', default=True),
        nested_depth=dict(type='int', default=0),
        resource_types=dict(type='list', elements='str'),
        resource_names=dict(type='list', elements='str'),
        resolve_outputs=dict(type='bool', default=True),
    )
    module_kwargs = dict(
        supports_check_mode=True,
        mutually_exclusive=[('stack', 'cluster')],
        required_one_of=[('stack', 'cluster')],
        required_by={'nodegroup': 'cluster'},
    )
    requires_magnumclient = False

    def run(self):
        depth = self.params['nested_depth']
        if depth < 0:
            self.fail_json(msg='nested_depth must be 0 or more, got %d' % depth)

        result = {'changed': False}
        stack_ref = self.params['stack']
        if self.params['cluster']:
            cluster, stack_ref = self._cluster_stack()
            result['cluster'] = cluster

        stack = None
        if stack_ref:
            self.current_op, self.current_obj = 'read', "stack '%s'" % stack_ref
            stack = heat.get_stack(self.conn, stack_ref, resolve_outputs=self.params['resolve_outputs'])

        resources = []
        if stack is not None and self.params['resources']:
            self.current_op, self.current_obj = 'list resources of', "stack '%s'" % stack_ref
            rows = heat.list_stack_resources(self.conn, stack, nested_depth=depth,
                                             types=self.params['resource_types'],
                                             names=self.params['resource_names'])
            resources = [heat.summarize_resource(r) for r in rows]

        summary = heat.summarize_stack(stack) if stack is not None else None
        if summary is not None and not self.params['resolve_outputs']:
            summary['outputs'] = {}
        result['stack'] = summary
        result['resources'] = resources
        fact = dict(summary, resources=resources) if summary is not None else None
        result['ansible_facts'] = {'coe_stack': fact}
        return result

    def _cluster_stack(self):
        """(cluster summary, stack name or ID to read or None) for the cluster option."""
        self.current_op, self.current_obj = 'list', 'clusters'
        clusters = discovery.list_clusters(self.conn)
        cluster = discovery.find_cluster(clusters, self.params['cluster'])
        driver = discovery.cluster_driver(cluster)
        summary = discovery.cluster_summary(cluster, driver)
        summary = dict((k, summary[k]) for k in ('id', 'name', 'status', 'driver', 'stack_id'))
        if driver != discovery.DRIVER_HEAT:
            return summary, None
        nodegroup = self.params['nodegroup']
        if not nodegroup:
            return summary, summary['stack_id']
        self.current_op, self.current_obj = 'list nodegroups of', "cluster '%s'" % summary['name']
        nodegroups = discovery.list_nodegroups(self.conn, cluster['uuid'])
        if nodegroups is None:
            self.fail_json(msg="nodegroup '%s': this cloud's Magnum has no nodegroup API (needs 1.9)" % nodegroup)
        for ng in nodegroups:
            if nodegroup in (ng.get('name'), ng.get('uuid')):
                return summary, ng.get('stack_id') or summary['stack_id']
        self.fail_json(msg="nodegroup '%s' does not exist in cluster '%s'. Valid nodegroups: %s" % (
            nodegroup, summary['name'], ', '.join(sorted(ng.get('name') for ng in nodegroups)) or 'none'))


def main():
    module = StackFactsModule()
    module()


if __name__ == '__main__':
    main()
