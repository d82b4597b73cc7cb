# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the collection reaches Magnum, for the modules, node discovery and the inventory.

python-magnumclient's public API on the session of an openstacksdk connection
(its token, catalog, region, interface and TLS settings), with:

* one microversion policy: ask for ``PREFERRED_VERSION``; when the cloud's Magnum
  serves less (HTTP 406, or its advertised maximum), use its maximum, as long as
  that is at least the floor the call needs; below the floor the call is refused
  before anything is sent (``MagnumVersionError``);
* one paging helper (``list_all``) over the client's ``list(limit, marker)``;
* the shared retry policy (``retries.retry_call``) on every call;
* one ``find_cluster`` over ``list_clusters`` (names are not unique in Magnum).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback
import weakref

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.errors import http_status
from ansible_collections.hpcops.coe.plugins.module_utils.retries import retry_call, retry_unsure_call

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

__all__ = ['MagnumApi', 'MagnumVersionError', 'for_connection', 'find_cluster', 'list_all', 'list_clusters',
           'list_nodegroups', 'list_templates', 'HAS_MAGNUMCLIENT', 'magnum_exc']

SERVICE_TYPE = 'container-infra'
# The newest microversion whose answers the collection reads: it covers resize (1.7),
# upgrade (1.8), nodegroups (1.9) and zero-node nodegroups (1.10) with the field names
# every Magnum release returns (1.13 renames stack_id to cluster_id).
PREFERRED_VERSION = '1.10'
# What a request without a microversion gets, and the oldest any Magnum serves.
BASE_VERSION = (1, 1)
# Items asked for per list request. Magnum caps it at its api.max_limit (1000 by default)
# and links the rest, which the client follows up to this many.
LIST_PAGE_SIZE = 1000


class MagnumVersionError(Exception):
    """The cloud's Magnum does not serve the microversion a call needs; nothing was sent."""

    def __init__(self, needed, low, high):
        self.needed = needed
        self.low = low
        self.high = high
        super(MagnumVersionError, self).__init__(
            "this needs Magnum API microversion %s or later, and this cloud's Magnum serves %s to %s"
            % (mg.version_text(needed), mg.version_text(low or BASE_VERSION), mg.version_text(high)))


def endpoint_args(conn, region_name=None, interface=None):
    """Where the connection's configuration puts Magnum: region, interface, endpoint override."""
    config = conn.config
    args = {
        'region_name': config.get_region_name(SERVICE_TYPE) or region_name,
        'interface': config.get_interface(SERVICE_TYPE) or interface or 'public',
    }
    if isinstance(args['interface'], list):
        args['interface'] = args['interface'][0]
    override = config.get_endpoint(SERVICE_TYPE)
    if override:
        args['endpoint_override'] = override
    return args


def list_all(list_page, page_size=LIST_PAGE_SIZE):
    """Every item of a Magnum collection, read through the client's public ``list(limit, marker)``.

    ``list_page(limit=..., marker=...)`` returns one page. magnumclient's list() without
    a limit returns only Magnum's first page, and with ``limit=0`` (documented as "all")
    sends a limit Magnum rejects; a positive limit and the last item as marker, until a
    page comes back short, reads the whole collection.
    """
    items = []
    marker = None
    while True:
        page = list(list_page(limit=page_size, marker=marker))
        items.extend(page)
        if len(page) < page_size:
            return items
        marker = mg.object_id(page[-1])


def list_clusters(client, detail=False):
    return list_all(lambda **page: client.clusters.list(detail=detail, **page))


def list_templates(client):
    return list_all(lambda **page: client.cluster_templates.list(detail=True, **page))


def list_nodegroups(client, cluster_id):
    return list_all(lambda **page: client.nodegroups.list(cluster_id, **page))


def find_cluster(clusters, value, option=None, required=True):
    """The cluster whose UUID or name is ``value``, among ``list_clusters`` results.

    Clusters being deleted do not count as name matches. A name several clusters
    share raises MagnumInputError listing them; no match raises MagnumInputError
    naming the existing clusters (or returns None when not ``required``).
    """
    try:
        match = mg.match_name_or_id(clusters, value, 'cluster',
                                    exclude=lambda c: mg.is_deleting(mg.field(c, 'status')))
    except mg.MagnumInputError as err:
        if option:
            raise mg.MagnumInputError('%s (option %s)' % (err, option))
        raise
    if match is None and required:
        names = sorted(set(mg.field(c, 'name') or mg.object_id(c) for c in clusters))
        raise mg.MagnumInputError(
            "cluster '%s'%s does not exist (as a name or an ID). Existing clusters: %s"
            % (value, ' given in %s' % option if option else '', ', '.join(names) or 'none'))
    return match


class MagnumApi(object):
    """A Magnum client on a connection's session and the microversion state of that cloud."""

    def __init__(self, conn, version=PREFERRED_VERSION, region_name=None, interface=None):
        self.conn = conn
        self.version = mg.version_tuple(version)
        self.server_min = None
        self.server_max = None
        self._region_name = region_name
        self._interface = interface
        self._client = None

    def endpoint_args(self):
        return endpoint_args(self.conn, self._region_name, self._interface)

    @property
    def built(self):
        """Whether the client exists yet (building it finds Magnum in the catalog)."""
        return self._client is not None

    @property
    def client(self):
        """The python-magnumclient v1 client (built on first use; no request is sent to build it)."""
        if self._client is None:
            if not HAS_MAGNUMCLIENT:
                raise ImportError('python-magnumclient is needed to reach Magnum: %s' % MAGNUMCLIENT_IMPORT_ERROR)
            args = self.endpoint_args()
            if 'endpoint_override' not in args:
                # Looked up here first, with retries: the client looks it up again (from the
                # session's cache) but turns any failure, a 503 from Keystone included, into a
                # RuntimeError that says nothing of the cause.
                self.find_endpoint(args)
            self._client = magnum_client.Client('1', session=self.conn.session,
                                                api_version=mg.version_text(self.version), **args)
        return self._client

    def find_endpoint(self, args, deadline=60.0):
        """Magnum's URL in the catalog (logging in if needed); raises EndpointNotFound-like errors as they come."""
        session = self.conn.session
        url = retry_call(lambda: session.get_endpoint(service_type=SERVICE_TYPE, interface=args['interface'],
                                                      region_name=args['region_name']), deadline=deadline)
        if not url:
            raise LookupError("the container-infra (Magnum) service is not in the cloud's catalog for region %s "
                              "and interface %s" % (args['region_name'] or '(any)', args['interface']))
        return url

    # ---- microversions

    def record_versions(self, response):
        """Note the range a Magnum answer (any status) says it serves."""
        headers = getattr(response, 'headers', None)
        if not headers:
            return
        try:
            low = headers.get('OpenStack-API-Minimum-Version')
            high = headers.get('OpenStack-API-Maximum-Version')
        except AttributeError:
            return
        if high:
            self.server_max = mg.version_tuple(high)
        if low:
            self.server_min = mg.version_tuple(low)

    def use_version(self, version):
        self.version = version
        if self._client is not None:
            self._client.http_client.api_version = mg.version_text(version)

    def server_versions(self, client=None):
        """(min, max) microversions of the cloud's Magnum; asks once (GET of the API root) when unknown."""
        if self.server_max is None:
            try:
                resp = (client or self.client).http_client.json_request('GET', '/')[0]
            except Exception as exc:  # noqa: BLE001 - a probe; callers handle None
                resp = getattr(exc, 'response', None)
            self.record_versions(resp)
        return self.server_min, self.server_max

    def require(self, floor, server_versions=None):
        """Use a microversion of at least ``floor`` the cloud serves, or raise MagnumVersionError."""
        needed = mg.version_tuple(floor)
        low, high = (server_versions or self.server_versions)()
        if high is not None and high < needed:
            raise MagnumVersionError(needed, low, high)
        if high is not None and high < self.version:
            self.use_version(high)
        if needed > self.version:
            self.use_version(needed)

    def supports(self, floor, server_versions=None):
        high = (server_versions or self.server_versions)()[1]
        return high is None or high >= mg.version_tuple(floor)

    def fall_back(self, exc, floor=None):
        """After a 406: step down to the cloud's maximum when that still meets ``floor``."""
        self.record_versions(getattr(exc, 'response', None))
        high = self.server_max
        floor = mg.version_tuple(floor) if floor else BASE_VERSION
        if high is not None and high < self.version and high >= floor:
            self.use_version(high)
            return True
        return False

    # ---- calls

    def attempt(self, fn, floor=None, client=None):
        """``fn(client)`` once, and once more at the cloud's maximum microversion after a 406."""
        client = client or self.client
        try:
            return fn(client)
        except Exception as exc:
            if http_status(exc) == 406 and self.fall_back(exc, floor):
                return fn(client)
            raise

    def call(self, fn, floor=None, idempotent=True, landed=None, deadline=60.0, on_retry=None):
        """``fn(client)`` with the microversion policy and the shared retries."""
        if floor is not None:
            # From what the cloud has already said; no probe: an unknown range means "try".
            self.require(floor, server_versions=lambda: (self.server_min, self.server_max))
        if landed is not None:
            return retry_unsure_call(lambda: self.attempt(fn, floor), landed, deadline=deadline, on_retry=on_retry)
        return retry_call(lambda: self.attempt(fn, floor), idempotent=idempotent, deadline=deadline,
                          on_retry=on_retry)

    def list_clusters(self, detail=False):
        """Every cluster of the project, as dicts (the list view unless ``detail``)."""
        return [mg.to_dict(c) for c in self.call(lambda c: list_clusters(c, detail))]

    def list_nodegroups(self, cluster_id):
        """The cluster's nodegroups as dicts, or None when the cloud's Magnum predates them."""
        try:
            return [mg.to_dict(g) for g in self.call(lambda c: list_nodegroups(c, cluster_id), floor=mg.MV_NODEGROUPS)]
        except MagnumVersionError:
            return None
        except Exception as exc:
            if http_status(exc) == 406:
                return None
            raise


_BY_CONNECTION = weakref.WeakKeyDictionary()


def for_connection(conn):
    """The MagnumApi of an openstacksdk connection: one client and one microversion state per connection."""
    api = _BY_CONNECTION.get(conn)
    if api is None:
        api = _BY_CONNECTION.setdefault(conn, MagnumApi(conn))
    return api
