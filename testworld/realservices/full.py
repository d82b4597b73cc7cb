# -*- coding: utf-8 -*-
"""The full tier: a real Placement, Nova, Neutron and Magnum beside the real Keystone and Heat.

``RealServices.start(tier='full')`` calls these in order:

* ``prepare(services, state)`` at once (databases: a thread beside Keystone and Heat's start),
* ``launch(services, state)`` once Keystone knows the service users,
* ``finish(services, state, scenario, deadline)`` once the simulator (Glance) runs: waits for
  every service, maps the compute host, and loads the scenario's flavors, keypairs,
  networks and subnets into the real services.

Standard library only, as the controller. Services run from the services virtualenv.
"""

import contextlib
import os
import secrets
import shutil
import sqlite3
import threading
import time

# Service type -> (catalog name, Keystone user, path under the service's base URL).
REAL_SERVICES = {
    'placement': ('placement', 'placement', ''),
    'compute': ('nova', 'nova', '/v2.1'),
    'network': ('neutron', 'neutron', ''),
    'container-infra': ('magnum', 'magnum', '/v1'),
}
# Processes of the full tier, in start order; each has a pid file of that name.
PROCESSES = ('placement', 'nova-api', 'nova-conductor', 'nova-scheduler', 'nova-compute', 'neutron',
             'magnum-api', 'magnum-conductor')
NOVA_DATABASES = ('nova_api', 'nova_cell0', 'nova')
MAGNUM_DRIVER = 'hpcops_capi'
COMPUTE_MICROVERSION = '2.96'


def service_users():
    return sorted({user for _name, user, _path in REAL_SERVICES.values()})


def allocate(state, free_ports):
    """Ports and passwords of the full tier, into the state."""
    placement, nova, neutron, magnum = free_ports(4)
    state['ports'].update(placement=placement, nova=nova, neutron=neutron, magnum=magnum)
    state['passwords'].update({user: secrets.token_hex(16) for user in service_users()})
    base = {'placement': placement, 'compute': nova, 'network': neutron, 'container-infra': magnum}
    state['real_catalog'] = {stype: 'http://127.0.0.1:%d%s' % (base[stype], REAL_SERVICES[stype][2])
                             for stype in REAL_SERVICES}
    # nova-compute with the fake driver cannot start twice under one host name.
    state['compute_host'] = 'hpcops-fake-%s' % secrets.token_hex(3)
    state['service_timings'] = {}


# --------------------------------------------------------------------------- configuration

def write_configuration(svc, state, ini, write):
    ks = state['keystone_url']
    pw = state['passwords']
    rabbit = state['rabbit_url']
    lock = svc.path('lock')

    def authtoken(user):
        return {'www_authenticate_uri': ks + '/v3', 'auth_url': ks, 'auth_type': 'password', 'username': user,
                'password': pw[user], 'project_name': 'service', 'user_domain_name': 'Default',
                'project_domain_name': 'Default', 'region_name': state['region']}

    def client(user):
        return {'auth_type': 'password', 'auth_url': ks + '/v3', 'username': user, 'password': pw[user],
                'project_name': 'service', 'user_domain_name': 'Default', 'project_domain_name': 'Default',
                'region_name': state['region']}

    def sqlite_url(name):
        return 'sqlite:///%s?timeout=60' % svc.path(name + '.sqlite')

    for sub in ('placement', 'nova', 'neutron', 'magnum', 'nova/instances'):
        os.makedirs(svc.path(sub), exist_ok=True)
    write(svc.path('placement', 'placement.conf'), ini({
        'DEFAULT': {'use_stderr': 'true'},
        'api': {'auth_strategy': 'keystone'},
        'placement_database': {'connection': sqlite_url('placement')},
        'keystone_authtoken': authtoken('placement'),
        'oslo_concurrency': {'lock_path': lock},
    }), 0o600)
    shutil.copy(os.path.join(svc.venv, 'etc', 'nova', 'api-paste.ini'), svc.path('nova', 'api-paste.ini'))
    catalog = state['real_catalog']
    write(svc.path('nova', 'nova.conf'), ini({
        'DEFAULT': {
            'transport_url': rabbit, 'host': state['compute_host'], 'my_ip': '127.0.0.1',
            'compute_driver': 'fake.FakeDriver', 'state_path': svc.path('nova'),
            'instances_path': svc.path('nova', 'instances'), 'use_stderr': 'true',
            'allow_resize_to_same_host': 'true', 'graceful_shutdown_timeout': '3',
            'executor_thread_pool_size': '8', 'rpc_response_timeout': '60',
            # A server is ACTIVE as soon as the fake driver has "spawned" it: no vif-plugged event
            # comes, since no agent plugs anything.
            'vif_plugging_is_fatal': 'false', 'vif_plugging_timeout': '0',
        },
        'api': {'auth_strategy': 'keystone'},
        'wsgi': {'api_paste_config': svc.path('nova', 'api-paste.ini')},
        'api_database': {'connection': sqlite_url('nova_api')},
        'database': {'connection': sqlite_url('nova')},
        'keystone_authtoken': authtoken('nova'),
        'placement': dict(client('nova'), endpoint_override=catalog['placement']),
        'neutron': dict(client('nova'), endpoint_override=catalog['network']),
        'glance': {'region_name': state['region']},
        'scheduler': {'discover_hosts_in_cells_interval': '10', 'workers': '1'},
        'conductor': {'workers': '1'},
        'oslo_concurrency': {'lock_path': lock},
        'oslo_messaging_notifications': {'driver': 'noop'},
        'oslo_messaging_rabbit': {'heartbeat_timeout_threshold': '0'},
        'vnc': {'enabled': 'false'},
        'service_user': {'send_service_user_token': 'false'},
        'cinder': {'region_name': state['region']},
        # Bare-metal flavors count 64-96 cores each: the scenario's capacity, not the default
        # quota (20 cores, 50 GB), is what limits boots. An instance quota, if any, is the scenario's.
        'quota': {'cores': '-1', 'ram': '-1',
                  'instances': str((state.get('quotas') or {}).get('instances', -1))},
    }), 0o600)
    shutil.copy(os.path.join(svc.venv, 'etc', 'neutron', 'api-paste.ini'), svc.path('neutron', 'api-paste.ini'))
    write(svc.path('neutron', 'neutron.conf'), ini({
        'DEFAULT': {
            'core_plugin': 'ml2', 'service_plugins': '', 'auth_strategy': 'keystone', 'transport_url': rabbit,
            'api_workers': '1', 'rpc_workers': '0', 'rpc_state_report_workers': '0',
            'notify_nova_on_port_status_changes': 'false', 'notify_nova_on_port_data_changes': 'false',
            'dhcp_agent_notification': 'false', 'api_paste_config': svc.path('neutron', 'api-paste.ini'),
            'state_path': svc.path('neutron'), 'host': state['compute_host'], 'use_stderr': 'true',
            # The scenarios' fast networks have jumbo frames (9000; InfiniBand 4092).
            'global_physnet_mtu': '9000',
        },
        'database': {'connection': sqlite_url('neutron')},
        'keystone_authtoken': authtoken('neutron'),
        'nova': client('neutron'),
        'oslo_concurrency': {'lock_path': lock},
        'oslo_messaging_notifications': {'driver': 'noop'},
        'oslo_messaging_rabbit': {'heartbeat_timeout_threshold': '0'},
    }), 0o600)
    physnets = state.get('physical_networks') or []
    write(svc.path('neutron', 'ml2_conf.ini'), ini({
        'ml2': {'type_drivers': 'flat,vlan,geneve,local', 'tenant_network_types': 'geneve',
                'mechanism_drivers': 'hpcops_agentless', 'extension_drivers': 'port_security'},
        'ml2_type_flat': {'flat_networks': '*'},
        # Physical networks without ranges: only provider (admin-made) VLAN networks.
        'ml2_type_vlan': {'network_vlan_ranges': ','.join(physnets)},
        'ml2_type_geneve': {'vni_ranges': '1:4000', 'max_header_size': '38'},
    }), 0o600)
    shutil.copy(os.path.join(svc.venv, 'etc', 'magnum', 'api-paste.ini'), svc.path('magnum', 'api-paste.ini'))
    write(svc.path('magnum', 'magnum.conf'), ini({
        'DEFAULT': {'transport_url': rabbit, 'host': 'hpcops-magnum', 'use_stderr': 'true',
                    'state_path': svc.path('magnum')},
        'api': {'host': '127.0.0.1', 'port': str(state['ports']['magnum']), 'workers': '2',
                'api_paste_config': svc.path('magnum', 'api-paste.ini')},
        'database': {'connection': sqlite_url('magnum')},
        'certificates': {'cert_manager_type': 'x509keypair'},
        'drivers': {'default_driver': MAGNUM_DRIVER},
        'keystone_authtoken': authtoken('magnum'),
        'keystone_auth': client('magnum'),
        'conductor': {'workers': '1'},
        'cluster': {'temp_cache_dir': svc.path('magnum', 'certificates')},
        'oslo_concurrency': {'lock_path': lock},
        'oslo_messaging_notifications': {'driver': 'noop'},
        'oslo_messaging_rabbit': {'heartbeat_timeout_threshold': '0'},
        'nova_client': {'region_name': state['region'], 'endpoint_type': 'publicURL'},
        'neutron_client': {'region_name': state['region'], 'endpoint_type': 'publicURL'},
        'glance_client': {'region_name': state['region'], 'endpoint_type': 'publicURL'},
        'heat_client': {'region_name': state['region'], 'endpoint_type': 'publicURL'},
        'cinder_client': {'region_name': state['region']},
        'octavia_client': {'region_name': state['region']},
    }), 0o600)


# --------------------------------------------------------------------------- databases

def _schema_from_models(svc, name, metadata_expr, imports, stamp):
    """Migrations that cannot run on sqlite (ALTER of constraints): the schema from the models,
    then the migration tool's stamp, as these projects' own unit tests do."""
    code = '%s\nfrom sqlalchemy import create_engine\nengine = create_engine(%r)\n%s.create_all(engine)\n' % (
        imports, 'sqlite:///' + svc.path(name + '.sqlite'), metadata_expr)
    svc._run(name + '-schema', [svc.bin('python'), '-c', code])
    svc._run(name + '-stamp', stamp)


def prepare(svc, state, mark):
    """Every database of the full tier, side by side: copies of pristine ones, or made and kept."""
    jobs = {
        'placement': (('placement',), lambda: svc._run('placement-db', [
            svc.bin('placement-manage'), '--config-dir', svc.path('placement'), 'db', 'sync'])),
        'neutron': (('neutron',), lambda: _schema_from_models(
            svc, 'neutron', 'head.get_metadata()', 'from neutron.db.migration.models import head',
            [svc.bin('neutron-db-manage'), '--config-file', svc.path('neutron', 'neutron.conf'),
             '--config-file', svc.path('neutron', 'ml2_conf.ini'), 'stamp', 'heads'])),
        'magnum': (('magnum',), lambda: _schema_from_models(
            svc, 'magnum', 'models.Base.metadata', 'from magnum.db.sqlalchemy import models',
            [svc.bin('magnum-db-manage'), '--config-file', svc.path('magnum', 'magnum.conf'), 'stamp', 'head'])),
        'nova': (NOVA_DATABASES, lambda: _nova_databases(svc)),
    }
    errors = []

    def one(name):
        began = time.monotonic()
        files, make = jobs[name]
        try:
            if not _copy_pristine(svc, files):
                make()
                _keep_pristine(svc, files)
            if name == 'nova':
                _point_cells_here(svc, state)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
        state['service_timings'][name + '_database'] = round(time.monotonic() - began, 1)

    threads = [threading.Thread(target=one, args=(name,)) for name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mark('full_databases_ready')
    if errors:
        raise errors[0]
    launch(svc, state, mark)


def _nova_databases(svc):
    manage = [svc.bin('nova-manage'), '--config-file', svc.path('nova', 'nova.conf')]
    svc._run('nova-db', manage + ['api_db', 'sync'])
    svc._run('nova-db', manage + ['cell_v2', 'map_cell0', '--database_connection',
                                  'sqlite:///%s?timeout=60' % svc.path('nova_cell0.sqlite')])
    svc._run('nova-db', manage + ['cell_v2', 'create_cell', '--name', 'cell1', '--verbose'])
    svc._run('nova-db', manage + ['db', 'sync'])


def _pristine(svc, name):
    return os.path.join(svc.venv, 'testworld-databases', name + '.sqlite')


def _copy_pristine(svc, names):
    if not all(os.path.isfile(_pristine(svc, n)) for n in names):
        return False
    for n in names:
        shutil.copyfile(_pristine(svc, n), svc.path(n + '.sqlite'))
    return True


def _keep_pristine(svc, names):
    for n in names:
        target = svc.path(n + '.sqlite')
        with contextlib.closing(sqlite3.connect(target)) as db:
            db.execute('PRAGMA journal_mode=WAL')
        pristine = _pristine(svc, n)
        os.makedirs(os.path.dirname(pristine), exist_ok=True)
        partial = '%s.%d' % (pristine, os.getpid())
        shutil.copyfile(target, partial)
        os.replace(partial, pristine)


def _point_cells_here(svc, state):
    """The cell mappings name database files and a broker: this state directory's."""
    with contextlib.closing(sqlite3.connect(svc.path('nova_api.sqlite'))) as db:
        db.execute("UPDATE cell_mappings SET database_connection = ? WHERE name = 'cell0'",
                   ('sqlite:///%s?timeout=60' % svc.path('nova_cell0.sqlite'),))
        db.execute("UPDATE cell_mappings SET database_connection = ?, transport_url = ? WHERE name = 'cell1'",
                   ('sqlite:///%s?timeout=60' % svc.path('nova.sqlite'), state['rabbit_url']))
        db.commit()


# --------------------------------------------------------------------------- Keystone

def register(svc, state, req, token, ensure_user, grant, ensure_service):
    """Service users (admin and service roles on the service project) and catalog entries."""
    ks = state['keystone_url'] + '/v3'
    for user in service_users():
        user_id = ensure_user(user, state['passwords'][user])
        grant(state['service_project_id'], user_id, 'admin')
        grant(state['service_project_id'], user_id, 'service')
    for stype, url in state['real_catalog'].items():
        service_id = ensure_service(ks, token, stype, REAL_SERVICES[stype][0])
        for ep in req('GET', '%s/endpoints?service_id=%s&region_id=%s' % (ks, service_id, state['region']),
                      token=token)[2]['endpoints']:
            req('DELETE', '%s/endpoints/%s' % (ks, ep['id']), token=token)
        for interface in ('public', 'internal', 'admin'):
            req('POST', ks + '/endpoints', {'endpoint': {'service_id': service_id, 'interface': interface,
                                                         'url': url, 'region_id': state['region']}}, token=token)


# --------------------------------------------------------------------------- processes

def _uwsgi(svc, port, module, extra=()):
    here = os.path.dirname(os.path.abspath(__file__))
    return [svc.bin('uwsgi'), '--http', '127.0.0.1:%d' % port, '--http-keepalive=1', '--http-auto-chunked',
            '--module', module, '--virtualenv', svc.venv, '--need-app', '--processes', '1', '--threads', '4',
            '--master', '--die-on-term', '--enable-threads',
            # sqlite_immediate on import: every transaction BEGIN IMMEDIATE in the workers too.
            '--pythonpath', here, '--import', 'sqlite_immediate'] + list(extra)


def _python_service(svc, prog, target, conf):
    here = os.path.dirname(os.path.abspath(__file__))
    return [svc.bin('python'), os.path.join(here, 'sqlite_immediate.py'), prog, target, '--config-file', conf]


def _spawner(svc, state):
    started = state.setdefault('service_started', {})

    def spawn(name, argv, env=None):
        svc._spawn(name, argv, env=env)
        started[name] = time.monotonic()
    return spawn


def launch(svc, state, mark):
    """Spawn the processes that need only their database and the broker (Keystone is asked
    lazily, at the first request): side by side with Keystone's provisioning."""
    ports = state['ports']
    spawn = _spawner(svc, state)

    spawn('placement', _uwsgi(svc, ports['placement'], 'placement.wsgi.api:application'),
          env={'OS_PLACEMENT_CONFIG_DIR': svc.path('placement')})
    nova_conf = svc.path('nova', 'nova.conf')
    spawn('nova-api', _uwsgi(svc, ports['nova'], 'nova.wsgi.osapi_compute:application'),
          env={'OS_NOVA_CONFIG_DIR': svc.path('nova')})
    for name, target in (('nova-conductor', 'nova.cmd.conductor:main'), ('nova-scheduler', 'nova.cmd.scheduler:main')):
        spawn(name, _python_service(svc, name, target, nova_conf))
    spawn('neutron', _uwsgi(svc, ports['neutron'], 'neutron.wsgi.api:application', ['--lazy-apps']),
          env={'OS_NEUTRON_CONFIG_DIR': svc.path('neutron'), 'OS_NEUTRON_CONFIG_FILES': 'neutron.conf;ml2_conf.ini'})
    magnum_conf = svc.path('magnum', 'magnum.conf')
    spawn('magnum-api', _python_service(svc, 'magnum-api', 'magnum.cmd.api:main', magnum_conf))
    spawn('magnum-conductor', _python_service(svc, 'magnum-conductor', 'magnum.cmd.conductor:main', magnum_conf))
    mark('full_spawned')
    threading.Thread(target=_watch_http, args=(svc, state), daemon=True).start()


def _health_urls(state):
    catalog = state['real_catalog']
    return {'placement': catalog['placement'] + '/', 'nova-api': catalog['compute'][:-len('/v2.1')] + '/',
            'neutron': catalog['network'] + '/', 'magnum-api': catalog['container-infra'][:-len('/v1')] + '/'}


def _watch_http(svc, state, limit=600):
    """Each API's cold start: from its spawn to its first answer (no token needed for the root)."""
    pending = dict(_health_urls(state))
    started = state['service_started']
    timings = state['service_timings']
    end = time.monotonic() + limit
    while pending and time.monotonic() < end:
        for name, url in list(pending.items()):
            if svc._get_ok(url):
                timings[name] = round(time.monotonic() - started[name], 1)
                del pending[name]
        time.sleep(0.25)


def launch_compute(svc, state, mark):
    """nova-compute reports its resources to Placement at start, as the nova user: after Keystone knows it."""
    _spawner(svc, state)('nova-compute', _python_service(svc, 'nova-compute', 'nova.cmd.compute:main',
                                                         svc.path('nova', 'nova.conf')))
    mark('nova_compute_spawned')


def finish(svc, state, scn, deadline, mark):
    """Wait for every service of the full tier, map the compute host, load the scenario."""
    timings = state['service_timings']
    started = state.pop('service_started')
    catalog = state['real_catalog']
    admin = svc._admin_project_token(state)
    req = svc.http.request

    def ready(name, check):
        # Services without an API of their own: seen up through Nova's or Magnum's service list,
        # so the figure is when this start looked (an upper bound of their cold start).
        svc._wait(name, check, deadline, name)
        timings[name] = round(time.monotonic() - started[name], 1)

    for name, url in _health_urls(state).items():
        svc._wait(name, lambda url=url: svc._get_ok(url), deadline, name)
        # The watcher measured it when it answered first; else now is when it was seen.
        timings.setdefault(name, round(time.monotonic() - started[name], 1))
    nova_headers = {'OpenStack-API-Version': 'compute ' + COMPUTE_MICROVERSION}

    def services_up(binaries):
        def check():
            found = req('GET', catalog['compute'] + '/os-services', token=admin, expect=None,
                        headers=nova_headers)
            if found[0] != 200:
                return False
            up = {s['binary'] for s in found[2]['services'] if s['state'] == 'up' and s['status'] == 'enabled'}
            return set(binaries) <= up
        return check

    for binary in ('nova-conductor', 'nova-scheduler', 'nova-compute'):
        ready(binary, services_up([binary]))

    def hypervisor():
        found = req('GET', catalog['compute'] + '/os-hypervisors', token=admin, expect=None, headers=nova_headers)
        return found[0] == 200 and any(h['state'] == 'up' for h in found[2]['hypervisors'])

    svc._wait('nova-compute (hypervisor)', hypervisor, deadline, 'nova-compute')
    # The scheduler maps new hosts every 10 s; mapping now saves that wait.
    svc._run('nova-discover-hosts', [svc.bin('nova-manage'), '--config-file', svc.path('nova', 'nova.conf'),
                                     'cell_v2', 'discover_hosts'])
    timings['nova-compute'] = round(time.monotonic() - started['nova-compute'], 1)

    def conductor_up():
        found = req('GET', catalog['container-infra'] + '/mservices', token=admin, expect=None)
        return found[0] == 200 and any(s['binary'] == 'magnum-conductor' and s['state'] == 'up'
                                       for s in found[2]['mservices'])

    ready('magnum-conductor', conductor_up)
    mark('full_services_ready')
    provision(svc, state, scn, admin)
    mark('full_provisioned')


# --------------------------------------------------------------------------- the scenario's resources

def physical_networks(scn):
    found = []
    for net in scn.get('networks') or []:
        for seg in [net.get('provider') or {}] + list(net.get('segments') or []):
            phys = seg.get('physical_network')
            if phys and phys not in found:
                found.append(phys)
    for pool in (scn.get('baremetal') or {}).get('pools') or []:
        for nic in pool.get('nics') or []:
            phys = nic.get('physical_network')
            if phys and phys not in found:
                found.append(phys)
    return found


def provision(svc, state, scn, admin):
    """Flavors (with extra specs), keypairs (every user, or the listed ones), networks and subnets."""
    req = svc.http.request
    compute = state['real_catalog']['compute']
    network = state['real_catalog']['network']
    headers = {'OpenStack-API-Version': 'compute ' + COMPUTE_MICROVERSION}
    made = state['provisioned'] = {'flavors': {}, 'networks': {}, 'subnets': {}}
    for flavor in scn.get('flavors') or []:
        body = {'flavor': {'name': flavor['name'], 'vcpus': int(flavor['vcpus']), 'ram': int(flavor['ram']),
                           'disk': int(flavor.get('disk', 0))}}
        created = req('POST', compute + '/flavors', body, token=admin, headers=headers)[2]['flavor']
        if flavor.get('extra_specs'):
            req('POST', '%s/flavors/%s/os-extra_specs' % (compute, created['id']),
                {'extra_specs': {k: str(v) for k, v in flavor['extra_specs'].items()}}, token=admin, headers=headers)
        made['flavors'][flavor['name']] = created['id']
    for keypair in scn.get('keypairs') or []:
        for name in keypair.get('users') or list(state['users']):
            user = state['users'][name]
            token = svc._token(state, name, user['password'], user['project'])
            body = {'keypair': {'name': keypair['name']}}
            if keypair.get('public_key'):
                body['keypair']['public_key'] = keypair['public_key']
            # Microversion 2.1: Nova makes the key pair when no public key is given.
            req('POST', compute + '/os-keypairs', body, token=token)
    project_id = state['project_id']
    for net in scn.get('networks') or []:
        body = {'name': net['name'], 'project_id': project_id, 'admin_state_up': True,
                'shared': bool(net.get('shared', net.get('external', False))),
                'router:external': bool(net.get('external', False))}
        if net.get('mtu'):
            body['mtu'] = int(net['mtu'])
        if net.get('segments'):
            body['segments'] = [{'provider:%s' % k: v for k, v in seg.items()} for seg in net['segments']]
        else:
            body.update({'provider:%s' % k: v for k, v in (net.get('provider') or {}).items()})
        created = req('POST', network + '/v2.0/networks', {'network': body}, token=admin)[2]['network']
        made['networks'][net['name']] = created['id']
        for subnet in net.get('subnets') or []:
            sbody = {'name': subnet['name'], 'network_id': created['id'], 'cidr': subnet['cidr'], 'ip_version': 4,
                     'enable_dhcp': bool(subnet.get('enable_dhcp', True)), 'project_id': project_id}
            made['subnets'][subnet['name']] = req('POST', network + '/v2.0/subnets', {'subnet': sbody},
                                                  token=admin)[2]['subnet']['id']


# --------------------------------------------------------------------------- figures

def memory(svc, names):
    """PSS and RSS (MB) of each named process group (the pid file's process and its children)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry, encoding='ascii', errors='replace') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    out = {}
    for name in names:
        pid, _started = svc._read_pid(svc.path('pids', name + '.pid'))
        if not pid:
            continue
        todo, pss, rss = [pid], 0, 0
        while todo:
            p = todo.pop()
            todo.extend(children.get(p, []))
            try:
                with open('/proc/%d/smaps_rollup' % p, encoding='ascii') as f:
                    for line in f:
                        if line.startswith('Pss:'):
                            pss += int(line.split()[1])
                        elif line.startswith('Rss:'):
                            rss += int(line.split()[1])
            except OSError:
                pass
        out[name] = {'pss_mb': round(pss / 1024), 'rss_mb': round(rss / 1024)}
    return out
