# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets: passwords, application credential secrets, tokens, kubeconfig key
material and pull secrets never show in module output, in logs (also at -vvvv),
or in files others can read; kubeconfigs are 0600; TLS verification is on
unless switched off.

The scenario uses secrets of its own (random per run, so a hit cannot be a
coincidence): the cloud's password and application credential secret, passed
to the modules in `auth` (the option Ansible must hide), registry passwords in
pull secrets, and collects the ones made along the way: every Keystone token
the simulated cloud issued, the kubeconfig's private key, the Kubernetes
bearer token. It runs every module (and the accelerators role's kernel module
step, which loops over entries that hold pull secrets) at -vvvv with a log
file, with successes, a check-mode diff and failures (a wrong password, an
unknown flavor, a certificate the client must refuse), and greps all of it for
every secret in every form it could leak in.
"""

import base64
import copy
import datetime
import ipaddress
import json
import os
import secrets as pysecrets
import socket
import ssl
import stat
import threading

import pytest
import yaml

from reliability_kit import DEFAULT_SCENARIO, FIGURES, pem_bodies, run_playbook, run_together, secret_forms
from testworld.kubernetes import components
from testworld.kubernetes.world import TOKEN as KUBE_TOKEN

EL94 = '5.14.0-427.13.1.el9_4.x86_64'
EL95 = '5.14.0-503.11.1.el9_5.x86_64'
NS = 'hpcops-secrets'


def _secret(kind):
    return 'rel-%s-%s' % (kind, pysecrets.token_hex(10))


class TlsServer(object):
    """HTTPS on loopback with a self-signed certificate: a client that verifies refuses it.

    Counts handshakes that failed and HTTP requests that got through.
    """

    def __init__(self, workdir):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                               critical=False)
                .sign(key, hashes.SHA256()))
        cert_path = os.path.join(workdir, 'tls-cert.pem')
        key_path = os.path.join(workdir, 'tls-key.pem')
        with open(cert_path, 'wb') as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, 'wb') as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(key_path, 0o600)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = 'https://127.0.0.1:%d' % self.port
        self.refused = 0
        self.requests = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn = self.sock.accept()[0]
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                self.refused += 1
                conn.close()
                continue
            try:
                if tls.recv(4096):
                    self.requests += 1
                    tls.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
            except (ssl.SSLError, OSError):
                self.refused += 1
            finally:
                tls.close()

    def stop(self):
        self.stopped.set()
        self.sock.close()
        self.thread.join(2)


def unverified_kubeconfig(path, server):
    with open(path, 'w') as f:
        yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'tls',
                        'clusters': [{'name': 'tls', 'cluster': {'server': server}}],
                        'users': [{'name': 'tls', 'user': {'token': KUBE_TOKEN}}],
                        'contexts': [{'name': 'tls', 'context': {'cluster': 'tls', 'user': 'tls'}}]}, f)
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope='module')
def exposure(module_factory, tmp_path_factory):
    """Every module run at -vvvv with the scenario's secrets; what they showed and wrote."""
    base = tmp_path_factory.mktemp('secrets')
    secret = {'password': _secret('password'), 'appcred': _secret('appcred'), 'wrong': _secret('wrong-password'),
              'pull': _secret('pull'), 'pull_json': _secret('pull-json'), 'pull_role': _secret('pull-role'),
              'ceph': _secret('ceph')}
    scn = copy.deepcopy(DEFAULT_SCENARIO)
    scn['identity']['users'][0]['password'] = secret['password']
    scn['identity']['application_credentials'][0]['secret'] = secret['appcred']
    cloud = module_factory.cloud(scn)
    world = module_factory.kube()
    components.deploy_kmm(world)
    for ns in (NS, 'hpcops-accelerators'):
        components.namespace(world, ns)
    for node in ('gpu-1', 'gpu-2'):
        world.label_node(node, {'hpcops.example/gpu': 'true'})
    tls = TlsServer(str(base))

    with open(cloud.clouds_yaml) as f:
        clouds = json.load(f)['clouds']
    auth = dict(clouds['hpcops-sim']['auth'])
    appcred = dict(clouds['hpcops-sim-appcred']['auth'])
    assert auth['password'] == secret['password'] and appcred['application_credential_secret'] == secret['appcred']
    with_password = {'auth': auth, 'auth_type': 'password'}
    with_appcred = {'auth': appcred, 'auth_type': 'v3applicationcredential'}
    kubeconfig = str(base / 'kube' / 'rel-s.kubeconfig')

    def os_task(name, module, args, creds=None, **kw):
        t = {'name': name, 'hpcops.coe.' + module: dict(args, **(creds or with_password))}
        t.update(kw)
        return t

    openstack_tasks = [
        os_task('template', 'cluster_template', {
            'name': 'rel-s-tpl', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key', 'external_network': 'public',
            'flavor': 'm1.small', 'master_flavor': 'm1.large', 'labels': {'hpcops_sim_driver': 'heat'}}),
        os_task('cluster', 'cluster', {'name': 'rel-s', 'cluster_template': 'rel-s-tpl', 'node_count': 1,
                                       'timeout': 60}),
        os_task('nodegroup', 'cluster_nodegroup', {'cluster': 'rel-s', 'name': 'extra', 'flavor': 'm1.small',
                                                   'node_count': 1, 'timeout': 60}),
        os_task('kubeconfig', 'cluster_kubeconfig', {'cluster': 'rel-s', 'dest': kubeconfig, 'timeout': 60}),
        os_task('kubeconfig again', 'cluster_kubeconfig', {'cluster': 'rel-s', 'dest': kubeconfig}, with_appcred),
        os_task('info', 'cluster_info', {'name': 'rel-s'}, with_appcred),
        os_task('nodes', 'cluster_nodes', {'cluster': 'rel-s'}, with_appcred),
        os_task('stack', 'stack_facts', {'cluster': 'rel-s', 'nested_depth': 2}),
        os_task('interfaces', 'server_interfaces', {'cluster': 'rel-s', 'interfaces': [{'network': 'eth-10g'}]},
                diff=True),
        os_task('resize preview', 'cluster', {'name': 'rel-s', 'node_count': 2}, check_mode=True, diff=True),
        os_task('unknown flavor', 'cluster', {'name': 'rel-s2', 'cluster_template': 'rel-s-tpl',
                                              'flavor': 'no-such-flavor'}, ignore_errors=True),
        os_task('wrong password', 'cluster_info', {}, {'auth': dict(auth, password=secret['wrong']),
                                                       'auth_type': 'password'}, ignore_errors=True),
        os_task('untrusted certificate', 'cluster_info', {}, {
            'auth': dict(auth, auth_url=tls.url + '/identity/v3'), 'auth_type': 'password'}, ignore_errors=True),
    ]
    gpu = {'hpcops.example/gpu': 'true'}
    module = {'name': 'nvidia', 'namespace': NS, 'module_name': 'nvidia', 'selector': gpu,
              'container_image': 'registry.example.com/drivers/nvidia:550-${KERNEL_FULL_VERSION}',
              'kernels': [EL94, EL95], 'wait_sleep': 0.2, 'wait_timeout': 20}
    registry_auth = base64.b64encode(('robot:%s' % secret['pull_json']).encode()).decode()
    docker_config = {'auths': {'registry.example.com': {'auth': registry_auth}}}
    kube_tasks = [
        {'name': 'pull secret from a password', 'hpcops.coe.kernel_module': dict(module, pull_secret={
            'name': 'rel-pull', 'registry': 'registry.example.com', 'username': 'robot',
            'password': secret['pull']})},
        {'name': 'same again', 'hpcops.coe.kernel_module': dict(module, pull_secret={
            'name': 'rel-pull', 'registry': 'registry.example.com', 'username': 'robot',
            'password': secret['pull']})},
        {'name': 'pull secret from a docker config', 'hpcops.coe.kernel_module': dict(
            module, name='nvidia-peermem', module_name='nvidia_peermem',
            pull_secret={'name': 'rel-pull-json', 'docker_config_json': docker_config})},
        {'name': 'preview a change', 'hpcops.coe.kernel_module': dict(module, parameters=['NVreg_X=1'], pull_secret={
            'name': 'rel-pull', 'registry': 'registry.example.com', 'username': 'robot',
            'password': secret['pull'] + '-new'}), 'check_mode': True, 'diff': True},
        {'name': 'missing mapping', 'hpcops.coe.kernel_module': dict(module, name='broken', kernels=[EL94], pull_secret={
            'name': 'rel-pull-2', 'registry': 'registry.example.com', 'username': 'robot',
            'password': secret['pull']}), 'ignore_errors': True},
        {'name': 'untrusted API certificate', 'hpcops.coe.node_feature_rule': {
            'name': 'rel-rules', 'state': 'absent',
            'kubeconfig': unverified_kubeconfig(str(base / 'tls.kubeconfig'), tls.url)}, 'ignore_errors': True},
    ]
    role_play = [{'name': 'accelerators kernel modules', 'hosts': 'localhost', 'gather_facts': False,
                  'roles': [{'role': 'hpcops.coe.accelerators', 'vars': {
                      'accelerators_require_cert_manager': False, 'accelerators_check_single_owner': False,
                      'accelerators_wait_timeout': 20, 'accelerators_wait_sleep': 1,
                      'accelerators_kernel_modules': [{
                          'name': 'nvidia-role', 'module_name': 'nvidia', 'selector': gpu,
                          'image': 'registry.example.com/drivers/nvidia:550-${KERNEL_FULL_VERSION}',
                          'kernels': [EL94, EL95],
                          'pull_secret': {'name': 'rel-pull-role', 'registry': 'registry.example.com',
                                          'username': 'robot', 'password': secret['pull_role']}}]}}]}]

    def play(tasks, name):
        return [{'name': name, 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]

    # The storage role on a node tree that has eth-25g configured: a CephFS mount with its key,
    # a rerun, a check-mode diff with a new key, and a refused input that carries the key.
    node = base / 'storage-node'
    (node / 'etc' / 'systemd' / 'network').mkdir(parents=True)
    (node / 'etc' / 'systemd' / 'network' / '50-hpcops-eth-25g.network').write_text(
        '# Ansible managed\n# OpenStack network eth-25g, port p\n[Match]\nName=ens2\n')
    ceph = {'path': '/ceph', 'type': 'cephfs', 'network': 'eth-25g', 'servers': ['10.25.0.21'],
            'ceph_user': 'hpc', 'ceph_secret': secret['ceph']}
    storage_vars = {'storage_target_root': str(node), 'storage_os_family': 'debian',
                    'storage_networks': [{'name': 'eth-25g'}], 'storage_mounts': [ceph]}

    def storage_play(name, extra=None, **kw):
        entry = dict({'role': 'hpcops.coe.storage', 'vars': dict(storage_vars, **(extra or {}))}, **kw)
        return {'name': name, 'hosts': 'localhost', 'gather_facts': False, 'roles': [entry]}

    storage_plays = [
        storage_play('mount'), storage_play('again'),
        storage_play('new key, previewed', {'storage_mounts': [dict(ceph, ceph_secret=secret['ceph'] + '-new')]},
                     check_mode=True, diff=True),
        storage_play('refused', {'storage_mounts': [ceph, dict(ceph, type='nfs', source='/x')]}, ignore_errors=True),
    ]

    try:
        runs = run_together(
            # No OS_CLOUD: the modules get their credentials from `auth` alone.
            lambda: run_playbook(play(openstack_tasks, 'openstack'), str(base / 'openstack'), verbosity=4,
                                 log=True),
            lambda: run_playbook(play(kube_tasks, 'kubernetes'), str(base / 'kubernetes'), kube=world, verbosity=4,
                                 log=True),
            lambda: run_playbook(role_play, str(base / 'role'), kube=world, verbosity=4, log=True,
                                 tags=['accelerators_modules']),
            lambda: run_playbook(storage_plays, str(base / 'storage'), verbosity=4, log=True),
        )
    finally:
        tls.stop()
    with open(kubeconfig) as f:
        written = yaml.safe_load(f)
    return {
        'secret': secret, 'runs': dict(zip(('openstack', 'kubernetes', 'role', 'storage'), runs)), 'cloud': cloud,
        'ceph_file': str(node / 'etc' / 'ceph' / 'hpcops-ceph.secret'),
        'world': world, 'kubeconfig': kubeconfig, 'written': written, 'tls': tls, 'base': str(base),
        'docker_config': docker_config, 'registry_auth': registry_auth,
    }


def secret_values(exposure):
    """{what: set of strings}: every secret of the scenario, in every form it could leak in."""
    s = exposure['secret']
    values = {}
    for key in ('password', 'appcred', 'wrong'):
        values[key] = secret_forms(s[key])
    for key in ('pull', 'pull_role'):
        values[key] = secret_forms(s[key]) | secret_forms(s[key] + '-new') | \
            secret_forms('robot:%s' % s[key]) | secret_forms('robot:%s-new' % s[key])
    values['pull_json'] = secret_forms(s['pull_json']) | {exposure['registry_auth']}
    values['ceph'] = secret_forms(s['ceph']) | secret_forms(s['ceph'] + '-new')
    # The dockerconfigjson the module stores, as the Secret holds it.
    world = exposure['world']
    for name in ('rel-pull', 'rel-pull-json', 'rel-pull-role'):
        for ns in (NS, 'hpcops-accelerators'):
            obj = world.get('v1', 'Secret', name, ns)
            if obj:
                blob = obj['data']['.dockerconfigjson']
                values.setdefault('pull secret objects', set()).update({blob, base64.b64decode(blob).decode()})
    user = exposure['written']['users'][0]['user']
    key_pem = base64.b64decode(user['client-key-data']).decode()
    values['kubeconfig key'] = {user['client-key-data']} | set(pem_bodies(key_pem))
    tokens = list(exposure['cloud'].world.keystone.tokens)
    values['keystone tokens'] = set(tokens)
    values['kubernetes token'] = {KUBE_TOKEN}
    return values


def test_scenario_ran_and_used_its_secrets(exposure):
    runs = exposure['runs']
    for name, run in runs.items():
        assert run.rc == 0, '%s: %s' % (name, run.explain())
    # The secrets were really in play: tokens issued, key written, pull secrets stored.
    assert len(exposure['cloud'].world.keystone.tokens) >= 10
    assert exposure['written']['users'][0]['user']['client-key-data']
    assert exposure['world'].get('v1', 'Secret', 'rel-pull', NS)['type'] == 'kubernetes.io/dockerconfigjson'
    assert exposure['world'].get('v1', 'Secret', 'rel-pull-role', 'hpcops-accelerators')
    failed = runs['openstack'].result('wrong password')
    assert failed['failed'] and 'HTTP 401' in failed['msg'], failed['msg']


def grep(exposure, runs, label):
    """Every secret form in every captured text of `runs`; records the figures under `label`."""
    values = secret_values(exposure)
    captured = {}
    for name in runs:
        for source, text in exposure['runs'][name].captured().items():
            captured['%s %s' % (name, source)] = text
    assert all(captured[k] for k in captured if k.endswith('log')), 'a log file stayed empty'
    found = []
    count = 0
    for what, forms in sorted(values.items()):
        for form in forms:
            count += 1
            for source, text in sorted(captured.items()):
                if form and form in text:
                    found.append('%s (%s...) in %s' % (what, form[:12], source))
    FIGURES.secret_grep(label, count, len(captured), len(found))
    return found


def test_the_grep_finds_secrets_where_they_belong(exposure):
    """A control: each secret is found where it is meant to be, so a clean grep means something."""
    values = secret_values(exposure)
    legit = ''
    for path in [exposure['cloud'].clouds_yaml, exposure['kubeconfig']]:
        with open(path) as f:
            legit += f.read()
    for name in ('openstack', 'kubernetes', 'role', 'storage'):
        with open(exposure['runs'][name].playbook) as f:
            legit += f.read()
    legit += json.dumps([exposure['world'].get('v1', 'Secret', n, NS) for n in ('rel-pull', 'rel-pull-json')])
    missing = [what for what, forms in values.items()
               if what not in ('keystone tokens', 'kubernetes token') and not any(f in legit for f in forms)]
    assert not missing, missing
    assert len(values['kubeconfig key']) >= 20


def test_no_secret_shows_in_module_output_or_logs(exposure):
    found = grep(exposure, ('openstack', 'kubernetes'), 'modules')
    assert not found, '\n'.join(found)


def test_accelerators_role_keeps_pull_secrets_out_of_its_output(exposure):
    found = grep(exposure, ('role',), 'accelerators role')
    assert not found, '\n'.join(found)


def test_storage_role_keeps_the_ceph_key_out_of_its_output(exposure):
    run = exposure['runs']['storage']
    refused = run.result('hpcops.coe.storage : Storage | Mount the shared file systems')   # the last play's
    assert refused['failed'] and 'each path once' in refused['msg'], refused
    found = grep(exposure, ('storage',), 'storage role')
    assert not found, '\n'.join(found)
    # The key is where the mount needs it, for root only; the preview did not write the new one.
    assert stat.S_IMODE(os.stat(exposure['ceph_file']).st_mode) == 0o600
    with open(exposure['ceph_file']) as f:
        assert f.read() == exposure['secret']['ceph'] + '\n'


def test_kubeconfigs_and_clouds_yaml_are_private(exposure):
    path = exposure['kubeconfig']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The directory the module made for it is the user's only.
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(exposure['cloud'].clouds_yaml).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(exposure['world'].kubeconfig).st_mode) == 0o600
    # Nothing else the runs left behind (module files in Ansible's temporary directories, the
    # log) holds a secret, and nothing that holds one is readable by others. The test's own
    # inputs (playbooks, the untrusted kubeconfig) hold secrets by design; the results and
    # logs are grepped above.
    values = set().union(*secret_values(exposure).values())
    allowed = {os.path.realpath(path), os.path.realpath(os.path.join(exposure['base'], 'tls.kubeconfig')),
               os.path.realpath(exposure['ceph_file'])}
    leaks = []
    for root, _dirs, files in os.walk(exposure['base']):
        for name in files:
            full = os.path.join(root, name)
            if name.startswith(('playbook-', 'results-', 'ansible-')):
                continue
            try:
                with open(full, errors='replace') as f:
                    text = f.read()
            except OSError:
                continue
            if any(v in text for v in values):
                mode = stat.S_IMODE(os.stat(full).st_mode)
                if os.path.realpath(full) not in allowed or mode & 0o077:
                    leaks.append('%s (mode %o)' % (full, mode))
    assert not leaks, leaks


def test_tls_verification_is_on_by_default(exposure):
    runs = exposure['runs']
    for run, task in ((runs['openstack'], 'untrusted certificate'), (runs['kubernetes'], 'untrusted API certificate')):
        result = run.result(task)
        assert result['failed'], (task, result)
        assert 'CERTIFICATE_VERIFY_FAILED' in result['msg'] or 'certificate verify failed' in result['msg'].lower(), \
            (task, result['msg'])
    tls = exposure['tls']
    # Both clients refused the handshake; no request was ever sent over the untrusted connection.
    assert tls.refused >= 2 and tls.requests == 0, (tls.refused, tls.requests)
    # The kubeconfig the collection writes pins the cluster's CA and never skips verification.
    cluster = exposure['written']['clusters'][0]['cluster']
    assert cluster['certificate-authority-data'] and cluster['server'].startswith('https://')
    assert 'insecure-skip-tls-verify' not in json.dumps(exposure['written'])
