"""The full real-services tier: real Placement, Nova (fake virt driver), Neutron (ML2 with the
tier's agentless driver) and Magnum (the tier's Cluster-API-like driver) beside the real
Keystone and Heat, exercised with the real clients (openstacksdk, the openstack CLI with
python-magnumclient).

Run by ``tools/test.sh realservices-full`` (``make realservices-full``); skipped unless
``testworld/realservices/setup.sh full`` has been run. One tier is started for the module
(about a minute and a half, 1.5 GB) and stopped, state directory removed, at its end.
"""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

import openstack
from testworld.realservices import RealServices, is_installed

pytestmark = [
    pytest.mark.realservices_full,
    pytest.mark.skipif(not is_installed(tier='full'),
                       reason='full real-services tier not installed: run testworld/realservices/setup.sh full'),
]

OPENSTACK_CLI = os.path.join(os.path.dirname(sys.executable), 'openstack')
# Magnum's conductor syncs cluster status every 10 s; a loaded 2-core machine adds to that.
CLUSTER_TIMEOUT = 240


@pytest.fixture(scope='module')
def tier(request, tmp_path_factory):
    # HPCOPS_REALSERVICES_STATE_DIR: a full tier already running there (started with start.sh
    # --tier full) is used and left running, for iterating on these tests.
    reuse = os.environ.get('HPCOPS_REALSERVICES_STATE_DIR')
    services = RealServices(reuse or str(tmp_path_factory.mktemp('realservices-full') / 'state'))
    state = services.start(scenario='default', tier='full', timeout=600)
    yield state
    if not reuse:
        services.stop(keep=request.session.testsfailed > 0)


def connect(tier, cloud='hpcops-real'):
    config = openstack.config.OpenStackConfig(config_files=[tier['clouds_yaml']])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


@pytest.fixture(scope='module')
def conn(tier):
    c = connect(tier)
    yield c
    c.close()


def cli(tier, *args, cloud='hpcops-real', check=True):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=tier['clouds_yaml'], OS_CLOUD=cloud)
    done = subprocess.run([OPENSTACK_CLI, *args], env=env, capture_output=True, text=True, timeout=180, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cli_json(tier, *args, **kwargs):
    return json.loads(cli(tier, *args, '-f', 'json', **kwargs).stdout)


def wait_for(predicate, timeout=CLUSTER_TIMEOUT, interval=1.0, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(interval)


def cluster_status(tier, name, wanted):
    shown = cli_json(tier, 'coe', 'cluster', 'show', name)
    why = (shown['status'], shown['status_reason'])
    assert not shown['status'].endswith('_FAILED') or shown['status'] in wanted, why
    return shown if shown['status'] in wanted else None


def machines(conn, stack_id):
    return {s.id: s for s in conn.compute.servers(details=True, name='^%s-' % stack_id)}


# --------------------------------------------------------------------------- catalog and scenario

def test_catalog_names_the_real_services(tier, conn):
    catalog = {entry['type']: entry['endpoints'][0]['url'] for entry in conn.config.get_service_catalog().catalog}
    for stype in ('compute', 'network', 'placement', 'container-infra'):
        assert catalog[stype].rstrip('/') == tier['real_catalog'][stype].rstrip('/'), stype
    assert catalog['image'].startswith(tier['sim_url'])
    assert isinstance(tier['memory_mb'], dict) and tier['memory_mb']['nova-compute']['pss_mb'] > 0
    for service in ('placement', 'nova-api', 'nova-compute', 'neutron', 'magnum-api', 'magnum-conductor'):
        assert tier['service_timings'][service] > 0, service


def test_scenario_flavors_networks_and_keypair_are_real(tier, conn):
    flavors = {f.name: f for f in conn.compute.flavors()}
    assert {'m1.small', 'm1.large', 'bm.compute', 'bm.gpu'} <= set(flavors)
    assert flavors['bm.gpu'].extra_specs['trait:CUSTOM_GPU_A100'] == 'required'
    nets = {n.name: n for n in conn.network.networks()}
    assert nets['eth-25g'].provider_network_type == 'vlan'
    assert nets['eth-25g'].provider_physical_network == 'physnet25g'
    assert nets['eth-25g'].provider_segmentation_id == 125
    assert nets['eth-25g'].mtu == 9000
    assert nets['public'].is_router_external
    assert {s.name for s in conn.network.subnets()} >= {'private-subnet', 'eth-10g-subnet', 'ib-100g-subnet'}
    assert conn.compute.find_keypair('hpc-key') is not None


# --------------------------------------------------------------------------- Nova and Neutron

@pytest.fixture(scope='module')
def server(tier, conn):
    image = conn.image.find_image('ubuntu-jammy-kube-v1.30.4')
    net = conn.network.find_network('private')
    made = conn.compute.create_server(name='rt-%s' % uuid.uuid4().hex[:6], image_id=image.id,
                                      flavor_id=conn.compute.find_flavor('m1.small').id,
                                      networks=[{'uuid': net.id}], key_name='hpc-key')
    made = conn.compute.wait_for_server(made, wait=180)
    yield made
    conn.compute.delete_server(made)


def test_server_boots_active_with_a_bound_port(conn, server):
    assert server.status == 'ACTIVE'
    ports = list(conn.network.ports(device_id=server.id))
    assert len(ports) == 1
    assert ports[0].binding_vif_type == 'ovs'
    assert ports[0].status == 'ACTIVE'
    assert ports[0].binding_host_id


def test_baremetal_port_binds_with_vif_type_other(tier, conn):
    net = conn.network.find_network('ib-100g')
    port = conn.network.create_port(network_id=net.id, binding_vnic_type='baremetal',
                                    binding_host_id=tier['compute_host'], name='rt-bm-%s' % uuid.uuid4().hex[:6])
    try:
        assert port.binding_vif_type == 'other'
        assert port.binding_vnic_type == 'baremetal'
    finally:
        conn.network.delete_port(port)


def test_attach_and_detach_an_interface_through_nova_and_neutron(tier, conn, server):
    cli(tier, 'server', 'add', 'network', server.id, 'eth-25g')
    net = conn.network.find_network('eth-25g')
    attached = wait_for(lambda: list(conn.network.ports(device_id=server.id, network_id=net.id)),
                        timeout=60, what='the attached port')
    assert attached[0].binding_vif_type == 'ovs'
    assert attached[0].fixed_ips[0]['ip_address'].startswith('10.25.')
    interfaces = {i.net_id for i in conn.compute.server_interfaces(server)}
    assert net.id in interfaces
    wait_for(lambda: 'eth-25g' in conn.compute.get_server(server.id).addresses, timeout=60,
             what='the address in the server')
    conn.compute.delete_server_interface(attached[0].id, server=server)
    wait_for(lambda: not list(conn.network.ports(device_id=server.id, network_id=net.id)), timeout=60,
             what='the detached port')


def test_attach_of_an_unknown_network_is_refused(tier, server):
    done = cli(tier, 'server', 'add', 'network', server.id, str(uuid.uuid4()), check=False)
    assert done.returncode != 0


def test_large_flavor_gives_no_valid_host(conn):
    image = conn.image.find_image('ubuntu-jammy-kube-v1.30.4')
    made = conn.compute.create_server(name='rt-big-%s' % uuid.uuid4().hex[:6], image_id=image.id,
                                      flavor_id=conn.compute.find_flavor('bm.compute').id,
                                      networks=[{'uuid': conn.network.find_network('private').id}])
    try:
        def in_error():
            server = conn.compute.get_server(made.id)
            return server if server.status == 'ERROR' else None

        failed = wait_for(in_error, timeout=120, what='ERROR')
        assert 'No valid host' in failed.fault['message']
    finally:
        conn.compute.delete_server(made)


# --------------------------------------------------------------------------- Magnum with the Cluster-API-like driver

@pytest.fixture(scope='module')
def template(tier):
    name = 'rt-capi-%s' % uuid.uuid4().hex[:6]
    cli(tier, 'coe', 'cluster', 'template', 'create', name, '--coe', 'kubernetes',
        '--image', 'ubuntu-jammy-kube-v1.30.4', '--external-network', 'public', '--flavor', 'm1.small',
        '--master-flavor', 'm1.small', '--fixed-network', 'private', '--fixed-subnet', 'private-subnet',
        '--network-driver', 'calico', '--labels', 'kube_tag=v1.30.4')
    yield name
    cli(tier, 'coe', 'cluster', 'template', 'delete', name, check=False)


def test_cluster_create_resize_and_delete_with_machines_in_real_nova(tier, conn, template):
    name = 'rt-%s' % uuid.uuid4().hex[:6]
    cli(tier, 'coe', 'cluster', 'create', '--cluster-template', template, '--keypair', 'hpc-key',
        '--master-count', '1', '--node-count', '2', name)
    shown = wait_for(lambda: cluster_status(tier, name, ('CREATE_COMPLETE',)), what='CREATE_COMPLETE')
    # openstacksdk shows stack_id (the openstack CLI does not).
    stack_id = conn.container_infrastructure_management.get_cluster(shown['uuid']).stack_id
    assert stack_id.startswith('kube-') and len(stack_id) == 10
    found = machines(conn, stack_id)
    masters = [s for s in found.values() if s.name.startswith(stack_id + '-control-plane-')]
    workers = [s for s in found.values() if s.name.startswith(stack_id + '-default-worker-')]
    assert len(masters) == 1 and len(workers) == 2 and len(found) == 3
    for s in found.values():
        assert s.status == 'ACTIVE'
        assert s.key_name == 'hpc-key'
        assert s.flavor['original_name'] == 'm1.small'
        assert set(s.addresses) == {'private'}
    nodegroups = {ng['name']: ng for ng in cli_json(tier, 'coe', 'nodegroup', 'list', name)}
    assert nodegroups['default-worker']['node_count'] == 2
    assert nodegroups['default-master']['status'] == 'CREATE_COMPLETE'

    # Up: one machine more, the others untouched.
    cli(tier, 'coe', 'cluster', 'resize', name, '3')
    wait_for(lambda: cluster_status(tier, name, ('UPDATE_COMPLETE',)), what='resize up')
    grown = machines(conn, stack_id)
    assert set(found) < set(grown) and len(grown) == 4

    # Down, naming the machine to go: only that one goes.
    victim = workers[0].id
    cli(tier, 'coe', 'cluster', 'resize', name, '2', '--nodes-to-remove', victim)
    wait_for(lambda: cluster_status(tier, name, ('UPDATE_COMPLETE',)) and victim not in machines(conn, stack_id),
             what='resize down')
    shrunk = machines(conn, stack_id)
    assert set(shrunk) == set(grown) - {victim}

    cli(tier, 'coe', 'cluster', 'delete', name)
    wait_for(lambda: name not in {c['name'] for c in cli_json(tier, 'coe', 'cluster', 'list')}, what='cluster gone')
    assert machines(conn, stack_id) == {}


def test_cluster_on_a_flavor_without_hosts_fails_with_the_reason(tier, conn, template):
    name = 'rt-nohost-%s' % uuid.uuid4().hex[:6]
    cli(tier, 'coe', 'cluster', 'create', '--cluster-template', template, '--keypair', 'hpc-key',
        '--master-count', '1', '--node-count', '1', '--flavor', 'bm.compute', name)
    try:
        shown = wait_for(lambda: cluster_status(tier, name, ('CREATE_FAILED',)), what='CREATE_FAILED')
        assert 'No valid host' in shown['status_reason']
        assert '-default-worker-' in shown['status_reason']
    finally:
        cli(tier, 'coe', 'cluster', 'delete', name, check=False)
        wait_for(lambda: name not in {c['name'] for c in cli_json(tier, 'coe', 'cluster', 'list')},
                 what='failed cluster gone')
