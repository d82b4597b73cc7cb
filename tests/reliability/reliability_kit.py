# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pieces of the reliability suite (this file holds no tests).

- `run_playbook`: ansible-playbook in a subprocess against localhost, every task
  result recorded as JSON (the test world's `hpcops_results` callback), stdout,
  stderr and an optional log file kept for the secrets grep.
- `play`/`task`: playbook text from Python data, so a matrix of cases becomes one
  play of many tasks instead of many ansible-playbook runs.
- `CloudApi`: the simulated cloud read through its public OpenStack APIs (Keystone
  token, Nova, Neutron, Magnum, Heat), which is how leftovers are counted.
- `census`/`leftovers`: what a scenario left behind: duplicate clusters, templates
  and nodegroups, clusters stuck in a failed state, leaked ports, orphaned servers
  and stacks, doubled interfaces.
- `FIGURES`: the numbers the session prints at the end (see conftest.py).
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from testworld import ansible_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLBACKS = os.path.join(REPO, 'testworld', 'kubernetes', 'callback_plugins')
CLOUD = 'hpcops-sim'
PORT_MARKER = 'hpcops.coe.server_interfaces'
MAGNUM_VERSION = {'OpenStack-API-Version': 'container-infra 1.10'}
WRITE_METHODS = ('POST', 'PUT', 'PATCH', 'DELETE')
KUBE_WRITE_VERBS = ('create', 'update', 'patch', 'delete', 'deletecollection')

# Short sim timings: long enough that clients see BUILD / *_IN_PROGRESS, short
# enough that a whole scenario takes seconds.
TIMINGS = {
    'server_build': 0.1, 'server_delete': 0.05, 'attach': 0.1, 'detach': 0.05, 'port_bind': 0.05,
    'cluster_create': 0.4, 'cluster_update': 0.3, 'cluster_delete': 0.2,
    'nodegroup_create': 0.3, 'nodegroup_update': 0.2, 'nodegroup_delete': 0.2,
}
KUBE_OPTIONS = {'nfd_interval': 0.2, 'tick': 0.05, 'pod_start': 0.05, 'job_run': 0.1}
SCENARIOS = os.path.join(REPO, 'testworld', 'scenarios')


def _default_scenario():
    import yaml

    with open(os.path.join(SCENARIOS, 'default.yml')) as f:
        scn = yaml.safe_load(f)
    # A cluster that never finishes building would be in every count; no test here needs it.
    scn['clusters'] = [c for c in scn['clusters'] if c.get('complete_after') != 'never']
    return scn


# The demo cloud: one project, VM and bare-metal flavors, fast networks, two clusters.
DEFAULT_SCENARIO = _default_scenario()


# --------------------------------------------------------------------------- figures

class Figures(object):
    """What the suite counted; printed by the terminal summary hook."""

    def __init__(self):
        self.lock = threading.Lock()
        self.fault_scenarios = []      # {name, module_runs, first_run_ok, rerun_ok, clean_failures}
        self.leaks = {}                # scenario -> {kind: count}
        self.bad_input = {}            # group -> [tried, passed]
        self.secrets = {}              # label -> {grepped, found, values, sources}
        self.check_mode = [0, 0]       # predictions compared, matched
        self.concurrency = []          # (what, ok)
        self.chaos = []                # (step, {figure: value})

    def fault(self, name, module_runs, first_ok, rerun_ok, clean_failures):
        with self.lock:
            self.fault_scenarios.append({'name': name, 'module_runs': module_runs, 'first_run_ok': first_ok,
                                         'rerun_ok': rerun_ok, 'clean_failures': clean_failures})

    def leaked(self, scenario, counts):
        with self.lock:
            self.leaks[scenario] = dict(counts)

    def bad(self, group, tried, passed):
        with self.lock:
            t, p = self.bad_input.get(group, (0, 0))
            self.bad_input[group] = (t + tried, p + passed)

    def secret_grep(self, label, values, sources, found):
        with self.lock:
            self.secrets[label] = {'values': values, 'sources': sources, 'grepped': values * sources,
                                   'found': found}

    def predictions(self, compared, matched):
        with self.lock:
            self.check_mode[0] += compared
            self.check_mode[1] += matched

    def state(self):
        """What was counted, as JSON-ready data (xdist workers hand it to the controller)."""
        with self.lock:
            return {'fault_scenarios': self.fault_scenarios, 'leaks': self.leaks,
                    'bad_input': dict((g, list(tp)) for g, tp in self.bad_input.items()),
                    'secrets': self.secrets, 'check_mode': self.check_mode, 'concurrency': self.concurrency,
                    'chaos': self.chaos}

    def merge(self, state):
        """Add another process's counts to these."""
        self.fault_scenarios.extend(state['fault_scenarios'])
        self.leaks.update(state['leaks'])
        for group, (tried, passed) in state['bad_input'].items():
            self.bad(group, tried, passed)
        self.secrets.update(state['secrets'])
        self.predictions(*state['check_mode'])
        self.concurrency.extend(tuple(c) for c in state['concurrency'])
        self.chaos.extend(tuple(c) for c in state.get('chaos', []))

    def lines(self):
        out = []
        runs = sum(s['module_runs'] for s in self.fault_scenarios)
        first = sum(s['first_run_ok'] for s in self.fault_scenarios)
        rerun = sum(s['rerun_ok'] for s in self.fault_scenarios)
        clean = sum(s['clean_failures'] for s in self.fault_scenarios)
        out.append('fault scenarios run: %d (%d module runs under faults: %d converged on the first run, '
                   '%d failed with a clear message, %d converged on the rerun)'
                   % (len(self.fault_scenarios), runs, first, clean, rerun))
        for s in self.fault_scenarios:
            out.append('    %-34s %2d runs  first run %2d  clear failures %2d  rerun %2d'
                       % (s['name'], s['module_runs'], s['first_run_ok'], s['clean_failures'], s['rerun_ok']))
        total = sum(sum(c.values()) for c in self.leaks.values())
        kinds = {}
        for counts in self.leaks.values():
            for k, v in counts.items():
                kinds[k] = kinds.get(k, 0) + v
        out.append('leaked resources counted: %d (must be 0) over %d census(es): %s' % (
            total, len(self.leaks), ', '.join('%s %d' % kv for kv in sorted(kinds.items())) or 'nothing counted'))
        tried = sum(t for t, dummy in self.bad_input.values())
        passed = sum(p for dummy, p in self.bad_input.values())
        out.append('bad-input cases tried: %d, passed: %d (%s)' % (
            tried, passed, ', '.join('%s %d/%d' % (g, p, t) for g, (t, p) in sorted(self.bad_input.items()))))
        for label, s in sorted(self.secrets.items()) or [('nothing', {'values': 0, 'sources': 0, 'grepped': 0,
                                                                      'found': 0})]:
            out.append('secrets grepped in %s: %d (%d secret values x %d captured outputs), found: %d (must be 0)'
                       % (label, s['grepped'], s['values'], s['sources'], s['found']))
        out.append('check-mode predictions matched: %d of %d' % (self.check_mode[1], self.check_mode[0]))
        if self.concurrency:
            out.append('concurrency checks: %d of %d held (%s)' % (
                sum(1 for dummy, ok in self.concurrency if ok), len(self.concurrency),
                ', '.join('%s %s' % (w, 'ok' if ok else 'FAILED') for w, ok in self.concurrency)))
        for step, figures in self.chaos:
            out.append('chaos: %-38s %s' % (step, ', '.join('%s %s' % kv for kv in sorted(figures.items()))))
        return out


FIGURES = Figures()


# --------------------------------------------------------------------------- playbooks

def task(module, args, name=None, **keywords):
    """One task dict; `module` without a dot is an hpcops.coe module."""
    fq = module if '.' in module else 'hpcops.coe.' + module
    t = {'name': name or module, fq: args}
    t.update(keywords)
    return t


def play(tasks, name='reliability', cloud=CLOUD, hosts='localhost', extra=None):
    doc = {'name': name, 'hosts': hosts, 'gather_facts': False, 'tasks': list(tasks)}
    if cloud:
        doc['module_defaults'] = {'group/hpcops.coe.openstack': {'cloud': cloud}}
    doc.update(extra or {})
    return [doc]


class Run(object):
    """The outcome of one ansible-playbook run."""

    def __init__(self, rc, stdout, stderr, records, log_text, command, seconds):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.records = records
        self.log_text = log_text
        self.command = command
        self.seconds = seconds

    def __repr__(self):
        return '<Run rc=%s tasks=%d %.1fs>' % (self.rc, len(self.records), self.seconds)

    @property
    def playbook(self):
        return self.command[5]

    def record(self, name):
        hits = [r for r in self.records if r['task'] == name]
        if not hits:
            raise KeyError('no task %r ran; tasks: %s' % (name, [r['task'] for r in self.records]))
        return hits[-1]

    def result(self, name):
        return self.record(name)['result']

    def results(self):
        """{task name: result} (the last one of each name)."""
        return dict((r['task'], r['result']) for r in self.records)

    def failed(self, name):
        return self.record(name)['status'] in ('failed', 'ignored', 'unreachable')

    def explain(self):
        bad = ['%s: %s' % (r['task'], str(r['result'].get('msg'))[:600]) for r in self.records
               if r['status'] in ('failed', 'ignored', 'unreachable')]
        return 'rc=%s in %.1fs\nfailed tasks:\n  %s\n--- stdout (tail) ---\n%s\n--- stderr (tail) ---\n%s' % (
            self.rc, self.seconds, '\n  '.join(bad) or '-', self.stdout[-3000:], self.stderr[-2000:])

    def captured(self):
        """Everything this run showed or wrote about itself, for the secrets grep."""
        return {'stdout': self.stdout, 'stderr': self.stderr, 'log': self.log_text or '',
                'results': '\n'.join(json.dumps(r, default=str) for r in self.records)}


def playbook_env(workdir, openstack=None, kube=None, extra=None):
    env = dict(os.environ)
    tmp = os.path.join(workdir, 'tmp')
    os.makedirs(tmp, exist_ok=True)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': os.environ.get('ANSIBLE_COLLECTIONS_PATH')
        or os.path.join(REPO, '.cache', 'collections'),
        'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
        'ANSIBLE_CALLBACKS_ENABLED': 'hpcops_results',
        'ANSIBLE_STDOUT_CALLBACK': 'default',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'ANSIBLE_HOME': os.path.join(workdir, 'ansible-home'),
        'ANSIBLE_LOCAL_TEMP': os.path.join(tmp, 'local'),
        'ANSIBLE_REMOTE_TEMP': os.path.join(tmp, 'remote'),
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable,
        # kubernetes.core caches API discovery per server in TMPDIR; worlds reuse ports.
        'TMPDIR': ansible_run.short_tmpdir(tmp),
        'PYTHONWARNINGS': 'ignore',
    })
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    for key in ('K8S_AUTH_KUBECONFIG', 'OS_CLOUD', 'OS_CLIENT_CONFIG_FILE', 'ANSIBLE_LOG_PATH'):
        env.pop(key, None)
    if openstack is not None:
        env.update(openstack.env())
    if kube is not None:
        env['K8S_AUTH_KUBECONFIG'] = kube.kubeconfig
    env.update(dict((k, str(v)) for k, v in (extra or {}).items()))
    return env


def _prepare(playbook, workdir, openstack=None, kube=None, extravars=None, check=False, diff=False,
             verbosity=0, log=False, env=None, tags=None):
    """(command, environment, results file, log file) of one ansible-playbook run."""
    os.makedirs(workdir, exist_ok=True)
    if not isinstance(playbook, str) or '\n' in playbook:
        fd, path = tempfile.mkstemp(prefix='playbook-', suffix='.yml', dir=workdir)
        with os.fdopen(fd, 'w') as f:
            f.write(playbook if isinstance(playbook, str) else json.dumps(playbook, indent=1) + '\n')
        playbook = path
    fd, results = tempfile.mkstemp(prefix='results-', suffix='.jsonl', dir=workdir)
    os.close(fd)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
           playbook]
    if extravars:
        fd, varsfile = tempfile.mkstemp(prefix='vars-', suffix='.json', dir=workdir)
        with os.fdopen(fd, 'w') as f:
            json.dump(extravars, f)
        cmd += ['-e', '@' + varsfile]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    if tags:
        cmd += ['--tags', ','.join(tags)]
    if verbosity:
        cmd.append('-' + 'v' * verbosity)
    full_env = playbook_env(workdir, openstack, kube, env)
    full_env['HPCOPS_RESULTS_FILE'] = results
    log_path = None
    if log:
        fd, log_path = tempfile.mkstemp(prefix='ansible-', suffix='.log', dir=workdir)
        os.close(fd)
        full_env['ANSIBLE_LOG_PATH'] = log_path
    return cmd, full_env, results, log_path


def _collect(cmd, rc, stdout, stderr, results, log_path, seconds):
    with open(results) as f:
        records = [json.loads(line) for line in f if line.strip()]
    log_text = None
    if log_path:
        with open(log_path, errors='replace') as f:
            log_text = f.read()
    return Run(rc, stdout, stderr, records, log_text, cmd, seconds)


def run_playbook(playbook, workdir, openstack=None, kube=None, extravars=None, check=False, diff=False,
                 verbosity=0, log=False, env=None, tags=None, timeout=600):
    """Run `playbook` (a path, YAML text, or a list of plays) on localhost."""
    cmd, full_env, results, log_path = _prepare(playbook, workdir, openstack, kube, extravars, check, diff,
                                                verbosity, log, env, tags)
    started = time.monotonic()
    proc = ansible_run.run(cmd, env=full_env, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                           check=False)
    return _collect(cmd, proc.returncode, proc.stdout, proc.stderr, results, log_path, time.monotonic() - started)


class Started(object):
    """An ansible-playbook run in the background, in a process group of its own, to be killed."""

    def __init__(self, playbook, workdir, **options):
        self.workdir = workdir
        self.cmd, env, self.results, self.log_path = _prepare(playbook, workdir, **options)
        self.env = env
        self.out = open(os.path.join(workdir, 'stdout.txt'), 'w+')
        self.err = open(os.path.join(workdir, 'stderr.txt'), 'w+')
        self.started = time.monotonic()
        self._start()

    def _start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.workdir, stdout=self.out, stderr=self.err,
                                     start_new_session=True)
        self.pgid = self.proc.pid

    def check_running(self):
        """Raise if the run has ended; start it again if ansible-core failed to start (no task ran)."""
        rc = self.proc.poll()
        if rc is None:
            return
        self.err.seek(0)
        stderr = self.err.read()
        if ansible_run.did_not_start(rc, stderr):
            self.out.seek(0)
            self.out.truncate()
            self.err.seek(0)
            self.err.truncate()
            self._start()
            return
        raise AssertionError('the background run ended early (rc=%s): %s' % (rc, stderr[-2000:]))

    def kill(self):
        """SIGKILL ansible-playbook alone, as an operator's kill -9 does: its module processes live on."""
        import signal

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def group_alive(self):
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_group(self, timeout=300):
        """Wait until every process the run started (the orphaned module processes too) has ended."""
        deadline = time.monotonic() + timeout
        while self.group_alive():
            if time.monotonic() > deadline:
                raise AssertionError('processes of the killed run still alive after %ss' % timeout)
            time.sleep(0.2)

    def finish(self, timeout=600):
        rc = self.proc.wait(timeout=timeout)
        self.out.seek(0)
        self.err.seek(0)
        run = _collect(self.cmd, rc, self.out.read(), self.err.read(), self.results, self.log_path,
                       time.monotonic() - self.started)
        self.out.close()
        self.err.close()
        return run


def wait_request(sim, method, path_end, timeout=120, count=1, run=None):
    """Wait until the cloud has answered `count` requests `method ...path_end` (e.g. 'POST', '/os-interface').

    `run`, a Started run expected to make them, is checked to be still running.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = sum(n for r, n in sim.requests()['by_route'].items()
                   if r.startswith(method + ' ') and r.endswith(path_end))
        if seen >= count:
            return seen
        if run is not None:
            run.check_running()
        time.sleep(0.02)
    raise AssertionError('no %s ...%s request within %ss' % (method, path_end, timeout))


def run_together(*calls):
    """Run several zero-argument callables at the same time; their results in order."""
    out = [None] * len(calls)
    errors = []

    def go(i, fn):
        try:
            out[i] = fn()
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


# --------------------------------------------------------------------------- messages

_UNCLEAR = ('MODULE FAILURE', 'Traceback (most recent call last)', 'See stdout/stderr for the exact error',
            'Unexpected failure during module execution')


def unclear_reason(result):
    """Why a failed result's message is not a clear one, or None when it is.

    Clear means: a message of its own (not Ansible's generic wrapper of a crashed
    module, not a Python traceback), long enough to say what was done and why.
    """
    msg = result.get('msg')
    if not isinstance(msg, str) or len(msg.strip()) < 20:
        return 'no message (%r)' % (msg,)
    for marker in _UNCLEAR:
        if marker in msg:
            return 'the module crashed: %s' % msg[:300]
    if result.get('module_stderr') or result.get('exception') and 'Traceback' in msg:
        return 'the module crashed: %s' % str(result.get('module_stderr'))[:300]
    return None


# --------------------------------------------------------------------------- the cloud through its APIs

class CloudApi(object):
    """Reads the simulated cloud through Keystone, Nova, Neutron, Magnum and Heat."""

    def __init__(self, sim, cloud=CLOUD):
        with open(sim.clouds_yaml) as f:
            self.auth = json.load(f)['clouds'][cloud]['auth']
        self.url = sim.url
        self._token = None
        self.project_id = None

    def _request(self, method, path, body=None, headers=None, raw=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header('Content-Type', 'application/json')
        req.add_header('Accept', 'application/json')
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if self._token and not path.startswith('/identity/v3/auth/tokens'):
            req.add_header('X-Auth-Token', self._token)
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return (resp, text) if raw else (json.loads(text) if text else None)

    def login(self):
        a = self.auth
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': a['username'], 'password': a['password'], 'domain': {'name': a['user_domain_name']}}}},
            'scope': {'project': {'name': a['project_name'], 'domain': {'name': a['project_domain_name']}}}}}
        resp, text = self._request('POST', '/identity/v3/auth/tokens', body, raw=True)
        self._token = resp.headers['X-Subject-Token']
        self.project_id = json.loads(text)['token']['project']['id']
        return self

    def get(self, path, headers=None):
        if self._token is None:
            self.login()
        return self._request('GET', path, headers=headers)

    def call(self, method, path, body=None, headers=None):
        """Any request (a test acting as another user of the cloud would)."""
        if self._token is None:
            self.login()
        return self._request(method, path, body, headers=headers)

    def servers(self):
        return self.get('/compute/v2.1/servers/detail?limit=1000')['servers']

    def ports(self):
        return self.get('/network/v2.0/ports')['ports']

    def networks(self):
        return self.get('/network/v2.0/networks')['networks']

    def clusters(self):
        return self.get('/container-infra/v1/clusters?limit=1000', MAGNUM_VERSION)['clusters']

    def templates(self):
        return self.get('/container-infra/v1/clustertemplates?limit=1000', MAGNUM_VERSION)['clustertemplates']

    def nodegroups(self, cluster_id):
        try:
            return self.get('/container-infra/v1/clusters/%s/nodegroups' % cluster_id, MAGNUM_VERSION)['nodegroups']
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def stacks(self):
        if self.project_id is None:
            self.login()
        return self.get('/orchestration/v1/%s/stacks' % self.project_id)['stacks']


def census(sim):
    """What the cloud holds, read through its APIs (after every timer has fired)."""
    sim.wait_idle(20)
    api = CloudApi(sim).login()
    clusters = api.clusters()
    return {
        'servers': api.servers(),
        'ports': api.ports(),
        'networks': api.networks(),
        'clusters': clusters,
        'templates': api.templates(),
        'nodegroups': dict((c['uuid'], api.nodegroups(c['uuid'])) for c in clusters),
        'stacks': api.stacks(),
        'state': sim.state(),
    }


def _dupes(names):
    seen = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return sum(v - 1 for v in seen.values() if v > 1)


def leftovers(before, after, allow_failed=()):
    """{kind: count} of what a scenario left behind that nobody asked for.

    `before` is the census taken before the scenario: whatever existed then is
    the scenario's baseline, not a leak.
    """
    servers = dict((s['id'], s) for s in after['servers'])
    net_names = dict((n['id'], n['name']) for n in after['networks'])
    live_members = set()
    for c in after['state']['clusters']:
        if c['status'] in ('DELETE_COMPLETE',):
            continue
        for ng in c['nodegroups']:
            live_members.update(ng['servers'])
    old_servers = set(s['id'] for s in before['servers'])
    stack_refs = set(c.get('stack_id') for c in after['clusters'])
    stack_refs.update(ng.get('stack_id') for groups in after['nodegroups'].values() for ng in groups)
    old_stacks = set(s['id'] for s in before['stacks'])
    counts = {
        'duplicate clusters': _dupes(c['name'] for c in after['clusters']),
        'duplicate templates': _dupes(t['name'] for t in after['templates']),
        'duplicate nodegroups': sum(_dupes(ng['name'] for ng in groups) for groups in after['nodegroups'].values()),
        'failed clusters': sum(1 for c in after['clusters']
                               if c['status'].endswith('_FAILED') and c['name'] not in allow_failed),
        'orphaned ports': sum(1 for p in after['ports']
                              if (p.get('device_owner') or '').startswith('compute:')
                              and p.get('device_id') not in servers),
        'leaked module ports': sum(1 for p in after['ports']
                                   if PORT_MARKER in (p.get('description') or '') and not p.get('device_id')),
        'orphaned servers': sum(1 for sid in servers if sid not in old_servers and sid not in live_members),
        'orphaned stacks': sum(1 for s in after['stacks']
                               if s['id'] not in old_stacks and s['id'] not in stack_refs
                               and not s.get('parent')),
    }
    # Two ports of one server on one network: an attachment made twice.
    doubled = 0
    for sid in servers:
        seen = {}
        for p in after['ports']:
            if p.get('device_id') == sid:
                name = net_names.get(p['network_id'], p['network_id'])
                seen[name] = seen.get(name, 0) + 1
        doubled += sum(v - 1 for v in seen.values() if v > 1)
    counts['doubled interfaces'] = doubled
    return counts


def writes(requests, service=None):
    """{route: count} of requests that change something, optionally of one service."""
    out = {}
    for route, n in requests['by_route'].items():
        method, path = route.split(' ', 1)
        if method not in WRITE_METHODS or path.startswith('/identity/v3/auth/tokens'):
            continue
        if service and not path.startswith('/' + service):
            continue
        out[route] = n
    return out


def kube_writes(world, since=0):
    """Requests to the Kubernetes API that stored something (dry runs store nothing)."""
    return [r for r in world.requests()[since:]
            if r.get('verb') in KUBE_WRITE_VERBS and r.get('wrote') and r.get('dry_run') != 'All']


# --------------------------------------------------------------------------- Kubernetes faults

_FLAKY_SERVERS = {}


def _patch_api_server():
    """Route every resource request of every KubeWorld through its fault hook (once)."""
    from testworld.kubernetes import apiserver

    cls = apiserver.ApiServer
    if getattr(cls, '_reliability_hook', False):
        return
    original = cls._serve_resource

    async def serve(self, request, parsed, record):
        faults = _FLAKY_SERVERS.get(id(self))
        if faults is not None:
            faults.maybe_fail(record)
        return await original(self, request, parsed, record)

    cls._serve_resource = serve
    cls._reliability_hook = True


class KubeFaults(object):
    """API errors injected into a KubeWorld's request handling, from the test.

    The world's own hooks answer 403 and 409; this adds 5xx answers at a given
    rate (seeded), the way an overloaded or restarting API server answers.
    """

    def __init__(self, world, rate, seed=7, status=500):
        import random

        from testworld.kubernetes import apiserver

        _patch_api_server()
        self.world = world
        self.rate = rate
        self.status = status
        self.rng = random.Random(seed)
        self.fired = 0
        self.error = apiserver.ApiError
        _FLAKY_SERVERS[id(world.server)] = self

    def maybe_fail(self, record):
        if self.rng.random() >= self.rate:
            return
        self.fired += 1
        record.update(injected=True)
        reason = 'InternalError' if self.status == 500 else 'ServiceUnavailable'
        raise self.error(self.status, reason, 'the server is currently unable to handle the request '
                         '(injected by the reliability suite)')

    def stop(self):
        _FLAKY_SERVERS.pop(id(self.world.server), None)


# --------------------------------------------------------------------------- secrets

def secret_forms(value):
    """A secret and the encodings it could leak in (base64 of it, as in Secrets and kubeconfigs)."""
    forms = {value}
    raw = value.encode()
    forms.add(base64.b64encode(raw).decode())
    return forms


def pem_bodies(pem_text):
    """The base64 lines of every PEM block in `pem_text` (a leaked key shows up line by line)."""
    out = []
    for block in re.findall(r'-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----', pem_text, re.S):
        out.extend(line.strip() for line in block.split() if len(line.strip()) >= 40)
    return out
