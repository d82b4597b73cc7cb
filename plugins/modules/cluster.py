#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: cluster
short_description: Create, resize, upgrade and delete OpenStack Magnum clusters
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Creates, resizes, upgrades and deletes a Kubernetes cluster through OpenStack Magnum
    (the container-infra API), with Heat-based and Cluster-API-based Magnum drivers.
  - Waits on Magnum's real statuses (C(CREATE_COMPLETE), C(UPDATE_COMPLETE), ...) and detects
    C(*_FAILED), returning Magnum's C(status_reason) and C(faults).
  - Changes the worker count of an existing cluster with Magnum's resize action
    (API microversion 1.7 or later; older clouds get a C(node_count) PATCH) and can remove
    chosen nodes while shrinking. Upgrades a cluster to another template with the upgrade
    action (microversion 1.8 or later) when I(cluster_template) names a different template.
  - Every other difference from an existing cluster (flavors, keypair, labels, networks,
    master count, ...) cannot be changed by Magnum. The module then fails before changing
    anything and lists each such field with its current and wanted value.
  - If the cluster is busy (any C(*_IN_PROGRESS) status) and a change is needed, the module first waits
    for it to settle (within I(timeout)) instead of failing or sending a conflicting request, also with
    I(wait=false). If Magnum still refuses because another operation began meanwhile, the module
    waits again and retries.
  - Cluster names are not unique in Magnum. The module refuses to act when several live clusters
    share I(name). When two runs create the same name at the same moment, the later cluster
    is deleted again and both runs return the older one.
  - Authentication uses openstacksdk (clouds.yaml, C(OS_*) variables or the I(auth) option);
    the Magnum calls use python-magnumclient on that session.
options:
  name:
    description:
      - Name of the cluster, or the UUID of an existing cluster.
      - A new cluster name must start with a letter and contain only letters, digits, C(_), C(.)
        and C(-), at most 242 characters.
    required: true
    type: str
  state:
    description:
      - C(present) creates the cluster or brings it to the wanted size and template.
      - C(absent) deletes it, also while it is being created or updated (Magnum then stops that
        operation). With I(wait=true) the module returns once Magnum no longer lists it.
      - A cluster already being deleted (C(DELETE_IN_PROGRESS)) is not deleted again; the module
        reports no change and, with I(wait=true), waits until it is gone.
    choices: [present, absent]
    default: present
    type: str
  cluster_template:
    description:
      - Name or UUID of the cluster template. Required to create a cluster.
      - On an existing cluster, a different template upgrades the cluster to it
        (Magnum microversion 1.8 or later).
    aliases: [cluster_template_id, template]
    type: str
  keypair:
    description:
      - Name of the Nova keypair for the servers. Defaults to the template's keypair.
    type: str
  master_count:
    description:
      - Number of control-plane nodes. Magnum's default is 1. Cannot change after creation.
      - Must be 1 or more.
    type: int
  node_count:
    description:
      - Number of worker nodes in the default worker nodegroup. Magnum's default is 1.
      - Magnum's own C(node_count) of a cluster adds up all worker nodegroups. This option
        compares with, and resizes, only the default one. Manage other nodegroups with
        M(hpcops.coe.cluster_nodegroup).
      - Changing it on an existing cluster resizes the cluster. The new count must lie within
        the default nodegroup's C(min_node_count) and C(max_node_count).
      - C(0) needs Magnum microversion 1.10 or later.
    type: int
  nodes_to_remove:
    description:
      - Server names or IDs of workers of the default nodegroup to remove when I(node_count)
        shrinks the cluster; the module passes their IDs to Magnum. Ignored when the cluster is
        not shrinking. A name or ID that is not such a worker fails before any change.
      - Cannot list more nodes than the shrink removes.
      - A shrink that names no nodes lets the driver choose them (the Heat driver the newest,
        Cluster API drivers their delete policy), with a warning.
    type: list
    elements: str
    default: []
  max_batch_size:
    description:
      - How many nodes Magnum upgrades at a time when I(cluster_template) upgrades the cluster.
    type: int
    default: 1
  flavor:
    description:
      - Nova flavor (name or ID) of the worker nodes. Defaults to the template's flavor.
    aliases: [flavor_id]
    type: str
  master_flavor:
    description:
      - Nova flavor (name or ID) of the control-plane nodes. Defaults to the template's master flavor.
    aliases: [master_flavor_id]
    type: str
  labels:
    description:
      - Magnum labels of the cluster. Values are sent as strings; booleans become C(true) / C(false)
        and numbers their decimal text, so that a rerun compares equal to what Magnum stores.
      - Lists and mappings are rejected; join list items with the separator the driver expects.
    type: dict
  merge_labels:
    description:
      - When C(true), I(labels) are added to the template's labels (overriding same-named ones).
        When C(false), they replace the template's labels entirely, as Magnum does by default.
    type: bool
    default: true
  fixed_network:
    description:
      - Neutron network (name or ID) for the nodes. Defaults to the template's.
    type: str
  fixed_subnet:
    description:
      - Neutron subnet (name or ID) for the nodes, in I(fixed_network) when both are given.
    type: str
  floating_ip_enabled:
    description:
      - Whether the nodes get floating IPs. Defaults to the template's setting.
    type: bool
  master_lb_enabled:
    description:
      - Whether the control plane sits behind a load balancer. Defaults to the template's setting.
    type: bool
  docker_volume_size:
    description:
      - Size in GB of the container storage volume of each node. Must be 1 or more.
    type: int
  discovery_url:
    description:
      - etcd discovery URL for drivers that use one. Only used when the cluster is created.
    type: str
  create_timeout:
    description:
      - Time Magnum itself gives the cluster to reach C(CREATE_COMPLETE), in B(minutes); Magnum's
        default is 60. Only used when the cluster is created.
      - This is separate from I(timeout), which is how long this module waits, in seconds.
    type: int
  on_create_failure:
    description:
      - What to do with a cluster that this run created and that ended in C(CREATE_FAILED).
      - C(delete) deletes it (after reading its C(status_reason) and C(faults)), so no
        half-created cluster is left behind and a rerun creates it again.
      - C(keep) leaves it for inspection. A rerun then fails until it is deleted.
      - A cluster that another run created at the same moment (and that this run then waited
        for) is never deleted by this run.
    choices: [delete, keep]
    default: delete
    type: str
  timeout:
    description:
      - How long the module waits in total, in B(seconds), for the cluster to settle before a change
        and for the change to finish.
      - Not sent to Magnum; see I(create_timeout) for that.
    type: int
    default: 3600
  wait:
    description:
      - Whether to wait until the create, resize, upgrade or delete has finished.
      - Without waiting the module still waits for a busy cluster to settle before changing it,
        and between a resize and an upgrade done in one run.
    type: bool
    default: true
notes:
  - Magnum's cluster name is not a unique key. Give the UUID as I(name) to address one of several
    same-named clusters.
requirements:
  - python-magnumclient >= 4.0.0
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
attributes:
  check_mode:
    support: full
    details: Reads the cloud and reports what would be created, resized, upgraded or rejected.
  diff_mode:
    support: full
    details: The cluster before and after.
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: Create a cluster and wait for CREATE_COMPLETE
  hpcops.coe.cluster:
    cloud: mycloud
    name: genomics-k8s
    cluster_template: k8s-capi-v1.30
    keypair: ops
    master_count: 3
    node_count: 4
    flavor: bm.compute
    master_flavor: bm.compute
    labels:
      kube_tag: v1.30.4
      auto_healing_enabled: true
    create_timeout: 90
    timeout: 5400

- name: Find its workers
  hpcops.coe.cluster_nodes:
    cloud: mycloud
    cluster: genomics-k8s
    roles: [worker]
  register: genomics

- name: Shrink to two workers, removing two given servers
  hpcops.coe.cluster:
    cloud: mycloud
    name: genomics-k8s
    node_count: 2
    nodes_to_remove: "{{ (genomics.nodes | map(attribute='id') | list)[-2:] }}"

- name: Upgrade to a newer template, two nodes at a time
  hpcops.coe.cluster:
    cloud: mycloud
    name: genomics-k8s
    cluster_template: k8s-capi-v1.31
    max_batch_size: 2

- name: Preview a change
  hpcops.coe.cluster:
    cloud: mycloud
    name: genomics-k8s
    node_count: 8
  check_mode: true
  diff: true
  register: preview

- name: Delete the cluster
  hpcops.coe.cluster:
    cloud: mycloud
    name: genomics-k8s
    state: absent
'''

RETURN = r'''
cluster:
  description: The cluster after the change (before it, in check mode). Absent after a delete.
  returned: when I(state=present)
  type: dict
  contains:
    id:
      description: UUID of the cluster (same as C(uuid)).
      type: str
      sample: 6b1a0e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f
    uuid:
      description: UUID of the cluster.
      type: str
    name:
      description: Name of the cluster.
      type: str
      sample: hpc-k8s
    status:
      description: Magnum status.
      type: str
      sample: CREATE_COMPLETE
    status_family:
      description: C(IN_PROGRESS), C(COMPLETE), C(FAILED) or C(UNKNOWN).
      type: str
      sample: COMPLETE
    status_reason:
      description: Magnum's explanation of the status.
      type: str
    health_status:
      description: C(HEALTHY), C(UNHEALTHY), C(UNKNOWN) or null.
      type: str
    faults:
      description: Failure details by resource, as Magnum reports them.
      type: dict
    api_address:
      description: URL of the Kubernetes API.
      type: str
      sample: https://10.0.0.5:6443
    master_addresses:
      description: Addresses of the control-plane nodes (empty with Cluster-API drivers).
      type: list
      elements: str
    node_addresses:
      description: Addresses of the worker nodes (empty with Cluster-API drivers).
      type: list
      elements: str
    stack_id:
      description: Heat stack UUID (Heat drivers) or Cluster-API cluster name (CAPI drivers).
      type: str
    cluster_id:
      description: Same as C(stack_id); the field Magnum 1.13+ uses.
      type: str
    driver_kind:
      description: C(heat) for Heat-stack clusters, C(capi) for Cluster-API ones, C(unknown) before Magnum says.
      type: str
      sample: heat
    cluster_template_id:
      description: UUID of the cluster's template.
      type: str
    cluster_template_name:
      description: Name of the cluster's template.
      type: str
    master_count:
      description: Number of control-plane nodes.
      type: int
    node_count:
      description: Worker nodes in all worker nodegroups, as Magnum counts them.
      type: int
    flavor_id:
      description: Worker flavor as Magnum stores it.
      type: str
    master_flavor_id:
      description: Control-plane flavor as Magnum stores it.
      type: str
    keypair:
      description: Keypair name.
      type: str
    labels:
      description: Effective labels.
      type: dict
    coe_version:
      description: Kubernetes version reported by the driver.
      type: str
    create_timeout:
      description: Magnum's create timeout in minutes.
      type: int
plan:
  description: What the module did or, in check mode, would do.
  returned: always
  type: dict
  contains:
    action:
      description: C(create), C(update), C(delete) or C(none).
      type: str
    resize:
      description: New worker count, or null.
      type: int
    nodes_to_remove:
      description: Nodes removed by the resize.
      type: list
      elements: str
    upgrade:
      description: UUID of the template the cluster is upgraded to, or null.
      type: str
    rejected:
      description: Differences Magnum cannot apply (the module fails when there are any).
      type: list
      elements: dict
waited:
  description: For each wait, its duration, poll count and the status transitions seen.
  returned: always
  type: list
  elements: dict
  sample: [{what: "cluster 'hpc-k8s' create", seconds: 742.3, polls: 31,
            transitions: [{status: CREATE_IN_PROGRESS, elapsed: 0.2}, {status: CREATE_COMPLETE, elapsed: 742.3}]}]
status_reason:
  description: Magnum's reason when the cluster ended in a failed status.
  returned: on failure of a create, update or delete
  type: str
faults:
  description: Magnum's fault details when the cluster ended in a failed status.
  returned: on failure of a create, update or delete
  type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.openstack import (
    RAISE,
    CoeOpenStackModule,
    http_status,
)


class ClusterModule(CoeOpenStackModule):
    argument_spec = dict(
        name=dict(required=True),
        state=dict(default='present', choices=['present', 'absent']),
        cluster_template=dict(aliases=['cluster_template_id', 'template']),
        keypair=dict(no_log=False),
        master_count=dict(type='int'),
        node_count=dict(type='int'),
        nodes_to_remove=dict(type='list', elements='str', default=[]),
        max_batch_size=dict(type='int', default=1),
        flavor=dict(aliases=['flavor_id']),
        master_flavor=dict(aliases=['master_flavor_id']),
        labels=dict(type='dict'),
        merge_labels=dict(type='bool', default=True),
        fixed_network=dict(),
        fixed_subnet=dict(),
        floating_ip_enabled=dict(type='bool'),
        master_lb_enabled=dict(type='bool'),
        docker_volume_size=dict(type='int'),
        discovery_url=dict(),
        create_timeout=dict(type='int'),
        on_create_failure=dict(default='delete', choices=['delete', 'keep']),
        timeout=dict(type='int', default=3600),
    )
    module_kwargs = dict(supports_check_mode=True)

    # ------------------------------------------------------------------ input

    def validate_input(self):
        p = self.params
        if p['master_count'] is not None and p['master_count'] < 1:
            raise mg.MagnumInputError('master_count must be 1 or more, got %d' % p['master_count'])
        mg.check_counts(node_count=p['node_count'], what="cluster '%s'" % p['name'])
        if p['docker_volume_size'] is not None and p['docker_volume_size'] < 1:
            raise mg.MagnumInputError('docker_volume_size must be 1 (GB) or more, got %d' % p['docker_volume_size'])
        if p['create_timeout'] is not None and p['create_timeout'] < 1:
            raise mg.MagnumInputError('create_timeout is in minutes and must be 1 or more, got %d'
                                      % p['create_timeout'])
        if p['max_batch_size'] < 1:
            raise mg.MagnumInputError('max_batch_size must be 1 or more, got %d' % p['max_batch_size'])
        if p['timeout'] < 0:
            raise mg.MagnumInputError('timeout (seconds) must be 0 or more, got %d' % p['timeout'])
        if p['nodes_to_remove'] and p['node_count'] is None:
            raise mg.MagnumInputError('nodes_to_remove needs node_count: the count the cluster shrinks to')
        if len(set(p['nodes_to_remove'])) != len(p['nodes_to_remove']):
            raise mg.MagnumInputError('nodes_to_remove lists a node more than once: %s' % p['nodes_to_remove'])
        self.labels = mg.normalize_labels(p['labels'])

    # ------------------------------------------------------------------ run

    def run(self):
        self.validate_input()
        self.plan = {'action': 'none', 'resize': None, 'nodes_to_remove': [], 'upgrade': None, 'rejected': []}
        self.default_group = self.workers_before = None
        if self.params['state'] == 'absent':
            return self.absent()
        return self.present()

    def result(self, changed, cluster=None, template=None, before=None, after=None, **extra):
        res = dict(changed=changed, plan=self.plan, waited=self.waited())
        if cluster is not None:
            res['cluster'] = mg.summarize_cluster(cluster, template)
        if self.ansible._diff and (before is not None or after is not None):
            res['diff'] = dict(before=before or {}, after=after or {})
        res.update(extra)
        return res

    # ------------------------------------------------------------------ views

    @staticmethod
    def view(cluster, template=None):
        """The comparable face of a cluster, for diffs."""
        if cluster is None:
            return {}
        keys = ('name', 'cluster_template_id', 'master_count', 'node_count', 'flavor_id',
                'master_flavor_id', 'keypair', 'labels', 'fixed_network', 'fixed_subnet',
                'floating_ip_enabled', 'master_lb_enabled', 'docker_volume_size', 'status')
        out = dict((k, mg.field(cluster, k)) for k in keys)
        if template is not None:
            out['cluster_template_name'] = mg.field(template, 'name')
        return out

    # ------------------------------------------------------------------ waits

    def wait_cluster(self, uuid, what, done, failed=None, timeout=None):
        """Poll one cluster until done(c); returns (cluster, error)."""
        return self.wait_until(
            what,
            fetch=lambda: self.get_cluster(uuid),
            is_done=done,
            is_failed=failed,
            status_of=lambda c: mg.field(c, 'status') if c is not None else (
                'not visible yet' if self.not_yet_seen(uuid) else 'gone'),
            timeout=timeout)

    def settle(self, cluster, why):
        """Wait for a busy cluster to leave *_IN_PROGRESS; returns the settled cluster (or None if gone)."""
        if not mg.is_busy(mg.field(cluster, 'status')):
            return cluster
        uuid = mg.object_id(cluster)
        settled, err = self.wait_cluster(
            uuid, "cluster '%s' %s (%s)" % (mg.field(cluster, 'name'), mg.field(cluster, 'status'), why),
            done=lambda c: c is None or not mg.is_busy(mg.field(c, 'status')))
        if err is not None:
            self.fail_json(msg="Cluster '%s' is still %s after %.0f s; waited for it to settle before %s. "
                               "Nothing was changed; rerun with a longer timeout."
                               % (mg.field(cluster, 'name'), mg.field(settled, 'status'), err.elapsed, why),
                           cluster=mg.summarize_cluster(settled), plan=self.plan, waited=self.waited())
        return settled

    def fail_failed(self, cluster, advice):
        """Fail for a cluster in a *_FAILED status, with Magnum's reason, its faults and the nodes in ERROR."""
        uuid = mg.object_id(cluster)
        errors = self.nodes_in_error(uuid)
        self.fail_status(cluster, '%s %s' % (mg.describe_failed('cluster', mg.field(cluster, 'name'), cluster, errors),
                                             advice), nodes_in_error=errors)

    def fail_status(self, cluster, msg, template=None, **extra):
        self.fail_json(msg=msg, cluster=mg.summarize_cluster(cluster, template) if cluster else None,
                       status_reason=mg.field(cluster, 'status_reason'),
                       faults=mg.field(cluster, 'faults') or {}, plan=self.plan, waited=self.waited(), **extra)

    # ------------------------------------------------------------------ absent

    def absent(self):
        name = self.params['name']
        cluster = self.find_cluster(name, option='name', required=False)
        if cluster is None:
            # A cluster being deleted by someone else: wait for it, change nothing.
            deleting = [c for c in self.list_clusters()
                        if name in (mg.field(c, 'name'), mg.object_id(c)) and mg.is_deleting(mg.field(c, 'status'))]
            if deleting and self.params['wait'] and not self.check_mode:
                for c in deleting:
                    gone, err = self.wait_cluster(mg.object_id(c), "cluster '%s' delete" % name,
                                                  done=lambda x: x is None,
                                                  failed=lambda x: mg.field(x, 'status') == 'DELETE_FAILED')
                    if err is not None:
                        self.fail_status(gone, "Cluster '%s' (%s) did not go away: %s" % (name, mg.object_id(c), err))
            return self.result(False)

        uuid = mg.object_id(cluster)
        if mg.is_deleting(mg.field(cluster, 'status')):
            # Found by UUID while someone else's delete runs: that delete is not this
            # run's change, so report none (also in check mode) and only wait for it.
            if self.params['wait'] and not self.check_mode:
                self.wait_deleted(uuid, name)
            return self.result(False)

        self.plan['action'] = 'delete'
        before = self.view(cluster)
        if self.check_mode:
            return self.result(True, before=before, after={})
        # No wait for a running create or update: Magnum deletes a cluster in any status (its
        # driver cancels what is in progress), and a build that never ends must be abortable.
        gone_already = []

        def on_error(exc):
            if http_status(exc) == 404:
                gone_already.append(True)
                return None
            return RAISE

        self.magnum_call('delete', "cluster '%s' (%s)" % (name, uuid),
                         lambda c: c.clusters.delete(uuid), on_error=on_error)
        if gone_already:
            return self.result(False)
        if self.params['wait']:
            self.wait_deleted(uuid, name)
        return self.result(True, before=before, after={})

    def wait_deleted(self, uuid, name):
        last, err = self.wait_cluster(uuid, "cluster '%s' delete" % name,
                                      done=lambda c: c is None,
                                      failed=lambda c: mg.field(c, 'status') == 'DELETE_FAILED')
        if err is not None:
            self.fail_status(last, "Cluster '%s' delete did not finish: %s%s" % (
                name, err, self._reason_suffix(last)))

    @staticmethod
    def _reason_suffix(cluster):
        reason = mg.field(cluster, 'status_reason')
        status = mg.field(cluster, 'status')
        parts = [p for p in (status, reason) if p]
        return ' (%s)' % ': '.join(parts) if parts else ''

    # ------------------------------------------------------------------ present

    def present(self):
        cluster = self.find_cluster(self.params['name'], option='name', required=False)
        if cluster is not None and mg.field(cluster, 'status') == 'DELETE_IN_PROGRESS':
            # Only reachable by UUID (name lookups skip deleting clusters): it is going away.
            cluster = None
        if cluster is None:
            return self.create()
        return self.update(cluster)

    # ---- create

    def desired_refs(self):
        """Resolve every name-or-id input once, before any change."""
        p = self.params
        refs = {}
        if p['flavor']:
            refs['flavor_id'] = self.resolve_flavor(p['flavor'], 'flavor')
        if p['master_flavor']:
            refs['master_flavor_id'] = self.resolve_flavor(p['master_flavor'], 'master_flavor')
        if p['keypair']:
            refs['keypair'] = self.resolve_keypair(p['keypair'], 'keypair')
        if p['fixed_network']:
            refs['fixed_network'] = self.resolve_network(p['fixed_network'], 'fixed_network')
        if p['fixed_subnet']:
            net = refs.get('fixed_network')
            refs['fixed_subnet'] = self.resolve_subnet(p['fixed_subnet'], 'fixed_subnet',
                                                       network_id=net['id'] if net else None)
        return refs

    def create(self):
        p = self.params
        name = p['name']
        if not p['cluster_template']:
            raise mg.MagnumInputError("cluster '%s' does not exist and cluster_template is needed to create it"
                                      % name)
        if mg.is_uuid(name):
            raise mg.MagnumInputError("no cluster has the UUID '%s'; give a name (not a UUID) to create a cluster"
                                      % name)
        mg.validate_name(name, 'cluster')
        template = self.find_template(p['cluster_template'], 'cluster_template')
        refs = self.desired_refs()
        if p['node_count'] == 0:
            self.require_magnum_version(mg.MV_ZERO_NODES, 'create', "cluster '%s' with node_count 0" % name)

        body = dict(name=name, cluster_template_id=mg.object_id(template))
        for key in ('master_count', 'node_count', 'docker_volume_size', 'discovery_url', 'create_timeout',
                    'floating_ip_enabled', 'master_lb_enabled'):
            if p[key] is not None:
                body[key] = p[key]
        for key, ref in refs.items():
            body[key] = ref['name'] if key == 'keypair' else ref['id']
        if self.labels is not None:
            body['labels'] = self.labels
            body['merge_labels'] = p['merge_labels']

        self.plan['action'] = 'create'
        after = dict(body)
        after['labels'] = mg.effective_labels(mg.field(template, 'labels'), self.labels, p['merge_labels'])
        after['cluster_template_name'] = mg.field(template, 'name')
        after.pop('merge_labels', None)
        if p['nodes_to_remove']:
            self.warn('nodes_to_remove is ignored: the cluster is being created')
        if self.check_mode:
            return self.result(True, before={}, after=after)

        created = self.magnum_call('create', "cluster '%s'" % name,
                                   lambda c: c.clusters.create(**body), idempotent=False,
                                   landed=lambda: mg.keeper_of(self.list_clusters(), name))
        uuid = mg.field(created, 'uuid')
        changed = True
        # Magnum may answer 404 for a moment after the 202: wait until it shows the
        # cluster, so that the listing below includes it.
        self.note_created_cluster(uuid)
        cluster = self.get_cluster(uuid)

        # Two runs may have listed "no such cluster" at the same time: keep the
        # oldest same-named cluster and remove this run's duplicate.
        keeper = mg.keeper_of(self.list_clusters(), name)
        if keeper is not None and mg.object_id(keeper) != uuid:
            self.warn("Another run created cluster '%s' (%s) at the same time; this run's duplicate %s "
                      "was deleted and the existing cluster is used." % (name, mg.object_id(keeper), uuid))
            self.magnum_call('delete', "duplicate cluster '%s' (%s)" % (name, uuid),
                             lambda c: c.clusters.delete(uuid),
                             on_error=lambda e: None if http_status(e) == 404 else RAISE)
            uuid = mg.object_id(keeper)
            changed = False
            cluster = self.get_cluster(uuid)

        if p['wait']:
            cluster = self.wait_create(uuid, template, ours=changed)
        return self.result(changed, cluster, template, before={}, after=after)

    def wait_create(self, uuid, template, ours=True):
        """Wait for CREATE_COMPLETE; on CREATE_FAILED apply on_create_failure to a cluster of this run.

        `ours` is False for the keeper of a create race: another run created it,
        and that run (or its owner) decides what happens to it.
        """
        name = self.params['name']
        cluster, err = self.wait_cluster(
            uuid, "cluster '%s' create" % name,
            done=lambda c: c is not None and mg.status_family(mg.field(c, 'status')) == mg.COMPLETE,
            failed=lambda c: c is None or mg.status_family(mg.field(c, 'status')) == mg.FAILED)
        if err is None:
            return cluster
        if cluster is None and self.not_yet_seen(uuid):
            # The wait ended inside Magnum's window between the 202 and the stored row.
            self.fail_json(msg="Timed out after %.0f s waiting for cluster '%s' (%s) to be created; Magnum accepted "
                               "it but does not show it yet (CREATE_IN_PROGRESS). Magnum keeps working on it: rerun "
                               "to keep waiting, or raise timeout." % (err.elapsed, name, uuid),
                           plan=self.plan, waited=self.waited())
        if cluster is None:
            self.fail_json(msg="Cluster '%s' (%s) disappeared while it was being created" % (name, uuid),
                           plan=self.plan, waited=self.waited())
        if mg.status_family(mg.field(cluster, 'status')) != mg.FAILED:
            self.fail_status(cluster, "Timed out after %.0f s waiting for cluster '%s' (%s) to be created; it is "
                                      "still %s. Magnum keeps working on it: rerun to keep waiting, or raise "
                                      "timeout." % (err.elapsed, name, uuid, mg.field(cluster, 'status')), template)
        # Read it again for faults: the list of failed resources is on the detail view.
        cluster = self.get_cluster(uuid) or cluster
        msg = "Cluster '%s' (%s) failed to create: %s" % (
            name, uuid, mg.field(cluster, 'status_reason') or mg.field(cluster, 'status'))
        if not ours:
            msg += ('. Another run created this cluster at the same time, so this run did not delete it '
                    '(on_create_failure applies only to a cluster this run created); delete it (state=absent) '
                    'before creating it again.')
        elif self.params['on_create_failure'] == 'delete':
            self.magnum_call('delete', "failed cluster '%s' (%s)" % (name, uuid),
                             lambda c: c.clusters.delete(uuid),
                             on_error=lambda e: None if http_status(e) == 404 else RAISE)
            gone, derr = self.wait_cluster(uuid, "failed cluster '%s' delete" % name,
                                           done=lambda c: c is None,
                                           failed=lambda c: mg.field(c, 'status') == 'DELETE_FAILED',
                                           timeout=max(60.0, self.remaining()))
            if derr is None:
                msg += '. The failed cluster was deleted (on_create_failure=delete); fix the cause and rerun.'
            else:
                msg += ('. Deleting the failed cluster did not finish (%s); it may need deleting by hand.'
                        % (mg.field(gone, 'status') or derr))
        else:
            msg += '. The failed cluster was kept (on_create_failure=keep); delete it before creating it again.'
        self.fail_status(cluster, msg, template)

    # ---- update

    def compute_plan(self, cluster):
        """Resolve the inputs against an existing cluster; fail on what Magnum cannot change."""
        p = self.params
        name = mg.field(cluster, 'name')
        template = None
        desired = {'merge_labels': p['merge_labels'], 'labels': self.labels}
        if p['cluster_template']:
            template = self.find_template(p['cluster_template'], 'cluster_template')
            desired['cluster_template_id'] = mg.object_id(template)
        for key in ('master_count', 'node_count', 'floating_ip_enabled', 'master_lb_enabled',
                    'docker_volume_size'):
            desired[key] = p[key]
        desired['nodes_to_remove'] = p['nodes_to_remove']
        # Resolve a name-or-id only when it is not literally what Magnum stored.
        for key, option, resolver in (('flavor_id', 'flavor', self.resolve_flavor),
                                      ('master_flavor_id', 'master_flavor', self.resolve_flavor),
                                      ('keypair', 'keypair', self.resolve_keypair),
                                      ('fixed_network', 'fixed_network', self.resolve_network),
                                      ('fixed_subnet', 'fixed_subnet', self.resolve_subnet)):
            value = p[option]
            if value is None:
                continue
            if value == mg.field(cluster, key):
                desired[key] = [value]
            else:
                desired[key] = self.spellings(resolver(value, option))

        current = mg.to_dict(cluster)
        self.default_group = self.workers_before = None
        if p['node_count'] is not None:
            self.workers_before = current['node_count'] = self.default_workers(cluster)
        plan = mg.plan_cluster_changes(current, desired)
        self.plan.update(plan)
        self.plan['action'] = 'update' if (plan['resize'] is not None or plan['upgrade']) else 'none'
        if plan['rejected']:
            self.fail_json(msg=mg.describe_rejections('cluster', name, plan['rejected']),
                           plan=self.plan, cluster=mg.summarize_cluster(cluster, template))
        return plan, template

    def default_worker_group(self, cluster):
        """The default worker nodegroup (list view), or None before nodegroups (1.9)."""
        if not self.magnum_supports(mg.MV_NODEGROUPS):
            return None
        groups = self.list_nodegroups(mg.object_id(cluster), missing_ok=True)
        default = [g for g in groups if mg.field(g, 'is_default') and mg.field(g, 'role') != 'master']
        return default[0] if default else None

    def default_workers(self, cluster):
        """Workers in the default nodegroup: what the node_count option means.

        Magnum's cluster node_count adds up every worker nodegroup, so a
        cluster with a GPU nodegroup reports more nodes than its default group has.
        """
        self.default_group = self.default_worker_group(cluster)
        if self.default_group is not None:
            return mg.field(self.default_group, 'node_count')
        return mg.field(cluster, 'node_count')

    def update(self, cluster):
        p = self.params
        plan, template = self.compute_plan(cluster)
        if mg.is_busy(mg.field(cluster, 'status')) and not self.check_mode:
            if self.plan['action'] == 'none' and not p['wait']:
                # Nothing to change and the caller does not want to wait: report as is.
                return self.result(False, cluster, template or self.get_template(
                    mg.field(cluster, 'cluster_template_id')))
            # Another operation (maybe another run's create) is under way: wait
            # for it instead of failing or sending a conflicting request.
            cluster = self.settle(cluster, 'checking it against the wanted state')
            if cluster is None:
                return self.create()
            if mg.field(cluster, 'status') not in ('CREATE_FAILED', 'DELETE_FAILED'):
                plan, template = self.compute_plan(cluster)

        name = mg.field(cluster, 'name')
        uuid = mg.object_id(cluster)
        status = mg.field(cluster, 'status')
        if mg.status_family(status) == mg.FAILED:
            # The list view has no faults: read the detail for the message.
            cluster = self.get_cluster(uuid) or cluster
            if status in ('CREATE_FAILED', 'DELETE_FAILED'):
                self.fail_failed(cluster, 'Delete it (state=absent) and create it again.')
            if self.plan['action'] == 'none':
                # Magnum records the wanted size, yet the change that got there failed.
                self.fail_failed(cluster, 'Its settings already match the wanted ones, so this run has no '
                                          'change that could repair it: fix the cause, then change the cluster '
                                          '(for example resize it back) or delete it and create it again.')
            self.warn("Cluster '%s' is %s (%s); the wanted change is tried as its repair."
                      % (name, status, mg.field(cluster, 'status_reason') or 'no reason given'))

        if self.plan['action'] == 'none':
            if template is None:
                template = self.get_template(mg.field(cluster, 'cluster_template_id'))
            return self.result(False, cluster, template)

        self.check_update_possible(cluster, plan)
        before = self.view(cluster)
        if p['node_count'] is not None:
            before['node_count'] = self.workers_before
        after = dict(before)
        if plan['resize'] is not None:
            after['node_count'] = plan['resize']
        if plan['upgrade']:
            after['cluster_template_id'] = plan['upgrade']
            after['cluster_template_name'] = mg.field(template, 'name')
        if self.check_mode:
            return self.result(True, cluster, template, before=before, after=after)

        steps = []
        shrinking = plan['resize'] is not None and plan['resize'] < (self.workers_before or 0)
        if plan['resize'] is not None and shrinking:
            steps.append(self.do_resize)
        if plan['upgrade']:
            steps.append(self.do_upgrade)
        if plan['resize'] is not None and not shrinking:
            steps.append(self.do_resize)
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            cluster = step(cluster, plan, wait=p['wait'] or not last)
        if template is None:
            template = self.get_template(mg.field(cluster, 'cluster_template_id'))
        return self.result(True, cluster, template, before=before, after=after)

    def check_update_possible(self, cluster, plan):
        """Every check that can fail, before the first change."""
        name = mg.field(cluster, 'name')
        if plan['upgrade']:
            self.require_magnum_version(mg.MV_UPGRADE, 'upgrade', "cluster '%s'" % name)
        if plan['resize'] is None:
            return
        new = plan['resize']
        current = self.workers_before or 0
        if plan['nodes_to_remove'] and len(plan['nodes_to_remove']) > current - new:
            raise mg.MagnumInputError(
                'nodes_to_remove lists %d nodes but shrinking cluster %s from %d to %d nodes removes only %d'
                % (len(plan['nodes_to_remove']), name, current, new, current - new))
        if new < current:
            group = mg.field(self.default_group, 'name') if self.default_group is not None else 'default-worker'
            plan['nodes_to_remove'] = self.plan['nodes_to_remove'] = self.resolve_nodes_to_remove(
                mg.object_id(cluster), group, plan['nodes_to_remove'], current - new, "cluster '%s'" % name)
        if new == 0:
            self.require_magnum_version(mg.MV_ZERO_NODES, 'resize', "cluster '%s' to 0 nodes" % name)
        if not self.magnum_supports(mg.MV_RESIZE) and plan['nodes_to_remove']:
            self.require_magnum_version(mg.MV_RESIZE, 'remove chosen nodes from', "cluster '%s'" % name)
        if self.default_group is not None:
            # The list view has no min/max counts: read the group itself.
            g = self.get_nodegroup(mg.object_id(cluster), mg.object_id(self.default_group)) or self.default_group
            try:
                mg.check_counts(new, mg.field(g, 'min_node_count'), mg.field(g, 'max_node_count'),
                                what="the default nodegroup '%s' of cluster '%s'" % (mg.field(g, 'name'), name))
            except mg.MagnumInputError as err:
                raise mg.MagnumInputError('%s (option node_count). Change the limits with '
                                          'hpcops.coe.cluster_nodegroup first.' % err)

    def _update_watch(self, before):
        """(done, failed) predicates for a resize/upgrade of `before`.

        Magnum's conductor stores a resize's new node_count before it marks the
        cluster UPDATE_IN_PROGRESS, so the old *_COMPLETE with the new count is
        not the end of this change. Either status counts only once this change
        began: the cluster was seen busy, or its updated_at moved on from the
        value before the request (the change ran between two polls). A
        COMPLETE after that is done even if another nodegroup moved node_count
        meanwhile; an UPDATE_FAILED left over from an earlier change is not
        this one failing.
        """
        seen = {'busy': False}
        before_updated = mg.field(before, 'updated_at')

        def began(c):
            if mg.is_busy(mg.field(c, 'status')):
                seen['busy'] = True
            return seen['busy'] or mg.field(c, 'updated_at') != before_updated

        def done(c):
            if c is None:
                return False
            return began(c) and mg.status_family(mg.field(c, 'status')) == mg.COMPLETE

        def failed(c):
            if c is None:
                return True
            return began(c) and mg.status_family(mg.field(c, 'status')) == mg.FAILED
        return done, failed

    def _after_update(self, cluster, uuid, what, wait):
        if not wait:
            return self.get_cluster(uuid) or cluster
        done, failed = self._update_watch(cluster)
        last, err = self.wait_cluster(uuid, what, done=done, failed=failed)
        if err is not None:
            if last is not None and mg.status_family(mg.field(last, 'status')) == mg.FAILED:
                last = self.get_cluster(uuid) or last
                self.fail_status(last, '%s failed: %s' % (what, mg.field(last, 'status_reason') or mg.field(last, 'status')))
            self.fail_status(last, 'Timed out after %.0f s waiting for %s; the cluster is %s. Rerun to keep waiting.'
                             % (err.elapsed, what, mg.field(last, 'status')))
        return last

    def _when_busy(self, uuid, why, latest):
        # Another run started an operation between our check and our request.
        # Its end moves updated_at on: keep the settled cluster in latest['cluster']
        # so that the wait compares with it and not with the read before that operation.
        def settle_again():
            current = self.get_cluster(uuid)
            if current is None:
                self.fail_json(msg='Cluster %s was deleted by someone else before %s' % (uuid, why))
            latest['cluster'] = self.settle(current, why) or current
            if mg.status_family(mg.field(latest['cluster'], 'status')) == mg.FAILED:
                # Not busy but failed: Magnum refuses changes to it, and waiting will not help.
                self.fail_failed(latest['cluster'], 'Magnum refuses %s while it is in this status; repair the '
                                                    'cause outside Magnum (or delete the cluster and create it '
                                                    'again).' % why)
        return settle_again

    def do_resize(self, cluster, plan, wait):
        uuid = mg.object_id(cluster)
        name = mg.field(cluster, 'name')
        what = "cluster '%s' resize to %d nodes" % (name, plan['resize'])
        latest = {'cluster': cluster}
        when_busy = self._when_busy(uuid, 'resizing it', latest)
        if self.magnum_supports(mg.MV_RESIZE):
            self.magnum_call('resize', "cluster '%s'" % name,
                             lambda c: c.clusters.resize(uuid, plan['resize'],
                                                         nodes_to_remove=plan['nodes_to_remove'] or []),
                             min_version=mg.MV_RESIZE, when_busy=when_busy)
        else:
            # Magnum before 1.7 resizes through a node_count PATCH.
            self.magnum_call('resize', "cluster '%s'" % name,
                             lambda c: c.clusters.update(uuid, [{'op': 'replace', 'path': '/node_count',
                                                                 'value': plan['resize']}]),
                             when_busy=when_busy)
        return self._after_update(latest['cluster'], uuid, what, wait)

    def do_upgrade(self, cluster, plan, wait):
        uuid = mg.object_id(cluster)
        name = mg.field(cluster, 'name')
        what = "cluster '%s' upgrade" % name
        latest = {'cluster': cluster}
        self.magnum_call('upgrade', "cluster '%s' to template %s" % (name, plan['upgrade']),
                         lambda c: c.clusters.upgrade(uuid, plan['upgrade'],
                                                      max_batch_size=self.params['max_batch_size']),
                         min_version=mg.MV_UPGRADE, when_busy=self._when_busy(uuid, 'upgrading it', latest))
        return self._after_update(latest['cluster'], uuid, what, wait)


def main():
    module = ClusterModule()
    module()


if __name__ == '__main__':
    main()
