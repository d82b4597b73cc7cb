"""The real-services tier: a real Keystone and a real Heat, with the simulated Nova, Neutron,
Glance and Magnum behind the real catalog, exercised with the real clients.

Skipped when testworld/realservices/setup.sh has not been run. The whole tier (real services
and a simulator bridged to them, on the default scenario with short timings) is started once
for the session (conftest.py) and stopped, state directory removed, at its end.
"""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from heatclient import client as heat_client
from heatclient import exc as heat_exc
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

import openstack
from testworld.realservices import RealServices, is_installed
from testworld.realservices import bridge

pytestmark = pytest.mark.skipif(not is_installed(), reason='real services not installed: run testworld/realservices/setup.sh')

OPENSTACK_CLI = os.path.join(os.path.dirname(sys.executable), 'openstack')
# The session's tier (fixture ``tier``) is started in conftest.py, shared with the differential check.


def password_session(tier, user='admin'):
    who = tier['users'][user]
    return ks_session.Session(auth=v3.Password(
        auth_url=tier['keystone_url'] + '/v3', username=user, password=who['password'], project_id=who['project_id'],
        user_domain_name='Default'))


@pytest.fixture(scope='session')
def user_session(tier):
    return password_session(tier)


@pytest.fixture(scope='session')
def heat(user_session):
    return heat_client.Client('1', session=user_session, service_type='orchestration')


def connect(tier, cloud='hpcops-real'):
    config = openstack.config.OpenStackConfig(config_files=[tier['clouds_yaml']])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def cli(tier, *args, cloud='hpcops-real', check=True):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=tier['clouds_yaml'], OS_CLOUD=cloud)
    done = subprocess.run([OPENSTACK_CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cli_json(tier, *args, **kwargs):
    return json.loads(cli(tier, *args, '-f', 'json', **kwargs).stdout)


def wait_for(predicate, timeout=60, interval=0.3, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(interval)


def cluster_layout(name, masters=1, minions=2):
    servers, outputs = [], {'api_address': '10.0.0.10', 'kube_masters': [], 'kube_minions': [],
                            'kube_masters_private': [], 'kube_minions_private': []}
    for i in range(masters):
        servers.append(('kube_masters', i, '%s-master-%d' % (name, i), str(uuid.uuid4())))
        outputs['kube_masters'].append('172.24.4.%d' % (10 + i))
        outputs['kube_masters_private'].append('10.0.0.%d' % (10 + i))
    for i in range(minions):
        servers.append(('kube_minions', i, '%s-node-%d' % (name, i), str(uuid.uuid4())))
        outputs['kube_minions'].append('172.24.4.%d' % (100 + i))
        outputs['kube_minions_private'].append('10.0.0.%d' % (100 + i))
    return bridge.StackLayout(name, outputs, servers)


def server_rows(heat, stack_id):
    return [r for r in heat.resources.list(stack_id, nested_depth=2) if r.resource_name in ('kube-master', 'kube-minion')]


def members(heat, stack_id, kind='kubeminion.yaml'):
    return sorted(r.resource_name for r in heat.resources.list(stack_id, nested_depth=1) if r.resource_type == kind)


# --------------------------------------------------------------------------- Keystone

def test_clouds_yaml_is_private(tier):
    assert oct(os.stat(tier['clouds_yaml']).st_mode & 0o777) == '0o600'


def test_openstacksdk_password_auth_and_catalog(tier):
    conn = connect(tier)
    conn.authorize()
    assert conn.current_project_id == tier['project_id']
    catalog = {entry['type']: entry['endpoints'][0]['url'] for entry in conn.config.get_service_catalog().catalog}
    assert catalog['identity'].startswith(tier['keystone_url'])
    assert catalog['orchestration'] == tier['heat_url'] % {'tenant_id': tier['project_id']}
    for stype in ('compute', 'network', 'image', 'container-infra'):
        assert catalog[stype].startswith(tier['sim_url']), stype


def test_openstacksdk_application_credential_auth(tier):
    conn = connect(tier, 'hpcops-real-appcred')
    token = conn.session.get_token()
    body = conn.identity.get('/auth/tokens', headers={'X-Subject-Token': token}).json()['token']
    assert body['methods'] == ['application_credential']
    assert body['project']['id'] == tier['project_id']
    assert body['application_credential']['id'] == tier['application_credentials'][0]['id']
    # The credential's token is good for the real Heat and for the simulated services.
    assert isinstance(list(conn.orchestration.stacks()), list)
    assert {c.name for c in conn.container_infrastructure_management.clusters()} >= {'hpc-heat'}


def test_wrong_password_is_refused(tier):
    sess = ks_session.Session(auth=v3.Password(
        auth_url=tier['keystone_url'] + '/v3', username='admin', password='not-the-password', project_name='hpc',
        user_domain_name='Default', project_domain_name='Default'))
    with pytest.raises(ks_exc.Unauthorized):
        sess.get_token()


def test_start_again_returns_the_running_set(tier):
    again = RealServices(tier['state_dir']).start()
    for key in ('keystone_url', 'heat_url', 'sim_url'):
        assert again[key] == tier[key]


def test_token_validator_validates_and_caches(tier, user_session):
    validator = bridge.KeystoneTokenValidator(tier['keystone_url'], tier['service_credentials'])
    token = user_session.get_token()
    ctx = validator.context(token)
    assert ctx['project_id'] == tier['project_id']
    assert ctx['user_id'] == tier['users']['admin']['id']
    assert ctx['is_admin']
    assert validator.lookups == 1
    validator.validate(token)
    assert validator.lookups == 1, 'a second validation within cache_seconds must not ask Keystone'
    assert validator.validate('gAAAAAbogus') is None
    assert validator.validate('') is None


def test_token_validator_sees_revocation_after_cache_expiry(tier):
    clock = [1000.0]
    validator = bridge.KeystoneTokenValidator(tier['keystone_url'], tier['service_credentials'], cache_seconds=60,
                                              clock=lambda: clock[0])
    user = password_session(tier, 'demo')
    token = user.get_token()
    assert validator.context(token)['roles'] and not validator.context(token)['is_admin']
    user.delete(tier['keystone_url'] + '/v3/auth/tokens', headers={'X-Subject-Token': token})
    assert validator.validate(token) is not None, 'cached, as keystonemiddleware caches'
    clock[0] += 61
    assert validator.validate(token) is None


def test_simulator_refuses_tokens_the_real_keystone_does_not_know(tier):
    conn = connect(tier)
    resp = conn.session.get(tier['sim_url'] + '/compute/v2.1/servers', headers={'X-Auth-Token': 'gAAAAAbogus'},
                            authenticated=False, raise_exc=False)
    assert resp.status_code == 401


# --------------------------------------------------------------------------- Heat through the bridge

@pytest.fixture(scope='module')
def bridge_stack(tier, user_session):
    token = user_session.get_token()
    backend = bridge.HeatStackBackend(tier['heat_url'], bridge.user_session(token, tier['project_id']))
    layout = cluster_layout('k8s-bridge-%s' % uuid.uuid4().hex[:12])
    stack = backend.create(layout, wait=True)
    yield backend, layout, stack
    backend.delete(stack)


def test_bridge_stack_outputs(bridge_stack, heat):
    layout, stack = bridge_stack[1:]
    shown = heat.stacks.get(stack['id'])
    assert shown.stack_status == 'CREATE_COMPLETE'
    assert {o['output_key']: o['output_value'] for o in shown.outputs} == layout.outputs
    assert heat.stacks.output_show(stack['id'], 'api_address')['output']['output_value'] == '10.0.0.10'


def test_bridge_stack_resources_nested_depth_2(bridge_stack, heat):
    backend, layout, stack = bridge_stack
    rows = {r.resource_name: r for r in heat.resources.list(stack['id'], nested_depth=2)}
    assert rows['kube_masters'].resource_type == 'OS::Heat::ResourceGroup'
    assert rows['kube_minions'].resource_type == 'OS::Heat::ResourceGroup'
    assert backend.standin, 'heat-engine should have loaded the stand-in server plugin'
    found = set()
    for row in server_rows(heat, stack['id']):
        assert row.resource_type == 'OS::Nova::Server'
        assert row.resource_status == 'CREATE_COMPLETE'
        found.add(('kube_masters' if row.resource_name == 'kube-master' else 'kube_minions', row.physical_resource_id))
    assert found == {(s['group'], s['server_id']) for s in layout.servers}
    assert members(heat, stack['id']) == ['0', '1']
    assert members(heat, stack['id'], 'kubemaster.yaml') == ['0']


def test_bridge_members_reference_server_ids(bridge_stack, heat):
    """Each member's reference id (its OS::stack_id output) is its server id, as in Magnum's templates."""
    layout, stack = bridge_stack[1:]
    by_index = {str(s['index']): s['server_id'] for s in layout.members('kube_minions')}
    for member in heat.resources.list(stack['id'], nested_depth=1):
        if member.resource_type == 'kubeminion.yaml':
            outputs = {o['output_key']: o['output_value'] for o in heat.stacks.get(member.physical_resource_id).outputs}
            assert outputs['OS::stack_id'] == by_index[member.resource_name]


def test_bridge_resize_keeps_survivors_and_indices(tier, user_session, heat):
    backend = bridge.HeatStackBackend(tier['heat_url'], user_session)
    layout = cluster_layout('k8s-resize-%s' % uuid.uuid4().hex[:12], minions=3)
    stack = backend.create(layout, wait=True)
    try:
        # Member 0 goes (as with nodes_to_remove), 1 and 2 stay, 3 is new.
        survivors = [s for s in layout.servers if not (s['group'] == 'kube_minions' and s['index'] == 0)]
        added = ('kube_minions', 3, layout.name + '-node-3', str(uuid.uuid4()))
        outputs = dict(layout.outputs, kube_minions=['172.24.4.101', '172.24.4.102', '172.24.4.103'])
        resized = bridge.StackLayout(layout.name, outputs, survivors + [added])
        backend.update(stack, resized, wait=True)
        assert members(heat, stack['id']) == ['1', '2', '3']
        assert {r.physical_resource_id for r in server_rows(heat, stack['id'])} == {s['server_id'] for s in resized.servers}
        assert heat.stacks.output_show(stack['id'], 'kube_minions')['output']['output_value'] == outputs['kube_minions']
        # A group can go down to zero members.
        backend.update(stack, bridge.StackLayout(layout.name, layout.outputs, layout.members('kube_masters')), wait=True)
        assert [r.resource_name for r in server_rows(heat, stack['id'])] == ['kube-master']
    finally:
        backend.delete(stack, wait=True)
    # Heat still shows a deleted stack by id (DELETE_COMPLETE); soon after, not by name.
    assert heat.stacks.get(stack['id']).stack_status == 'DELETE_COMPLETE'
    try:
        assert heat.stacks.get(layout.name).stack_status == 'DELETE_COMPLETE'
    except heat_exc.HTTPNotFound:
        pass


def test_bridge_delete_of_a_missing_stack_is_quiet(tier, user_session):
    backend = bridge.HeatStackBackend(tier['heat_url'], user_session)
    backend.delete('no-such-stack-%s' % uuid.uuid4().hex)
    assert backend.get('no-such-stack') is None


# --------------------------------------------------------------------------- the simulator behind the real catalog

def real_stack_id(conn, cluster):
    """The cluster's stack_id once it names a stack of the real Heat."""
    def found():
        stack_id = conn.container_infrastructure_management.get_cluster(cluster).stack_id
        stack = conn.orchestration.find_stack(stack_id) if stack_id else None
        return stack.id if stack is not None else None
    return wait_for(found, what='the real stack of %s' % cluster)


def test_scenario_cluster_has_a_real_stack(tier, heat):
    conn = connect(tier)
    cluster = conn.container_infrastructure_management.find_cluster('hpc-heat')
    stack_id = real_stack_id(conn, cluster.id)
    servers = {s.id: s.name for s in conn.compute.servers() if s.name.startswith(heat.stacks.get(stack_id).stack_name)}
    rows = server_rows(heat, stack_id)
    assert {r.physical_resource_id for r in rows} == set(servers)
    outputs = {o['output_key']: o['output_value'] for o in heat.stacks.get(stack_id).outputs}
    assert outputs['api_address'] in cluster.api_address
    assert sorted(outputs['kube_masters']) == sorted(cluster.master_addresses)
    # node_addresses also hold the nodes of the gpu nodegroup, whose stack is one of its own (as in Magnum).
    gpu = next(s for s in heat.stacks.list() if s.stack_name.startswith(cluster.name + '-gpu-'))
    gpu_minions = heat.stacks.output_show(gpu.id, 'kube_minions')['output']['output_value']
    assert sorted(outputs['kube_minions'] + gpu_minions) == sorted(cluster.node_addresses)
    assert members(heat, gpu.id) == ['0']


def test_coe_cluster_lifecycle_with_real_stack(tier, heat):
    name = 'real-%s' % uuid.uuid4().hex[:6]
    cli(tier, 'coe', 'cluster', 'create', '--cluster-template', 'k8s-heat-fcos', '--keypair', 'hpc-key',
        '--master-count', '1', '--node-count', '2', name)
    listed = {c['name']: c for c in cli_json(tier, 'coe', 'cluster', 'list')}
    assert name in listed
    # Magnum completes once the real stack has (real Heat takes its time on a loaded machine).
    wait_for(lambda: cli_json(tier, 'coe', 'cluster', 'show', name)['status'] == 'CREATE_COMPLETE',
             timeout=180, what='CREATE_COMPLETE')
    conn = connect(tier)
    uuid_ = listed[name]['uuid']
    stack_id = real_stack_id(conn, uuid_)
    stack = heat.stacks.get(stack_id)
    assert stack.stack_name.startswith(name + '-')
    wait_for(lambda: heat.stacks.get(stack_id).stack_status == 'CREATE_COMPLETE', what='the real stack')
    shown = cli_json(tier, 'coe', 'cluster', 'show', name)
    output = cli_json(tier, 'stack', 'output', 'show', stack_id, 'api_address')
    assert output['output_value'] in shown['api_address']
    minions = cli_json(tier, 'stack', 'output', 'show', stack.stack_name, 'kube_minions')['output_value']
    assert len(minions) == 2
    node_ids = {r.physical_resource_id for r in server_rows(heat, stack_id) if r.resource_name == 'kube-minion'}
    nova_ids = {s.id for s in conn.compute.servers(name=stack.stack_name + '-node-')}
    assert node_ids == nova_ids

    # Resize: the real stack follows (members 0..2, a third server).
    cli(tier, 'coe', 'cluster', 'resize', name, '3')
    wait_for(lambda: members(heat, stack_id) == ['0', '1', '2'] and
             heat.stacks.get(stack_id).stack_status == 'UPDATE_COMPLETE', what='the resized real stack')
    assert len(heat.stacks.output_show(stack_id, 'kube_minions')['output']['output_value']) == 3

    cli(tier, 'coe', 'cluster', 'delete', name)
    wait_for(lambda: name not in {c['name'] for c in cli_json(tier, 'coe', 'cluster', 'list')}, what='cluster gone')
    wait_for(lambda: heat.stacks.get(stack_id).stack_status == 'DELETE_COMPLETE', what='real stack deleted')


def test_server_add_network_with_real_token(tier):
    conn = connect(tier)
    server = next(s for s in conn.compute.servers() if s.name.startswith('hpc-heat-') and '-node-' in s.name)
    before = set(conn.compute.get_server(server.id).addresses)
    assert 'eth-25g' not in before
    cli(tier, 'server', 'add', 'network', server.id, 'eth-25g')
    after = conn.compute.get_server(server.id).addresses
    assert 'eth-25g' in after and set(after) >= before
    interfaces = cli_json(tier, 'port', 'list', '--server', server.id)
    assert len(interfaces) == len(after)


def test_outsider_sees_no_clusters_and_no_stacks(tier):
    assert cli_json(tier, 'coe', 'cluster', 'list', cloud='hpcops-real-outsider') == []
    assert cli_json(tier, 'stack', 'list', cloud='hpcops-real-outsider') == []
