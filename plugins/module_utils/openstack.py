# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base of the hpcops.coe OpenStack modules.

Builds on openstack.cloud's OpenStackModule so every module takes exactly its
auth options and clouds.yaml handling, and adds what the Magnum modules need:
Magnum calls through the one Magnum layer (``magnum_api.py``) with the shared
retry policy and clear errors, deadline bookkeeping for waits, and name-or-id
resolution of Nova/Glance/Neutron objects that lists the valid choices when it
fails.
"""

import os
import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
    openstack_full_argument_spec,
)
from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.argspec import refuse_unclear_input
from ansible_collections.hpcops.coe.plugins.module_utils.errors import describe_error, format_error, http_status
from ansible_collections.hpcops.coe.plugins.module_utils.magnum_api import (
    HAS_MAGNUMCLIENT,
    MAGNUMCLIENT_IMPORT_ERROR,
    MagnumApi,
    MagnumVersionError,
    PREFERRED_VERSION,
    SERVICE_TYPE,
    find_cluster,
    list_clusters,
    list_nodegroups,
    list_templates,
    magnum_exc,
)
from ansible_collections.hpcops.coe.plugins.module_utils.retries import (
    is_busy_refusal,
    is_transient,
    retry_call,
    retry_unsure_call,
)
from ansible_collections.hpcops.coe.plugins.module_utils.sessions import retry_refused_tokens
from ansible_collections.hpcops.coe.plugins.module_utils.waiting import (
    PROGRESS_FILE_ENV,
    ProgressLog,
    WaitFailed,
    WaitTimeout,
    wait_for,
)

try:
    from keystoneauth1 import exceptions as ksa_exc
    HAS_KEYSTONEAUTH = True
except ImportError:
    ksa_exc = None
    HAS_KEYSTONEAUTH = False

try:
    from openstack import exceptions as sdk_exc
    HAS_OPENSTACKSDK = True
except ImportError:
    sdk_exc = None
    HAS_OPENSTACKSDK = False

__all__ = ['CoeOpenStackModule', 'openstack_full_argument_spec', 'retry_call', 'is_transient', 'is_busy_refusal',
           'http_status', 'describe_error', 'format_error', 'RAISE', 'retry_unsure_call', 'HAS_MAGNUMCLIENT']

# How long a cluster this run created may answer 404 before that means it is gone.
NEW_CLUSTER_VISIBLE_WITHIN = 60.0


# --------------------------------------------------------------------------- module base

class CoeOpenStackModule(OpenStackModule):
    """OpenStackModule plus the Magnum layer and the helpers above.

    Subclasses set `argument_spec`, `module_kwargs` and implement run(). They
    may set `magnum_api_version` to the microversion they are written for.
    """

    # The microversion the modules ask for first (see magnum_api.PREFERRED_VERSION).
    magnum_api_version = PREFERRED_VERSION
    # Clients are needed by every module of this collection that uses Magnum.
    requires_magnumclient = True

    def __init__(self):
        self._started = time.monotonic()
        refuse_unclear_input(openstack_full_argument_spec(**self.argument_spec), **self.module_kwargs)
        super(CoeOpenStackModule, self).__init__()
        retry_refused_tokens(getattr(self.conn, 'session', None))
        if self.requires_magnumclient and not HAS_MAGNUMCLIENT:
            self.fail_json(msg=missing_required_lib('python-magnumclient'),
                           exception=MAGNUMCLIENT_IMPORT_ERROR)
        # The one way to Magnum: its client, microversion state, paging and retries.
        self.magnum_api = MagnumApi(self.conn, self.magnum_api_version, region_name=self.params.get('region_name'),
                                    interface=self.params.get('interface'))
        self._resolved = {}
        self._templates = {}
        self._created_clusters = {}
        self.progress_logs = []

    # ---- time

    def remaining(self):
        """Seconds left of the module's own `timeout` (covers all its waits)."""
        timeout = self.params.get('timeout') or 0
        return max(0.0, timeout - (time.monotonic() - self._started))

    # ---- clients

    @property
    def magnum(self):
        """A python-magnumclient v1 client on the SDK's session, pinned to a microversion."""
        if not self.magnum_api.built:
            kwargs = self.magnum_api.endpoint_args()
            if 'endpoint_override' not in kwargs:
                self._require_endpoint(SERVICE_TYPE, 'container-infra (Magnum)', kwargs)
        return self.magnum_api.client

    def _require_endpoint(self, service_type, label, kwargs):
        """Log in and find the service in the catalog, retrying what Keystone answers transiently.

        magnumclient does this itself when it is built, but turns every failure (a 503 from
        Keystone as well as a missing catalog entry) into one RuntimeError.
        """
        session = self.conn.session

        def find():
            return session.get_endpoint(service_type=service_type, interface=kwargs['interface'],
                                        region_name=kwargs['region_name'])

        try:
            url = retry_call(find, deadline=max(5.0, min(120.0, self.remaining() or 120.0)))
        except Exception as exc:  # noqa: BLE001 - reported with what Keystone said
            self.fail_json(msg=format_error(exc, 'reach', 'the %s service' % label), status_code=http_status(exc))
        if not url:
            self.fail_json(msg="Cannot reach the %s service: it is not in the cloud's catalog for region %s and "
                               "interface %s." % (label, kwargs['region_name'] or '(any)', kwargs['interface']))

    def magnum_server_versions(self):
        """(min, max) microversions of the cloud's Magnum; probes once if unknown."""
        return self.magnum_api.server_versions(self.magnum)

    def require_magnum_version(self, version, op, obj=None):
        """Fail before any change when the cloud's Magnum is older than `version`."""
        try:
            self.magnum_api.require(version, server_versions=self.magnum_server_versions)
        except MagnumVersionError as err:
            self.fail_json(msg='Cannot %s%s: %s. Nothing was changed.' % (op, ' %s' % obj if obj else '', err))

    def magnum_supports(self, version):
        return self.magnum_api.supports(version, server_versions=self.magnum_server_versions)

    def magnum_call(self, op, obj, fn, idempotent=True, min_version=None, retry=True,
                    on_error=None, when_busy=None, landed=None):
        """Run `fn(client)` against Magnum with retries, version fallback and clear errors.

        `op`/`obj` name what is being done ('resize', "cluster 'k8s'") for the
        error message. `on_error(exc)` may return a value to use instead of
        failing (e.g. None on 404 for a lookup), or RAISE. `when_busy()` is
        called when Magnum refuses because the cluster is mid-operation; it
        should wait for the cluster to settle, after which the call is retried.
        `landed()`, for a call that creates something, returns what the call made
        after all (or None) when an answer leaves that unknown (a 5xx): the call is
        then retried only when nothing landed (see `retry_unsure_call`).
        """
        if min_version is not None:
            self.require_magnum_version(min_version, op, obj)

        def once():
            return self.magnum_api.attempt(fn, min_version, client=self.magnum)

        def note_retry(exc, attempt, delay):
            self.debug('%s: %s; retry %d in %.1f s' % (op, describe_error(exc), attempt, delay))

        busy_rounds = 0
        while True:
            try:
                if not retry:
                    return once()
                deadline = max(5.0, min(300.0, self.remaining()))
                if landed is not None:
                    return retry_unsure_call(once, landed, deadline=deadline, on_retry=note_retry)
                return retry_call(once, idempotent=idempotent, deadline=deadline, on_retry=note_retry)
            except Exception as exc:
                if (when_busy is not None and is_busy_refusal(exc) and busy_rounds < 20
                        and self.remaining() > 0):
                    busy_rounds += 1
                    self.debug('%s: %s; waiting for the cluster to settle' % (op, describe_error(exc)))
                    when_busy()
                    continue
                if on_error is not None:
                    handled = on_error(exc)
                    if handled is not _RAISE:
                        return handled
                if http_status(exc) == 406:
                    self.fail_json(msg=self._version_message(op, obj, exc, min_version))
                self.fail_json(msg=format_error(exc, op, obj), status_code=http_status(exc))

    def _version_message(self, op, obj, exc, min_version):
        api = self.magnum_api
        served = ''
        if api.server_max is not None:
            served = " This cloud's Magnum serves microversions %s to %s." % (
                mg.version_text(api.server_min or (1, 1)), mg.version_text(api.server_max))
        needed = ' It needs %s or later.' % min_version if min_version else ''
        return ('Cannot %s%s: Magnum refused microversion %s (HTTP 406).%s%s' % (
            op, ' %s' % obj if obj else '', mg.version_text(api.version), needed, served))

    def nodes_in_error(self, cluster_ref, nodegroup=None):
        """Names of the cluster's servers in ERROR (optionally of one nodegroup), for failure messages.

        Best effort: read only when something already failed, and an error reading
        them must not hide the failure being reported.
        """
        from ansible_collections.hpcops.coe.plugins.module_utils import discovery
        try:
            found = discovery.discover_cluster_nodes(self.conn, cluster_ref)
        except Exception:  # noqa: BLE001 - the message then goes without the node names
            return []
        return sorted(n['name'] for n in found
                      if (n.get('status') or '').upper() == 'ERROR' and (nodegroup is None or n.get('nodegroup') == nodegroup))

    def resolve_nodes_to_remove(self, cluster_ref, nodegroup, refs, shrink_by, what):
        """Server IDs for ``refs`` (names or IDs of the nodegroup's nodes) of a scale-down.

        Magnum takes server UUIDs; a name or ID that is not a node of the nodegroup
        fails before any change. With no ``refs`` the scale-down is warned about: the
        driver then picks the nodes (Heat: the newest; Cluster API: its delete policy).
        """
        if not refs:
            self.warn('Shrinking %s by %d node(s) names no nodes_to_remove: the driver chooses which nodes '
                      'go. Name them (server names or IDs) to choose.' % (what, shrink_by))
            return []
        from ansible_collections.hpcops.coe.plugins.module_utils import discovery
        members = [n for n in discovery.discover_cluster_nodes(self.conn, cluster_ref)
                   if n.get('nodegroup') == nodegroup]
        by_ref = {}
        for node in members:
            by_ref[node['id']] = node['id']
            by_ref.setdefault(node['name'], node['id'])
        unknown = [r for r in refs if r not in by_ref]
        if unknown:
            raise mg.MagnumInputError(
                "nodes_to_remove: %s %s not a node of nodegroup '%s' of %s. Its nodes: %s"
                % (', '.join("'%s'" % r for r in unknown), 'is' if len(unknown) == 1 else 'are', nodegroup, what,
                   ', '.join(sorted(n['name'] for n in members)) or 'none'))
        ids = [by_ref[r] for r in refs]
        if len(set(ids)) != len(ids):
            raise mg.MagnumInputError('nodes_to_remove names a node twice (by name and by ID): %s' % ', '.join(refs))
        return ids

    # ---- waiting

    def progress(self, what, status_of):
        log = ProgressLog(what, status_of, log=self._log_progress)
        self.progress_logs.append(log)
        return log

    def _log_progress(self, line):
        self.log(line)
        self.debug(line)
        # The action plugin of the same name shows these lines while the module waits.
        path = os.environ.get(PROGRESS_FILE_ENV)
        if path:
            try:
                with open(path, 'a') as stream:
                    stream.write(line + '\n')
            except (IOError, OSError):
                pass  # progress display is a convenience, never a reason to fail

    def wait_until(self, what, fetch, is_done, is_failed, status_of, timeout=None):
        """wait_for() bounded by the module's remaining timeout, with a progress log.

        Returns (value, None) on success, or (last value, WaitFailed/WaitTimeout).
        """
        log = self.progress(what, status_of)
        try:
            result = wait_for(fetch, is_done, is_failed,
                              timeout=self.remaining() if timeout is None else min(timeout, self.remaining()),
                              progress=log, what=what)
            return result.value, None
        except (WaitFailed, WaitTimeout) as err:
            return err.last, err

    def waited(self):
        return [p.as_dict() for p in self.progress_logs]

    # ---- input resolution (Nova, Glance, Neutron)

    def _resolve(self, kind, value, option, find, listing, name_of=None):
        key = (kind, value)
        if key in self._resolved:
            return self._resolved[key]
        name_of = name_of or (lambda o: getattr(o, 'name', None))
        try:
            found = retry_call(lambda: find(value), deadline=60)
        except Exception as exc:
            if HAS_OPENSTACKSDK and isinstance(exc, sdk_exc.DuplicateResource):
                self.fail_json(msg="%s '%s' given in %s is ambiguous: several %ss have that name; "
                                   "use the ID instead." % (kind, value, option, kind))
            self.fail_json(msg=format_error(exc, 'look up %s' % kind, "'%s' (option %s)" % (value, option)))
        if found is None:
            try:
                choices = sorted(set(n for n in (name_of(o) for o in listing()) if n))
            except Exception:  # noqa: BLE001 - the listing only improves the message
                choices = []
            shown = ', '.join(choices[:30]) + (' ...' if len(choices) > 30 else '')
            self.fail_json(msg="%s '%s' given in %s does not exist (as a name or an ID). Valid %ss: %s" % (
                kind, value, option, kind, shown or 'none visible to this project'))
        ref = {'given': value, 'id': getattr(found, 'id', None), 'name': name_of(found), 'object': found}
        self._resolved[key] = ref
        return ref

    def resolve_flavor(self, value, option='flavor'):
        compute = self.conn.compute
        return self._resolve('flavor', value, option,
                             lambda v: compute.find_flavor(v, ignore_missing=True),
                             compute.flavors)

    def resolve_image(self, value, option='image'):
        image = self.conn.image
        return self._resolve('image', value, option,
                             lambda v: image.find_image(v, ignore_missing=True),
                             image.images)

    def resolve_network(self, value, option='network'):
        network = self.conn.network
        return self._resolve('network', value, option,
                             lambda v: network.find_network(v, ignore_missing=True),
                             network.networks)

    def resolve_subnet(self, value, option='subnet', network_id=None):
        network = self.conn.network
        query = {'network_id': network_id} if network_id else {}
        return self._resolve('subnet', value, option,
                             lambda v: network.find_subnet(v, ignore_missing=True, **query),
                             lambda: network.subnets(**query))

    def resolve_keypair(self, value, option='keypair'):
        compute = self.conn.compute
        return self._resolve('keypair', value, option,
                             lambda v: compute.find_keypair(v, ignore_missing=True),
                             compute.keypairs)

    @staticmethod
    def spellings(ref):
        """[given, id, name] of a resolved reference: what an existing object may store."""
        if ref is None:
            return None
        out = []
        for v in (ref['given'], ref['id'], ref['name']):
            if v and v not in out:
                out.append(v)
        return out

    # ---- Magnum look-ups shared by the modules

    def list_clusters(self, detail=False):
        return self.magnum_call('list', 'clusters', lambda c: list_clusters(c, detail))

    def list_templates(self):
        return self.magnum_call('list', 'cluster templates', list_templates)

    def create_template(self, body):
        """POST a new cluster template with every field of ``body``; Magnum checks them.

        magnumclient's cluster_templates.create() refuses keys outside its own list
        before sending anything, and that list lacks fields the Magnum API takes
        (apiserver_port); the client's JSON request sends the body as it is.
        """
        return self.magnum.http_client.json_request('POST', '/v1/clustertemplates', body=body)[1]

    def list_nodegroups(self, cluster_id, missing_ok=False):
        return self.magnum_call(
            'list nodegroups of', "cluster '%s'" % cluster_id,
            lambda c: list_nodegroups(c, cluster_id),
            min_version=mg.MV_NODEGROUPS,
            on_error=lambda e: [] if missing_ok and http_status(e) == 404 else _RAISE)

    def get_nodegroup(self, cluster_id, ident, missing_ok=True):
        """One nodegroup in full (the list view lacks min/max counts, labels and addresses)."""
        return self.magnum_call('read', "nodegroup '%s' of cluster '%s'" % (ident, cluster_id),
                                lambda c: c.nodegroups.get(cluster_id, ident),
                                min_version=mg.MV_NODEGROUPS,
                                on_error=lambda e: None if missing_ok and http_status(e) == 404 else _RAISE)

    def note_created_cluster(self, uuid):
        """Record that this run has just created cluster `uuid` (see get_cluster)."""
        self._created_clusters[uuid] = time.monotonic()

    def not_yet_seen(self, uuid):
        """Whether this run created cluster `uuid` moments ago (within Magnum's visibility window)
        and has not read it back yet: a 404 then means "not stored yet", not "gone"."""
        created = self._created_clusters.get(uuid)
        return created is not None and time.monotonic() - created < NEW_CLUSTER_VISIBLE_WITHIN

    def get_cluster(self, ident, missing_ok=True):
        """The detailed cluster, or None once it is gone (404).

        Magnum answers a create with 202 before its conductor has stored the
        cluster, so for a moment the new UUID gives 404. For a cluster this run
        created (note_created_cluster) and has not yet seen, a 404 within
        NEW_CLUSTER_VISIBLE_WITHIN seconds means "not visible yet": the read is
        polled until the cluster shows up. Once seen, a 404 means gone again.
        """
        def read(missing):
            return self.magnum_call('read', "cluster '%s'" % ident, lambda c: c.clusters.get(ident),
                                    on_error=lambda e: None if missing and http_status(e) == 404 else _RAISE)

        created = self._created_clusters.get(ident)
        window = 0.0
        if created is not None:
            window = min(created + NEW_CLUSTER_VISIBLE_WITHIN - time.monotonic(), self.remaining())
        if window <= 0:
            return read(missing_ok)
        try:
            cluster = wait_for(lambda: read(True), lambda c: c is not None, timeout=window, interval=0.5,
                               max_interval=5.0, what="new cluster '%s' to become visible" % ident).value
        except WaitTimeout:
            return read(missing_ok)
        self._created_clusters.pop(ident, None)
        return cluster

    def get_template(self, ident, missing_ok=True):
        return self.magnum_call('read', "cluster template '%s'" % ident,
                                lambda c: c.cluster_templates.get(ident),
                                on_error=lambda e: None if missing_ok and http_status(e) == 404 else _RAISE)

    def find_template(self, value, option='cluster_template', required=True):
        """A template by uuid or name, failing on ambiguity and listing valid names."""
        if value is None:
            return None
        if value in self._templates:
            return self._templates[value]
        tpl = self._find_template(value, option, required)
        self._templates[value] = tpl
        return tpl

    def _find_template(self, value, option, required):
        if mg.is_uuid(value):
            tpl = self.get_template(value)
            if tpl is not None:
                return tpl
        templates = self.list_templates()
        try:
            tpl = mg.match_name_or_id(templates, value, 'cluster template')
        except mg.MagnumInputError as err:
            self.fail_json(msg='%s (option %s)' % (err, option))
        if tpl is None and required:
            names = sorted(set(mg.field(t, 'name') for t in templates if mg.field(t, 'name')))
            self.fail_json(msg="cluster template '%s' given in %s does not exist (as a name or an ID). "
                               "Valid cluster templates: %s" % (value, option, ', '.join(names) or 'none'))
        return tpl

    def find_cluster(self, value, option='cluster', required=True):
        """A cluster (detailed) by uuid or name; ambiguity fails, deleting clusters are skipped."""
        if mg.is_uuid(value):
            cluster = self.get_cluster(value)
            if cluster is not None:
                return cluster
        clusters = self.list_clusters()
        try:
            match = find_cluster(clusters, value, option=option, required=required)
        except mg.MagnumInputError as err:
            self.fail_json(msg=str(err))
        if match is None:
            return None
        return self.get_cluster(mg.object_id(match))

    # ---- running

    def __call__(self):
        try:
            results = self.run()
            if results and isinstance(results, dict):
                self.ansible.exit_json(**results)
        except mg.MagnumInputError as err:
            self.fail_json(msg=str(err))
        except Exception as exc:  # noqa: BLE001 - turn any client error into a clear message
            if http_status(exc) is None and not _is_client_error(exc):
                raise
            self.fail_json(msg=format_error(exc, getattr(self, 'current_op', 'run'),
                                            getattr(self, 'current_obj', None)),
                           status_code=http_status(exc))
        self.ansible.exit_json(**self.results)


class _Raise(object):
    def __repr__(self):
        return '<re-raise>'


# on_error handlers return this to say "not handled: fail as usual".
_RAISE = _Raise()
RAISE = _RAISE


def _is_client_error(exc):
    if HAS_MAGNUMCLIENT and isinstance(exc, magnum_exc.ClientException):
        return True
    if HAS_KEYSTONEAUTH and isinstance(exc, ksa_exc.ClientException):
        return True
    if HAS_OPENSTACKSDK and isinstance(exc, sdk_exc.SDKException):
        return True
    return False
