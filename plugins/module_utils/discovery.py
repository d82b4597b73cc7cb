# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Driver-independent discovery of the nodes of Magnum clusters.

Two kinds of cluster exist side by side:

* Heat-driver clusters: ``stack_id`` is a Heat stack UUID. The nodes are the
  ``OS::Nova::Server`` resources two levels down in the ``kube_masters`` and
  ``kube_minions`` ResourceGroups of the cluster's stack, and of one stack per
  non-default nodegroup.
* Cluster-API-driver clusters (magnum-cluster-api, magnum-capi-helm): there is
  no stack; ``stack_id`` holds the CAPI cluster name, and the nodes are the
  Nova servers named ``<stack_id>-control-plane-...`` (masters) and
  ``<stack_id>-<nodegroup>-<rand>-<rand>`` (workers).

Either way the servers themselves (addresses, flavor, status) come from a few
paged ``GET /servers/detail`` calls filtered by an anchored name regex that
covers every cluster at once, never from one call per node.

Entry points: ``discover_cluster_nodes`` (one cluster), ``discover_nodes``
(several clusters of one cloud, optionally on a thread pool) and
``list_servers``. A node is a dict of plain JSON types, see ``make_node``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import quote

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils import magnum_api
from ansible_collections.hpcops.coe.plugins.module_utils.heat import (
    find_stacks,
    list_stack_resources,
    resource_ancestors,
    resource_owners,
)
from ansible_collections.hpcops.coe.plugins.module_utils.rest import ApiError, api_get, paged

MASTER = 'master'
WORKER = 'worker'
ROLES = (MASTER, WORKER)

DRIVER_HEAT = mg.DRIVER_HEAT
DRIVER_CAPI = mg.DRIVER_CAPI

DEFAULT_MASTER_NODEGROUP = 'default-master'
DEFAULT_WORKER_NODEGROUP = 'default-worker'

# 2.47 embeds the flavor (with its name) in the server instead of a bare flavor ID.
NOVA_FLAVOR_MICROVERSION = '2.47'

HEAT_SERVER_TYPE = 'OS::Nova::Server'
HEAT_MASTER_GROUP = 'kube_masters'
HEAT_WORKER_GROUP = 'kube_minions'
HEAT_MASTER_SERVER = 'kube-master'
HEAT_WORKER_SERVER = 'kube-minion'

CAPI_CONTROL_PLANE = 'control-plane'

# Nova matches the name filter as a regular expression in its database (MySQL
# REGEXP, PostgreSQL ~); long alternations are split to keep URLs reasonable.
MAX_REGEX_LENGTH = 1500

_REGEX_SPECIALS = frozenset('\\.^$*+?{}[]|()')


# ---------------------------------------------------------------------------
# Name regexes


def regex_escape(text):
    """Escape the characters that are special in POSIX ERE and Python regexes alike.

    re.escape() also escapes '-' and other punctuation, which some database
    regex engines behind Nova's name filter do not accept.
    """
    return ''.join('\\' + c if c in _REGEX_SPECIALS else c for c in text)


def name_prefix_regex(prefixes):
    """A regex matching names that start with one of ``prefixes`` followed by '-'.

    The dash anchors the prefix, so ``kube-abcde`` does not match ``kube-abcdef-...``.
    """
    escaped = sorted(set(regex_escape(p) for p in prefixes if p))
    if not escaped:
        raise ValueError('no name prefixes given')
    if len(escaped) == 1:
        return '^%s-' % escaped[0]
    return '^(%s)-' % '|'.join(escaped)


def prefix_regexes(prefixes, max_length=MAX_REGEX_LENGTH):
    """As few prefix regexes as possible, each at most about ``max_length`` characters."""
    chunks = []
    current = []
    size = 0
    for prefix in sorted(set(p for p in prefixes if p)):
        cost = len(regex_escape(prefix)) + 1
        if current and size + cost > max_length:
            chunks.append(current)
            current, size = [], 0
        current.append(prefix)
        size += cost
    if current:
        chunks.append(current)
    return [name_prefix_regex(chunk) for chunk in chunks]


def owning_prefix(name, prefixes_longest_first):
    """The longest prefix ``name`` starts with (followed by a dash), or None."""
    for prefix in prefixes_longest_first:
        if name.startswith(prefix) and name[len(prefix):len(prefix) + 1] == '-':
            return prefix
    return None


# ---------------------------------------------------------------------------
# Magnum


def list_clusters(conn):
    """All clusters of the project, in Magnum's list view (no extra request per cluster)."""
    return magnum_api.for_connection(conn).list_clusters()


def list_nodegroups(conn, cluster_id):
    """The cluster's nodegroups, or None when the Magnum API predates nodegroups (1.9)."""
    return magnum_api.for_connection(conn).list_nodegroups(cluster_id)


def find_cluster(clusters, name_or_id):
    """The cluster whose UUID or name is ``name_or_id``, among ``list_clusters`` results (see magnum_api)."""
    return magnum_api.find_cluster(clusters, name_or_id)


def cluster_stack_id(cluster):
    """The stack ID (Heat) or CAPI cluster name of a cluster; API 1.13 calls it cluster_id."""
    return cluster.get('stack_id') or (cluster.get('cluster_id')
                                       if cluster.get('cluster_id') != cluster.get('uuid') else None)


def cluster_driver(cluster):
    """'heat' or 'capi'; None while the cluster has no stack ID yet (nothing to discover)."""
    if not cluster_stack_id(cluster):
        return None
    kind = mg.driver_kind(cluster)
    return kind if kind in (DRIVER_HEAT, DRIVER_CAPI) else None


def cluster_summary(cluster, driver=None):
    """The cluster fields returned with its nodes."""
    return {
        'id': cluster.get('uuid'),
        'name': cluster.get('name'),
        'status': cluster.get('status'),
        'stack_id': cluster_stack_id(cluster),
        'driver': driver if driver is not None else cluster_driver(cluster),
        'labels': cluster.get('labels') or {},
        'master_count': cluster.get('master_count'),
        'node_count': cluster.get('node_count'),
        'cluster_template_id': cluster.get('cluster_template_id'),
        'keypair': cluster.get('keypair'),
    }


def _nodegroup_role(nodegroup):
    """Magnum's nodegroup role is free text; anything but 'master' holds workers."""
    return MASTER if nodegroup.get('role') == MASTER else WORKER


def _default_nodegroup_names(nodegroups):
    """{role: name} of the default nodegroups, with Magnum's usual names as fallback."""
    names = {}
    for ng in nodegroups or []:
        if ng.get('is_default') and ng.get('name'):
            names.setdefault(_nodegroup_role(ng), ng['name'])
    names.setdefault(MASTER, DEFAULT_MASTER_NODEGROUP)
    names.setdefault(WORKER, DEFAULT_WORKER_NODEGROUP)
    return names


# ---------------------------------------------------------------------------
# Nova


def _compute(conn):
    return conn.compute


def _nova_headers(microversion):
    if not microversion:
        return None
    return {'OpenStack-API-Version': 'compute %s' % microversion,
            'X-OpenStack-Nova-API-Version': microversion}


def list_servers(conn, name_regex=None, page_size=None, params=None, microversion=NOVA_FLAVOR_MICROVERSION):
    """Servers (detailed, as Nova returns them) whose name matches ``name_regex``.

    One ``GET /servers/detail`` per page, following ``servers_links``. Without
    ``page_size`` Nova's own maximum page size applies. Asks for microversion
    2.47 (flavor names in the answer) and falls back to the base version where
    the cloud does not offer it.
    """
    query = dict(params or {})
    if name_regex:
        query['name'] = name_regex
    if page_size:
        query['limit'] = int(page_size)
    adapter = _compute(conn)
    try:
        return _list_servers_pages(adapter, query, _nova_headers(microversion))
    except ApiError as exc:
        if microversion and exc.status_code in (400, 406):
            return _list_servers_pages(adapter, query, None)
        raise


def _list_servers_pages(adapter, query, headers):
    return paged(adapter, '/servers/detail', 'servers', params=query or None, headers=headers, service='compute')


def list_servers_by_prefixes(conn, prefixes, page_size=None):
    """Servers named ``<prefix>-...`` for any of ``prefixes``: one paged listing per regex chunk."""
    servers = []
    seen = set()
    for regex in prefix_regexes(prefixes):
        for server in list_servers(conn, name_regex=regex, page_size=page_size):
            if server.get('id') not in seen:
                seen.add(server.get('id'))
                servers.append(server)
    return servers


def get_server(conn, server_id):
    body = api_get(_compute(conn), '/servers/%s' % quote(server_id, safe=''),
                   headers=_nova_headers(NOVA_FLAVOR_MICROVERSION), missing_ok=True, service='compute')
    return None if body is None else body.get('server')


def server_addresses(server):
    """{network name: {'fixed': [ips], 'floating': [ips], 'mac': mac or None}} in Nova's order."""
    result = {}
    for network, entries in (server.get('addresses') or {}).items():
        item = result.setdefault(network, {'fixed': [], 'floating': [], 'mac': None})
        for entry in entries or []:
            kind = entry.get('OS-EXT-IPS:type') or 'fixed'
            addr = entry.get('addr')
            if addr:
                item['floating' if kind == 'floating' else 'fixed'].append(addr)
            if item['mac'] is None and kind != 'floating':
                item['mac'] = entry.get('OS-EXT-IPS-MAC:mac_addr')
    return result


def server_flavor(server, flavor_names=None):
    """The flavor name: embedded since compute 2.47, else looked up in ``flavor_names`` by ID."""
    flavor = server.get('flavor') or {}
    if flavor.get('original_name'):
        return flavor['original_name']
    if flavor.get('name'):
        return flavor['name']
    flavor_id = flavor.get('id')
    return (flavor_names or {}).get(flavor_id, flavor_id)


def flavor_names(conn, servers):
    """{flavor id: name} for servers listed below compute 2.47 (one GET per distinct flavor)."""
    names = {}
    for server in servers:
        flavor = server.get('flavor') or {}
        flavor_id = flavor.get('id')
        if flavor_id and not flavor.get('original_name') and flavor_id not in names:
            body = api_get(_compute(conn), '/flavors/%s' % quote(flavor_id, safe=''),
                           missing_ok=True, service='compute')
            names[flavor_id] = ((body or {}).get('flavor') or {}).get('name') or flavor_id
    return names


def server_image_id(server):
    """The image ID; boot-from-volume servers have none (Nova returns an empty string)."""
    image = server.get('image')
    if isinstance(image, dict):
        return image.get('id')
    return None


def make_node(server, cluster, role, nodegroup, driver, flavor_names_by_id=None):
    """The driver-independent shape of one node."""
    return {
        'name': server.get('name'),
        'id': server.get('id'),
        'role': role,
        'nodegroup': nodegroup,
        'status': server.get('status'),
        'addresses': server_addresses(server),
        'flavor': server_flavor(server, flavor_names_by_id),
        'image': server_image_id(server),
        'availability_zone': server.get('OS-EXT-AZ:availability_zone'),
        'driver': driver,
        'cluster_id': cluster.get('uuid'),
        'cluster_name': cluster.get('name'),
    }


# ---------------------------------------------------------------------------
# Heat-driver clusters


def _heat_role(row, owners):
    """'master' or 'worker' for a server resource row, or None when it is not a node."""
    for owner in resource_ancestors(row, owners):
        if owner == HEAT_MASTER_GROUP:
            return MASTER
        if owner == HEAT_WORKER_GROUP:
            return WORKER
    name = row.get('resource_name') or ''
    if name.startswith(HEAT_MASTER_SERVER):
        return MASTER
    if name.startswith(HEAT_WORKER_SERVER):
        return WORKER
    return None


def heat_server_roles(rows):
    """({server id: role}, number of servers whose role could not be told) from resource rows."""
    roles = {}
    unknown = 0
    owners = resource_owners(rows)
    for row in rows:
        if row.get('resource_type') != HEAT_SERVER_TYPE or not row.get('physical_resource_id'):
            continue
        role = _heat_role(row, owners)
        if role is None:
            unknown += 1
        else:
            roles[row['physical_resource_id']] = role
    return roles, unknown


def stack_server_roles(conn, stack):
    """{server id: role} of the cluster nodes in a Heat stack.

    Asks Heat for the server rows only; the resource names (kube-master*,
    kube-minion*) tell the role. Only when some server is named otherwise is
    the whole tree read, so that its owning ResourceGroup can tell.
    """
    rows = list_stack_resources(conn, stack, nested_depth=2, types=[HEAT_SERVER_TYPE])
    roles, unknown = heat_server_roles(rows)
    if unknown:
        roles, unknown = heat_server_roles(list_stack_resources(conn, stack, nested_depth=2))
    return roles


def _heat_nodegroup(nodegroups, role, defaults):
    """The nodegroup of a role within one stack: the default one first."""
    candidates = [ng for ng in nodegroups if _nodegroup_role(ng) == role]
    candidates.sort(key=lambda n: not n.get('is_default'))
    if candidates:
        return candidates[0].get('name')
    return defaults[role]


class ClusterPlan:
    """What is known about one cluster before its servers are listed."""

    def __init__(self, cluster, driver, nodegroups):
        self.cluster = cluster
        self.driver = driver
        self.nodegroups = nodegroups or []
        # None (Magnum before 1.9) or an empty answer tells nothing about the nodegroups;
        # a Magnum that lists them lists at least the default ones.
        self.nodegroups_known = bool(nodegroups)
        self.prefixes = []          # server name prefixes owned by this cluster
        self.heat_index = {}        # server id -> (role, nodegroup)
        self.capi_matchers = []     # (name segment, role, nodegroup), longest segment first
        self.error = None

    @property
    def cluster_id(self):
        return self.cluster.get('uuid')


def plan_cluster(conn, cluster, nodegroups=None):
    """Read what a cluster's servers can be recognised by (nodegroups, Heat resources).

    ``nodegroups`` may be given when already known; otherwise they are listed
    (one request). A Heat-driver cluster costs one stack listing, and one
    resource listing per stack, whatever its node count.
    """
    driver = cluster_driver(cluster)
    if nodegroups is None and driver is not None:
        nodegroups = list_nodegroups(conn, cluster['uuid'])
    plan = ClusterPlan(cluster, driver, nodegroups)
    defaults = _default_nodegroup_names(plan.nodegroups)
    stack_id = cluster_stack_id(cluster)
    if driver == DRIVER_CAPI:
        plan.prefixes.append(stack_id)
        matchers = [(CAPI_CONTROL_PLANE, MASTER, defaults[MASTER])]
        for ng in plan.nodegroups:
            if ng.get('name') and _nodegroup_role(ng) == WORKER:
                matchers.append((ng['name'], WORKER, ng['name']))
        plan.capi_matchers = sorted(matchers, key=lambda m: -len(m[0]))
    elif driver == DRIVER_HEAT:
        stacks = {stack_id: []}
        for ng in plan.nodegroups:
            stacks.setdefault(ng.get('stack_id') or stack_id, []).append(ng)
        found = find_stacks(conn, list(stacks))
        for sid, ngs in stacks.items():
            stack = found.get(sid)
            if stack is None:
                # A nodegroup whose stack is still being made, or already gone.
                continue
            plan.prefixes.append(stack.get('stack_name'))
            for server_id, role in stack_server_roles(conn, stack).items():
                plan.heat_index[server_id] = (role, _heat_nodegroup(ngs, role, defaults))
    return plan


def capi_role(name, prefix, matchers, nodegroups_known=True):
    """(role, nodegroup) of a CAPI server name, or None when the name is not a node's.

    ``<prefix>-control-plane-...`` is a master; ``<prefix>-<nodegroup>-<rand>-<rand>``
    a worker of that nodegroup. With ``nodegroups_known`` (Magnum listed them, and
    ``matchers`` holds them) the nodegroup part must be exactly one of theirs: a server
    named ``<prefix>-bastion-<a>-<b>`` or ``<prefix>-gpu-spare-<a>-<b>`` is someone's
    look-alike, not a worker of a nodegroup Magnum does not have. Only when the
    nodegroups are unknown (Magnum before API 1.9) is the name less its two random
    suffixes taken as the nodegroup.
    """
    if owning_prefix(name, [prefix]) is None:
        return None
    rest = name[len(prefix) + 1:]
    parts = rest.split('-')
    # The nodegroup part, when the name ends in two non-empty random suffixes.
    nodegroup_part = '-'.join(parts[:-2]) if len(parts) >= 3 and all(parts[-2:]) else None
    # Longest first, since nodegroup names may contain dashes and start like control-plane.
    for segment, role, nodegroup in matchers:
        if role == MASTER:
            if rest.startswith(segment + '-'):
                return role, nodegroup
        elif nodegroups_known:
            if nodegroup_part == segment:
                return role, nodegroup
        elif rest.startswith(segment + '-'):
            return role, nodegroup
    if nodegroups_known or not nodegroup_part:
        return None
    return WORKER, nodegroup_part


def assign_servers(plans, servers, other_prefixes=(), flavor_names_by_id=None):
    """{cluster id: [nodes]} for the planned clusters, from one listing of servers.

    A name is owned by the longest prefix it starts with, counting the prefixes of
    clusters not being discovered (``other_prefixes``): a cluster named like
    another's CAPI name plus a suffix must not claim the other's servers.
    """
    by_server_id = {}
    owners = {}
    for plan in plans:
        for server_id, (role, ng) in plan.heat_index.items():
            by_server_id[server_id] = (plan, role, ng)
        if plan.driver == DRIVER_CAPI:
            for prefix in plan.prefixes:
                owners[prefix] = plan
    all_prefixes = set(other_prefixes)
    for plan in plans:
        all_prefixes.update(plan.prefixes)
    longest_first = sorted(all_prefixes, key=len, reverse=True)

    result = dict((plan.cluster_id, []) for plan in plans)
    for server in servers:
        found = by_server_id.get(server.get('id'))
        if found is not None:
            plan, role, ng = found
        else:
            prefix = owning_prefix(server.get('name') or '', longest_first)
            plan = owners.get(prefix)
            if plan is None:
                continue
            match = capi_role(server.get('name') or '', prefix, plan.capi_matchers, plan.nodegroups_known)
            if match is None:
                continue
            role, ng = match
        result[plan.cluster_id].append(make_node(server, plan.cluster, role, ng, plan.driver, flavor_names_by_id))
    for nodes in result.values():
        nodes.sort(key=lambda n: (n['role'] != MASTER, n['nodegroup'] or '', n['name'] or ''))
    return result


def missing_nodes(plan, found):
    """Nodegroups for which Nova has fewer servers than Magnum counts.

    ``[{'nodegroup', 'node_count', 'servers', 'missing'}]``. A nodegroup still being
    created or resized is skipped (its servers are on their way), as is a cluster
    whose nodegroups Magnum does not list (before API 1.9).
    """
    have = {}
    for node in found:
        have[node.get('nodegroup')] = have.get(node.get('nodegroup'), 0) + 1
    out = []
    for ng in plan.nodegroups:
        count = ng.get('node_count')
        status = str(ng.get('status') or '')
        if count is None or status.endswith('_IN_PROGRESS') or str(plan.cluster.get('status') or '').endswith(
                '_IN_PROGRESS'):
            continue
        servers = have.get(ng.get('name'), 0)
        if servers < count:
            out.append({'nodegroup': ng.get('name'), 'node_count': count, 'servers': servers,
                        'missing': count - servers})
    return out


def describe_missing(cluster_name, missing):
    """A warning naming each nodegroup that lacks servers, and the gap."""
    return ("Cluster '%s': Nova has fewer servers than Magnum counts: %s. Deleted outside Magnum, or never "
            "built; resize the nodegroup (or let the driver repair it) to get them back."
            % (cluster_name, '; '.join("nodegroup '%(nodegroup)s' has %(servers)d of %(node_count)d "
                                       "(%(missing)d missing)" % m for m in missing)))


def _run(executor, func, items):
    if executor is None:
        return [func(item) for item in items]
    return list(executor.map(func, items))


def _other_prefixes(plans, all_clusters):
    """CAPI names of the project's clusters that are not being discovered."""
    planned = set(p.cluster_id for p in plans)
    return set(cluster_stack_id(c) for c in all_clusters or []
               if c.get('uuid') not in planned and cluster_driver(c) == DRIVER_CAPI)


def _servers_for(conn, plans, executor=None, page_size=None):
    """The servers of the planned clusters: paged listings by name, then Heat nodes by ID.

    A Heat node renamed after creation escapes the name filter, hence the
    look-up by ID of whatever Heat named and the listing did not return.
    """
    prefixes = set()
    for plan in plans:
        prefixes.update(plan.prefixes)
    servers = list_servers_by_prefixes(conn, prefixes, page_size=page_size) if prefixes else []
    listed = set(s.get('id') for s in servers)
    missing = [sid for plan in plans for sid in plan.heat_index if sid not in listed]
    servers.extend(s for s in _run(executor, lambda sid: get_server(conn, sid), missing) if s is not None)
    return servers


def nodes_of(conn, plans, all_clusters=None, executor=None, page_size=None):
    """{cluster id: [nodes]} for clusters already planned with ``plan_cluster``."""
    servers = _servers_for(conn, plans, executor, page_size)
    return assign_servers(plans, servers, _other_prefixes(plans, all_clusters), flavor_names(conn, servers))


def discover_nodes(conn, clusters, all_clusters=None, executor=None, page_size=None):
    """Nodes of several clusters of one cloud.

    Returns a list, in the order of ``clusters``, of
    ``{'cluster': cluster_summary, 'nodegroups': [names], 'nodes': [...], 'error': str or None}``.
    A cluster that cannot be read gets its error and no nodes; the others are
    still discovered. Errors listing the servers themselves are raised.

    ``all_clusters`` (every cluster of the project, as ``list_clusters`` returns
    them) keeps other clusters' servers out when only some are discovered.
    ``executor`` (a concurrent.futures executor) reads the clusters in parallel.
    """
    def plan_one(cluster):
        try:
            return plan_cluster(conn, cluster)
        except Exception as exc:  # any failure is this cluster's, reported with it
            plan = ClusterPlan(cluster, cluster_driver(cluster), [])
            plan.error = str(exc) or exc.__class__.__name__
            return plan

    plans = _run(executor, plan_one, clusters)
    good = [p for p in plans if p.error is None]
    nodes = nodes_of(conn, good, all_clusters, executor, page_size)
    return [{
        'cluster': cluster_summary(plan.cluster, plan.driver),
        'nodegroups': [ng.get('name') for ng in plan.nodegroups],
        'nodes': nodes.get(plan.cluster_id, []),
        'error': plan.error,
    } for plan in plans]


def discover_cluster_nodes(conn, cluster, all_clusters=None, page_size=None):
    """Nodes of one cluster, given as a Magnum cluster dict or a name or UUID.

    Raises MagnumInputError for an unknown or ambiguous name, ApiError when an
    API answers with an error.
    """
    if not isinstance(cluster, dict):
        all_clusters = list_clusters(conn)
        cluster = find_cluster(all_clusters, cluster)
    plan = plan_cluster(conn, cluster)
    return nodes_of(conn, [plan], all_clusters, page_size=page_size)[plan.cluster_id]
