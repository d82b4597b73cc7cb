"""A Magnum cluster driver that behaves like the Cluster-API drivers, over the real Nova.

What the collection sees of a Cluster-API cluster, made real:

* ``stack_id`` is the Cluster API name ``kube-xxxxx``; every nodegroup carries it too;
* machines are servers of the real Nova named ``<stack_id>-control-plane-<set>-<id>`` and
  ``<stack_id>-<nodegroup>-<set>-<id>``, booted from the cluster's flavors (the nodegroup's),
  image, keypair and network (the cluster's fixed network, else one made for the cluster as
  Cluster API does, removed with it);
* the conductor's periodic status sync reads Nova: every machine ACTIVE and counted turns
  ``*_IN_PROGRESS`` into ``*_COMPLETE``; a machine in ERROR (e.g. "No valid host was found")
  gives ``*_FAILED`` with the server's fault as the reason;
* resize up boots machines; resize down removes ``nodes_to_remove`` (server ids or names),
  then the newest machines, and leaves the others alone; upgrade replaces every machine of
  the nodegroup (and the control plane) with a new set from the new template's image;
  delete removes the machines, then the network it made, then the cluster.

Labels set per cluster (or nodegroup) make it slower or failing on purpose:

* ``hpcops_test_delay``: seconds an operation stays in progress at least (default 0);
* ``hpcops_test_fail``: operations that fail, comma-separated, of ``create``, ``update``
  (resize, upgrade, nodegroup changes) and ``delete``; the reason says it was the label.
"""

import random
import string

from oslo_log import log as logging
from oslo_utils import timeutils

from magnum.common import clients
from magnum.drivers.common import driver
from magnum import objects
from magnum.objects import fields

LOG = logging.getLogger(__name__)

CONTROL_PLANE = 'control-plane'
DELAY_LABEL = 'hpcops_test_delay'
FAIL_LABEL = 'hpcops_test_fail'
NETWORK_PREFIX = 'k8s-clusterapi-cluster-magnum-system-'
STATUS = fields.ClusterStatus
OPERATIONS = {
    STATUS.CREATE_IN_PROGRESS: ('CREATE', 'create'),
    STATUS.UPDATE_IN_PROGRESS: ('UPDATE', 'update'),
    STATUS.DELETE_IN_PROGRESS: ('DELETE', 'delete'),
}


def _chars(n):
    return ''.join(random.choice(string.ascii_lowercase + string.digits) for _i in range(n))


def _part(nodegroup):
    return CONTROL_PLANE if nodegroup.role == 'master' else nodegroup.name


class CapiTestDriver(driver.Driver):

    @property
    def provides(self):
        return [{'server_type': server_type, 'os': os_distro, 'coe': 'kubernetes'}
                for server_type in ('vm', 'bm') for os_distro in ('ubuntu', 'flatcar', 'rockylinux')]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _nova(context):
        """Magnum's compute client: openstacksdk's compute proxy on the context's session."""
        return clients.OpenStackClients(context).nova()

    @staticmethod
    def _servers(nova, cluster):
        """The cluster's machines, as Nova lists them (admin: every project, then the cluster's)."""
        return [s for s in nova.servers(details=True, all_projects=True, project_id=cluster.project_id,
                                        name='^%s-' % cluster.stack_id)
                if s.name.startswith(cluster.stack_id + '-')]

    @staticmethod
    def _nodegroups(context, cluster):
        return objects.NodeGroup.list(context, cluster.uuid)

    @staticmethod
    def _members(servers, cluster, nodegroups, nodegroup):
        """Servers of one nodegroup: name prefix, longest nodegroup name first (names may share a start)."""
        prefixes = sorted(((cluster.stack_id + '-' + _part(ng) + '-', ng.uuid) for ng in nodegroups),
                          key=lambda p: -len(p[0]))
        out = []
        for server in servers:
            for prefix, ng_uuid in prefixes:
                if server.name.startswith(prefix):
                    if ng_uuid == nodegroup.uuid:
                        out.append(server)
                    break
        return out

    @staticmethod
    def _labels(cluster, nodegroup=None):
        labels = dict(cluster.labels or {})
        if nodegroup is not None:
            labels.update(nodegroup.labels or {})
        return labels

    @staticmethod
    def _find_image(context, image):
        return clients.OpenStackClients(context).glance().find_image(image, ignore_missing=False).id

    def _network(self, context, cluster):
        """The cluster's fixed network, else its own (made once, as Cluster API makes one)."""
        neutron = clients.OpenStackClients(context).neutron()
        if cluster.fixed_network:
            return neutron.find_network(cluster.fixed_network, ignore_missing=False).id
        name = NETWORK_PREFIX + cluster.stack_id
        found = neutron.find_network(name)
        if found is not None:
            return found.id
        net = neutron.create_network(name=name)
        neutron.create_subnet(network_id=net.id, ip_version=4, name=name,
                              cidr=(cluster.labels or {}).get('fixed_subnet_cidr', '10.0.0.0/24'))
        return net.id

    def _boot(self, context, cluster, nodegroup, count, image=None):
        if count <= 0:
            return []
        nova = self._nova(context)
        flavor = nova.find_flavor(nodegroup.flavor_id or (
            cluster.master_flavor_id if nodegroup.role == 'master' else cluster.flavor_id), ignore_missing=False).id
        image_id = self._find_image(context, image or nodegroup.image_id)
        network = self._network(context, cluster)
        gen = _chars(5)
        made = []
        for _i in range(count):
            name = '%s-%s-%s-%s' % (cluster.stack_id, _part(nodegroup), gen, _chars(5))
            kwargs = {'networks': [{'uuid': network}],
                      'metadata': {'magnum_cluster': cluster.uuid, 'magnum_nodegroup': nodegroup.name}}
            if cluster.keypair:
                kwargs['key_name'] = cluster.keypair
            made.append(nova.create_server(name=name, image_id=image_id, flavor_id=flavor, **kwargs).id)
        return made

    @staticmethod
    def _delete_servers(nova, servers):
        for server in servers:
            nova.delete_server(server, ignore_missing=True)

    # ------------------------------------------------------------------ cluster operations

    def create_cluster(self, context, cluster, cluster_create_timeout):
        cluster.stack_id = 'kube-' + _chars(5)
        cluster.save()
        for ng in self._nodegroups(context, cluster):
            ng.stack_id = cluster.stack_id
            ng.save()
            self._boot(context, cluster, ng, ng.node_count)

    def update_cluster(self, context, cluster, scale_manager=None, rollback=False):
        worker = cluster.default_ng_worker
        self._resize(context, cluster, worker, worker.node_count, [])

    def resize_cluster(self, context, cluster, resize_manager, node_count, nodes_to_remove, nodegroup=None):
        nodegroup = nodegroup or cluster.default_ng_worker
        self._resize(context, cluster, nodegroup, node_count, nodes_to_remove or [])

    def _resize(self, context, cluster, nodegroup, node_count, nodes_to_remove):
        nova = self._nova(context)
        members = self._members(self._servers(nova, cluster), cluster, self._nodegroups(context, cluster), nodegroup)
        members = [s for s in members if s.task_state != 'deleting']
        if node_count > len(members):
            self._boot(context, cluster, nodegroup, node_count - len(members))
            return
        excess = len(members) - node_count
        chosen = [s for s in members if s.id in nodes_to_remove or s.name in nodes_to_remove][:excess]
        # Then the newest machines, as a MachineDeployment scaled down without a hint.
        rest = sorted((s for s in members if s not in chosen), key=lambda s: s.created_at, reverse=True)
        chosen += rest[:excess - len(chosen)]
        self._delete_servers(nova, chosen)

    def upgrade_cluster(self, context, cluster, cluster_template, max_batch_size, nodegroup, scale_manager=None,
                        rollback=False):
        nova = self._nova(context)
        nodegroups = self._nodegroups(context, cluster)
        servers = self._servers(nova, cluster)
        rolled = [nodegroup] + [ng for ng in nodegroups if ng.role == 'master' and ng.uuid != nodegroup.uuid]
        for ng in rolled:
            old = self._members(servers, cluster, nodegroups, ng)
            ng.image_id = cluster_template.image_id
            ng.status = STATUS.UPDATE_IN_PROGRESS
            ng.save()
            self._boot(context, cluster, ng, ng.node_count, image=cluster_template.image_id)
            self._delete_servers(nova, old)
        cluster.cluster_template_id = cluster_template.uuid
        cluster.coe_version = (cluster_template.labels or {}).get('kube_tag', cluster.coe_version)

    def delete_cluster(self, context, cluster):
        if cluster.stack_id:
            nova = self._nova(context)
            self._delete_servers(nova, self._servers(nova, cluster))

    def create_nodegroup(self, context, cluster, nodegroup):
        nodegroup.stack_id = cluster.stack_id
        nodegroup.save()
        self._boot(context, cluster, nodegroup, nodegroup.node_count)

    def update_nodegroup(self, context, cluster, nodegroup):
        pass

    def delete_nodegroup(self, context, cluster, nodegroup):
        nova = self._nova(context)
        self._delete_servers(nova, self._members(self._servers(nova, cluster), cluster,
                                                 self._nodegroups(context, cluster), nodegroup))

    def create_federation(self, context, federation):
        raise NotImplementedError('federations are not part of the test world')

    def update_federation(self, context, federation):
        raise NotImplementedError('federations are not part of the test world')

    def delete_federation(self, context, federation):
        raise NotImplementedError('federations are not part of the test world')

    def validate_master_resize(self, node_count):
        self.validate_master_size(node_count)

    # ------------------------------------------------------------------ status from Nova

    def update_cluster_status(self, context, cluster, use_admin_ctx=False):
        operation = OPERATIONS.get(cluster.status)
        if operation is None or not cluster.stack_id:
            return
        action, label_op = operation
        nova = self._nova(context)
        servers = self._servers(nova, cluster)
        nodegroups = self._nodegroups(context, cluster)
        labels = self._labels(cluster)
        updated = cluster.updated_at or cluster.created_at
        if updated is not None:
            elapsed = timeutils.delta_seconds(updated.replace(tzinfo=None), timeutils.utcnow())
            if elapsed < float(labels.get(DELAY_LABEL) or 0):
                return
        if label_op in [op.strip() for op in (labels.get(FAIL_LABEL) or '').split(',')]:
            self._finish(cluster, nodegroups, action, 'FAILED', '%s failed: label %s asks so' % (action, FAIL_LABEL))
            return
        if action == 'DELETE':
            if servers:
                return
            self._delete_network(context, cluster)
            for ng in nodegroups:
                ng.destroy()
            cluster.status = STATUS.DELETE_COMPLETE
            cluster.status_reason = 'Cluster deleted'
            cluster.save()
            return
        done = True
        for ng in nodegroups:
            members = self._members(servers, cluster, nodegroups, ng)
            if ng.status == STATUS.DELETE_IN_PROGRESS:
                if members:
                    done = False
                else:
                    ng.destroy()
                continue
            failed = [s for s in members if s.status == 'ERROR']
            if failed:
                reason = '%s failed: machine %s is in ERROR: %s' % (
                    action, failed[0].name, (failed[0].fault or {}).get('message', 'unknown'))
                self._finish(cluster, nodegroups, action, 'FAILED', reason, ng)
                return
            live = [s for s in members if s.task_state != 'deleting']
            if len(members) != ng.node_count or any(s.status != 'ACTIVE' for s in live):
                done = False
            elif ng.status.endswith('_IN_PROGRESS'):
                ng.status = ng.status.replace('_IN_PROGRESS', '_COMPLETE')
                ng.status_reason = None
                ng.save()
        if done:
            self._finish(cluster, nodegroups, action, 'COMPLETE', None)

    @staticmethod
    def _finish(cluster, nodegroups, action, outcome, reason, failed_ng=None):
        for ng in nodegroups:
            if ng.status.endswith('_IN_PROGRESS') and (failed_ng is None or ng.uuid == failed_ng.uuid):
                ng.status = ng.status.replace('_IN_PROGRESS', '_' + outcome)
                ng.status_reason = reason
                ng.save()
        cluster.status = '%s_%s' % (action, outcome)
        cluster.status_reason = reason
        cluster.save()

    def _delete_network(self, context, cluster):
        neutron = clients.OpenStackClients(context).neutron()
        for net in neutron.networks(name=NETWORK_PREFIX + cluster.stack_id, project_id=cluster.project_id):
            for port in neutron.ports(network_id=net.id):
                neutron.delete_port(port, ignore_missing=True)
            neutron.delete_network(net, ignore_missing=True)
