#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: cluster_info
short_description: Read OpenStack Magnum clusters and their nodegroups
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Returns Magnum clusters with their status, addresses, stack or Cluster-API id, driver kind,
    template name and (by default) nodegroups. Changes nothing.
  - Magnum cluster names are not unique. A I(name) shared by several clusters returns all of them.
options:
  name:
    description:
      - Name or UUID of the clusters to return. All clusters of the project when unset.
    type: str
  nodegroups:
    description:
      - Also return each cluster's nodegroups in full (one request per cluster and one per nodegroup;
        Magnum microversion 1.9+).
      - On an older Magnum they are left out with a warning.
    type: bool
    default: true
  include_deleting:
    description:
      - Also return clusters in C(DELETE_IN_PROGRESS).
    type: bool
    default: true
requirements:
  - python-magnumclient >= 4.0.0
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
  - hpcops.coe.attributes.info_module
attributes:
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: All clusters with their nodegroups
  hpcops.coe.cluster_info:
    cloud: mycloud
  register: magnum

- name: One cluster
  hpcops.coe.cluster_info:
    cloud: mycloud
    name: hpc-k8s
  register: info

- name: Show GPU nodegroup sizes
  ansible.builtin.debug:
    msg: "{{ info.clusters[0].nodegroups | selectattr('name', 'match', 'gpu') | map(attribute='node_count') }}"
'''

RETURN = r'''
clusters:
  description: The clusters, in Magnum's order (oldest first).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: UUID of the cluster.
      type: str
    name:
      description: Name.
      type: str
    status:
      description: Magnum status.
      type: str
    status_family:
      description: C(IN_PROGRESS), C(COMPLETE), C(FAILED) or C(UNKNOWN).
      type: str
    status_reason:
      description: Magnum's explanation.
      type: str
    health_status:
      description: Health reported by Magnum.
      type: str
    api_address:
      description: Kubernetes API URL.
      type: str
    master_addresses:
      description: Control-plane addresses (empty with Cluster-API drivers).
      type: list
      elements: str
    node_addresses:
      description: Worker addresses (empty with Cluster-API drivers).
      type: list
      elements: str
    stack_id:
      description: Heat stack UUID or Cluster-API cluster name.
      type: str
    driver_kind:
      description: C(heat), C(capi) or C(unknown).
      type: str
    cluster_template_id:
      description: Template UUID.
      type: str
    cluster_template_name:
      description: Template name.
      type: str
    master_count:
      description: Control-plane node count.
      type: int
    node_count:
      description: Worker nodes in all worker nodegroups, as Magnum counts them.
      type: int
    labels:
      description: Labels.
      type: dict
    faults:
      description: Magnum's fault details (only when I(name) is given).
      type: dict
    nodegroups:
      description: The cluster's nodegroups (when I(nodegroups=true)).
      type: list
      elements: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.openstack import CoeOpenStackModule


class ClusterInfoModule(CoeOpenStackModule):
    argument_spec = dict(
        name=dict(),
        nodegroups=dict(type='bool', default=True),
        include_deleting=dict(type='bool', default=True),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        name = self.params['name']
        clusters = self.list_clusters(detail=True)
        if name is not None:
            clusters = [c for c in clusters if name in (mg.field(c, 'name'), mg.field(c, 'uuid'))]
            # The detail of one cluster carries faults, which list views leave out.
            clusters = [self.get_cluster(mg.object_id(c)) or c for c in clusters]
        if not self.params['include_deleting']:
            clusters = [c for c in clusters if not mg.is_deleting(mg.field(c, 'status'))]
        templates = {}
        if clusters:
            templates = dict((mg.object_id(t), t) for t in self.list_templates())
        with_groups = self.params['nodegroups'] and bool(clusters)
        if with_groups and not self.magnum_supports(mg.MV_NODEGROUPS):
            self.warn('This cloud\'s Magnum predates nodegroups (API microversion 1.9); they are not returned.')
            with_groups = False
        out = []
        for c in clusters:
            groups = None
            if with_groups:
                uuid = mg.object_id(c)
                groups = [self.get_nodegroup(uuid, mg.object_id(g)) or g
                          for g in self.list_nodegroups(uuid, missing_ok=True)]
            out.append(mg.summarize_cluster(c, templates.get(mg.field(c, 'cluster_template_id')), groups))
        return dict(changed=False, clusters=out)


def main():
    module = ClusterInfoModule()
    module()


if __name__ == '__main__':
    main()
