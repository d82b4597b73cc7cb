"""The two simulated Magnum cluster drivers.

* ``HeatDriver`` behaves like Magnum's Heat driver: a stack per cluster (and
  per non-default nodegroup) with ResourceGroups whose members are nested
  stacks holding the OS::Nova::Server; servers are ``<stack>-master-<i>`` and
  ``<stack>-node-<i>``; master/node addresses are filled.
* ``CapiDriver`` behaves like magnum-cluster-api: no Heat stack, ``stack_id``
  is the Cluster API name ``kube-xxxxx``, machines are
  ``<capi>-control-plane-<set>-<id>`` / ``<capi>-<nodegroup>-<set>-<id>``,
  addresses stay empty, and resize/upgrade roll the machines: replacements are
  new servers with only the primary network.

Every operation is asynchronous: the API call flips statuses and creates or
deletes servers at once, and a timer completes (or fails) the operation.
"""

import uuid

from .heat import Resource, Stack

ALLOWED_UPDATE_STATUS = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "RESUME_COMPLETE", "RESTORE_COMPLETE",
                         "ROLLBACK_COMPLETE", "SNAPSHOT_COMPLETE", "CHECK_COMPLETE", "ADOPT_COMPLETE")

HEAT_TEMPLATE_DIR = "file:///usr/lib/python3/dist-packages/magnum/drivers/k8s_fedora_coreos_v1/templates"


def _derived_id(base, what):
    return str(uuid.uuid5(uuid.UUID(base), what))


class Member:
    __slots__ = ("index", "server_id", "stack", "created", "name")

    def __init__(self, index, server_id, name, created, stack=None):
        self.index = index
        self.server_id = server_id
        self.name = name
        self.created = created
        self.stack = stack


class Driver:
    name = "base"
    heat_stacks = False

    def __init__(self, magnum):
        self.magnum = magnum
        self.world = magnum.world

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def nova(self):
        return self.world.nova

    @property
    def neutron(self):
        return self.world.neutron

    def short_id(self):
        return self.world.ids.chars(12)

    def build_time(self, op):
        return min(self.world.timing("server_build"), 0.8 * self.world.timing(op))

    def server(self, member):
        return self.nova.servers.get(member.server_id)

    def fixed_network(self, cluster):
        return cluster.network

    def spawn(self, cluster, ng, index, name, instant=False, build_time=None, primary_only=False):
        nova = self.nova
        flavor = nova.find_flavor(ng.flavor_id)
        image = self.world.glance.find(ng.image_id)
        nets = [{"network": self.fixed_network(cluster)}] if self.fixed_network(cluster) else []
        if not primary_only:
            for extra in self.extra_networks(cluster):
                nets.append({"network": extra})
        server = nova.create_server(
            name, flavor, image, cluster.keypair, nets, cluster.project_id, cluster.user_id,
            metadata=self.server_metadata(cluster, ng), instant=instant,
            owner={"cluster": cluster.uuid, "nodegroup": ng.uuid, "driver": self.name, "role": ng.role},
            build_time=build_time)
        member = Member(index, server.id, name, self.world.now())
        ng.members.append(member)
        if cluster.floating_ip_enabled and self.per_node_fip and server.port_ids:
            port = self.neutron.ports.get(server.port_ids[0])
            if port is not None:
                self.neutron.create_floatingip(cluster.project_id, port)
        return member

    per_node_fip = False

    def extra_networks(self, cluster):
        return []

    def server_metadata(self, cluster, ng):
        return {}

    def remove_member(self, cluster, ng, member):
        server = self.server(member)
        if server is not None:
            for pid in server.port_ids:
                for fip in list(self.neutron.floatingips_of_port(pid)):
                    self.neutron.delete_floatingip(fip["id"])
            self.nova.delete_server(server.id)
        if member in ng.members:
            ng.members.remove(member)
        if member.stack is not None:
            self.world.heat.remove(member.stack.id)

    def ips(self, member, floating):
        server = self.server(member)
        if server is None:
            return []
        ips = self.nova.server_ips(server)
        fixed = [ip for dummy, ip, typ, dummy in ips if typ == "fixed"]
        fl = [ip for dummy, ip, typ, dummy in ips if typ == "floating"]
        if floating and fl:
            return fl[:1]
        return fixed[:1]

    def api_ip(self, cluster):
        if cluster.api_fip:
            return cluster.api_fip["floating_ip_address"]
        masters = cluster.master_ng()
        if masters and masters.members:
            ips = self.ips(masters.members[0], cluster.floating_ip_enabled)
            if ips:
                return ips[0]
        return None

    def failed_servers(self, cluster, ngs=None):
        out = []
        for ng in ngs or cluster.nodegroups:
            for m in ng.members:
                s = self.server(m)
                if s is not None and s.vm_state == "error":
                    out.append((ng, m, s))
        return out

    def schedule(self, cluster, op, fn, *args, delay=None, slot=None):
        """Complete ``fn`` after the op's duration; returns the failure fault consumed, if any.

        The timer lives on ``slot`` (the cluster, or the nodegroup for nodegroup
        operations, which may run side by side). ``delay`` "never" leaves the
        operation in progress for good."""
        slot = slot if slot is not None else cluster
        fault = None
        if op == "create":
            fault = self.world.faults.take("cluster_create_failed", cluster.name)
        elif op == "delete":
            fault = self.world.faults.take("cluster_delete_failed", cluster.name)
        stuck = self.world.faults.take("cluster_stuck", cluster.name, op=op)
        if slot.pending is not None:
            slot.pending.cancel()
        slot.pending = None
        if stuck is not None or delay == "never":
            return fault
        timing = {"create": "cluster_create", "update": "cluster_update", "delete": "cluster_delete",
                  "upgrade": "cluster_update", "ng_create": "nodegroup_create", "ng_delete": "nodegroup_delete",
                  "ng_update": "nodegroup_update"}[op]
        duration = self.world.timing(timing) if delay is None else float(delay)
        slot.pending = self.world.later(duration, self._run, cluster.uuid, slot, fn, fault, args)
        return fault

    def _run(self, cluster_uuid, slot, fn, fault, args):
        cluster = self.magnum.clusters.get(cluster_uuid)
        if cluster is None:
            return
        slot.pending = None
        fn(cluster, fault, *args)

    def busy(self, cluster):
        return cluster.pending is not None or any(ng.pending is not None for ng in cluster.nodegroups)

    def finalize_addresses(self, cluster):
        cluster.api_address = self.magnum.api_address_for(cluster, self.api_ip(cluster))

    def set_healthy(self, cluster):
        cluster.health_status = "HEALTHY"
        reason = {"api": "ok"}
        for ng in cluster.nodegroups:
            if ng.role == "master":
                continue
            for m in ng.members:
                reason["%s.Ready" % m.name] = "True"
        cluster.health_status_reason = reason

    # -- lifecycle entry points used by the API -----------------------------------------------------------
    def create(self, cluster, instant=False, complete_after=None):
        bt = 0 if instant else self.build_time("cluster_create")
        self.prepare(cluster)
        for ng in cluster.nodegroups:
            ng.status = "CREATE_IN_PROGRESS"
            for dummy in range(ng.node_count):
                self.add_member(cluster, ng, instant=instant, build_time=bt)
        if cluster.floating_ip_enabled and (cluster.master_lb_enabled or self.always_lb):
            # the load balancer in front of the API gets its own floating IP
            cluster.api_fip = self.neutron.create_floatingip(cluster.project_id)
        if instant:
            self.complete_create(cluster, None)
        else:
            self.schedule(cluster, "create", self.complete_create, delay=complete_after)

    always_lb = False

    def prepare(self, cluster):
        """Driver-specific set-up before servers exist (stacks, names)."""

    def add_member(self, cluster, ng, instant=False, build_time=None, primary_only=False):
        raise NotImplementedError

    def complete_create(self, cluster, fault):
        now = self.world.now()
        failed = self.failed_servers(cluster)
        if fault is not None or failed:
            reason = (fault.reason if fault is not None and fault.reason else None) or self.failure_reason(cluster, failed, "CREATE")
            cluster.status = "CREATE_FAILED"
            cluster.status_reason = reason
            for ng in cluster.nodegroups:
                if fault is not None or any(f[0] is ng for f in failed):
                    ng.status = "CREATE_FAILED"
                    ng.status_reason = reason
                else:
                    ng.status = "CREATE_COMPLETE"
            self.on_failed(cluster, "CREATE", reason)
        else:
            cluster.status = "CREATE_COMPLETE"
            cluster.status_reason = self.success_reason("CREATE")
            for ng in cluster.nodegroups:
                ng.status = "CREATE_COMPLETE"
                ng.status_reason = self.success_reason("CREATE")
            self.finalize_addresses(cluster)
            cluster.coe_version = cluster.template_coe_version()
            cluster.container_version = "1.12.6" if self.heat_stacks else None
            self.set_healthy(cluster)
            self.on_complete(cluster, "CREATE")
        cluster.updated = now

    def failure_reason(self, cluster, failed, action):
        if failed:
            ng, member, server = failed[0]
            msg = (server.fault or {}).get("message", "Unknown")
            return ("Resource %s failed: ResourceInError: resources.%s.resources[%d].resources.%s: Went to status "
                    "ERROR due to \"Message: %s, Code: 500\"" % (action, self.group_name(ng), member.index,
                                                                 self.server_resource(ng), msg))
        return "Resource %s failed: simulated failure" % action

    def group_name(self, ng):
        return "kube_masters" if ng.role == "master" else "kube_minions"

    def server_resource(self, ng):
        return "kube-master" if ng.role == "master" else "kube-minion"

    def success_reason(self, action):
        return None

    def on_failed(self, cluster, action, reason):
        pass

    def on_complete(self, cluster, action):
        pass

    def begin_update(self, cluster, ng):
        cluster.status = "UPDATE_IN_PROGRESS"
        cluster.status_reason = None
        cluster.updated = self.world.now()
        ng.status = "UPDATE_IN_PROGRESS"
        ng.updated = cluster.updated

    def resize(self, cluster, ng, node_count, nodes_to_remove):
        self.begin_update(cluster, ng)
        self.apply_resize(cluster, ng, node_count, nodes_to_remove or [])
        ng.node_count = node_count
        self.schedule(cluster, "update", self.complete_update, ng.uuid)

    def apply_resize(self, cluster, ng, node_count, nodes_to_remove):
        bt = self.build_time("cluster_update")
        current = list(ng.members)
        removable = [m for m in current if m.server_id in nodes_to_remove]
        excess = len(current) - node_count
        if excess > 0:
            chosen = removable[:excess]
            rest = [m for m in sorted(current, key=lambda m: -m.index) if m not in chosen]
            chosen += rest[:excess - len(chosen)]
            for m in chosen:
                self.remove_member(cluster, ng, m)
        else:
            for dummy in range(-excess):
                self.add_member(cluster, ng, build_time=bt)

    def complete_update(self, cluster, fault, ng_uuid, action="UPDATE"):
        ng = cluster.ng_by_uuid(ng_uuid)
        failed = self.failed_servers(cluster, [ng] if ng else None)
        now = self.world.now()
        if failed:
            reason = self.failure_reason(cluster, failed, action)
            cluster.status = "UPDATE_FAILED"
            cluster.status_reason = reason
            if ng is not None:
                ng.status = "UPDATE_FAILED"
                ng.status_reason = reason
            self.on_failed(cluster, "UPDATE", reason)
        else:
            cluster.status = "UPDATE_COMPLETE"
            cluster.status_reason = self.success_reason("UPDATE")
            if ng is not None:
                ng.status = "UPDATE_COMPLETE"
                ng.status_reason = self.success_reason("UPDATE")
            self.finalize_addresses(cluster)
            self.set_healthy(cluster)
            self.on_complete(cluster, "UPDATE")
        cluster.updated = now
        if ng is not None:
            ng.updated = now

    def upgrade(self, cluster, template, ng, max_batch_size):
        self.begin_update(cluster, ng)
        self.apply_upgrade(cluster, template, ng)
        self.schedule(cluster, "upgrade", self.complete_upgrade, ng.uuid, template.uuid)

    def apply_upgrade(self, cluster, template, ng):
        pass

    def complete_upgrade(self, cluster, fault, ng_uuid, template_uuid):
        template = self.magnum.templates.get(template_uuid)
        ng = cluster.ng_by_uuid(ng_uuid)
        if template is not None:
            if ng is None or ng.is_default:
                cluster.template_id = template.uuid
            if ng is not None:
                ng.version = template.labels.get("kube_tag")
                ng.image_id = template.image_id
            cluster.coe_version = (template.labels.get("kube_tag") or cluster.coe_version)
        self.complete_update(cluster, fault, ng_uuid)

    def delete(self, cluster):
        cluster.status = "DELETE_IN_PROGRESS"
        cluster.status_reason = None
        cluster.updated = self.world.now()
        for ng in cluster.nodegroups:
            ng.status = "DELETE_IN_PROGRESS"
            if ng.pending is not None:
                ng.pending.cancel()
                ng.pending = None
        fault = self.schedule(cluster, "delete", self.complete_delete)
        # A failing delete leaves the servers behind, as a stack whose server
        # deletion failed does; otherwise they go at once.
        self.on_delete_started(cluster, delete_servers=fault is None)

    def on_delete_started(self, cluster, delete_servers=True):
        if delete_servers:
            for ng in cluster.nodegroups:
                for m in ng.members:
                    server = self.server(m)
                    if server is not None:
                        self.nova.delete_server(server.id)

    def complete_delete(self, cluster, fault):
        if fault is not None:
            reason = fault.reason or "Resource DELETE failed: simulated failure"
            cluster.status = "DELETE_FAILED"
            cluster.status_reason = reason
            for ng in cluster.nodegroups:
                ng.status = "DELETE_FAILED"
                ng.status_reason = reason
            self.on_failed(cluster, "DELETE", reason)
            cluster.updated = self.world.now()
            return
        for ng in cluster.nodegroups:
            for m in list(ng.members):
                self.remove_member(cluster, ng, m)
        if cluster.api_fip:
            self.neutron.delete_floatingip(cluster.api_fip["id"])
            cluster.api_fip = None
        self.teardown(cluster)
        self.magnum.forget(cluster)

    def teardown(self, cluster):
        pass

    # nodegroups ---------------------------------------------------------------------------------------------
    def create_nodegroup(self, cluster, ng):
        cluster.status = "UPDATE_IN_PROGRESS"
        cluster.status_reason = None
        ng.status = "CREATE_IN_PROGRESS"
        self.prepare_nodegroup(cluster, ng)
        bt = self.build_time("nodegroup_create")
        for dummy in range(ng.node_count):
            self.add_member(cluster, ng, build_time=bt)
        self.schedule(cluster, "ng_create", self.complete_nodegroup_create, ng.uuid, slot=ng)

    def prepare_nodegroup(self, cluster, ng):
        pass

    def complete_nodegroup_create(self, cluster, fault, ng_uuid):
        ng = cluster.ng_by_uuid(ng_uuid)
        if ng is None:
            return
        failed = self.failed_servers(cluster, [ng])
        now = self.world.now()
        if failed:
            reason = self.failure_reason(cluster, failed, "CREATE")
            ng.status, ng.status_reason = "CREATE_FAILED", reason
            cluster.status, cluster.status_reason = "UPDATE_FAILED", reason
        else:
            ng.status, ng.status_reason = "CREATE_COMPLETE", self.success_reason("CREATE")
            if not self.busy(cluster):
                cluster.status, cluster.status_reason = "UPDATE_COMPLETE", self.success_reason("UPDATE")
            self.set_healthy(cluster)
        self.on_nodegroup_complete(cluster, ng)
        ng.updated = cluster.updated = now

    def on_nodegroup_complete(self, cluster, ng):
        pass

    def delete_nodegroup(self, cluster, ng):
        cluster.status = "UPDATE_IN_PROGRESS"
        cluster.status_reason = None
        ng.status = "DELETE_IN_PROGRESS"
        for m in list(ng.members):
            server = self.server(m)
            if server is not None:
                self.nova.delete_server(server.id)
        self.schedule(cluster, "ng_delete", self.complete_nodegroup_delete, ng.uuid, slot=ng)

    def complete_nodegroup_delete(self, cluster, fault, ng_uuid):
        ng = cluster.ng_by_uuid(ng_uuid)
        if ng is not None:
            for m in list(ng.members):
                self.remove_member(cluster, ng, m)
            self.teardown_nodegroup(cluster, ng)
            cluster.nodegroups.remove(ng)
        if not self.busy(cluster):
            cluster.status, cluster.status_reason = "UPDATE_COMPLETE", self.success_reason("UPDATE")
        cluster.updated = self.world.now()
        self.set_healthy(cluster)

    def teardown_nodegroup(self, cluster, ng):
        pass

    def validate_master_resize(self, node_count):
        raise self.magnum.error(400, "Resizing the master nodegroup is not supported by this driver.")

    def attach_extra(self, cluster, ng, network, count=None):
        """Scenario helper: give members an extra interface as if attached earlier."""
        for m in ng.members[:count]:
            server = self.server(m)
            if server is not None:
                self.nova._commit_attach(server, network, None, None)


# A ResourceGroup's attributes as Heat shows them (resource show): the nested stack's outputs
# behind refs/refs_map/attributes exist only when the parent template reads them, and
# Magnum's templates read the members' addresses instead, so they are null.
GROUP_ATTRIBUTES = {"attributes": None, "refs": None, "refs_map": None, "removed_rsrc_list": []}


class HeatDriver(Driver):
    name = "heat"
    heat_stacks = True
    per_node_fip = True

    def prepare(self, cluster):
        heat = self.world.heat
        stack_name = ("%s-%s" % (cluster.name[:30], self.short_id())).lower()
        stack = heat.add(Stack(heat, stack_name, cluster.project_id,
                               description="This template will boot a Kubernetes cluster with one or more minions "
                                           "(as specified by the number_of_minions parameter, which defaults to 1).",
                               timeout_mins=cluster.create_timeout, owner=self.stack_owner(cluster)))
        stack.parameters = {"number_of_masters": str(cluster.master_count_spec),
                            "number_of_minions": str(cluster.node_count_spec)}
        cluster.stack = stack
        cluster.stack_id = stack.id
        stack.resources_fn = lambda c=cluster: self.top_resources(c)
        stack.outputs_fn = lambda c=cluster: self.top_outputs(c)
        stack.on_delete = lambda s, c=cluster: self.magnum.delete_cluster_internal(c)
        for ng in cluster.nodegroups:
            if ng.is_default:
                ng.stack_id = stack.id
                self._group_stack(cluster, ng, stack)
            else:
                self.prepare_nodegroup(cluster, ng)

    def stack_owner(self, cluster):
        """Heat's stack_owner: the name of the user whose request made the cluster."""
        user = self.world.keystone.users.get(cluster.user_id)
        return user["name"] if user else None

    def _group_stack(self, cluster, ng, parent):
        heat = self.world.heat
        gname = self.group_name(ng)
        group = heat.add(Stack(heat, "%s-%s-%s" % (parent.name, gname, self.short_id()), cluster.project_id,
                               parent=parent.id, parent_resource=gname))
        group.resources_fn = lambda c=cluster, n=ng: self.member_resources(c, n)
        ng.group_stack = group

    def prepare_nodegroup(self, cluster, ng):
        if ng.is_default:
            return
        heat = self.world.heat
        name = ("%s-%s-%s" % (cluster.name[:20], ng.name[:9], self.short_id())).lower()
        stack = heat.add(Stack(heat, name, cluster.project_id, timeout_mins=cluster.create_timeout,
                               owner=self.stack_owner(cluster)))
        ng.stack_id = stack.id
        ng.own_stack = stack
        stack.resources_fn = lambda c=cluster, n=ng: self.ng_resources(c, n)
        stack.outputs_fn = lambda c=cluster, n=ng: self.ng_outputs(c, n)
        self._group_stack(cluster, ng, stack)

    def add_member(self, cluster, ng, instant=False, build_time=None, primary_only=False):
        heat = self.world.heat
        index = ng.next_index
        ng.next_index += 1
        owner_stack = cluster.stack if ng.is_default else ng.own_stack
        kind = "master" if ng.role == "master" else "node"
        name = "%s-%s-%d" % (owner_stack.name, kind, index)
        member = self.spawn(cluster, ng, index, name, instant=instant, build_time=build_time,
                            primary_only=primary_only)
        group = ng.group_stack
        mstack = heat.add(Stack(heat, "%s-%d-%s" % (group.name, index, self.short_id()), cluster.project_id,
                                parent=group.id, parent_resource=str(index)))
        mstack.resources_fn = lambda c=cluster, n=ng, m=member: self.server_resources(c, n, m)
        member.stack = mstack
        return member

    # stack status follows the cluster / nodegroup ------------------------------------------------
    def _sync_stack(self, stack, status, reason):
        if stack is not None:
            stack.set_status(status, reason)

    def begin_update(self, cluster, ng):
        super().begin_update(cluster, ng)
        stack = cluster.stack if ng.is_default else ng.own_stack
        self._sync_stack(stack, "UPDATE_IN_PROGRESS", "Stack UPDATE started")

    def success_reason(self, action):
        return "Stack %s completed successfully" % action

    def _stacks_in_progress(self, cluster):
        stacks = [cluster.stack] + [ng.own_stack for ng in cluster.nodegroups]
        return [s for s in stacks if s is not None and s.status.endswith("IN_PROGRESS")]

    def on_complete(self, cluster, action):
        # only the stacks the operation touched change state
        for stack in self._stacks_in_progress(cluster):
            self._sync_stack(stack, "%s_COMPLETE" % stack.action, "Stack %s completed successfully" % stack.action)

    def on_failed(self, cluster, action, reason):
        for stack in self._stacks_in_progress(cluster) or [cluster.stack]:
            self._sync_stack(stack, "%s_FAILED" % action, reason)

    def on_nodegroup_complete(self, cluster, ng):
        if ng.own_stack is not None:
            action = "CREATE"
            ok = ng.status.endswith("COMPLETE")
            self._sync_stack(ng.own_stack, "%s_%s" % (action, "COMPLETE" if ok else "FAILED"),
                             "Stack CREATE completed successfully" if ok else ng.status_reason)

    def on_delete_started(self, cluster, delete_servers=True):
        self._sync_stack(cluster.stack, "DELETE_IN_PROGRESS", "Stack DELETE started")
        for ng in cluster.nodegroups:
            self._sync_stack(ng.own_stack, "DELETE_IN_PROGRESS", "Stack DELETE started")
        super().on_delete_started(cluster, delete_servers)

    def teardown(self, cluster):
        if cluster.stack is not None:
            self.world.heat.remove(cluster.stack.id)
        for ng in cluster.nodegroups:
            self.teardown_nodegroup(cluster, ng)

    def teardown_nodegroup(self, cluster, ng):
        if ng.own_stack is not None:
            self.world.heat.remove(ng.own_stack.id)
        if ng.group_stack is not None:
            self.world.heat.remove(ng.group_stack.id)

    def delete_nodegroup(self, cluster, ng):
        super().delete_nodegroup(cluster, ng)
        self._sync_stack(ng.own_stack, "DELETE_IN_PROGRESS", "Stack DELETE started")

    # resources and outputs --------------------------------------------------------------------------
    def _group_status(self, ng):
        st = ng.status or "CREATE_COMPLETE"
        if st.startswith("DELETE") and st.endswith("IN_PROGRESS"):
            return st, "state changed"
        return st, (ng.status_reason if st.endswith("FAILED") else "state changed")

    def top_resources(self, cluster):
        stack = cluster.stack
        created = stack.created
        res = [
            Resource("network", HEAT_TEMPLATE_DIR + "/../../common/templates/network.yaml",
                     _derived_id(stack.id, "network"), created=created,
                     required_by=["api_lb", "kube_masters", "kube_minions"]),
            Resource("secgroup_kube_master", "OS::Neutron::SecurityGroup", _derived_id(stack.id, "sgm"), created=created,
                     required_by=["kube_masters"]),
            Resource("secgroup_kube_minion", "OS::Neutron::SecurityGroup", _derived_id(stack.id, "sgn"), created=created,
                     required_by=["kube_minions"]),
            Resource("master_nodes_server_group", "OS::Nova::ServerGroup", _derived_id(stack.id, "sgrp"), created=created,
                     required_by=["kube_masters"]),
            Resource("worker_nodes_server_group", "OS::Nova::ServerGroup", _derived_id(stack.id, "wgrp"), created=created,
                     required_by=["kube_minions"]),
        ]
        for ng in cluster.nodegroups:
            if not ng.is_default or ng.group_stack is None:
                continue
            status, reason = self._group_status(ng)
            res.append(Resource(self.group_name(ng), "OS::Heat::ResourceGroup", ng.group_stack.id, status=status,
                                reason=reason, created=created, updated=ng.updated, nested=ng.group_stack,
                                required_by=["kube_cluster_deploy"] if ng.role == "master" else [],
                                attributes=dict(GROUP_ATTRIBUTES)))
        return res

    def ng_resources(self, cluster, ng):
        status, reason = self._group_status(ng)
        return [Resource("kube_minions", "OS::Heat::ResourceGroup", ng.group_stack.id, status=status, reason=reason,
                         created=ng.own_stack.created, updated=ng.updated, nested=ng.group_stack,
                         attributes=dict(GROUP_ATTRIBUTES))]

    def member_resources(self, cluster, ng):
        tmpl = "%s/%s.yaml" % (HEAT_TEMPLATE_DIR, "kubemaster" if ng.role == "master" else "kubeminion")
        out = []
        for m in sorted(ng.members, key=lambda m: m.index):
            status, reason = self._member_status(m)
            out.append(Resource(str(m.index), tmpl, m.stack.id, status=status, reason=reason, created=m.created,
                                nested=m.stack))
        return out

    def _member_status(self, m):
        s = self.server(m)
        if s is None:
            # Heat does not notice servers removed behind its back.
            return "CREATE_COMPLETE", "state changed"
        if s.vm_state == "error":
            msg = (s.fault or {}).get("message", "Unknown")
            return "CREATE_FAILED", ("ResourceInError: resources.%s: Went to status ERROR due to \"Message: %s, "
                                     "Code: 500\"" % ("kube-master" if "master" in m.name else "kube-minion", msg))
        if s.task_state == "deleting":
            return "DELETE_IN_PROGRESS", "state changed"
        if s.vm_state == "building":
            return "CREATE_IN_PROGRESS", "state changed"
        return "CREATE_COMPLETE", "state changed"

    def server_resources(self, cluster, ng, m):
        status, reason = self._member_status(m)
        role = "master" if ng.role == "master" else "minion"
        s = self.server(m)
        port_id = s.port_ids[0] if (s is not None and s.port_ids) else ""
        out = [Resource("kube_%s_eth0" % role, "OS::Neutron::Port", port_id, created=m.created,
                        required_by=["kube-%s" % role] + (["kube_%s_floating" % role] if cluster.floating_ip_enabled else [])),
               Resource("kube-%s" % role, "OS::Nova::Server", m.server_id, status=status, reason=reason,
                        created=m.created, attributes={"name": m.name})]
        if cluster.floating_ip_enabled:
            fips = self.neutron.floatingips_of_port(port_id) if port_id else []
            out.append(Resource("kube_%s_floating" % role, "Magnum::Optional::KubeMinion::Neutron::FloatingIP"
                                if role == "minion" else "Magnum::Optional::KubeMaster::Neutron::FloatingIP",
                                fips[0]["id"] if fips else "", created=m.created))
        return out

    def _ng_ips(self, ng, floating):
        out = []
        for m in sorted(ng.members, key=lambda m: m.index):
            out.extend(self.ips(m, floating))
        return out

    def top_outputs(self, cluster):
        masters = cluster.master_ng()
        worker = cluster.default_worker()
        fl = cluster.floating_ip_enabled
        return [
            {"output_key": "api_address", "output_value": self.api_ip(cluster),
             "description": "This is the API endpoint of the Kubernetes cluster. Use this to access the Kubernetes "
                            "API."},
            {"output_key": "kube_masters_private", "output_value": self._ng_ips(masters, False) if masters else [],
             "description": "This is a list of the \"private\" IP addresses of all the Kubernetes masters."},
            {"output_key": "kube_masters", "output_value": self._ng_ips(masters, fl) if masters else [],
             "description": "This is a list of the \"public\" IP addresses of all the Kubernetes masters. Use these IP "
                            "addresses to log in to the Kubernetes masters via ssh."},
            {"output_key": "kube_minions_private", "output_value": self._ng_ips(worker, False) if worker else [],
             "description": "This is a list of the \"private\" IP addresses of all the Kubernetes minions."},
            {"output_key": "kube_minions", "output_value": self._ng_ips(worker, fl) if worker else [],
             "description": "This is a list of the \"public\" IP addresses of all the Kubernetes minions. Use these "
                            "IP addresses to log in to the Kubernetes minions via ssh."},
            {"output_key": "registry_address", "output_value": "localhost:5000",
             "description": "This is the url of docker registry server where you can store docker images."},
        ]

    def ng_outputs(self, cluster, ng):
        fl = cluster.floating_ip_enabled
        return [{"output_key": "kube_minions_private", "output_value": self._ng_ips(ng, False),
                 "description": "This is a list of the \"private\" IP addresses of all the Kubernetes minions."},
                {"output_key": "kube_minions", "output_value": self._ng_ips(ng, fl),
                 "description": "This is a list of the \"public\" IP addresses of all the Kubernetes minions."}]

    def finalize_addresses(self, cluster):
        super().finalize_addresses(cluster)
        fl = cluster.floating_ip_enabled
        for ng in cluster.nodegroups:
            ng.node_addresses = self._ng_ips(ng, fl)

    def node_addresses(self, cluster, role):
        out = []
        for ng in cluster.nodegroups:
            if (ng.role == "master") == (role == "master"):
                out.extend(ng.node_addresses or [])
        return out


class CapiDriver(Driver):
    name = "capi"
    always_lb = True

    def prepare(self, cluster):
        cluster.stack_id = "kube-" + self.world.ids.chars(5)
        cluster.stack = None
        for ng in cluster.nodegroups:
            ng.stack_id = cluster.stack_id
            ng.gen = self.world.ids.chars(5)

    def prepare_nodegroup(self, cluster, ng):
        ng.stack_id = cluster.stack_id
        ng.gen = self.world.ids.chars(5)

    def extra_networks(self, cluster):
        names = (cluster.labels.get("extra_network_names") or "").split()
        out = []
        for n in names:
            net = self.neutron.find_network(n)
            if net is not None:
                out.append(net)
        return out

    def add_member(self, cluster, ng, instant=False, build_time=None, primary_only=False):
        index = ng.next_index
        ng.next_index += 1
        part = "control-plane" if ng.role == "master" else ng.name
        name = "%s-%s-%s-%s" % (cluster.stack_id, part, ng.gen, self.world.ids.chars(5))
        return self.spawn(cluster, ng, index, name, instant=instant, build_time=build_time,
                          primary_only=primary_only)

    def roll(self, cluster, ng, node_count, build_time):
        """Replace every machine of the nodegroup with a new generation."""
        ng.gen = self.world.ids.chars(5)
        for m in list(ng.members):
            self.remove_member(cluster, ng, m)
        for dummy in range(node_count):
            self.add_member(cluster, ng, build_time=build_time)

    def apply_resize(self, cluster, ng, node_count, nodes_to_remove):
        # A resize only changes the MachineDeployment's replicas: a scale-up adds machines, a
        # scale-down deletes the machines named in nodes_to_remove (annotated for deletion)
        # and then whichever the delete policy picks; the surviving machines are never
        # replaced. Only upgrades and remediation roll machines.
        super().apply_resize(cluster, ng, node_count, nodes_to_remove)

    def apply_upgrade(self, cluster, template, ng):
        bt = self.build_time("cluster_update")
        master = cluster.master_ng()
        if master is not None and master is not ng:
            self.roll(cluster, master, len(master.members), bt)
        self.roll(cluster, ng, ng.node_count, bt)

    def validate_master_resize(self, node_count):
        if node_count % 2 == 0:
            raise self.magnum.error(400, "master nodegroup size of %d is invalid, size cannot be an even number."
                                    % node_count)

    def node_addresses(self, cluster, role):
        return []


DRIVERS = {"heat": HeatDriver, "capi": CapiDriver}
