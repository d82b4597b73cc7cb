# -*- coding: utf-8 -*-
"""Differential fidelity check: the same requests to the simulated and to the real Keystone and Heat.

    python -m testworld.realservices.differential --state-dir DIR [--allowlist FILE] [--json]

DIR is a running tier started on the default scenario (``start.sh --state-dir DIR --scenario
default``); the simulator side is a fresh in-process simulator on the same scenario. Both tiers
write clouds.yaml the same way (``<prefix>`` the first user, ``<prefix>-<user>`` the others,
``<prefix>-appcred`` the first application credential), so one sequence of steps runs on each
side, each side keeping its own tokens, ids and stacks.

Every step is one request, normal or wrong (bad passwords, bad bodies, conflicts, other projects'
resources, state errors, unknown versions and paths). For each the status code, the shape of the
JSON body (every key path with the JSON type of its value; list elements merged), the values
that tell one error or state from another (``VALUE_PATHS``: Heat's error type, Keystone's error
title, a stack's status, a token's methods) and the presence of ``Location`` are compared. A difference is *allowed* when the allowlist
(``differential-allowlist.yml`` beside this file) names the step and the part that differs, with
the reason; anything else is *unexplained* and the exit status is 1.
"""

import argparse
import json
import os
import sys
import time
import uuid

import requests
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ALLOWLIST = os.path.join(HERE, 'differential-allowlist.yml')
# Values compared besides the shape: what tells one error or one state from another.
VALUE_PATHS = ('$.code', '$.title', '$.error.type', '$.error.code', '$.error.title', '$.stack.stack_status',
               '$.resource.resource_status', '$.token.methods')
JSON_TYPES = ((bool, 'bool'), (int, 'number'), (float, 'number'), (str, 'string'), (type(None), 'null'))


# --------------------------------------------------------------------------- shapes

def shape(value, path='$'):
    """The key paths of a JSON value, each with its JSON type; list elements share the path ``[]``."""
    if isinstance(value, dict):
        out = {path: 'object'}
        for key, item in value.items():
            out.update(shape(item, '%s.%s' % (path, key)))
        return out
    if isinstance(value, list):
        out = {path: 'array' if value else 'empty array'}
        for item in value:
            for key, kind in shape(item, path + '[]').items():
                # Elements of one list may differ (a null here, a string there): keep every kind.
                out[key] = kind if out.get(key) in (None, kind) else '|'.join(sorted(set(out[key].split('|')) | {kind}))
        return out
    for py, name in JSON_TYPES:
        if isinstance(value, py):
            return {path: name}
    return {path: type(value).__name__}


def compare(sim, real, skip_values=()):
    """The differences between two observations, as ``(part, detail)`` pairs."""
    diffs = []
    if sim['status'] != real['status']:
        diffs.append(('status', 'sim %s, real %s' % (sim['status'], real['status'])))
    if sim['location'] != real['location']:
        diffs.append(('location', 'Location header: sim %s, real %s' % (sim['location'], real['location'])))
    if sim['kind'] != real['kind']:
        diffs.append(('body', 'body: sim %s, real %s' % (sim['kind'], real['kind'])))
    elif sim['kind'] == 'json':
        for key in sorted(set(sim['shape']) | set(real['shape'])):
            a, b = sim['shape'].get(key), real['shape'].get(key)
            if a != b and not same_in_lists(key, a, b):
                diffs.append(('key ' + key, '%s: sim %s, real %s' % (key, a or 'absent', b or 'absent')))
        for key in (k for k in VALUE_PATHS if k not in skip_values):
            a, b = sim['values'].get(key), real['values'].get(key)
            if a != b:
                diffs.append(('value ' + key, '%s: sim %s, real %s' % (key, json.dumps(a), json.dumps(b))))
    return diffs


def same_in_lists(key, a, b):
    """Whether two kinds of a key of list elements differ only in null: which elements of a list
    have a value (an updated_time, a parent) is the list's data, e.g. which stacks were updated."""
    if a is None or b is None or '[]' not in key:
        return False
    kinds_a, kinds_b = set(a.split('|')) - {'null'}, set(b.split('|')) - {'null'}
    return bool(kinds_a) and kinds_a == kinds_b


def values(body):
    """The values at VALUE_PATHS (absent paths left out)."""
    out = {}
    for path in VALUE_PATHS:
        node = body
        for part in path.split('.')[1:]:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            # Keystone keeps a token's methods in a set: their order varies from token to token.
            out[path] = sorted(node) if isinstance(node, list) else node
    return out


# --------------------------------------------------------------------------- one side

class Side:
    """One cloud: its Keystone, its Heat (from the catalog), its users and what the steps kept."""

    def __init__(self, name, clouds_yaml, prefix):
        self.name = name
        with open(clouds_yaml, encoding='utf-8') as f:
            clouds = yaml.safe_load(f)['clouds']
        first = clouds[prefix]['auth']
        self.identity = first['auth_url'].rstrip('/')            # ends with /v3
        self.identity_root = self.identity[:-len('/v3')]
        self.users = {first['username']: first['password']}
        for cloud, entry in clouds.items():
            if cloud.startswith(prefix + '-') and entry.get('auth', {}).get('username'):
                self.users[entry['auth']['username']] = entry['auth']['password']
        appcred = clouds[prefix + '-appcred']['auth']
        self.appcred = {'id': appcred['application_credential_id'], 'secret': appcred['application_credential_secret']}
        self.http = requests.Session()
        self.kept = {}        # values steps keep: tokens, ids, names
        self.tokens = {}      # user -> (token, body)

    def token(self, user, project=None):
        """A project-scoped token of the user, in its own project unless another is named."""
        key = (user, project)
        if key not in self.tokens:
            scope = {'project': {'name': project or PROJECT_OF[user], 'domain': {'id': 'default'}}}
            resp = self.http.post(self.identity + '/auth/tokens', json=password_auth(user, self.users[user], scope), timeout=60)
            resp.raise_for_status()
            self.tokens[key] = (resp.headers['X-Subject-Token'], resp.json()['token'])
        return self.tokens[key][0]

    def appcred_names(self):
        """The application credential's name and its user's name, as a token of it tells."""
        if 'name' not in self.appcred:
            body = {'auth': {'identity': {'methods': ['application_credential'], 'application_credential': dict(
                id=self.appcred['id'], secret=self.appcred['secret'])}}}
            resp = self.http.post(self.identity + '/auth/tokens', json=body, timeout=60)
            resp.raise_for_status()
            token = resp.json()['token']
            self.appcred.update(name=token['application_credential']['name'], user=token['user']['name'])
        return self.appcred

    def token_body(self, user):
        self.token(user)
        return self.tokens[(user, None)][1]

    def project_id(self, user):
        return self.token_body(user)['project']['id']

    def user_id(self, user):
        return self.token_body(user)['user']['id']

    def heat(self, user='demo'):
        """The orchestration endpoint of the user's project, from its catalog."""
        for entry in self.token_body(user)['catalog']:
            if entry['type'] == 'orchestration':
                return next(e['url'] for e in entry['endpoints'] if e['interface'] == 'public').rstrip('/')
        raise LookupError('%s: no orchestration endpoint in the catalog' % self.name)

    def heat_root(self):
        url = self.heat()
        return url[:url.index('/v1/')]

    def send(self, method, url, user=None, headers=None, body=None, raw=None):
        hdrs = {'Accept': 'application/json'}
        if user:
            hdrs['X-Auth-Token'] = self.token(user)
        hdrs.update(headers or {})
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body)
            hdrs.setdefault('Content-Type', 'application/json')
        return self.http.request(method, url, headers=hdrs, data=data, allow_redirects=False, timeout=120)


# The id a step uses for the harness's stack when its create failed on that side.
NOT_MADE = '00000000-0000-4000-8000-000000000000'
PROJECT_OF = {'admin': 'hpc', 'demo': 'hpc', 'outsider': 'other'}


def password_auth(user, password, scope=None, domain=None):
    ident = {'name': user, 'password': password}
    if domain is not False:
        ident['domain'] = domain or {'id': 'default'}
    auth = {'identity': {'methods': ['password'], 'password': {'user': ident}}}
    if scope is not None:
        auth['scope'] = scope
    return {'auth': auth}


def observe(resp):
    ctype = resp.headers.get('Content-Type', '')
    obs = {'status': resp.status_code, 'location': 'Location' in resp.headers, 'kind': 'empty', 'shape': {},
           'values': {}, 'sample': resp.text[:300]}
    if resp.content:
        try:
            body = resp.json()
            obs['shape'], obs['values'] = shape(body), values(body)
            obs['kind'] = 'json'
        except ValueError:
            obs['kind'] = 'text (%s)' % ctype.split(';')[0]
    return obs


# --------------------------------------------------------------------------- the steps

class Step:
    """One request. ``request(side)`` answers the response; ``keep(side, resp)`` stores what
    later steps need; ``then(side)`` waits for a state (not compared)."""

    def __init__(self, ident, what, request, keep=None, then=None, skip_values=()):
        self.id = ident
        self.what = what
        self.request = request
        self.keep = keep
        self.then = then
        self.skip_values = skip_values


def keep_header(name, key):
    def keep(side, resp):
        side.kept[key] = resp.headers.get(name)
    return keep


def wait_stack(name, statuses=('CREATE_COMPLETE', 'UPDATE_COMPLETE', 'CREATE_FAILED', 'UPDATE_FAILED'), gone=False,
               timeout=240):
    """Until the harness's stack reaches one of ``statuses`` (or is gone from the name lookup)."""
    def then(side):
        deadline = time.monotonic() + timeout
        while True:
            resp = side.send('GET', '%s/stacks?name=%s' % (side.heat(), side.kept[name]), 'demo')
            stacks = resp.json().get('stacks', []) if resp.status_code == 200 else []
            if gone and not stacks:
                return
            if not gone and stacks and stacks[0]['stack_status'] in statuses:
                return
            if time.monotonic() > deadline:
                raise AssertionError('%s: stack %s not %s within %d s (%s)' % (
                    side.name, side.kept[name], 'gone' if gone else '/'.join(statuses), timeout, stacks))
            time.sleep(0.5)
    return then


TEMPLATE = {
    'heat_template_version': '2021-04-16',
    'description': 'differential check',
    'parameters': {
        'flavor': {'type': 'string', 'description': 'required'},
        'count': {'type': 'number', 'default': 2},
    },
    'resources': {
        'first': {'type': 'OS::Heat::None'},
        'second': {'type': 'OS::Heat::None', 'depends_on': ['first']},
    },
    'outputs': {
        'flavor': {'description': 'the flavor', 'value': {'get_param': 'flavor'}},
        'count': {'value': {'get_param': 'count'}},
    },
}


def template(**changes):
    t = json.loads(json.dumps(TEMPLATE))
    t.update(changes)
    return t


def keystone_steps():
    def ks(s):
        return s.identity

    def tok(s, user='admin'):
        return s.token(user)

    def pw(s, user):
        return s.users[user]

    hpc = {'project': {'name': 'hpc', 'domain': {'id': 'default'}}}

    def auth(body_fn, **kw):
        return lambda s: s.send('POST', ks(s) + '/auth/tokens', body=body_fn(s), **kw)

    def get(path, user='admin', **kw):
        return lambda s: s.send('GET', ks(s) + (path(s) if callable(path) else path), user, **kw)

    def subject(key_or_fn, method='GET', user='admin'):
        def req(s):
            subj = key_or_fn(s) if callable(key_or_fn) else s.kept[key_or_fn]
            return s.send(method, ks(s) + '/auth/tokens', user, headers={'X-Subject-Token': subj})
        return req

    return [
        Step('ks-version-root', 'GET the identity root (version list)', lambda s: s.send('GET', s.identity_root)),
        Step('ks-version-v3', 'GET /v3', lambda s: s.send('GET', ks(s))),
        Step('ks-auth-password', 'password, project scope by name',
             auth(lambda s: password_auth('demo', pw(s, 'demo'), hpc)), keep=keep_header('X-Subject-Token', 'demo-token')),
        Step('ks-auth-password-project-id', 'password, project scope by id',
             auth(lambda s: password_auth('admin', pw(s, 'admin'), {'project': {'id': s.project_id('admin')}}))),
        Step('ks-auth-unscoped', 'password, no scope',
             auth(lambda s: password_auth('outsider', pw(s, 'outsider')))),
        Step('ks-auth-wrong-password', 'password wrong',
             auth(lambda s: password_auth('demo', 'not-the-password', hpc))),
        Step('ks-auth-unknown-user', 'user unknown',
             auth(lambda s: password_auth('nobody-%s' % uuid.uuid4().hex[:6], 'x', hpc))),
        Step('ks-auth-unknown-project', 'project unknown',
             auth(lambda s: password_auth('demo', pw(s, 'demo'),
                                          {'project': {'name': 'no-such-project', 'domain': {'id': 'default'}}}))),
        Step('ks-auth-other-project', 'project the user has no role on',
             auth(lambda s: password_auth('demo', pw(s, 'demo'), {'project': {'name': 'other', 'domain': {'id': 'default'}}}))),
        Step('ks-auth-project-no-domain', 'project by name without its domain',
             auth(lambda s: password_auth('demo', pw(s, 'demo'), {'project': {'name': 'hpc'}}))),
        Step('ks-auth-user-no-domain', 'user by name without its domain',
             auth(lambda s: password_auth('demo', pw(s, 'demo'), hpc, domain=False))),
        Step('ks-auth-no-methods', 'identity without methods',
             auth(lambda s: {'auth': {'identity': {'password': {'user': {'name': 'demo'}}}}})),
        Step('ks-auth-no-auth', 'body without auth', auth(lambda s: {'identity': {}})),
        Step('ks-auth-not-json', 'body not JSON',
             lambda s: s.send('POST', ks(s) + '/auth/tokens', raw='{"auth": ', headers={'Content-Type': 'application/json'})),
        Step('ks-auth-empty-body', 'no body',
             lambda s: s.send('POST', ks(s) + '/auth/tokens', headers={'Content-Type': 'application/json'})),
        Step('ks-auth-text-plain', 'JSON body sent as text/plain',
             lambda s: s.send('POST', ks(s) + '/auth/tokens', raw=json.dumps(password_auth('demo', pw(s, 'demo'), hpc)),
                              headers={'Content-Type': 'text/plain'})),
        Step('ks-auth-unknown-method', 'method "totp" for a user without TOTP',
             auth(lambda s: {'auth': {'identity': {'methods': ['totp'], 'totp': {'user': {
                 'name': 'demo', 'domain': {'id': 'default'}, 'passcode': '123456'}}}}})),
        Step('ks-auth-system-scope', 'system scope for a user without a system role',
             auth(lambda s: password_auth('demo', pw(s, 'demo'), {'system': {'all': True}}))),
        Step('ks-auth-domain-scope', 'domain scope for a user without a domain role',
             auth(lambda s: password_auth('demo', pw(s, 'demo'), {'domain': {'id': 'default'}}))),
        Step('ks-auth-appcred', 'application credential by id',
             auth(lambda s: {'auth': {'identity': {'methods': ['application_credential'], 'application_credential': {
                 'id': s.appcred['id'], 'secret': s.appcred['secret']}}}})),
        Step('ks-auth-nocatalog', 'password, project scope, nocatalog',
             lambda s: s.send('POST', ks(s) + '/auth/tokens?nocatalog', body=password_auth('demo', pw(s, 'demo'), hpc))),
        Step('ks-auth-appcred-by-name', 'application credential by name and user',
             auth(lambda s: {'auth': {'identity': {'methods': ['application_credential'], 'application_credential': {
                 'name': s.appcred_names()['name'], 'user': {'name': s.appcred_names()['user'],
                                                             'domain': {'id': 'default'}},
                 'secret': s.appcred['secret']}}}})),
        Step('ks-auth-appcred-bad-secret', 'application credential, wrong secret',
             auth(lambda s: {'auth': {'identity': {'methods': ['application_credential'], 'application_credential': {
                 'id': s.appcred['id'], 'secret': 'wrong'}}}})),
        Step('ks-auth-appcred-unknown', 'application credential unknown',
             auth(lambda s: {'auth': {'identity': {'methods': ['application_credential'], 'application_credential': {
                 'id': uuid.uuid4().hex, 'secret': 'x'}}}})),
        Step('ks-auth-appcred-scoped', 'application credential with a scope',
             auth(lambda s: {'auth': {'identity': {'methods': ['application_credential'], 'application_credential': {
                 'id': s.appcred['id'], 'secret': s.appcred['secret']}}, 'scope': hpc}})),
        Step('ks-auth-token-rescope', 'token method, same project',
             auth(lambda s: {'auth': {'identity': {'methods': ['token'], 'token': {'id': s.kept['demo-token']}},
                                      'scope': hpc}})),
        Step('ks-auth-token-garbage', 'token method, unknown token',
             auth(lambda s: {'auth': {'identity': {'methods': ['token'], 'token': {'id': 'gAAAAABnotatoken'}}}})),
        Step('ks-validate', 'validate a token (admin)', subject('demo-token')),
        Step('ks-validate-head', 'HEAD validate a token', subject('demo-token', 'HEAD')),
        Step('ks-validate-own', 'validate its own token (member)', subject(lambda s: s.token('demo'), user='demo')),
        Step('ks-validate-others', "validate another user's token (member)",
             subject(lambda s: s.token('admin'), user='demo')),
        Step('ks-validate-nocatalog', 'validate a token, nocatalog',
             lambda s: s.send('GET', ks(s) + '/auth/tokens?nocatalog', 'admin', headers={'X-Subject-Token': s.token('demo')})),
        Step('ks-validate-garbage', 'validate an unknown token', subject(lambda s: 'gAAAAABgarbage')),
        Step('ks-validate-no-subject', 'validate without X-Subject-Token',
             lambda s: s.send('GET', ks(s) + '/auth/tokens', 'admin')),
        Step('ks-revoke', 'revoke a token', subject('demo-token', 'DELETE')),
        Step('ks-validate-revoked', 'validate a revoked token', subject('demo-token')),
        Step('ks-revoke-again', 'revoke a revoked token', subject('demo-token', 'DELETE')),
        Step('ks-revoked-as-auth', 'a revoked token as X-Auth-Token',
             lambda s: s.send('GET', ks(s) + '/auth/catalog', headers={'X-Auth-Token': s.kept['demo-token']})),
        Step('ks-catalog', 'GET /auth/catalog', get('/auth/catalog', 'demo')),
        Step('ks-catalog-no-token', 'GET /auth/catalog without a token', get('/auth/catalog', None)),
        Step('ks-catalog-bad-token', 'GET /auth/catalog with a bad token',
             lambda s: s.send('GET', ks(s) + '/auth/catalog', headers={'X-Auth-Token': 'gAAAAABbad'})),
        Step('ks-auth-projects', 'GET /auth/projects', get('/auth/projects', 'demo')),
        Step('ks-projects-admin', 'list projects (admin)', get('/projects', 'admin')),
        Step('ks-projects-member', 'list projects (member)', get('/projects', 'demo')),
        Step('ks-users-member', 'list users (member)', get('/users', 'demo')),
        Step('ks-project-own', 'show its own project', get(lambda s: '/projects/' + s.project_id('demo'), 'demo')),
        Step('ks-project-other', 'show a project it has no role on',
             get(lambda s: '/projects/' + s.project_id('outsider'), 'demo')),
        Step('ks-project-missing', 'show a project that does not exist (admin)',
             get('/projects/' + uuid.uuid4().hex, 'admin')),
        Step('ks-user-self', 'show itself', get(lambda s: '/users/' + s.user_id('demo'), 'demo')),
        Step('ks-user-other', 'show another user (member)', get(lambda s: '/users/' + s.user_id('admin'), 'demo')),
        Step('ks-unknown-path', 'GET an unknown path', get('/no-such-collection', 'demo')),
        Step('ks-tokens-patch', 'PATCH /auth/tokens', lambda s: s.send('PATCH', ks(s) + '/auth/tokens', 'demo', body={})),
    ]


def heat_steps():
    def heat(s, user='demo'):
        return s.heat(user)

    def stacks(s, user='demo'):
        return s.heat(user) + '/stacks'

    def cluster(s):
        return '%s/stacks/%s/%s' % (s.heat(), s.kept['cluster-name'], s.kept['cluster-id'])

    def mine(s):
        return '%s/stacks/%s/%s' % (s.heat(), new_name(s), s.kept.get('stack-id', NOT_MADE))

    def get(url, user='demo', **kw):
        return lambda s: s.send('GET', url(s), user, **kw)

    def find_cluster_stack(side, resp):
        names = sorted((st['stack_name'], st['id']) for st in resp.json()['stacks']
                       if st['stack_name'].startswith('hpc-heat-') and '-gpu-' not in st['stack_name'])
        if not names:
            raise AssertionError('%s: no stack of the cluster hpc-heat' % side.name)
        side.kept['cluster-name'], side.kept['cluster-id'] = names[0]

    def create(body_fn, user='demo', url=stacks):
        return lambda s: s.send('POST', url(s), user, body=body_fn(s))

    def new_name(side):
        side.kept.setdefault('stack-name', 'diff-%s' % uuid.uuid4().hex[:10])
        return side.kept['stack-name']

    def keep_created(side, resp):
        if resp.status_code == 201:
            side.kept['stack-id'] = resp.json()['stack']['id']

    def good(s):
        return {'stack_name': new_name(s), 'template': template(), 'parameters': {'flavor': 'm1'}, 'timeout_mins': 10}

    def other(s):
        return 'other-%s' % uuid.uuid4().hex[:8]

    return [
        Step('heat-versions', 'GET the orchestration root (versions)', lambda s: s.send('GET', s.heat_root() + '/')),
        Step('heat-list', 'list stacks', get(stacks), keep=find_cluster_stack),
        Step('heat-list-no-token', 'list stacks without a token', get(stacks, None)),
        Step('heat-list-bad-token', 'list stacks with a bad token',
             lambda s: s.send('GET', stacks(s), headers={'X-Auth-Token': 'gAAAAABbad'})),
        Step('heat-list-other-tenant', "list stacks under another project's URL",
             lambda s: s.send('GET', stacks(s, 'outsider'), 'demo')),
        Step('heat-list-limit', 'list stacks, limit=1', get(lambda s: stacks(s) + '?limit=1')),
        Step('heat-list-limit-bad', 'list stacks, limit=abc', get(lambda s: stacks(s) + '?limit=abc')),
        Step('heat-list-limit-negative', 'list stacks, limit=-1', get(lambda s: stacks(s) + '?limit=-1')),
        Step('heat-list-marker-unknown', 'list stacks, marker unknown',
             get(lambda s: stacks(s) + '?marker=' + str(uuid.uuid4()))),
        Step('heat-list-marker', 'list stacks, marker = the cluster stack',
             get(lambda s: stacks(s) + '?marker=' + s.kept['cluster-id'])),
        Step('heat-list-sort-dir-bad', 'list stacks, sort_dir=sideways', get(lambda s: stacks(s) + '?sort_dir=sideways')),
        Step('heat-list-sort-key-bad', 'list stacks, sort_keys=colour', get(lambda s: stacks(s) + '?sort_keys=colour')),
        Step('heat-list-status', 'list stacks, status=CREATE_COMPLETE',
             get(lambda s: stacks(s) + '?status=CREATE_COMPLETE')),
        Step('heat-list-name', 'list stacks, name = the cluster stack',
             get(lambda s: stacks(s) + '?name=' + s.kept['cluster-name'])),
        Step('heat-list-name-none', 'list stacks, name unknown', get(lambda s: stacks(s) + '?name=no-such-stack')),
        Step('heat-list-show-nested', 'list stacks, show_nested=true', get(lambda s: stacks(s) + '?show_nested=true')),
        Step('heat-list-global-member', 'list stacks, global_tenant=true (member)',
             get(lambda s: stacks(s) + '?global_tenant=true')),
        Step('heat-list-global-bad', 'list stacks, global_tenant=maybe (admin)',
             get(lambda s: stacks(s, 'admin') + '?global_tenant=maybe', 'admin')),
        Step('heat-list-outsider', 'list stacks (another project)', get(lambda s: stacks(s, 'outsider'), 'outsider')),
        Step('heat-lookup-name', 'GET stacks/<name>', get(lambda s: stacks(s) + '/' + s.kept['cluster-name'])),
        Step('heat-lookup-id', 'GET stacks/<id>', get(lambda s: stacks(s) + '/' + s.kept['cluster-id'])),
        Step('heat-lookup-missing', 'GET stacks/<unknown name>', get(lambda s: stacks(s) + '/no-such-stack')),
        Step('heat-lookup-resources', 'GET stacks/<name>/resources',
             get(lambda s: stacks(s) + '/' + s.kept['cluster-name'] + '/resources')),
        # The cluster stack's action (CREATE or UPDATE) is its history's: the tier's mirror updates
        # its stack whenever the simulator's cluster changes, which earlier tests may have done.
        Step('heat-show', 'GET stacks/<name>/<id>', get(cluster), skip_values=('$.stack.stack_status',)),
        Step('heat-show-no-outputs', 'GET stacks/<name>/<id>?resolve_outputs=false',
             get(lambda s: cluster(s) + '?resolve_outputs=false'), skip_values=('$.stack.stack_status',)),
        Step('heat-show-resolve-bad', 'GET stacks/<name>/<id>?resolve_outputs=maybe',
             get(lambda s: cluster(s) + '?resolve_outputs=maybe')),
        Step('heat-show-wrong-id', 'GET stacks/<name>/<other id>',
             get(lambda s: '%s/%s/%s' % (stacks(s), s.kept['cluster-name'], uuid.uuid4()))),
        Step('heat-show-outsider', "GET another project's stack by its URL", get(cluster, 'outsider')),
        Step('heat-show-outsider-own-url', "GET another project's stack under its own project's URL",
             lambda s: s.send('GET', '%s/stacks/%s/%s' % (stacks(s, 'outsider')[:-len('/stacks')], s.kept['cluster-name'],
                                                          s.kept['cluster-id']), 'outsider')),
        Step('heat-resources', 'list resources', get(lambda s: cluster(s) + '/resources')),
        Step('heat-resources-nested', 'list resources, nested_depth=2', get(lambda s: cluster(s) + '/resources?nested_depth=2')),
        Step('heat-resources-depth-bad', 'list resources, nested_depth=deep',
             get(lambda s: cluster(s) + '/resources?nested_depth=deep')),
        Step('heat-resources-type', 'list resources, type filter',
             get(lambda s: cluster(s) + '/resources?type=OS::Heat::ResourceGroup')),
        Step('heat-resources-detail', 'list resources, with_detail=true',
             get(lambda s: cluster(s) + '/resources?with_detail=true')),
        Step('heat-events', 'list the stack\'s events', get(lambda s: cluster(s) + '/events')),
        Step('heat-resource-show', 'show a resource', get(lambda s: cluster(s) + '/resources/kube_masters')),
        Step('heat-resource-missing', 'show an unknown resource', get(lambda s: cluster(s) + '/resources/no_such')),
        Step('heat-outputs', 'list outputs', get(lambda s: cluster(s) + '/outputs')),
        Step('heat-output-show', 'show an output', get(lambda s: cluster(s) + '/outputs/api_address')),
        Step('heat-output-missing', 'show an unknown output', get(lambda s: cluster(s) + '/outputs/no_such')),
        Step('heat-unknown-path', 'GET an unknown path under the project', get(lambda s: heat(s) + '/no-such-thing')),
        Step('heat-unknown-version', 'GET /v2/<project>/stacks',
             lambda s: s.send('GET', stacks(s).replace('/v1/', '/v2/'), 'demo')),
        Step('heat-stacks-delete-collection', 'DELETE the stacks collection', lambda s: s.send('DELETE', stacks(s), 'demo')),
        Step('heat-microversion-header', 'list stacks with OpenStack-API-Version: orchestration 1.99',
             get(stacks, headers={'OpenStack-API-Version': 'orchestration 1.99'})),

        # A stack of the harness's own: same template on both sides.
        Step('heat-create', 'create a stack', create(good), keep=keep_created, then=wait_stack('stack-name')),
        Step('heat-create-duplicate', 'create a stack whose name is taken', create(good)),
        Step('heat-create-missing-param', 'create without a required parameter',
             create(lambda s: {'stack_name': other(s), 'template': template()})),
        Step('heat-create-unknown-param', 'create with a parameter the template lacks',
             create(lambda s: {'stack_name': other(s), 'template': template(), 'parameters': {'flavor': 'm1', 'colour': 'x'}})),
        Step('heat-create-bad-type', 'create with an unknown resource type',
             create(lambda s: {'stack_name': other(s), 'template': template(resources={'x': {'type': 'OS::No::Such'}}),
                               'parameters': {'flavor': 'm1'}})),
        Step('heat-create-bad-version', 'create with an unknown heat_template_version',
             create(lambda s: {'stack_name': other(s), 'template': template(heat_template_version='1999-01-01'),
                               'parameters': {'flavor': 'm1'}})),
        Step('heat-create-no-template', 'create without a template', create(lambda s: {'stack_name': other(s)})),
        Step('heat-create-no-name', 'create without stack_name', create(lambda s: {'template': template()})),
        Step('heat-create-bad-name', 'create with an invalid stack name',
             create(lambda s: {'stack_name': '1 bad name', 'template': template(), 'parameters': {'flavor': 'm1'}})),
        Step('heat-create-not-json', 'create, body not JSON',
             lambda s: s.send('POST', stacks(s), 'demo', raw='{"stack_name": ', headers={'Content-Type': 'application/json'})),
        Step('heat-create-other-tenant', "create under another project's URL",
             create(lambda s: {'stack_name': other(s), 'template': template(), 'parameters': {'flavor': 'm1'}},
                    url=lambda s: stacks(s, 'outsider'))),
        Step('heat-created-list', 'list stacks, name = the new stack',
             get(lambda s: stacks(s) + '?name=' + s.kept['stack-name'])),
        Step('heat-created-show', 'show the new stack', get(mine)),
        Step('heat-created-resources', 'list the new stack\'s resources', get(lambda s: mine(s) + '/resources')),
        Step('heat-created-resource', 'show a resource of the new stack', get(lambda s: mine(s) + '/resources/second')),
        Step('heat-created-outputs', 'list the new stack\'s outputs', get(lambda s: mine(s) + '/outputs')),
        Step('heat-created-output', 'show an output of the new stack', get(lambda s: mine(s) + '/outputs/flavor')),
        Step('heat-created-template', 'GET the new stack\'s template', get(lambda s: mine(s) + '/template')),
        Step('heat-created-outsider-delete', "delete another project's stack", lambda s: s.send('DELETE', mine(s), 'outsider')),
        Step('heat-update-patch', 'PATCH the stack (a parameter)',
             lambda s: s.send('PATCH', mine(s), 'demo', body={'parameters': {'count': 3}}),
             then=wait_stack('stack-name', ('UPDATE_COMPLETE', 'UPDATE_FAILED'))),
        Step('heat-updated-show', 'show the updated stack', get(mine)),
        Step('heat-update-put-no-template', 'PUT the stack without a template',
             lambda s: s.send('PUT', mine(s), 'demo', body={'parameters': {'flavor': 'm2'}})),
        Step('heat-update-put-missing-param', 'PUT a template whose required parameter is not given',
             lambda s: s.send('PUT', mine(s), 'demo', body={'template': template()})),
        Step('heat-update-wrong-id', 'PATCH a stack id that does not exist',
             lambda s: s.send('PATCH', '%s/stacks/%s/%s' % (heat(s), s.kept['stack-name'], uuid.uuid4()), 'demo',
                              body={'parameters': {'count': 4}})),
        Step('heat-delete', 'delete the stack', lambda s: s.send('DELETE', mine(s), 'demo'),
             then=wait_stack('stack-name', gone=True)),
        Step('heat-delete-again', 'delete the deleted stack', lambda s: s.send('DELETE', mine(s), 'demo')),
        Step('heat-deleted-show', 'show the deleted stack by name and id', get(mine)),
        Step('heat-deleted-lookup', 'GET stacks/<deleted name>', get(lambda s: stacks(s) + '/' + s.kept['stack-name'])),
        Step('heat-deleted-update', 'PATCH the deleted stack',
             lambda s: s.send('PATCH', mine(s), 'demo', body={'parameters': {'count': 5}})),
        Step('heat-delete-missing', 'delete a stack that never existed',
             lambda s: s.send('DELETE', '%s/stacks/no-such-stack/%s' % (heat(s), uuid.uuid4()), 'demo')),
    ]


def steps():
    return keystone_steps() + heat_steps()


# --------------------------------------------------------------------------- running and judging

def run_side(side, sequence):
    out = {}
    for step in sequence:
        try:
            resp = step.request(side)
        except requests.RequestException as exc:
            out[step.id] = {'status': 'no answer (%s)' % type(exc).__name__, 'location': False, 'kind': 'none', 'shape': {}}
            continue
        out[step.id] = observe(resp)
        if step.keep is not None:
            step.keep(side, resp)
        if step.then is not None and resp.status_code < 300:
            step.then(side)
    return out


def load_allowlist(path=ALLOWLIST):
    with open(path, encoding='utf-8') as f:
        entries = yaml.safe_load(f) or []
    out = {}
    for entry in entries:
        for field in ('id', 'differs', 'reason'):
            if not entry.get(field):
                raise ValueError('%s: an entry lacks %r: %r' % (path, field, entry))
        out.setdefault(entry['id'], []).append(entry)
    return out


def allowed_by(entries, part):
    """The allowlist entry that covers one part of a difference: ``status``, ``location``, ``body``
    or ``key <path>`` (an entry's ``differs`` ending with ``*`` covers every path it starts)."""
    for entry in entries:
        for pattern in entry['differs'] if isinstance(entry['differs'], list) else [entry['differs']]:
            if pattern == part or (pattern.endswith('*') and part.startswith(pattern[:-1])):
                return entry
    return None


def judge(sequence, sim, real, allowlist):
    rows = []
    used = set()
    for step in sequence:
        diffs = compare(sim[step.id], real[step.id], step.skip_values)
        entries = allowlist.get(step.id, [])
        unexplained, reasons = [], []
        for part, detail in diffs:
            entry = allowed_by(entries, part)
            if entry is None:
                unexplained.append(detail)
            else:
                used.add((step.id, id(entry)))
                if entry['reason'] not in reasons:
                    reasons.append(entry['reason'])
        verdict = 'identical' if not diffs else ('unexplained' if unexplained else 'allowed')
        rows.append({'id': step.id, 'what': step.what, 'sim': sim[step.id]['status'], 'real': real[step.id]['status'],
                     'verdict': verdict, 'unexplained': unexplained, 'reasons': reasons,
                     'differences': [detail for dummy, detail in diffs]})
    stale = [e['id'] for ident, es in allowlist.items() for e in es if (ident, id(e)) not in used]
    return rows, stale


def summarize(rows, stale):
    counts = {'compared': len(rows)}
    for verdict in ('identical', 'allowed', 'unexplained'):
        counts[verdict] = sum(1 for r in rows if r['verdict'] == verdict)
    counts['stale_allowlist_entries'] = len(stale)
    return counts


def table(rows, stale):
    lines = ['%-34s %-5s %-5s %-11s %s' % ('request', 'sim', 'real', 'verdict', 'what / why')]
    for r in rows:
        lines.append('%-34s %-5s %-5s %-11s %s' % (r['id'], r['sim'], r['real'], r['verdict'], r['what']))
        for reason in r['reasons']:
            lines.append('%-58s allowed: %s' % ('', reason))
        for detail in r['unexplained']:
            lines.append('%-58s UNEXPLAINED: %s' % ('', detail))
    counts = summarize(rows, stale)
    lines.append('')
    lines.append('requests compared: %(compared)d; identical: %(identical)d; allowed differences: %(allowed)d; '
                 'unexplained: %(unexplained)d' % counts)
    if stale:
        lines.append('allowlist entries that matched nothing: %s' % ', '.join(sorted(set(stale))))
    return '\n'.join(lines)


def wait_for_cluster_stack(side, timeout=300):
    """Until the side shows the scenario cluster's stack, complete (the tier's mirror makes it
    a little after the simulator's cluster; not compared)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = side.send('GET', side.heat() + '/stacks', 'demo')
        stacks = resp.json().get('stacks', []) if resp.status_code == 200 else []
        if any(st['stack_name'].startswith('hpc-heat-') and '-gpu-' not in st['stack_name']
               and st['stack_status'].endswith('_COMPLETE') for st in stacks):
            return
        if time.monotonic() > deadline:
            raise AssertionError('%s: no complete stack of the cluster hpc-heat within %d s (%s)' % (
                side.name, timeout, [(st['stack_name'], st['stack_status']) for st in stacks]))
        time.sleep(1)


def differential(sim_side, real_side, allowlist_path=ALLOWLIST):
    """Run every step on both sides; answers (rows, stale allowlist ids, counts)."""
    sequence = steps()
    for side in (sim_side, real_side):
        wait_for_cluster_stack(side)
    sim = run_side(sim_side, sequence)
    real = run_side(real_side, sequence)
    rows, stale = judge(sequence, sim, real, load_allowlist(allowlist_path))
    return rows, stale, summarize(rows, stale)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m testworld.realservices.differential', description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--state-dir', required=True, help='state directory of a tier running on the default scenario')
    parser.add_argument('--allowlist', default=ALLOWLIST)
    parser.add_argument('--json', action='store_true', help='print the rows as JSON instead of the table')
    args = parser.parse_args(argv)

    from testworld.openstack import SimCloud  # pylint: disable=import-outside-toplevel
    from testworld.realservices.controller import RealServices  # pylint: disable=import-outside-toplevel

    state = RealServices(args.state_dir).status()
    if not state.get('running'):
        parser.error('no tier running in %s (start.sh --state-dir %s --scenario default)' % (args.state_dir, args.state_dir))
    cloud = SimCloud.start(scenario='default')
    try:
        rows, stale, counts = differential(Side('sim', cloud.clouds_yaml, cloud.cloud_name),
                                           Side('real', state['clouds_yaml'], 'hpcops-real'), args.allowlist)
    finally:
        cloud.stop()
    print(json.dumps({'rows': rows, 'stale': stale, 'counts': counts}, indent=1) if args.json else table(rows, stale))
    return 1 if counts['unexplained'] else 0


if __name__ == '__main__':
    sys.exit(main())
