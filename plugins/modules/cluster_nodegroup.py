#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: cluster_nodegroup
short_description: Manage nodegroups of an OpenStack Magnum cluster
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Creates, resizes and deletes a nodegroup of a Magnum cluster, for example a group of GPU
    workers on a GPU bare-metal flavor next to the default workers.
  - Changes C(min_node_count) and C(max_node_count) in place, and resizes with Magnum's resize
    action (removing chosen nodes when shrinking).
  - Magnum's rules are checked before anything is sent, and the error explains them.
    A nodegroup cannot have the C(master) role. The default nodegroups cannot be deleted.
    The node count must stay within the group's min and max. Empty groups need API
    microversion 1.10. Flavor, image, role and labels are fixed once the group exists.
  - Needs Magnum API microversion 1.9 or later. While the cluster is busy, or has no API
    address yet, the module waits for it (within I(timeout)) before it changes the group.
options:
  cluster:
    description:
      - Name or UUID of the cluster.
    required: true
    type: str
  name:
    description:
      - Name (or UUID) of the nodegroup. Unique within the cluster.
    required: true
    type: str
  state:
    description:
      - C(present) creates or resizes the nodegroup, C(absent) deletes it.
      - A nodegroup already being deleted (C(DELETE_IN_PROGRESS)) is not deleted again; the module
        reports no change and, with I(wait=true), waits until it is gone.
    choices: [present, absent]
    default: present
    type: str
  role:
    description:
      - Role of the nodes; Kubernetes drivers label the nodes with it. Fixed at creation.
      - C(master) is refused, as Magnum refuses it. Defaults to C(worker) on creation.
    type: str
  flavor:
    description:
      - Nova flavor (name or ID) of the nodes. Defaults to the cluster's worker flavor on creation.
    aliases: [flavor_id]
    type: str
  image:
    description:
      - Glance image (name or ID) of the nodes. Defaults to the cluster template's image.
    aliases: [image_id]
    type: str
  node_count:
    description:
      - Number of nodes. Magnum's default on creation is 1. C(0) needs microversion 1.10.
    type: int
  min_node_count:
    description:
      - Lowest node count autoscaling and resizes may reach.
    type: int
  max_node_count:
    description:
      - Highest node count autoscaling and resizes may reach.
    type: int
  nodes_to_remove:
    description:
      - Server names or IDs of nodes of the group to remove when I(node_count) shrinks it; the module passes
        their IDs to Magnum. A name or ID that is not a node of the group fails before any change.
      - A shrink that names no nodes lets the driver choose them, with a warning.
    type: list
    elements: str
    default: []
  labels:
    description:
      - Magnum labels of the nodegroup, sent as strings (booleans as C(true)/C(false)). Fixed at creation.
    type: dict
  merge_labels:
    description:
      - Add I(labels) to the cluster's labels instead of replacing them.
    type: bool
    default: true
  docker_volume_size:
    description:
      - Size in GB of each node's container storage volume. Fixed at creation.
    type: int
  on_create_failure:
    description:
      - What to do with a nodegroup that this run created and that ended in C(CREATE_FAILED)
        (with I(wait=true)).
      - C(delete) deletes it (after reading its C(status_reason)) and waits until it is gone, so no
        half-created nodegroup is left behind and a rerun creates it again.
      - C(keep) leaves it for inspection. Delete it (I(state=absent)) before creating it again.
      - A nodegroup that another run created at the same moment is never deleted by this run.
    choices: [delete, keep]
    default: delete
    type: str
  timeout:
    description:
      - How long the module waits in total, in seconds.
    type: int
    default: 3600
  wait:
    description:
      - Whether to wait until the nodegroup is created, resized or deleted.
    type: bool
    default: true
requirements:
  - python-magnumclient >= 4.0.0
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The nodegroup before and after.
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: GPU workers on bare metal
  hpcops.coe.cluster_nodegroup:
    cloud: mycloud
    cluster: hpc-k8s
    name: gpu-a100
    flavor: bm.gpu
    node_count: 2
    min_node_count: 0
    max_node_count: 8
    labels:
      gpu: nvidia-a100

- name: Scale the GPU group to zero
  hpcops.coe.cluster_nodegroup:
    cloud: mycloud
    cluster: hpc-k8s
    name: gpu-a100
    node_count: 0

- name: Remove the GPU group
  hpcops.coe.cluster_nodegroup:
    cloud: mycloud
    cluster: hpc-k8s
    name: gpu-a100
    state: absent
'''

RETURN = r'''
nodegroup:
  description: The nodegroup after the change (before it, in check mode).
  returned: when I(state=present)
  type: dict
  contains:
    id:
      description: UUID of the nodegroup.
      type: str
    name:
      description: Name.
      type: str
    role:
      description: Role of the nodes.
      type: str
    is_default:
      description: Whether it is one of the cluster's default groups.
      type: bool
    status:
      description: Magnum status.
      type: str
    status_reason:
      description: Magnum's explanation.
      type: str
    flavor_id:
      description: Flavor.
      type: str
    image_id:
      description: Image.
      type: str
    node_count:
      description: Number of nodes.
      type: int
    min_node_count:
      description: Lower limit.
      type: int
    max_node_count:
      description: Upper limit (null when unbounded).
      type: int
    node_addresses:
      description: Addresses of the nodes (empty with Cluster-API drivers).
      type: list
      elements: str
    labels:
      description: Labels.
      type: dict
cluster_id:
  description: UUID of the cluster.
  returned: always
  type: str
plan:
  description: What was (or would be) done.
  returned: always
  type: dict
waited:
  description: Duration, poll count and status transitions of each wait.
  returned: always
  type: list
  elements: dict
status_reason:
  description: Magnum's reason when the nodegroup ended in a failed status.
  returned: on failure of a create, resize, update or delete
  type: str
nodegroup_deleted:
  description:
    - Whether the nodegroup that failed to create was deleted again (I(on_create_failure=delete)
      and the delete finished).
  returned: when a nodegroup this run created ended in C(CREATE_FAILED)
  type: bool
'''

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.openstack import (
    RAISE,
    CoeOpenStackModule,
    http_status,
)


def _limit(value, default):
    return default if value is None else value


class ClusterNodegroupModule(CoeOpenStackModule):
    argument_spec = dict(
        cluster=dict(required=True),
        name=dict(required=True),
        state=dict(default='present', choices=['present', 'absent']),
        role=dict(),
        flavor=dict(aliases=['flavor_id']),
        image=dict(aliases=['image_id']),
        node_count=dict(type='int'),
        min_node_count=dict(type='int'),
        max_node_count=dict(type='int'),
        nodes_to_remove=dict(type='list', elements='str', default=[]),
        labels=dict(type='dict'),
        merge_labels=dict(type='bool', default=True),
        docker_volume_size=dict(type='int'),
        on_create_failure=dict(default='delete', choices=['delete', 'keep']),
        timeout=dict(type='int', default=3600),
    )
    module_kwargs = dict(supports_check_mode=True)

    def validate_input(self):
        p = self.params
        if p['role'] == 'master':
            raise mg.MagnumInputError(
                "role 'master' is not allowed: Magnum creates the control plane with the cluster and refuses "
                "extra master nodegroups. Use a worker role (e.g. 'worker' or 'gpu').")
        mg.check_counts(p['node_count'], p['min_node_count'], p['max_node_count'], "nodegroup '%s'" % p['name'])
        if p['docker_volume_size'] is not None and p['docker_volume_size'] < 1:
            raise mg.MagnumInputError('docker_volume_size must be 1 (GB) or more, got %d' % p['docker_volume_size'])
        if p['nodes_to_remove'] and p['node_count'] is None:
            raise mg.MagnumInputError('nodes_to_remove needs node_count: the count the nodegroup shrinks to')
        self.labels = mg.normalize_labels(p['labels'])

    def run(self):
        self.validate_input()
        self.plan = {'action': 'none', 'resize': None, 'nodes_to_remove': [], 'patch': [], 'rejected': []}
        cluster = self.find_cluster(self.params['cluster'], option='cluster')
        self.require_magnum_version(mg.MV_NODEGROUPS, 'manage nodegroups of', "cluster '%s'" % self.params['cluster'])
        self.cluster_uuid = mg.object_id(cluster)
        self.cluster = cluster
        group = self.find_group()
        if self.params['state'] == 'absent':
            return self.absent(group)
        if group is None:
            return self.create()
        return self.update(group)

    # ---- helpers

    def find_group(self):
        name = self.params['name']
        groups = self.list_nodegroups(self.cluster_uuid)
        for g in groups:
            if name in (mg.field(g, 'uuid'), mg.field(g, 'name')):
                return self.get_group(mg.object_id(g)) or g
        return None

    def get_group(self, ident):
        return self.get_nodegroup(self.cluster_uuid, ident)

    def result(self, changed, group=None, before=None, after=None, **extra):
        res = dict(changed=changed, cluster_id=self.cluster_uuid, plan=self.plan, waited=self.waited())
        if group is not None:
            res['nodegroup'] = mg.summarize_nodegroup(group)
        if self.ansible._diff and (before is not None or after is not None):
            res['diff'] = dict(before=before or {}, after=after or {})
        res.update(extra)
        return res

    @staticmethod
    def view(group):
        if group is None:
            return {}
        keys = ('name', 'role', 'flavor_id', 'image_id', 'node_count', 'min_node_count', 'max_node_count',
                'labels', 'docker_volume_size', 'status')
        return dict((k, mg.field(group, k)) for k in keys)

    def fail_group(self, group, msg, **extra):
        self.fail_json(msg=msg, nodegroup=mg.summarize_nodegroup(group) if group else None,
                       status_reason=mg.field(group, 'status_reason'), cluster_id=self.cluster_uuid,
                       plan=self.plan, waited=self.waited(), **extra)

    def refresh_ready(self, why):
        """Read the cluster again and wait until it is ready (after Magnum said it is busy)."""
        self.cluster = self.get_cluster(self.cluster_uuid) or self.cluster
        return self.cluster_ready(why)

    def cluster_ready(self, why):
        """Wait until the cluster is not busy and has an API address (Magnum answers 409 before)."""
        cluster = self.cluster
        name = mg.field(cluster, 'name')
        if not mg.is_busy(mg.field(cluster, 'status')) and mg.field(cluster, 'api_address'):
            return cluster
        last, err = self.wait_until(
            "cluster '%s' ready for %s" % (name, why),
            fetch=lambda: self.get_cluster(self.cluster_uuid),
            is_done=lambda c: c is None or (not mg.is_busy(mg.field(c, 'status')) and bool(mg.field(c, 'api_address'))),
            is_failed=lambda c: mg.field(c, 'status') in ('CREATE_FAILED', 'DELETE_IN_PROGRESS', 'DELETE_FAILED'),
            status_of=lambda c: 'gone' if c is None else mg.field(c, 'status'))
        if last is None:
            self.fail_json(msg="Cluster '%s' was deleted while waiting to %s" % (name, why))
        if err is not None:
            self.fail_json(msg="Cannot %s: cluster '%s' is %s%s. Nothing was changed." % (
                why, name, mg.field(last, 'status'),
                '' if mg.field(last, 'api_address') else ' and has no API address yet (Magnum answers 409 until it has one)'),
                status_reason=mg.field(last, 'status_reason'), cluster_id=self.cluster_uuid,
                waited=self.waited())
        self.cluster = last
        return last

    def wait_group(self, uuid, what, done, failed):
        return self.wait_until(
            what, fetch=lambda: self.get_group(uuid), is_done=done, is_failed=failed,
            status_of=lambda g: 'gone' if g is None else mg.field(g, 'status'))

    def settle_group(self, group, why):
        if not mg.is_busy(mg.field(group, 'status')):
            return group
        last, err = self.wait_group(
            mg.object_id(group), "nodegroup '%s' %s (%s)" % (mg.field(group, 'name'), mg.field(group, 'status'), why),
            done=lambda g: g is None or not mg.is_busy(mg.field(g, 'status')), failed=None)
        if err is not None:
            self.fail_group(last, "Nodegroup '%s' is still %s after %.0f s; nothing was changed."
                            % (mg.field(group, 'name'), mg.field(last, 'status'), err.elapsed))
        return last

    # ---- absent

    def absent(self, group):
        if group is None:
            return self.result(False)
        name = mg.field(group, 'name')
        if mg.field(group, 'is_default') or mg.field(group, 'role') == 'master':
            raise mg.MagnumInputError(
                "nodegroup '%s' is a default nodegroup of cluster '%s' (role %s): Magnum deletes it only with the "
                "cluster. Resize it instead, or delete the cluster." % (
                    name, mg.field(self.cluster, 'name'), mg.field(group, 'role')))
        uuid = mg.object_id(group)
        if mg.is_deleting(mg.field(group, 'status')):
            # Someone else's delete is under way: not this run's change, so report
            # none (also in check mode) and only wait for it.
            if self.params['wait'] and not self.check_mode:
                self.wait_group_deleted(uuid, name)
            return self.result(False)
        self.plan['action'] = 'delete'
        before = self.view(group)
        if self.check_mode:
            return self.result(True, before=before, after={})
        group = self.settle_group(group, 'deleting it')
        if group is None:
            # Someone else deleted it while it settled.
            return self.result(False)
        self.delete_group(uuid, name)
        if self.params['wait']:
            self.wait_group_deleted(uuid, name)
        return self.result(True, before=before, after={})

    def delete_group(self, uuid, name):
        self.cluster_ready('delete nodegroup %s' % name)
        self.magnum_call('delete', "nodegroup '%s' of cluster '%s'" % (name, mg.field(self.cluster, 'name')),
                         lambda c: c.nodegroups.delete(self.cluster_uuid, uuid),
                         min_version=mg.MV_NODEGROUPS,
                         on_error=lambda e: None if http_status(e) == 404 else RAISE,
                         when_busy=lambda: self.refresh_ready('delete nodegroup %s' % name))

    def wait_group_deleted(self, uuid, name, fail=True):
        """Wait until the group is gone; returns (last group, error) when `fail` is False."""
        last, err = self.wait_group(uuid, "nodegroup '%s' delete" % name, done=lambda g: g is None,
                                    failed=lambda g: mg.field(g, 'status') == 'DELETE_FAILED')
        if err is not None and fail:
            self.fail_group(last, "Nodegroup '%s' delete did not finish: %s (%s)" % (
                name, mg.field(last, 'status_reason') or err, mg.field(last, 'status')))
        return last, err

    # ---- create

    def create(self):
        p = self.params
        name = p['name']
        mg.validate_name(name, 'nodegroup')
        body = dict(name=name, role=p['role'] or 'worker')
        for key in ('node_count', 'min_node_count', 'max_node_count', 'docker_volume_size'):
            if p[key] is not None:
                body[key] = p[key]
        if p['flavor']:
            body['flavor_id'] = self.resolve_flavor(p['flavor'], 'flavor')['id']
        if p['image']:
            body['image_id'] = self.resolve_image(p['image'], 'image')['id']
        if self.labels is not None:
            body['labels'] = self.labels
            body['merge_labels'] = p['merge_labels']
        if p['node_count'] is not None:
            # Magnum's defaults: node_count 1, min_node_count 0 (1 before 1.10), max unbounded.
            mg.check_counts(p['node_count'], p['min_node_count'], p['max_node_count'], "nodegroup '%s'" % name)
        elif p['min_node_count'] is not None and p['min_node_count'] > 1:
            raise mg.MagnumInputError('min_node_count %d is above the node_count 1 Magnum gives a new nodegroup; '
                                      'set node_count too' % p['min_node_count'])
        if p['node_count'] == 0 or p['min_node_count'] == 0:
            self.require_magnum_version(mg.MV_ZERO_NODES, 'create', "nodegroup '%s' that may be empty" % name)
        self.plan['action'] = 'create'
        after = dict(body)
        after.pop('merge_labels', None)
        if self.check_mode:
            return self.result(True, before={}, after=after)

        self.cluster_ready('create nodegroup %s' % name)
        conflict = []

        def on_error(exc):
            if http_status(exc) == 409:
                conflict.append(exc)
                return None
            return RAISE

        created = self.magnum_call('create', "nodegroup '%s' in cluster '%s'" % (name, mg.field(self.cluster, 'name')),
                                   lambda c: c.nodegroups.create(self.cluster_uuid, **body),
                                   idempotent=False, min_version=mg.MV_NODEGROUPS, on_error=on_error,
                                   when_busy=lambda: self.refresh_ready('create nodegroup %s' % name),
                                   landed=self.find_group)
        changed = True
        if created is None:
            # 409 after retries: another run created the group meanwhile, or the cluster stayed busy.
            existing = self.find_group()
            if existing is None:
                self.fail_json(msg="Cannot create nodegroup '%s' in cluster '%s': Magnum kept answering 409 "
                                   "(conflict): %s" % (name, mg.field(self.cluster, 'name'), conflict[0]))
            self.warn("Nodegroup '%s' was created by another run meanwhile; using it." % name)
            created = existing
            changed = False
        uuid = mg.object_id(created)
        group = created
        if p['wait']:
            group, err = self.wait_group(
                uuid, "nodegroup '%s' create" % name,
                done=lambda g: g is not None and mg.status_family(mg.field(g, 'status')) == mg.COMPLETE,
                failed=lambda g: g is None or mg.status_family(mg.field(g, 'status')) == mg.FAILED)
            if err is not None:
                if group is None:
                    self.fail_json(msg="Nodegroup '%s' (%s) disappeared while it was being created" % (name, uuid),
                                   cluster_id=self.cluster_uuid, plan=self.plan, waited=self.waited())
                if mg.status_family(mg.field(group, 'status')) == mg.FAILED:
                    self.create_failed(group, ours=changed)
                self.fail_group(group, "Timed out after %.0f s waiting for nodegroup '%s' to be created (%s)."
                                % (err.elapsed, name, mg.field(group, 'status')))
        return self.result(changed, group, before={}, after=after)

    def create_failed(self, group, ours):
        """Fail for a nodegroup that ended CREATE_FAILED, deleting it first under on_create_failure=delete.

        Only a group this run created is deleted: one adopted after a 409 race
        belongs to the run that created it.
        """
        name = mg.field(group, 'name')
        uuid = mg.object_id(group)
        status = mg.field(group, 'status')
        msg = "Nodegroup '%s' failed to create: %s" % (name, mg.field(group, 'status_reason') or 'no reason given')
        if not ours:
            self.fail_group(group, msg + ". Another run created it at the same time, so this run did not delete it; "
                                         "delete it with state=absent before trying again.")
        if self.params['on_create_failure'] == 'keep':
            self.fail_group(group, msg + ". It was kept in %s (on_create_failure=keep); delete it with state=absent "
                                         "before trying again." % status, nodegroup_deleted=False)
        # The cluster goes UPDATE_FAILED with the group; a failed cluster is not busy, so this does not block.
        self.delete_group(uuid, name)
        last, err = self.wait_group_deleted(uuid, name, fail=False)
        if err is None:
            msg += '. The failed nodegroup was deleted (on_create_failure=delete); fix the cause and rerun.'
        else:
            msg += ('. Deleting the failed nodegroup did not finish (%s); it may need deleting by hand.'
                    % (mg.field(last, 'status') or err))
        # Report the group as it failed (with its reason), not the deleting one.
        self.fail_group(group, msg, nodegroup_deleted=err is None)

    # ---- update

    def update(self, group):
        p = self.params
        name = mg.field(group, 'name')
        desired = {'labels': self.labels, 'merge_labels': p['merge_labels'], 'role': p['role'],
                   'node_count': p['node_count'], 'min_node_count': p['min_node_count'],
                   'max_node_count': p['max_node_count'], 'docker_volume_size': p['docker_volume_size'],
                   'nodes_to_remove': p['nodes_to_remove']}
        for key, option, resolver in (('flavor_id', 'flavor', self.resolve_flavor),
                                      ('image_id', 'image', self.resolve_image)):
            value = p[option]
            if value is None:
                continue
            desired[key] = [value] if value == mg.field(group, key) else self.spellings(resolver(value, option))
        plan = mg.plan_nodegroup_changes(group, desired)
        self.plan.update(plan)
        if plan['rejected']:
            self.fail_json(msg=mg.describe_rejections('nodegroup', name, plan['rejected']), plan=self.plan,
                           nodegroup=mg.summarize_nodegroup(group), cluster_id=self.cluster_uuid)
        final_min = _limit(p['min_node_count'], mg.field(group, 'min_node_count') or 0)
        final_max = _limit(p['max_node_count'], mg.field(group, 'max_node_count'))
        target = plan['resize'] if plan['resize'] is not None else mg.field(group, 'node_count')
        try:
            mg.check_counts(target, final_min, final_max, "nodegroup '%s'" % name)
        except mg.MagnumInputError as err:
            raise mg.MagnumInputError('%s; set min_node_count/max_node_count to allow it' % err)
        if plan['nodes_to_remove'] and len(plan['nodes_to_remove']) > (mg.field(group, 'node_count') or 0) - target:
            raise mg.MagnumInputError('nodes_to_remove lists %d nodes but shrinking nodegroup %s from %d to %d removes '
                                      'only %d' % (len(plan['nodes_to_remove']), name, mg.field(group, 'node_count'),
                                                   target, mg.field(group, 'node_count') - target))
        current_count = mg.field(group, 'node_count') or 0
        if plan['resize'] is not None and plan['resize'] < current_count:
            plan['nodes_to_remove'] = self.plan['nodes_to_remove'] = self.resolve_nodes_to_remove(
                self.cluster_uuid, name, plan['nodes_to_remove'], current_count - plan['resize'],
                "nodegroup '%s'" % name)
        if plan['resize'] == 0:
            self.require_magnum_version(mg.MV_ZERO_NODES, 'resize', "nodegroup '%s' to 0 nodes" % name)
        if plan['resize'] is not None:
            self.require_magnum_version(mg.MV_RESIZE, 'resize', "nodegroup '%s'" % name)
        if plan['resize'] is None and not plan['patch']:
            if p['wait'] and mg.is_busy(mg.field(group, 'status')) and not self.check_mode:
                group = self.settle_group(group, 'returning it')
            if group is not None and mg.status_family(mg.field(group, 'status')) == mg.FAILED:
                # Magnum records the wanted settings, yet the change that got there failed.
                errors = self.nodes_in_error(self.cluster_uuid, nodegroup=name)
                self.fail_group(group, '%s Its settings already match the wanted ones, so this run has no change '
                                       'that could repair it: fix the cause, then change the nodegroup (for example '
                                       'resize it back) or delete it and create it again.'
                                % mg.describe_failed('nodegroup', name, group, errors), nodes_in_error=errors)
            return self.result(False, group)
        if mg.status_family(mg.field(group, 'status')) == mg.FAILED:
            self.warn("Nodegroup '%s' is %s (%s); the wanted change is tried as its repair."
                      % (name, mg.field(group, 'status'), mg.field(group, 'status_reason') or 'no reason given'))

        self.plan['action'] = 'update'
        before = self.view(group)
        after = dict(before)
        for op in plan['patch']:
            after[op['path'][1:]] = op['value']
        if plan['resize'] is not None:
            after['node_count'] = plan['resize']
        if self.check_mode:
            return self.result(True, group, before=before, after=after)

        group = self.settle_group(group, 'changing it')
        if group is None:
            self.fail_json(msg="Nodegroup '%s' was deleted by someone else meanwhile; nothing was changed." % name)
        cur_min = mg.field(group, 'min_node_count') or 0
        cur_max = mg.field(group, 'max_node_count')
        # Widen the limits, resize, then narrow them: every intermediate state
        # satisfies min <= node_count <= max, which Magnum checks at each step.
        wide_min = min(cur_min, final_min)
        wide_max = None if cur_max is None or final_max is None else max(cur_max, final_max)
        widen = self.limit_patch(group, wide_min, wide_max)
        if widen:
            group = self.apply_patch(group, widen, wait=True)
        narrow_after = plan['resize'] is not None and bool(self.limit_patch(group, final_min, final_max))
        if plan['resize'] is not None:
            group = self.resize(group, plan, wait=p['wait'] or narrow_after)
        narrow = self.limit_patch(group, final_min, final_max)
        if narrow:
            group = self.apply_patch(group, narrow, wait=p['wait'])
        return self.result(True, group, before=before, after=after)

    @staticmethod
    def limit_patch(group, min_count, max_count):
        ops = []
        if min_count != (mg.field(group, 'min_node_count') or 0):
            ops.append({'op': 'replace', 'path': '/min_node_count', 'value': min_count})
        if max_count != mg.field(group, 'max_node_count'):
            ops.append({'op': 'replace', 'path': '/max_node_count', 'value': max_count})
        return ops

    def apply_patch(self, group, patch, wait):
        name = mg.field(group, 'name')
        uuid = mg.object_id(group)
        self.cluster_ready('update nodegroup %s' % name)
        updated = self.magnum_call('update', "nodegroup '%s' of cluster '%s'" % (name, mg.field(self.cluster, 'name')),
                                   lambda c: c.nodegroups.update(self.cluster_uuid, uuid, patch),
                                   min_version=mg.MV_NODEGROUPS,
                                   when_busy=lambda: self.refresh_ready('update nodegroup %s' % name))
        group = self.get_group(uuid) or updated or group
        if wait:
            # Magnum answers 202 and updates the group asynchronously.
            group = self.settle_group(group, 'its min/max update')
            if group is None:
                self.fail_json(msg="Nodegroup '%s' disappeared during its update" % name)
            if mg.status_family(mg.field(group, 'status')) == mg.FAILED:
                self.fail_group(group, "Nodegroup '%s' update of %s failed: %s" % (
                    name, ', '.join(op['path'][1:] for op in patch), mg.field(group, 'status_reason')))
        return group

    def resize(self, group, plan, wait):
        name = mg.field(group, 'name')
        uuid = mg.object_id(group)
        self.cluster_ready('resize nodegroup %s' % name)
        before_updated = mg.field(group, 'updated_at')
        self.magnum_call('resize', "nodegroup '%s' of cluster '%s' to %d nodes" % (
            name, mg.field(self.cluster, 'name'), plan['resize']),
            lambda c: c.clusters.resize(self.cluster_uuid, plan['resize'],
                                        nodes_to_remove=plan['nodes_to_remove'] or [], nodegroup=uuid),
            min_version=mg.MV_RESIZE, when_busy=lambda: self.refresh_ready('resize nodegroup %s' % name))
        if not wait:
            return self.get_group(uuid) or group
        # Magnum answers 202 before its conductor marks the group busy: the old
        # *_COMPLETE (or *_FAILED) read right after the request is not this
        # resize's end. It counts once the group was seen busy or its updated_at
        # moved on from the value before the request (the resize ran between polls).
        seen = {'busy': False}

        def began(g):
            if mg.is_busy(mg.field(g, 'status')):
                seen['busy'] = True
            return seen['busy'] or mg.field(g, 'updated_at') != before_updated

        def done(g):
            return (g is not None and began(g) and mg.status_family(mg.field(g, 'status')) == mg.COMPLETE
                    and mg.field(g, 'node_count') == plan['resize'])

        def failed(g):
            return g is None or (began(g) and mg.status_family(mg.field(g, 'status')) == mg.FAILED)

        last, err = self.wait_group(
            uuid, "nodegroup '%s' resize to %d" % (name, plan['resize']), done=done, failed=failed)
        if err is not None:
            if last is not None and mg.status_family(mg.field(last, 'status')) == mg.FAILED:
                self.fail_group(last, "Nodegroup '%s' resize failed: %s" % (
                    name, mg.field(last, 'status_reason') or mg.field(last, 'status')))
            self.fail_group(last, "Timed out after %.0f s waiting for nodegroup '%s' to resize (%s)."
                            % (err.elapsed, name, mg.field(last, 'status')))
        return last


def main():
    module = ClusterNodegroupModule()
    module()


if __name__ == '__main__':
    main()
