# -*- coding: utf-8 -*-
"""Start and stop a real Keystone, a real Heat and their RabbitMQ beside the simulated cloud.

Everything lives in one state directory: configuration, sqlite databases, fernet keys,
RabbitMQ's node directory, logs, pid files, ``clouds.yaml`` and ``state.json``. ``stop``
ends every process recorded there and removes the directory.

Only the standard library is used here, so this runs from the test virtualenv or from the
services virtualenv alike; the services themselves run from the services virtualenv that
``setup.sh`` builds (``.cache/realservices/venv`` unless ``HPCOPS_REALSERVICES_VENV`` says
otherwise).
"""

import base64
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from testworld.realservices import full

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_VENV = os.path.join(REPO, '.cache', 'realservices', 'venv')
RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
REGION = 'RegionOne'
CLOUD = 'hpcops-real'

# Catalog entries that point at the simulator: service type -> (name, path under the simulator's URL).
SIM_SERVICES = {
    'compute': ('nova', '/compute/v2.1'),
    'network': ('neutron', '/network'),
    'image': ('glance', '/image'),
    'container-infra': ('magnum', '/container-infra/v1'),
}

# Service users made at start (passwords are random per state directory), and Keystone's own
# bootstrap administrator, named so that a scenario's "admin" user is a user of its own.
SIM_USER = 'hpcops-sim'
HEAT_USER = 'heat'
KEYSTONE_ADMIN = 'keystone-admin'


def default_identity():
    """Who the tests are when no scenario says: one project, one member, one application credential."""
    password = secrets.token_hex(12)
    return {
        'projects': [{'name': 'demo'}],
        'users': [{'name': 'demo', 'password': password, 'project': 'demo', 'roles': ['member', 'reader']}],
        'application_credentials': [{'name': 'hpcops-tests', 'user': 'demo', 'secret': secrets.token_hex(16)}],
    }


# Processes started by this Python process, so that stop() can reap them.
_CHILDREN = {}


def load_scenario(scenario):
    """A simulator scenario (name, path or dict), loaded as the simulator loads it."""
    from testworld.openstack import scenario as scenario_mod  # pylint: disable=import-outside-toplevel
    return scenario_mod.load(scenario)


def scenario_identity(scn):
    """The identity section of a scenario, with the simulator's defaults where it says nothing."""
    identity = json.loads(json.dumps(scn.get('identity') or {}))
    identity.setdefault('projects', [{'name': 'hpc'}])
    identity.setdefault('users', [{'name': 'admin', 'password': 'secret', 'roles': ['admin', 'member', 'reader']}])
    for user in identity['users']:
        user.setdefault('project', identity['projects'][0]['name'])
    if not identity.get('application_credentials'):
        identity['application_credentials'] = [{'name': 'hpcops-sim', 'user': identity['users'][0]['name'],
                                                'secret': 'hpcops-sim-secret'}]
    return identity


class RealServicesError(Exception):
    """Setup is missing, or a service did not come up."""


def venv_dir():
    return os.environ.get('HPCOPS_REALSERVICES_VENV') or DEFAULT_VENV


TIERS = ('basic', 'full')


def is_installed(venv=None, tier='basic'):
    venv = venv or venv_dir()
    names = ['uwsgi', 'keystone-manage', 'heat-engine', 'heat-manage']
    if tier == 'full':
        names += ['nova-manage', 'placement-manage', 'neutron-db-manage', 'magnum-db-manage']
    needed = [os.path.join(venv, 'bin', n) for n in names]
    if tier == 'full' and not os.path.isfile(os.path.join(venv, 'testworld-full.installed')):
        return False
    return all(os.access(p, os.X_OK) for p in needed) and os.access(RABBITMQ_SERVER, os.X_OK) and shutil.which('epmd') is not None


# --------------------------------------------------------------------------- small helpers

def _free_ports(count):
    """Ports the kernel hands out for 127.0.0.1:0; all held open until every one is chosen."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            socks.append(s)
            port = s.getsockname()[1]
            # rabbitmq-env derives its CLI tools' port range from the distribution port
            # (+10000..+10010): keep ports low enough for that range to stay valid.
            if port < 55000:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


def _amqp_ready(port):
    """True once the broker answers the AMQP 0-9-1 header with a Connection.Start frame."""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1) as s:
            s.sendall(b'AMQP\x00\x00\x09\x01')
            return s.recv(1) == b'\x01'
    except OSError:
        return False


def _proc_start_time(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write(path, text, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(text)
    os.chmod(path, mode)


def _ini(sections):
    out = []
    for name, values in sections.items():
        out.append('[%s]' % name)
        out.extend('%s = %s' % (k, v) for k, v in values.items())
        out.append('')
    return '\n'.join(out)


class Http:
    """Just enough JSON over HTTP for provisioning Keystone."""

    def __init__(self, timeout=30):
        self.timeout = timeout

    def request(self, method, url, body=None, token=None, expect=(200, 201, 202, 204), headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header('Accept', 'application/json')
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        if data is not None:
            req.add_header('Content-Type', 'application/json')
        if token:
            req.add_header('X-Auth-Token', token)
        for attempt in range(3):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    status, headers, raw = resp.status, resp.headers, resp.read()
                break
            except urllib.error.HTTPError as exc:
                status, headers, raw = exc.code, exc.headers, exc.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError):
                # uWSGI's HTTP router now and then drops a connection before answering.
                if attempt == 2:
                    raise
                time.sleep(0.2)
        if expect and status not in expect:
            raise RealServicesError('%s %s -> %s: %s' % (method, url, status, raw[:500].decode(errors='replace')))
        return status, headers, (json.loads(raw) if raw else None)


# --------------------------------------------------------------------------- the controller

class RealServices:
    """One running set of real services, described by ``<state_dir>/state.json``."""

    def __init__(self, state_dir, venv=None):
        self.state_dir = os.path.abspath(state_dir)
        self.venv = venv or venv_dir()
        self.http = Http()

    # paths
    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def bin(self, name):
        return os.path.join(self.venv, 'bin', name)

    @property
    def state_file(self):
        return self.path('state.json')

    # ------------------------------------------------------------------ public API

    def start(self, scenario=None, sim_url=None, identity=None, timeout=180, sim_python=None, tier='basic'):
        """Start everything, or return the set already running there; returns the state dict.

        ``tier='full'`` adds a real Placement, Nova (fake virt driver), Neutron (ML2 with the
        agentless driver) and Magnum (the Cluster-API-like test driver), which replace the
        simulator's compute, network and container-infra in the catalog (the simulator keeps
        Glance); it needs a scenario, whose flavors, keypairs, networks and subnets are loaded
        into them (``full.py``).

        ``scenario`` (a simulator scenario: name, path or dict) makes this the second tier of
        the test world: the scenario's identity section becomes real Keystone projects, users
        and application credentials (same names, passwords and roles), and the simulator is
        started (``sim_python``, by default this interpreter) with that scenario, the ids of
        the real identities and a ``real_services`` key that attaches ``bridge``; its services
        are registered in the real catalog. ``sim_url`` registers a simulator already running.
        ``identity`` (same format) is who to create when there is no scenario.
        """
        if tier not in TIERS:
            raise RealServicesError('tier must be one of %s, not %r' % (', '.join(TIERS), tier))
        if not is_installed(self.venv, tier):
            raise RealServicesError('real services are not installed: run testworld/realservices/setup.sh%s'
                                    % (' full' if tier == 'full' else ''))
        if tier == 'full' and scenario is None:
            scenario = 'default'
        state = self.read_state()
        if state is not None:
            if self.healthy(state) and state.get('tier', 'basic') == tier:
                if sim_url and state.get('sim_url') != sim_url.rstrip('/'):
                    state = self.register_sim(sim_url)
                return state
            self.stop()
        scn = None
        if scenario is not None:
            scn = load_scenario(scenario)
            identity = scenario_identity(scn)
        began = time.monotonic()
        os.makedirs(self.state_dir, exist_ok=True)
        for sub in ('logs', 'pids', 'fernet-keys', 'credential-keys', 'rabbitmq', 'lock'):
            os.makedirs(self.path(sub), exist_ok=True)
        try:
            state = self._start(timeout, identity, scn if tier == 'full' else None)
            self._save(state)
            if scn is not None:
                state = self._start_sim(state, scn, sim_python, timeout)
            elif sim_url:
                state = self.register_sim(sim_url)
            if tier == 'full':
                full.finish(self, state, scn, time.monotonic() + timeout, self._marker(state, began))
                state['memory_mb'] = full.memory(self, self._process_names(state))
            state['cold_start_seconds'] = round(time.monotonic() - began, 1)
            self._save(state)
            return state
        except BaseException:
            self.stop(keep=True)
            raise

    def _start_sim(self, state, scn, sim_python, timeout):
        """Run the simulator on the real identities, bridged to the real Keystone and Heat."""
        sim_dir = self.path('sim')
        os.makedirs(sim_dir, exist_ok=True)
        # start() made the scenario's identity already.
        # Its real stacks go with the rest of the state directory at stop().
        scn = dict(scn, identity=state['identity'], real_services=dict(self._bridge_settings(state), cleanup=False))
        if state.get('tier') == 'full':
            # The real Nova, Neutron and Magnum hold the servers and clusters: the simulator serves
            # Glance (its images) and nothing of its own besides.
            scn = {k: v for k, v in scn.items() if k not in ('clusters', 'servers', 'cluster_templates')}
        scenario_file = os.path.join(sim_dir, 'scenario.json')
        _write(scenario_file, json.dumps(scn, indent=1) + '\n', 0o600)
        env = {'PYTHONPATH': REPO}
        self._spawn('sim', [sim_python or sys.executable, '-m', 'testworld.openstack', 'serve', '--scenario', scenario_file,
                            '--port', '0', '--state-dir', sim_dir], env=env, cwd=REPO)
        log = self.path('logs', 'sim.log')
        found = {}

        def ready():
            with open(log, encoding='utf-8', errors='replace') as f:
                for line in f:
                    if line.startswith('{') and '"url"' in line:
                        found.update(json.loads(line))
                        return True
            return False

        self._wait('simulator', ready, time.monotonic() + min(timeout, 60), 'sim')
        state = self.read_state()
        state['sim'] = {'url': found['url'], 'clouds_yaml': found['clouds_yaml'], 'cloud': found['cloud'],
                        'scenario_file': scenario_file}
        self._save(state)
        return self.register_sim(found['url'])

    def stop(self, keep=False, grace=5):
        """End every recorded process (TERM, then KILL after ``grace`` s); remove the state directory unless keep."""
        pid_dir = self.path('pids')
        pids = []
        for name in sorted(os.listdir(pid_dir)) if os.path.isdir(pid_dir) else []:
            pid, started = self._read_pid(os.path.join(pid_dir, name))
            # A recycled pid has another start time: never signal what is not ours.
            if pid and _proc_start_time(pid) == started:
                pids.append(pid)
        # Everything is torn down together (the state goes too): no ordering to respect.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(self._group_alive(p) for p in pids):
                time.sleep(0.1)
        for pid in pids:
            self._reap(pid)
        if not keep:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        else:
            shutil.rmtree(pid_dir, ignore_errors=True)

    def status(self):
        state = self.read_state()
        if state is None:
            return {'running': False, 'state_dir': self.state_dir}
        return dict(state, running=self.healthy(state))

    def read_state(self):
        try:
            with open(self.state_file, encoding='utf-8') as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @staticmethod
    def _process_names(state):
        return (('epmd', 'rabbitmq', 'keystone', 'heat-api', 'heat-engine') + (('sim',) if state.get('sim') else ())
                + (full.PROCESSES if state.get('tier') == 'full' else ()))

    def healthy(self, state):
        for name in self._process_names(state):
            pid, started = self._read_pid(self.path('pids', name + '.pid'))
            if not pid or _proc_start_time(pid) != started:
                return False
        try:
            self.http.request('GET', state['keystone_url'] + '/v3', expect=(200,))
            self.http.request('GET', state['heat_base_url'] + '/healthcheck', expect=(200,))
        except (RealServicesError, OSError):
            return False
        return True

    def register_sim(self, sim_url, catalog=None, region=None):
        """Point compute, network, image and container-infra at the simulator.

        ``catalog`` maps service type to URL, for a simulator whose paths differ from
        ``SIM_SERVICES``. ``region`` gives the simulator a region of its own in the catalog
        (with Keystone and Heat registered there too), so that several simulators can share
        one Keystone as several clouds; without it the simulator replaces the earlier
        registration in ``RegionOne``.
        """
        state = self._running_state()
        sim_url = sim_url.rstrip('/')
        urls = {stype: sim_url + path for stype, (_name, path) in SIM_SERVICES.items()}
        urls.update(catalog or {})
        token = self._admin_token(state)
        ks = state['keystone_url'] + '/v3'
        region = region or REGION
        if region != REGION:
            self.http.request('POST', ks + '/regions', {'region': {'id': region}}, token=token,
                              expect=(201, 409))
            urls.setdefault('identity', ks)
            urls.setdefault('orchestration', state['heat_url'])
        names = dict(SIM_SERVICES, identity=('keystone', ''), orchestration=('heat', ''))
        for stype in state.get('real_catalog') or {}:
            # The full tier's real services keep their place in the catalog.
            urls.pop(stype, None)
        for stype, url in urls.items():
            service_id = self._ensure_service(ks, token, stype, names.get(stype, (stype, ''))[0])
            body = self.http.request('GET', '%s/endpoints?service_id=%s&region_id=%s' % (ks, service_id, region),
                                     token=token)[2]
            for ep in body['endpoints']:
                self.http.request('DELETE', '%s/endpoints/%s' % (ks, ep['id']), token=token)
            for interface in ('public', 'internal'):
                self.http.request('POST', ks + '/endpoints', {'endpoint': {
                    'service_id': service_id, 'interface': interface, 'url': url, 'region_id': region}}, token=token)
        if region == REGION:
            state['sim_url'] = sim_url
            state['sim_catalog'] = urls
            self._save(state)
        return state

    def provision_identity(self, identity):
        """Create (or reuse) a scenario's projects, users and application credentials in the
        running Keystone and make them the users of clouds.yaml; returns the identity with ids."""
        state = self._running_state()
        identity = self._provision_identity(state, identity)
        self._write_clouds_yaml(state)
        self._save(state)
        return identity

    def sim_scenario(self, scenario):
        """A simulator scenario (name, path or dict) made ready for this tier: its identity
        exists in the real Keystone with the same ids, and its ``real_services`` key makes
        the simulator validate tokens with the real Keystone and keep real Heat stacks.
        Register the simulator once it runs: ``register_sim(url)``."""
        scn = load_scenario(scenario)
        identity = self.provision_identity(scenario_identity(scn))
        return dict(scn, identity=identity, real_services=self._bridge_settings(self.read_state()))

    @staticmethod
    def _bridge_settings(state):
        return {'keystone_url': state['keystone_url'], 'heat_url': state['heat_url'],
                'service_credentials': state['service_credentials'], 'region': REGION}

    def env(self):
        """Environment variables that point OpenStack clients at this tier."""
        state = self._running_state()
        return {'OS_CLIENT_CONFIG_FILE': state['clouds_yaml'], 'OS_CLOUD': CLOUD}

    def _running_state(self):
        state = self.read_state()
        if state is None:
            raise RealServicesError('not running: %s' % self.state_dir)
        return state

    # ------------------------------------------------------------------ start, step by step

    @staticmethod
    def _marker(state, began):
        timings = state.setdefault('timings', {})

        def mark(phase):
            timings[phase] = round(time.monotonic() - began, 1)
        return mark

    def _start(self, timeout, identity, full_scenario=None):
        ks_port, heat_port, amqp_port, dist_port, epmd_port = _free_ports(5)
        secret = {k: secrets.token_hex(16) for k in ('admin', 'heat', 'sim')}
        state = {
            'state_dir': self.state_dir,
            'keystone_url': 'http://127.0.0.1:%d' % ks_port,
            'heat_base_url': 'http://127.0.0.1:%d' % heat_port,
            'heat_url': 'http://127.0.0.1:%d/v1/%%(tenant_id)s' % heat_port,
            'rabbit_url': 'rabbit://guest:guest@127.0.0.1:%d/' % amqp_port,
            'ports': {'keystone': ks_port, 'heat': heat_port, 'amqp': amqp_port, 'erlang_dist': dist_port, 'epmd': epmd_port},
            'region': REGION,
            'cloud': CLOUD,
            'clouds_yaml': self.path('clouds.yaml'),
            'passwords': secret,
            'tier': 'full' if full_scenario is not None else 'basic',
        }
        self._write_keystone_conf(state)
        self._write_heat_conf(state)
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        state['timings'] = {}
        mark = self._marker(state, began)
        if full_scenario is not None:
            full.allocate(state, _free_ports)
            state['physical_networks'] = full.physical_networks(full_scenario)
            state['quotas'] = full_scenario.get('quotas') or {}
            full.write_configuration(self, state, _ini, _write)

        # Two chains side by side while RabbitMQ boots: Keystone's database, keys and bootstrap,
        # then its server; Heat's database, then heat-engine and heat-api (which reconnect
        # to RabbitMQ on their own should they come up first).
        self._start_rabbitmq(state)
        errors = []
        chains = [threading.Thread(target=self._guard, args=(errors, self._keystone_chain, state, mark)),
                  threading.Thread(target=self._guard, args=(errors, self._heat_chain, state, mark))]
        if full_scenario is not None:
            chains.append(threading.Thread(target=self._guard, args=(errors, full.prepare, self, state, mark)))
        for t in chains:
            t.start()
        for t in chains:
            t.join()
        if errors:
            raise errors[0]
        self._wait('Keystone', lambda: self._get_ok(state['keystone_url'] + '/v3'), deadline, 'keystone')
        mark('keystone_ready')
        self._provision_keystone(state, identity or default_identity())
        self._write_clouds_yaml(state)
        mark('keystone_provisioned')
        if full_scenario is not None:
            full.launch_compute(self, state, mark)
        self._wait('heat-api', lambda: self._get_ok(state['heat_base_url'] + '/healthcheck'), deadline, 'heat-api')
        mark('heat_api_ready')
        self._wait('RabbitMQ', lambda: _amqp_ready(amqp_port), deadline, 'rabbitmq')
        # Listing stacks goes heat-api -> keystonemiddleware -> RabbitMQ -> heat-engine -> sqlite.
        token = self._token(state, SIM_USER, secret['sim'], 'service')
        stacks_url = state['heat_url'] % {'tenant_id': state['service_project_id']} + '/stacks'
        self._wait('heat-engine', lambda: self._get_ok(stacks_url, token), deadline, 'heat-engine')
        mark('heat_engine_ready')
        return state

    @staticmethod
    def _guard(errors, fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    def _write_keystone_conf(self, state):
        _write(self.path('keystone.conf'), _ini({
            'DEFAULT': {'use_stderr': 'true'},
            'database': {'connection': 'sqlite:///%s?timeout=60' % self.path('keystone.sqlite')},
            'token': {'provider': 'fernet', 'expiration': '7200'},
            'fernet_tokens': {'key_repository': self.path('fernet-keys')},
            'fernet_receipts': {'key_repository': self.path('fernet-keys')},
            'credential': {'key_repository': self.path('credential-keys')},
            # bcrypt's cheapest cost: every password login would otherwise spend ~0.3 s of CPU.
            'identity': {'password_hash_rounds': '4'},
            'oslo_concurrency': {'lock_path': self.path('lock')},
        }), 0o600)

    def _write_heat_conf(self, state):
        ks = state['keystone_url']
        pw = state['passwords']['heat']
        shutil.copy(os.path.join(self.venv, 'etc', 'heat', 'api-paste.ini'), self.path('heat-api-paste.ini'))
        _write(self.path('heat.conf'), _ini({
            'DEFAULT': {
                'transport_url': state['rabbit_url'],
                'host': 'hpcops-realservices',
                'num_engine_workers': '1',
                'executor_thread_pool_size': '8',
                'rpc_response_timeout': '60',
                'graceful_shutdown_timeout': '3',
                'auth_encryption_key': secrets.token_hex(16),
                'region_name_for_services': REGION,
                'plugin_dirs': os.path.join(HERE, 'heat_plugins'),
                'environment_dir': os.path.join(self.venv, 'etc', 'heat', 'environment.d'),
                'template_dir': os.path.join(self.venv, 'etc', 'heat', 'templates'),
                'heat_metadata_server_url': state['heat_base_url'],
                'heat_waitcondition_server_url': state['heat_base_url'] + '/v1/waitcondition',
                'use_stderr': 'true',
            },
            'database': {'connection': 'sqlite:///%s?timeout=60' % self.path('heat.sqlite')},
            'paste_deploy': {'api_paste_config': self.path('heat-api-paste.ini')},
            'oslo_concurrency': {'lock_path': self.path('lock')},
            'oslo_messaging_rabbit': {'heartbeat_timeout_threshold': '0'},
            'keystone_authtoken': {
                'www_authenticate_uri': ks + '/v3', 'auth_url': ks, 'auth_type': 'password',
                'username': HEAT_USER, 'password': pw, 'project_name': 'service',
                'user_domain_name': 'Default', 'project_domain_name': 'Default', 'region_name': REGION,
            },
            'trustee': {'auth_type': 'password', 'auth_url': ks, 'username': HEAT_USER, 'password': pw,
                        'user_domain_name': 'Default'},
            'clients_keystone': {'auth_uri': ks},
            'ec2authtoken': {'auth_uri': ks + '/v3'},
        }), 0o600)

    def _start_rabbitmq(self, state):
        ports = state['ports']
        base = self.path('rabbitmq')
        _write(os.path.join(base, 'enabled_plugins'), '[].\n')
        env = {
            # Own node, ports, directories, cookie ($HOME) and epmd: nothing shared with another broker.
            'HOME': base,
            'RABBITMQ_CONF_ENV_FILE': '/dev/null',
            'RABBITMQ_NODENAME': 'hpcops%d@localhost' % ports['amqp'],
            'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
            'RABBITMQ_NODE_PORT': str(ports['amqp']),
            'RABBITMQ_DIST_PORT': str(ports['erlang_dist']),
            'RABBITMQ_MNESIA_BASE': os.path.join(base, 'mnesia'),
            'RABBITMQ_LOG_BASE': self.path('logs'),
            'RABBITMQ_CONFIG_FILE': os.path.join(base, 'rabbitmq'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(base, 'enabled_plugins'),
            'RABBITMQ_PID_FILE': os.path.join(base, 'rabbitmq.pid'),
            'ERL_EPMD_PORT': str(ports['epmd']),
            # One scheduler that sleeps when idle: the machine's cores are shared.
            'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': '+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none',
        }
        self._spawn('epmd', ['epmd', '-port', str(ports['epmd']), '-address', '127.0.0.1'], env=env)
        deadline = time.monotonic() + 10
        self._wait('epmd', lambda: _port_open(ports['epmd']), deadline, 'epmd')
        self._spawn('rabbitmq', [RABBITMQ_SERVER], env=env)

    def _keystone_chain(self, state, mark):
        conf = ['--config-file', self.path('keystone.conf')]
        ks = state['keystone_url']
        self._database('keystone', [self.bin('keystone-manage')] + conf + ['db_sync'])
        # What `keystone-manage fernet_setup` and `credential_setup` leave behind: a staged key 0
        # and a primary key 1, each a Fernet key (urlsafe base64 of 32 random bytes).
        for repo in ('fernet-keys', 'credential-keys'):
            os.chmod(self.path(repo), 0o700)
            for index in ('0', '1'):
                _write(self.path(repo, index), base64.urlsafe_b64encode(os.urandom(32)).decode(), 0o600)
        self._run('keystone-bootstrap', [self.bin('keystone-manage')] + conf + [
            'bootstrap', '--bootstrap-password=' + state['passwords']['admin'],
            '--bootstrap-username', KEYSTONE_ADMIN, '--bootstrap-project-name', KEYSTONE_ADMIN,
            '--bootstrap-public-url', ks + '/v3/', '--bootstrap-internal-url', ks + '/v3/',
            '--bootstrap-region-id', REGION])
        mark('keystone_bootstrapped')
        self._spawn('keystone', [
            self.bin('uwsgi'), '--http', '127.0.0.1:%d' % state['ports']['keystone'], '--http-keepalive=1',
            '--http-auto-chunked', '--module', 'keystone.wsgi.api:application', '--virtualenv', self.venv, '--need-app',
            '--processes', '1', '--threads', '4', '--master', '--die-on-term', '--enable-threads',
        ], env={'OS_KEYSTONE_CONFIG_FILES': self.path('keystone.conf')})

    def _heat_chain(self, state, mark):
        self._database('heat', [self.bin('heat-manage'), '--config-file', self.path('heat.conf'), 'db_sync'])
        mark('heat_database_ready')
        self._spawn('heat-engine', [self.bin('python'), os.path.join(HERE, 'sqlite_immediate.py'), 'heat-engine',
                                    'heat.cmd.engine:main', '--config-file', self.path('heat.conf')])
        self._spawn('heat-api', [
            self.bin('uwsgi'), '--http', '127.0.0.1:%d' % state['ports']['heat'], '--http-keepalive=1',
            '--http-auto-chunked', '--module', 'heat.wsgi.api:application', '--virtualenv', self.venv, '--need-app',
            '--pyargv', '--config-file %s' % self.path('heat.conf'),
            '--processes', '1', '--threads', '4', '--master', '--die-on-term', '--enable-threads',
        ])

    def _database(self, name, db_sync):
        """<name>.sqlite at the schema's head: a copy of the empty database kept beside the
        virtualenv (rebuilt with it), or db_sync, whose result becomes that copy."""
        target = self.path(name + '.sqlite')
        pristine = os.path.join(self.venv, 'testworld-databases', name + '.sqlite')
        if os.path.isfile(pristine):
            shutil.copyfile(pristine, target)
            return
        self._run(name + '-db_sync', db_sync)
        # heat-engine's workers, heat-api and Keystone's threads write concurrently; with a
        # rollback journal sqlite soon answers "database is locked". WAL mode lets readers go on
        # beside the one writer, and it is a property of the file, so copies keep it.
        with contextlib.closing(sqlite3.connect(target)) as db:
            db.execute('PRAGMA journal_mode=WAL')
        os.makedirs(os.path.dirname(pristine), exist_ok=True)
        partial = '%s.%d' % (pristine, os.getpid())
        shutil.copyfile(target, partial)
        os.replace(partial, pristine)

    def _provision_keystone(self, state, identity):
        ks = state['keystone_url'] + '/v3'
        pw = state['passwords']
        token = self._admin_token(state)
        req = self.http.request

        existing = {plural: {item['name']: item['id'] for item in req('GET', '%s/%s' % (ks, plural), token=token)[2][plural]}
                    for plural in ('roles', 'projects', 'users')}

        def ensure(kind, plural, body):
            if body['name'] not in existing[plural]:
                existing[plural][body['name']] = req('POST', '%s/%s' % (ks, plural), {kind: body}, token=token)[2][kind]['id']
            return existing[plural][body['name']]

        def grant(project_id, user_id, role):
            role_id = ensure('role', 'roles', {'name': role})
            req('PUT', '%s/projects/%s/users/%s/roles/%s' % (ks, project_id, user_id, role_id), token=token)

        for name in ('admin', 'member', 'reader', 'service', 'heat_stack_owner', 'heat_stack_user'):
            ensure('role', 'roles', {'name': name})
        service = ensure('project', 'projects', {'name': 'service', 'domain_id': 'default'})
        service_users = {name: ensure('user', 'users', {'name': name, 'password': pw[key], 'domain_id': 'default'})
                         for name, key in ((HEAT_USER, 'heat'), (SIM_USER, 'sim'))}
        # Service users: admin and service on the service project, as deployment tools do.
        for user_id in service_users.values():
            grant(service, user_id, 'admin')
            grant(service, user_id, 'service')
        heat_service = self._ensure_service(ks, token, 'orchestration', 'heat')
        for interface in ('public', 'internal'):
            req('POST', ks + '/endpoints', {'endpoint': {'service_id': heat_service, 'interface': interface,
                                                         'url': state['heat_url'], 'region_id': REGION}}, token=token)
        if state.get('tier') == 'full':
            state['service_project_id'] = service
            full.register(self, state, req, token,
                          lambda name, password: ensure('user', 'users', {'name': name, 'password': password,
                                                                          'domain_id': 'default'}),
                          grant, self._ensure_service)

        state.update({
            'service_project_id': service,
            'service_user_ids': service_users,
            'service_credentials': {
                'auth_url': state['keystone_url'], 'username': SIM_USER, 'password': pw['sim'], 'project_name': 'service',
                'user_domain_name': 'Default', 'project_domain_name': 'Default',
            },
        })
        self._provision_identity(state, identity)

    def _provision_identity(self, state, identity):
        """Projects, users (with their roles) and application credentials described as the
        simulator's scenarios describe them; what exists already is reused. Fills in the
        ids, records the users in the state, and makes them the users of clouds.yaml."""
        ks = state['keystone_url'] + '/v3'
        token = self._admin_token(state)
        req = self.http.request
        existing = {plural: {item['name']: item['id'] for item in req('GET', '%s/%s' % (ks, plural), token=token)[2][plural]}
                    for plural in ('roles', 'projects', 'users')}

        def ensure(kind, plural, body):
            if body['name'] not in existing[plural]:
                status, _headers, made = req('POST', '%s/%s' % (ks, plural), {kind: body}, token=token, expect=(201, 409))
                if status == 409:  # made by a retried request after all
                    made = {kind: req('GET', '%s/%s?name=%s' % (ks, plural, body['name']), token=token)[2][plural][0]}
                existing[plural][body['name']] = made[kind]['id']
            return existing[plural][body['name']]

        def grant(project_id, user_id, role):
            role_id = ensure('role', 'roles', {'name': role})
            req('PUT', '%s/projects/%s/users/%s/roles/%s' % (ks, project_id, user_id, role_id), token=token)

        def password_is(name, password):
            auth = {'auth': {'identity': {'methods': ['password'], 'password': {
                'user': {'name': name, 'domain': {'id': 'default'}, 'password': password}}}}}
            return req('POST', ks + '/auth/tokens', auth, expect=(201, 401))[0] == 201

        identity = json.loads(json.dumps(identity))
        projects = {}
        for project in identity.get('projects') or []:
            project['id'] = projects[project['name']] = ensure('project', 'projects', {
                'name': project['name'], 'domain_id': 'default', 'description': 'hpcops.coe test world'})
            # The simulator keeps the Heat stacks of every project's clusters.
            grant(project['id'], state['service_user_ids'][SIM_USER], 'admin')
            grant(project['id'], existing['users'][KEYSTONE_ADMIN], 'admin')
        users = {}
        for user in identity.get('users') or []:
            known = user['name'] in existing['users']
            user['id'] = ensure('user', 'users', {'name': user['name'], 'password': str(user['password']),
                                                  'domain_id': 'default'})
            if known and not password_is(user['name'], str(user['password'])):
                # Another scenario gave the name another password. The change revokes the user's
                # tokens, to the second: wait that second out before the next token.
                req('PATCH', '%s/users/%s' % (ks, user['id']), {'user': {'password': str(user['password'])}}, token=token)
                time.sleep(1.1)
            project = user.get('project') or identity['projects'][0]['name']
            roles = list(user.get('roles') or ['member', 'reader'])
            if 'member' in roles:
                roles.append('heat_stack_owner')
            for name in [project] + list(user.get('extra_projects') or []):
                for role in roles:
                    grant(projects[name], user['id'], role)
            users[user['name']] = {'id': user['id'], 'password': str(user['password']), 'project': project,
                                   'project_id': projects[project]}
        appcreds = []
        for cred in identity.get('application_credentials') or []:
            owner = users[cred['user']]
            project = cred.get('project') or owner['project']
            user_token = self._token(state, cred['user'], owner['password'], project)
            listed = req('GET', '%s/users/%s/application_credentials?name=%s' % (ks, owner['id'], cred['name']),
                         token=user_token)[2]['application_credentials']
            for old in listed:  # made for an earlier scenario, perhaps with another secret
                req('DELETE', '%s/users/%s/application_credentials/%s' % (ks, owner['id'], old['id']), token=user_token)
            body = {'name': cred['name'], 'secret': str(cred['secret']), 'description': 'hpcops.coe test world'}
            if cred.get('roles'):
                body['roles'] = [{'name': r} for r in cred['roles']]
            if cred.get('unrestricted'):
                body['unrestricted'] = True
            cred['id'] = req('POST', '%s/users/%s/application_credentials' % (ks, owner['id']),
                             {'application_credential': body}, token=user_token)[2]['application_credential']['id']
            appcreds.append({'name': cred['name'], 'id': cred['id'], 'secret': str(cred['secret']), 'user': cred['user']})
        state.update({
            'identity': identity,
            'users': users,
            'project_id': next(iter(users.values()))['project_id'],
            'application_credentials': appcreds,
        })
        return identity

    def _ensure_service(self, ks, token, stype, name):
        found = self.http.request('GET', '%s/services?type=%s' % (ks, stype), token=token)[2]
        if found['services']:
            return found['services'][0]['id']
        body = {'service': {'type': stype, 'name': name, 'enabled': True}}
        return self.http.request('POST', ks + '/services', body, token=token)[2]['service']['id']

    def write_clouds_yaml(self, path=None, prefix=CLOUD, region=None):
        """Write (mode 0600) a clouds.yaml for this tier: ``<prefix>`` is the first user of the
        latest identity, ``<prefix>-<user>`` the others, ``<prefix>-appcred`` its first
        application credential, ``<prefix>-cloud-admin`` Keystone's bootstrap admin. With
        ``prefix='hpcops-sim'`` the names are the simulator's, so that tests and playbooks
        written for the simulator's clouds.yaml run unchanged on this tier."""
        state = self._running_state()
        return self._write_clouds_yaml(state, path, prefix, region)

    def _write_clouds_yaml(self, state, path=None, prefix=CLOUD, region=None):
        auth_url = state['keystone_url'] + '/v3'
        common = {'auth_url': auth_url, 'user_domain_name': 'Default', 'project_domain_name': 'Default'}
        clouds = {}
        for i, (name, user) in enumerate(state['users'].items()):
            clouds[prefix if i == 0 else '%s-%s' % (prefix, name)] = {
                'auth_type': 'password',
                'auth': dict(common, username=name, password=user['password'], project_name=user['project'])}
        clouds[prefix + '-cloud-admin'] = {'auth_type': 'password', 'auth': dict(
            common, username=KEYSTONE_ADMIN, password=state['passwords']['admin'], project_name=KEYSTONE_ADMIN)}
        if state['application_credentials']:
            cred = state['application_credentials'][0]
            clouds[prefix + '-appcred'] = {'auth_type': 'v3applicationcredential', 'auth': {
                'auth_url': auth_url, 'application_credential_id': cred['id'],
                'application_credential_secret': cred['secret']}}
        for cloud in clouds.values():
            cloud.update({'region_name': region or REGION, 'identity_api_version': 3, 'interface': 'public'})
        path = path or state['clouds_yaml']
        # JSON is YAML: no YAML library needed here.
        _write(path, json.dumps({'clouds': clouds}, indent=2) + '\n', 0o600)
        return path

    # ------------------------------------------------------------------ tokens

    def _token(self, state, user, password, project=None, system=False):
        body = {'auth': {'identity': {'methods': ['password'], 'password': {
            'user': {'name': user, 'domain': {'id': 'default'}, 'password': password}}}}}
        if system:
            body['auth']['scope'] = {'system': {'all': True}}
        elif project:
            body['auth']['scope'] = {'project': {'name': project, 'domain': {'id': 'default'}}}
        headers = self.http.request('POST', state['keystone_url'] + '/v3/auth/tokens', body, expect=(201,))[1]
        return headers['X-Subject-Token']

    def _admin_token(self, state):
        return self._token(state, KEYSTONE_ADMIN, state['passwords']['admin'], system=True)

    def _admin_project_token(self, state):
        """Keystone's administrator on its own project: what Nova's and Neutron's admin APIs take."""
        return self._token(state, KEYSTONE_ADMIN, state['passwords']['admin'], KEYSTONE_ADMIN)

    # ------------------------------------------------------------------ processes

    def _spawn(self, name, argv, env=None, cwd=None):
        log = open(self.path('logs', name + '.log'), 'ab')  # pylint: disable=consider-using-with
        full_env = dict(os.environ)
        for var in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'):
            full_env.pop(var, None)
        full_env.update(env or {})
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=cwd or self.state_dir, env=full_env, start_new_session=True)
        log.close()
        _write(self.path('pids', name + '.pid'), '%d %s\n' % (proc.pid, _proc_start_time(proc.pid)))
        # It outlives this call (and this process, for the CLI); stop() reaps it when it is ours.
        _CHILDREN[proc.pid] = proc
        return proc

    def _run(self, name, argv):
        env = dict(os.environ)
        for var in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'):
            env.pop(var, None)
        with open(self.path('logs', name + '.log'), 'ab') as log:
            rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 cwd=self.state_dir, env=env)
        if rc:
            raise RealServicesError('%s failed (exit %d): %s' % (name, rc, self._log_tail(name)))

    def _wait(self, what, ready, deadline, pid_name):
        while time.monotonic() < deadline:
            if ready():
                return
            pid, started = self._read_pid(self.path('pids', pid_name + '.pid'))
            if not pid or _proc_start_time(pid) != started:
                raise RealServicesError('%s exited during start: %s' % (what, self._log_tail(pid_name)))
            time.sleep(0.2)
        raise RealServicesError('%s was not ready in time: %s' % (what, self._log_tail(pid_name)))

    def _log_tail(self, name, lines=15):
        path = self.path('logs', name + '.log')
        try:
            with open(path, encoding='utf-8', errors='replace') as f:
                tail = f.readlines()[-lines:]
        except OSError:
            tail = []
        return 'see %s\n%s' % (path, ''.join(tail))

    def _get_ok(self, url, token=None):
        try:
            return self.http.request('GET', url, token=token, expect=None)[0] == 200
        except OSError:
            return False

    @staticmethod
    def _read_pid(path):
        try:
            with open(path, encoding='ascii') as f:
                pid, started = f.read().split()
            return int(pid), started
        except (OSError, ValueError):
            return None, None

    @staticmethod
    def _group_alive(pgid):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie leader keeps the group "alive"; look for a live member.
        for entry in os.listdir('/proc'):
            if entry.isdigit():
                try:
                    with open('/proc/%s/stat' % entry, encoding='ascii', errors='replace') as f:
                        fields = f.read().rsplit(')', 1)[1].split()
                except OSError:
                    continue
                if fields[2] == str(pgid) and fields[0] != 'Z':
                    return True
        return False

    @staticmethod
    def _reap(pid):
        proc = _CHILDREN.pop(pid, None)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _save(self, state):
        _write(self.state_file, json.dumps(state, indent=2, sort_keys=True) + '\n', 0o600)


def summary(state):
    """The JSON line ``start`` prints: where things are, without the passwords."""
    keys = ('tier', 'keystone_url', 'heat_url', 'heat_base_url', 'rabbit_url', 'clouds_yaml', 'cloud', 'region',
            'state_dir', 'project_id', 'sim_url', 'real_catalog', 'cold_start_seconds', 'timings', 'service_timings',
            'memory_mb')
    out = {k: state.get(k) for k in keys if state.get(k) is not None}
    out['state_file'] = os.path.join(state['state_dir'], 'state.json')
    return out
