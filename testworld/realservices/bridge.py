# -*- coding: utf-8 -*-
"""What the simulated cloud needs to stand beside a real Keystone and a real Heat.

``KeystoneTokenValidator``
    Validates an ``X-Auth-Token`` the way keystonemiddleware does: ``GET /v3/auth/tokens``
    with the token in ``X-Subject-Token``, authenticated by a service user's own token.
    Answers are cached until the token expires (at most ``cache_seconds``, as
    keystonemiddleware's ``token_cache_time``); a refused token is remembered briefly.

``HeatStackBackend``
    Keeps a real Heat stack shaped like the one Magnum's Heat driver makes for a cluster:
    ResourceGroups ``kube_masters`` and ``kube_minions`` whose members (``0``, ``1``, ...)
    are nested stacks holding a resource ``kube-master`` / ``kube-minion`` of type
    ``OS::Nova::Server``, and the outputs ``api_address``, ``kube_masters``,
    ``kube_minions``, ``kube_masters_private``, ``kube_minions_private``.

    The servers already exist in the simulated Nova, so Heat must not make them. When
    heat-engine has the ``HPCOps::Testworld::Server`` plugin (``heat_plugins/``, loaded by
    the controller's heat.conf), the stack's environment maps ``OS::Nova::Server`` to it:
    resource listings then show type ``OS::Nova::Server`` and the Nova server id as
    ``physical_resource_id``, as with Magnum. Otherwise ``OS::Heat::TestResource`` stands
    in: its ``physical_resource_id`` is a Heat-made name and the server id is only its
    ``output`` attribute (and the member's reference id, through ``OS::stack_id``).
    Either way each member's reference id is the server id, which is what Magnum's
    ``nodes_to_remove`` relies on.

Only keystoneauth1 is needed (the test virtualenv has it through openstacksdk).
"""

import copy
import hashlib
import json
import sys
import threading
import time
from datetime import datetime, timezone

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import plugin as ks_plugin
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

MASTERS, MINIONS = 'kube_masters', 'kube_minions'
GROUP_ALIASES = {
    MASTERS: MASTERS, 'master': MASTERS, 'masters': MASTERS,
    MINIONS: MINIONS, 'minion': MINIONS, 'minions': MINIONS, 'node': MINIONS, 'nodes': MINIONS, 'worker': MINIONS,
}
MEMBER = {MASTERS: ('kube-master', 'kubemaster.yaml'), MINIONS: ('kube-minion', 'kubeminion.yaml')}
COUNT_PARAM = {MASTERS: 'number_of_masters', MINIONS: 'number_of_minions'}
SERVERS_PARAM = {MASTERS: 'master_servers', MINIONS: 'minion_servers'}
STANDIN_TYPE = 'HPCOps::Testworld::Server'
HOT_VERSION = '2018-08-31'


class BridgeError(Exception):
    """Keystone or Heat answered something unexpected."""


def _expiry(token_body):
    stamp = token_body.get('expires_at')
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace('Z', '+00:00')).astimezone(timezone.utc).timestamp()


# --------------------------------------------------------------------------- sessions

def service_session(service_credentials, project_id=None):
    """A keystoneauth session for a service user (the ``service_credentials`` of state.json).

    With ``project_id`` it is scoped to that project instead of the credentials' own one
    (the simulator's service user holds admin on the demo project for this).
    """
    creds = dict(service_credentials)
    auth_url = creds.pop('auth_url').rstrip('/')
    if not auth_url.endswith('/v3'):
        auth_url += '/v3'
    if project_id:
        creds.pop('project_name', None)
        creds.pop('project_domain_name', None)
        creds['project_id'] = project_id
    return ks_session.Session(auth=v3.Password(auth_url=auth_url, **creds))


class _UserToken(ks_plugin.BaseAuthPlugin):
    """Acts with a caller's own token, as Magnum's conductor acts with the request context."""

    def __init__(self, token, project_id):
        super().__init__()
        self._token = token
        self._project_id = project_id

    def get_token(self, session, **kwargs):
        return self._token

    def get_project_id(self, session, **kwargs):
        return self._project_id

    def get_endpoint(self, session, **kwargs):
        return None


def user_session(token, project_id):
    """A keystoneauth session that sends a user's token (validated earlier) as it is."""
    return ks_session.Session(auth=_UserToken(token, project_id))


# --------------------------------------------------------------------------- tokens

class KeystoneTokenValidator:
    """Validate X-Auth-Token values against a real Keystone.

    ``service_credentials``: a dict as in state.json (auth_url, username, password,
    project_name, user_domain_name, project_domain_name), or a keystoneauth session.
    """

    def __init__(self, keystone_url, service_credentials, cache_seconds=300, negative_seconds=2,
                 include_catalog=False, clock=time.time):
        self.keystone_url = keystone_url.rstrip('/')
        if self.keystone_url.endswith('/v3'):
            self.keystone_url = self.keystone_url[:-3]
        if isinstance(service_credentials, ks_session.Session):
            self.session = service_credentials
        else:
            creds = dict(service_credentials)
            creds.setdefault('auth_url', self.keystone_url)
            self.session = service_session(creds)
        self.cache_seconds = cache_seconds
        self.negative_seconds = negative_seconds
        self.include_catalog = include_catalog
        self.clock = clock
        self.lookups = 0  # requests sent to Keystone, for tests of the cache
        self._cache = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token):
        return hashlib.sha256(token.encode()).hexdigest()

    def validate(self, token):
        """The ``token`` object of Keystone's answer, or None when the token is not valid."""
        if not token:
            return None
        key, now = self._key(token), self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return copy.deepcopy(hit[1])
        body = self._lookup(token)
        now = self.clock()
        if body is None:
            until = now + self.negative_seconds
        else:
            expires = _expiry(body)
            until = min(now + self.cache_seconds, expires if expires is not None else now + self.cache_seconds)
        with self._lock:
            if len(self._cache) > 2048:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = (until, body)
        return copy.deepcopy(body)

    def _lookup(self, token):
        self.lookups += 1
        url = self.keystone_url + '/v3/auth/tokens' + ('' if self.include_catalog else '?nocatalog')
        resp = self.session.get(url, headers={'X-Subject-Token': token}, raise_exc=False)
        if resp.status_code == 200:
            return resp.json()['token']
        if resp.status_code in (401, 404):
            return None
        raise BridgeError('token validation answered %s: %s' % (resp.status_code, resp.text[:300]))

    def context(self, token):
        """A flat view of a valid token (None when invalid): who, which project, which roles."""
        body = self.validate(token)
        if body is None:
            return None
        project = body.get('project') or {}
        roles = [r['name'] for r in body.get('roles', [])]
        return {
            'user_id': body['user']['id'], 'user_name': body['user']['name'],
            'project_id': project.get('id'), 'project_name': project.get('name'),
            'domain_id': (project.get('domain') or {}).get('id'),
            'roles': roles, 'is_admin': 'admin' in roles, 'system': bool(body.get('system')),
            'expires_at': body.get('expires_at'), 'methods': body.get('methods', []),
            'application_credential': body.get('application_credential'),
        }

    def invalidate(self, token=None):
        with self._lock:
            if token is None:
                self._cache.clear()
            else:
                self._cache.pop(self._key(token), None)


# --------------------------------------------------------------------------- stacks

class StackLayout:
    """What a Heat-driver cluster's stack holds.

    ``outputs``: output name -> value (a value may also be a Heat function, such as
    ``{'get_attr': ['kube_minions', 'refs']}``); ``descriptions``: output name -> description.
    ``servers``: (group, index, server_name, server_id) tuples, or dicts with the keys group,
    index, name, id and optionally ``networks`` ({net: [addresses]}) and ``first_address``.
    ``group`` is ``kube_masters`` or ``kube_minions`` (aliases: master, node, minion, worker).
    """

    def __init__(self, name, outputs, servers, parameters=None, timeout_mins=60, descriptions=None):
        self.name = name
        self.outputs = dict(outputs)
        self.descriptions = dict(descriptions or {})
        self.parameters = dict(parameters or {})
        self.timeout_mins = timeout_mins
        self.servers = []
        for entry in servers:
            if isinstance(entry, dict):
                item = dict(entry)
            else:
                group, index, server_name, server_id = entry
                item = {'group': group, 'index': index, 'name': server_name, 'id': server_id}
            group = GROUP_ALIASES.get(item['group'])
            if group is None:
                raise ValueError('unknown server group %r' % (item['group'],))
            item['group'] = group
            item['index'] = int(item['index'])
            item.setdefault('server_name', item.get('name'))
            item.setdefault('server_id', item.get('id'))
            self.servers.append(item)

    def members(self, group):
        return sorted((s for s in self.servers if s['group'] == group), key=lambda s: s['index'])


def member_template(group, standin):
    """The nested template of one ResourceGroup member (kubemaster.yaml / kubeminion.yaml)."""
    resource = MEMBER[group][0]
    if standin:
        server = {'type': 'OS::Nova::Server', 'properties': {
            'server_id': {'get_param': ['servers', {'get_param': 'index'}, 'server_id']},
            'name': {'get_param': ['servers', {'get_param': 'index'}, 'server_name']},
            'networks': {'get_param': ['servers', {'get_param': 'index'}, 'networks']},
            'first_address': {'get_param': ['servers', {'get_param': 'index'}, 'first_address']},
        }}
        address = {'get_attr': [resource, 'first_address']}
    else:
        server = {'type': 'OS::Heat::TestResource', 'properties': {
            'value': {'get_param': ['servers', {'get_param': 'index'}, 'server_id']}}}
        address = {'get_param': ['servers', {'get_param': 'index'}, 'first_address']}
    ip_name = resource.replace('-', '_') + '_ip'
    return {
        'heat_template_version': HOT_VERSION,
        'description': 'One %s of a Heat-driver cluster (servers made by the simulated Nova).' % resource,
        'parameters': {'index': {'type': 'string'}, 'servers': {'type': 'json'}},
        'resources': {resource: server},
        'outputs': {
            # The member's reference id is the server id, as in Magnum's templates.
            'OS::stack_id': {'value': {'get_param': ['servers', {'get_param': 'index'}, 'server_id']}},
            ip_name: {'value': address},
            'server_name': {'value': {'get_param': ['servers', {'get_param': 'index'}, 'server_name']}},
        },
    }


def cluster_template(layout):
    """(template, files, environment, parameters) for the cluster stack."""
    resources, parameters, param_defs = {}, {}, {}
    for group in (MASTERS, MINIONS):
        members = layout.members(group)
        if group == MASTERS and not members:
            # A nodegroup's own stack (no masters) has only kube_minions, as in Magnum.
            continue
        indices = [m['index'] for m in members]
        if len(set(indices)) != len(indices):
            raise ValueError('duplicate index in %s' % group)
        # ResourceGroup names members with the lowest indices not on its removal list: list every
        # gap below the highest wanted index, so the members are exactly the wanted indices.
        gaps = [str(i) for i in range(max(indices) + 1) if i not in indices] if indices else []
        servers = {str(m['index']): {
            'server_id': m['server_id'], 'server_name': m['server_name'],
            'networks': m.get('networks') or {}, 'first_address': m.get('first_address') or '',
        } for m in members}
        parameters[COUNT_PARAM[group]] = len(members)
        parameters[SERVERS_PARAM[group]] = servers
        param_defs[COUNT_PARAM[group]] = {'type': 'number'}
        param_defs[SERVERS_PARAM[group]] = {'type': 'json'}
        resources[group] = {'type': 'OS::Heat::ResourceGroup', 'properties': {
            'count': {'get_param': COUNT_PARAM[group]},
            'removal_policies': [{'resource_list': gaps}],
            'removal_policies_mode': 'update',
            'resource_def': {'type': MEMBER[group][1], 'properties': {
                'index': '%index%', 'servers': {'get_param': SERVERS_PARAM[group]}}},
        }}
    for key, value in layout.parameters.items():
        param_defs[key] = {'type': 'json' if isinstance(value, (dict, list)) else 'string'}
        parameters[key] = value if isinstance(value, (dict, list)) else str(value)
    outputs = {}
    for key, value in layout.outputs.items():
        outputs[key] = {'value': value}
        if key in layout.descriptions:
            outputs[key]['description'] = layout.descriptions[key]
    template = {
        'heat_template_version': HOT_VERSION,
        'description': 'Kubernetes cluster %s as the Magnum Heat driver lays it out (testworld).' % layout.name,
        'parameters': param_defs,
        'resources': resources,
        'outputs': outputs,
    }
    return template, parameters


class HeatStackBackend:
    """Create, update and delete the real Heat stack behind a simulated Heat-driver cluster.

    ``heat_endpoint``: the orchestration URL, either for one project or with
    ``%(tenant_id)s`` / ``%(project_id)s`` / ``{project_id}`` in it (filled from the session).
    ``session``: a keystoneauth session (``user_session``, ``service_session``, or any other).
    """

    def __init__(self, heat_endpoint, session, project_id=None, standin=None, timeout=None):
        self.session = session
        self.timeout = timeout
        project_id = project_id or (session.get_project_id() if any(
            p in heat_endpoint for p in ('%(tenant_id)s', '%(project_id)s', '{project_id}')) else None)
        self.endpoint = (heat_endpoint.replace('%(tenant_id)s', project_id or '')
                         .replace('%(project_id)s', project_id or '')
                         .replace('{project_id}', project_id or '')).rstrip('/')
        self._standin = standin

    # -- requests
    def _call(self, method, path, body=None, expect=(200, 201, 202, 204)):
        resp = self.session.request(self.endpoint + path, method, json=body, raise_exc=False,
                                    headers={'Accept': 'application/json'}, redirect=True, timeout=self.timeout)
        if resp.status_code not in expect:
            raise BridgeError('%s %s -> %s: %s' % (method, path, resp.status_code, resp.text[:500]))
        return resp

    @property
    def standin(self):
        """Whether heat-engine offers the stand-in server type (asked once)."""
        if self._standin is None:
            resp = self._call('GET', '/resource_types/' + STANDIN_TYPE, expect=(200, 404))
            self._standin = resp.status_code == 200
        return self._standin

    def _body(self, layout):
        template, parameters = cluster_template(layout)
        files = {MEMBER[g][1]: json.dumps(member_template(g, self.standin)) for g in (MASTERS, MINIONS)}
        environment = {'resource_registry': {'OS::Nova::Server': STANDIN_TYPE}} if self.standin else {}
        return {'template': template, 'files': files, 'environment': environment, 'parameters': parameters,
                'timeout_mins': layout.timeout_mins}

    # -- operations
    def create(self, layout, wait=False, timeout=120):
        """Create the stack; returns {'id', 'stack_name'}.

        Stack names carry random characters, so a stack of the same name is a leftover of
        an earlier simulator with the same seed (its delete still running): it goes first.
        """
        body = self._body(layout)
        body['stack_name'] = layout.name
        resp = self._call('POST', '/stacks', body, expect=(201, 409))
        if resp.status_code == 409:
            stale = self.get(layout.name)
            if stale is not None:
                if not stale['stack_status'].startswith('DELETE'):
                    self.delete(stale)
                self.wait(stale, 'DELETE', timeout)
            resp = self._call('POST', '/stacks', body)
        stack = resp.json()['stack']
        result = {'id': stack['id'], 'stack_name': layout.name}
        if wait:
            self.wait(result, 'CREATE', timeout)
        return result

    def update(self, stack, layout, wait=False, timeout=120):
        """Replace the stack's template with the layout's (members added or removed, outputs changed)."""
        self._call('PUT', '/stacks/' + self._ident(stack), self._body(layout))
        if wait:
            self.wait(stack, 'UPDATE', timeout)

    def delete(self, stack, wait=False, timeout=120):
        """Delete the stack; a stack already gone is fine."""
        try:
            ident = self._ident(stack)
        except BridgeError:
            return
        resp = self._call('DELETE', '/stacks/' + ident, expect=(204, 404))
        if wait and resp.status_code != 404:
            self.wait(stack, 'DELETE', timeout)

    def get(self, stack):
        """The stack (show view), or None when Heat has no such stack."""
        ident = stack if isinstance(stack, str) else '%s/%s' % (stack['stack_name'], stack['id'])
        resp = self._call('GET', '/stacks/' + ident, expect=(200, 404))
        return resp.json()['stack'] if resp.status_code == 200 else None

    def wait(self, stack, action, timeout=120, interval=0.5):
        """Wait for <action>_COMPLETE; raises on <action>_FAILED or timeout. Returns the stack."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(stack)
            if current is None:
                if action == 'DELETE':
                    return None
                raise BridgeError('stack %s disappeared' % self._name(stack))
            status = current['stack_status']
            if status == action + '_COMPLETE':
                return current
            if status == action + '_FAILED':
                raise BridgeError('stack %s: %s: %s' % (self._name(stack), status, current.get('stack_status_reason')))
            if time.monotonic() > deadline:
                raise BridgeError('stack %s still %s after %ss' % (self._name(stack), status, timeout))
            time.sleep(interval)

    def _ident(self, stack):
        """'name/id' for a stack given as {'stack_name', 'id'} or as a name or id alone."""
        if isinstance(stack, dict):
            return '%s/%s' % (stack['stack_name'], stack['id'])
        found = self.get(stack)
        if found is None:
            raise BridgeError('no stack %s' % stack)
        return '%s/%s' % (found['stack_name'], found['id'])

    @staticmethod
    def _name(stack):
        return stack['stack_name'] if isinstance(stack, dict) else stack


# --------------------------------------------------------------------------- the simulator's side

def _load_settings(settings):
    if isinstance(settings, str):
        with open(settings, encoding='utf-8') as f:
            settings = json.load(f)
    return settings


def attach(world, settings):
    """Bridge a simulated cloud's world to the real services; returns the handle to stop().

    ``settings``: the ``real_services`` scenario key (keystone_url, heat_url,
    service_credentials; cleanup: delete the real stacks when the simulator stops, default
    true), or the path of the controller's state.json. From then on:
    every X-Auth-Token the simulator sees is validated by the real Keystone, and every
    Heat-driver cluster has a real Heat stack (``HeatMirror``) whose id the cluster and its
    default nodegroups report as ``stack_id``.
    """
    settings = _load_settings(settings)
    validator = KeystoneTokenValidator(settings['keystone_url'], settings['service_credentials'])
    _validate_with(world, validator)
    mirror = HeatMirror(world, settings['heat_url'], settings['service_credentials'],
                        cleanup=settings.get('cleanup', True))
    # The scenario's clusters are complete from the start: so are their real stacks.
    mirror.settle(timeout=float(settings.get('settle_timeout', 180)))
    _gate_completion(world, mirror, float(settings.get('gate_timeout', 120)))
    mirror.start()
    return mirror


def _gate_completion(world, mirror, limit):
    """Hold back the end of a Heat-driver operation until the real stack has caught up.

    Magnum reports CREATE_COMPLETE (UPDATE_, DELETE_) once Heat has; the simulated driver
    completes on a timer. Its completion is deferred while the cluster's real stacks are
    not settled, at most ``limit`` seconds (then it completes anyway, and the mirror logs).
    """
    for driver in world.magnum.drivers.values():
        if getattr(driver, 'heat_stacks', False):
            driver._run = _gated_run(world, mirror, limit, driver._run)  # pylint: disable=protected-access


def _gated_run(world, mirror, limit, run):
    def gated(cluster_uuid, slot, fn, fault, args, since=None):
        cluster = world.magnum.clusters.get(cluster_uuid)
        since = time.monotonic() if since is None else since
        if cluster is not None and not mirror.settled(cluster):
            if time.monotonic() - since < limit:
                # Still the pending operation of its slot (cluster or nodegroup): a new one cancels it.
                slot.pending = world.later(0.2, gated, cluster_uuid, slot, fn, fault, args, since)
                return
            mirror._error('cluster %s went on without its real stack after %ss' % (cluster.name, limit))  # pylint: disable=protected-access
        run(cluster_uuid, slot, fn, fault, args)
    return gated


def _validate_with(world, validator):
    """Make ``world.keystone.validate_header`` answer with tokens of the real Keystone."""
    from testworld.openstack.keystone import Token  # pylint: disable=import-outside-toplevel

    keystone = world.keystone

    def validate_header(token_id):
        body = validator.validate(token_id)
        if body is None:
            return None
        issued = _expiry({'expires_at': body.get('issued_at')}) or world.now()
        if issued < keystone.revoked_before:  # the simulator's token_expire_all fault
            return None
        project = body.get('project')
        if project is not None:
            project = keystone.projects.get(project['id']) or {
                'id': project['id'], 'name': project['name'], 'domain_id': project['domain']['id']}
        roles = [r['name'] for r in body.get('roles', [])]
        user = keystone.users.get(body['user']['id'])
        if user is None:
            user = {'id': body['user']['id'], 'name': body['user']['name'], 'domain_id': body['user']['domain']['id'],
                    'default_project_id': project['id'] if project else None,
                    'assignments': {project['id']: roles} if project else {}}
        app_cred = None
        if body.get('application_credential'):
            ref = body['application_credential']
            app_cred = keystone.app_creds.get(ref['id']) or {'id': ref['id'], 'name': ref.get('name'),
                                                             'unrestricted': not ref.get('restricted', True)}
        return Token(token_id, user, project, roles, list(body.get('methods', [])), issued,
                     _expiry(body) or world.now() + 3600, (body.get('audit_ids') or [''])[0], app_cred)

    keystone.validate_header = validate_header


class HeatMirror:
    """Keeps one real Heat stack per simulated Heat-driver stack, in a thread of its own.

    Every ``interval`` seconds it takes a snapshot of the Heat-driver clusters (under the
    world's lock, without network calls) and brings real Heat in line: create, update when
    members or outputs changed (once the previous operation finished), delete when the
    cluster is being deleted or gone. Stacks are kept for the cluster's project by the
    simulator's service user, who holds admin there. Real Heat works at its own pace, as
    it does behind real Magnum; a simulated stack failure is not copied.
    """

    def __init__(self, world, heat_url, service_credentials, interval=0.3, cleanup=True):
        self.world = world
        self.cleanup = cleanup
        self.heat_url = heat_url
        self.service_credentials = service_credentials
        self.interval = interval
        self.entries = {}    # simulated stack id -> {'real', 'sent', 'busy', 'project_id', 'retry_at'}
        self.errors = []     # the latest failures, for tests and logs
        self._backends = {}
        self._create_retry = {}  # simulated stack id -> when a failed create may be tried again
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._loop, name='realservices-heat-mirror', daemon=True)
        self._thread.start()

    def stop(self, cleanup=None):
        """Stop mirroring; with ``cleanup`` (default: as constructed) delete the real stacks of
        this simulator too (its clusters go with it), without waiting for Heat to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.cleanup if cleanup is None else cleanup:
            deleting = []
            for entry in list(self.entries.values()):
                try:
                    backend = self.backend(entry['project_id'])
                    backend.timeout = 10
                    backend.delete(entry['real'])
                    deleting.append((backend, entry['real']))
                except (BridgeError, ks_exc.ClientException) as exc:
                    self._error('delete %s: %s' % (entry['real']['stack_name'], exc))
            self.entries.clear()
            # The next simulator of this tier may reuse the names: let Heat finish (briefly).
            deadline = time.monotonic() + 30
            for backend, real in deleting:
                try:
                    backend.wait(real, 'DELETE', max(1.0, deadline - time.monotonic()))
                except (BridgeError, ks_exc.ClientException) as exc:
                    self._error('delete %s: %s' % (real['stack_name'], exc))

    def backend(self, project_id):
        if project_id not in self._backends:
            self._backends[project_id] = HeatStackBackend(
                self.heat_url, service_session(self.service_credentials, project_id), project_id=project_id)
        return self._backends[project_id]

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as exc:  # pylint: disable=broad-except
                self._error('mirror: %s' % exc)
            self._stop.wait(self.interval)

    def _error(self, message):
        self.errors = (self.errors + [message])[-20:]
        print('realservices bridge: %s' % message, file=sys.stderr, flush=True)

    def idle(self):
        """True when every real stack matches the last snapshot and no operation is running."""
        wanted = self.snapshot()
        if set(wanted) != set(self.entries):
            return False
        return all(not e['busy'] and e['sent'] == wanted[sid][2] for sid, e in self.entries.items())

    # -- what the simulator holds
    def snapshot(self):
        """{simulated stack id: (project_id, StackLayout, key)} for every live Heat-driver stack."""
        out = {}
        with self.world.lock:
            for cluster in list(self.world.magnum.clusters.values()):
                out.update(self._cluster_stacks(cluster))
        return out

    def _cluster_stacks(self, cluster):
        """The live stacks of one cluster (its own, and those of non-default nodegroups); under the lock."""
        driver = cluster.driver
        if not getattr(driver, 'heat_stacks', False):
            return {}
        stacks = []
        if cluster.stack is not None:
            stacks.append((cluster.stack, [ng for ng in cluster.nodegroups if ng.is_default], driver.top_outputs(cluster)))
        for ng in cluster.nodegroups:
            if ng.own_stack is not None:
                stacks.append((ng.own_stack, [ng], driver.ng_outputs(cluster, ng)))
        out = {}
        for sim_stack, groups, outputs in stacks:
            if sim_stack.status.startswith('DELETE'):
                continue
            servers = []
            for ng in groups:
                group = MASTERS if ng.role == 'master' else MINIONS
                for m in ng.members:
                    addresses = driver.ips(m, False)
                    servers.append({'group': group, 'index': m.index, 'name': m.name, 'id': m.server_id,
                                    'first_address': addresses[0] if addresses else ''})
            layout = StackLayout(sim_stack.name, {o['output_key']: o.get('output_value') for o in outputs},
                                 servers, timeout_mins=sim_stack.timeout_mins or 60,
                                 descriptions={o['output_key']: o['description'] for o in outputs if o.get('description')})
            key = json.dumps([layout.outputs, sorted(servers, key=lambda s: (s['group'], s['index']))], sort_keys=True)
            out[sim_stack.id] = (cluster.project_id, layout, key)
        return out

    def _all_stack_ids(self, cluster):
        ids = [cluster.stack.id] if cluster.stack is not None else []
        return ids + [ng.own_stack.id for ng in cluster.nodegroups if ng.own_stack is not None]

    def settled(self, cluster):
        """Whether real Heat holds this cluster's stacks as they are now, no operation running."""
        with self.world.lock:
            wanted = self._cluster_stacks(cluster)
            ids = self._all_stack_ids(cluster)
        for sim_id in ids:
            entry = self.entries.get(sim_id)
            if sim_id in wanted:
                if entry is None or entry['busy'] or entry['sent'] != wanted[sim_id][2]:
                    return False
            elif entry is not None:
                return False
        return True

    def settle(self, timeout=180):
        """Sync in this thread until real Heat matches the simulator (before start())."""
        deadline = time.monotonic() + timeout
        while True:
            self.sync_once()
            if self.idle() or time.monotonic() > deadline:
                return
            time.sleep(self.interval)

    # -- bringing real Heat in line
    def sync_once(self):
        wanted = self.snapshot()
        now = time.monotonic()
        for sim_id, (project_id, layout, key) in wanted.items():
            entry = self.entries.get(sim_id)
            if entry is not None and entry.get('retry_at', 0) > now:
                continue
            if entry is None and self._create_retry.get(sim_id, 0) > now:
                continue
            try:
                if entry is None:
                    # Held back on failure, like the other operations (never a create per tick).
                    self._create_retry[sim_id] = now + 2
                    real = self.backend(project_id).create(layout)
                    self._create_retry.pop(sim_id, None)
                    self.entries[sim_id] = {'real': real, 'sent': key, 'busy': True, 'project_id': project_id}
                    self._adopt(sim_id, real['id'])
                    continue
                if entry['busy']:
                    current = self.backend(project_id).get(entry['real'])
                    status = current['stack_status'] if current else 'GONE'
                    if status.endswith('IN_PROGRESS'):
                        continue
                    entry['busy'] = False
                    if status.endswith('FAILED'):
                        self._error('stack %s: %s: %s' % (layout.name, status, current.get('stack_status_reason')))
                if entry['sent'] != key:
                    self.backend(project_id).update(entry['real'], layout)
                    entry.update(sent=key, busy=True)
            except (BridgeError, ks_exc.ClientException) as exc:
                self._error('stack %s: %s' % (layout.name, exc))
                if entry is not None:
                    entry['retry_at'] = now + 2
        for sim_id in [s for s in self.entries if s not in wanted]:
            entry = self.entries[sim_id]
            try:
                self.backend(entry['project_id']).delete(entry['real'])
                del self.entries[sim_id]
            except (BridgeError, ks_exc.ClientException) as exc:
                self._error('delete %s: %s' % (entry['real']['stack_name'], exc))

    def _adopt(self, sim_id, real_id):
        """The cluster (and its nodegroups) report the real stack's id from now on, as with Magnum."""
        with self.world.lock:
            for cluster in self.world.magnum.clusters.values():
                if cluster.stack is not None and cluster.stack.id == sim_id:
                    cluster.stack_id = real_id
                for ng in cluster.nodegroups:
                    if ng.stack_id == sim_id or (ng.own_stack is not None and ng.own_stack.id == sim_id):
                        ng.stack_id = real_id
