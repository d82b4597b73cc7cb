# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base of the hpcops.coe OpenStack modules.

Builds on openstack.cloud's OpenStackModule so every module takes exactly its
auth options and clouds.yaml handling, and adds what the Magnum modules need:
python-magnumclient on the SDK's keystoneauth session
(with Magnum microversion pinning and fallback), one retry policy, one error
formatter, deadline bookkeeping for waits, and name-or-id resolution of
Nova/Glance/Neutron objects that lists the valid choices when it fails.
"""

import os
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
    openstack_full_argument_spec,
)
from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.argspec import refuse_unclear_input
from ansible_collections.hpcops.coe.plugins.module_utils.errors import describe_error, format_error, http_status
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
    from magnumclient import client as magnum_client
    from magnumclient import exceptions as magnum_exc
    HAS_MAGNUMCLIENT = True
    MAGNUMCLIENT_IMPORT_ERROR = None
except ImportError:
    magnum_client = None
    magnum_exc = None
    HAS_MAGNUMCLIENT = False
    MAGNUMCLIENT_IMPORT_ERROR = traceback.format_exc()

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
           'http_status', 'describe_error', 'format_error', 'list_all', 'RAISE',
           'HAS_MAGNUMCLIENT']

MAGNUM_SERVICE_TYPE = 'container-infra'
# How long a cluster this run created may answer 404 before that means it is gone.
NEW_CLUSTER_VISIBLE_WITHIN = 60.0


# --------------------------------------------------------------------------- listing

def list_all(manager, key, suffix=None, cluster_id=None):
    """Every item of a Magnum collection, following its 'next' links.

    magnumclient's list() either stops after the first page (no limit) or
    sends limit=0, which Magnum rejects as "Limit must be positive".
    """
    if cluster_id is not None:
        path = manager._path(cluster_id, id=suffix)
    else:
        path = manager._path(suffix)
    return manager._list_pagination(path, key)


# --------------------------------------------------------------------------- module base

class CoeOpenStackModule(OpenStackModule):
    """OpenStackModule plus Magnum/Heat clients and the helpers above.

    Subclasses set `argument_spec`, `module_kwargs` and implement run(). They
    may set `magnum_api_version` to the microversion they are written for.
    """

    # 1.10 covers resize (1.7), upgrade (1.8), nodegroups (1.9) and zero-node
    # nodegroups (1.10) with the field names every Magnum release returns.
    magnum_api_version = '1.10'
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
        self._magnum = None
        self._mv = mg.version_tuple(self.magnum_api_version)
        self._server_min = None
        self._server_max = None
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

    def _endpoint_args(self, service_type):
        config = self.conn.config
        args = {
            'region_name': config.get_region_name(service_type) or self.params.get('region_name'),
            'interface': config.get_interface(service_type) or self.params.get('interface') or 'public',
        }
        if isinstance(args['interface'], list):
            args['interface'] = args['interface'][0]
        override = config.get_endpoint(service_type)
        if override:
            args['endpoint_override'] = override
        return args

    @property
    def magnum(self):
        """A python-magnumclient v1 client on the SDK's session, pinned to a microversion."""
        if self._magnum is None:
            kwargs = self._endpoint_args(MAGNUM_SERVICE_TYPE)
            if 'endpoint_override' not in kwargs:
                self._require_endpoint(MAGNUM_SERVICE_TYPE, 'container-infra (Magnum)', kwargs)
            client = magnum_client.Client('1', session=self.conn.session,
                                          api_version=mg.version_text(self._mv), **kwargs)
            self._watch_versions(client)
            self._magnum = client
        return self._magnum

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

    def _watch_versions(self, client):
        # Every Magnum response names the microversion range it serves: record
        # it so a later call can be checked before anything is changed.
        http = getattr(client, 'http_client', None)
        original = getattr(http, '_http_request', None)
        if original is None:
            return

        def recording(url, method, **kwargs):
            try:
                resp = original(url, method, **kwargs)
            except Exception as exc:
                self._record_versions(getattr(exc, 'response', None))
                raise
            self._record_versions(resp)
            return resp

        http._http_request = recording

    def _record_versions(self, response):
        headers = getattr(response, 'headers', None)
        if not headers:
            return
        try:
            low = headers.get('OpenStack-API-Minimum-Version')
            high = headers.get('OpenStack-API-Maximum-Version')
        except AttributeError:
            return
        if high:
            self._server_max = mg.version_tuple(high)
        if low:
            self._server_min = mg.version_tuple(low)

    def _set_magnum_version(self, version):
        self._mv = version
        if self._magnum is not None:
            self._magnum.http_client.api_version = mg.version_text(version)

    def magnum_server_versions(self):
        """(min, max) microversions of the cloud's Magnum; probes once if unknown."""
        if self._server_max is None:
            try:
                self.magnum.http_client.json_request('GET', '/')
            except Exception:  # noqa: BLE001 - a probe; callers handle None
                pass
        return self._server_min, self._server_max

    def require_magnum_version(self, version, op, obj=None):
        """Fail before any change when the cloud's Magnum is older than `version`."""
        needed = mg.version_tuple(version)
        low, high = self.magnum_server_versions()
        if high is not None and high < needed:
            self.fail_json(msg=(
                'Cannot %s%s: this needs Magnum API microversion %s or later, and this cloud\'s '
                'Magnum serves %s to %s. Nothing was changed.' % (
                    op, ' %s' % obj if obj else '', mg.version_text(needed),
                    mg.version_text(low or (1, 1)), mg.version_text(high))))
        if high is not None and high < self._mv:
            self._set_magnum_version(high)
        if needed > self._mv:
            self._set_magnum_version(needed)

    def magnum_supports(self, version):
        low, high = self.magnum_server_versions()
        return high is None or high >= mg.version_tuple(version)

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
            try:
                return fn(self.magnum)
            except Exception as exc:
                if http_status(exc) == 406 and self._fall_back(exc, min_version):
                    return fn(self.magnum)
                raise

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

    def _fall_back(self, exc, min_version):
        self._record_versions(getattr(exc, 'response', None))
        high = self._server_max
        floor = mg.version_tuple(min_version) if min_version else (1, 1)
        if high is not None and high < self._mv and high >= floor:
            self._set_magnum_version(high)
            return True
        return False

    def _version_message(self, op, obj, exc, min_version):
        served = ''
        if self._server_max is not None:
            served = " This cloud's Magnum serves microversions %s to %s." % (
                mg.version_text(self._server_min or (1, 1)), mg.version_text(self._server_max))
        needed = ' It needs %s or later.' % min_version if min_version else ''
        return ('Cannot %s%s: Magnum refused microversion %s (HTTP 406).%s%s' % (
            op, ' %s' % obj if obj else '', mg.version_text(self._mv), needed, served))

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
        return self.magnum_call('list', 'clusters',
                                lambda c: list_all(c.clusters, 'clusters', 'detail' if detail else None))

    def list_templates(self):
        return self.magnum_call('list', 'cluster templates',
                                lambda c: list_all(c.cluster_templates, 'clustertemplates', 'detail'))

    def list_nodegroups(self, cluster_id, missing_ok=False):
        return self.magnum_call(
            'list nodegroups of', "cluster '%s'" % cluster_id,
            lambda c: list_all(c.nodegroups, 'nodegroups', None, cluster_id=cluster_id),
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
        """Whether this run created cluster `uuid` and has not read it back yet."""
        return uuid in self._created_clusters

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
            match = mg.match_name_or_id(clusters, value, 'cluster',
                                        exclude=lambda c: mg.is_deleting(mg.field(c, 'status')))
        except mg.MagnumInputError as err:
            self.fail_json(msg='%s (option %s)' % (err, option))
        if match is None:
            if required:
                names = sorted(set(mg.field(c, 'name') for c in clusters if mg.field(c, 'name')))
                self.fail_json(msg="cluster '%s' given in %s does not exist (as a name or an ID). "
                                   "Existing clusters: %s" % (value, option, ', '.join(names) or 'none'))
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
