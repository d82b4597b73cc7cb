# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from magnumclient import exceptions as magnum_exc

from ansible_collections.hpcops.coe.plugins.modules import cluster_template
from ansible_collections.hpcops.coe.tests.unit.plugins.modules.test_cluster_fakes import (  # pylint: disable=unused-import
    cloud,
    run_failing,
    run_module,
)

main = cluster_template.main

BASE = dict(name='k8s-bm', image='fedora-coreos-40', flavor='bm.gpu', master_flavor='m1.large',
            external_network='public', fixed_network='hpc-net', fixed_subnet='hpc-subnet', keypair='ops',
            server_type='bm', labels={'kube_tag': 'v1.30.4', 'auto_healing_enabled': False, 'boot_volume_size': 50})


def created(cloud):
    return [a for op, k, a in cloud.calls if (op, k) == ('create', 'template')]


def test_create_resolves_names_and_normalises_labels(cloud):
    res = run_module(main, BASE, diff=True)
    assert res['changed'] is True
    body = created(cloud)[0]
    assert body['image_id'] == 'img-1' and body['flavor_id'] == 'f-gpu' and body['master_flavor_id'] == 'f-large'
    assert body['external_network_id'] == 'ext-1' and body['fixed_network'] == 'net-1'
    assert body['fixed_subnet'] == 'sub-1' and body['keypair_id'] == 'ops' and body['coe'] == 'kubernetes'
    assert body['labels'] == {'kube_tag': 'v1.30.4', 'auto_healing_enabled': 'false', 'boot_volume_size': '50'}
    assert res['cluster_template']['name'] == 'k8s-bm'
    assert res['diff']['after']['cluster_distro'] == 'fedora-coreos'


def test_rerun_is_unchanged(cloud):
    run_module(main, BASE)
    res = run_module(main, BASE)
    assert res['changed'] is False
    assert len(created(cloud)) == 1 and [c for c in cloud.changes() if c[0] == 'patch'] == []


def test_updatable_change_is_one_patch(cloud):
    run_module(main, BASE)
    args = dict(BASE, public=True, labels=dict(BASE['labels'], kube_tag='v1.30.5'), master_flavor='m1.small')
    res = run_module(main, args, diff=True)
    assert res['changed'] is True
    paths = sorted(op['path'] for op in res['patch'])
    assert paths == ['/labels', '/master_flavor_id', '/public']
    assert [op for op in res['patch'] if op['path'] == '/master_flavor_id'][0]['value'] == 'f-small'
    assert res['diff']['before']['public'] is False and res['diff']['after']['public'] is True
    assert res['cluster_template']['public'] is True


def test_image_with_same_distro_is_patched(cloud):
    run_module(main, BASE)
    res = run_module(main, dict(BASE, image='fedora-coreos-41'))
    assert [op['path'] for op in res['patch']] == ['/image_id']


@pytest.mark.parametrize('change, field', [
    (dict(server_type='vm'), 'server_type'),
    (dict(image='ubuntu-24'), 'image'),
])
def test_driver_changing_fields_need_recreation(cloud, change, field):
    run_module(main, BASE)
    res = run_failing(main, dict(BASE, **change))
    assert field in res['needs_recreation']
    assert 'Nothing was changed' in res['msg']
    assert [c for c in cloud.changes() if c[0] == 'patch'] == []


def test_other_coe_needs_recreation(cloud):
    """A template of an engine Magnum no longer drives (made by an older cloud) is not patched into Kubernetes."""
    run_module(main, BASE)
    cloud.templates_db[0]['coe'] = 'swarm'
    res = run_failing(main, dict(BASE, coe='kubernetes'))
    assert 'coe' in res['needs_recreation']
    assert [c for c in cloud.changes() if c[0] == 'patch'] == []


def test_template_in_use_only_takes_public_and_hidden(cloud):
    run_module(main, BASE)
    tpl = cloud.templates_db[0]
    c = cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    res = run_failing(main, dict(BASE, docker_volume_size=50))
    assert 'hpc' in res['msg'] and 'docker_volume_size' in res['msg']
    assert res['used_by'] == [c['uuid']]
    res = run_module(main, dict(BASE, public=True, hidden=True))
    assert res['changed'] is True


def test_delete_in_use_is_refused_with_clusters_named(cloud):
    run_module(main, BASE)
    tpl = cloud.templates_db[0]
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    res = run_failing(main, dict(name='k8s-bm', state='absent'))
    assert "clusters use it: hpc" in res['msg']
    assert cloud.templates_db


def test_delete_and_rerun(cloud):
    run_module(main, BASE)
    res = run_module(main, dict(name='k8s-bm', state='absent'))
    assert res['changed'] is True and cloud.templates_db == []
    assert run_module(main, dict(name='k8s-bm', state='absent'))['changed'] is False


def test_check_mode_create_and_update(cloud):
    res = run_module(main, BASE, check=True)
    assert res['changed'] is True and created(cloud) == []
    run_module(main, BASE)
    res = run_module(main, dict(BASE, public=True), check=True)
    assert res['changed'] is True and res['patch'] == [{'op': 'replace', 'path': '/public', 'value': True}]
    assert cloud.templates_db[0]['public'] is False


@pytest.mark.parametrize('args, text', [
    (dict(name='t'), 'image is needed'),
    (dict(name='t', image='nope'), "image 'nope' given in image does not exist"),
    (dict(name='t', image='raw-disk'), 'no os_distro property'),
    (dict(name='t', image='fedora-coreos-40', flavor='m1.huge'), "flavor 'm1.huge'"),
    (dict(name='t', image='fedora-coreos-40', keypair='nokey'), 'Valid keypairs: ops, other'),
    (dict(name='t', image='fedora-coreos-40', fixed_network='nonet'), 'Valid networks: hpc-net, public'),
    (dict(name='t', image='fedora-coreos-40', floating_ip_enabled=True), 'external_network is not set'),
    (dict(name='t', image='fedora-coreos-40', docker_volume_size=0), 'docker_volume_size must be 1'),
    (dict(name='t', image='fedora-coreos-40', apiserver_port=70000), 'apiserver_port must be 1 to 65535'),
    (dict(name='t', image='fedora-coreos-40', labels={'a': [1]}), 'list value'),
])
def test_bad_input_fails_before_any_change(cloud, args, text):
    res = run_failing(main, args)
    assert text in res['msg']
    assert created(cloud) == []


def test_server_error_after_create_adopts_the_created_template(cloud):
    orig = cloud.cluster_templates.post

    def create_then_fail(body):
        orig(body)
        raise magnum_exc.InternalServerError('gateway lost the answer')
    cloud.cluster_templates.post = create_then_fail
    res = run_module(main, BASE)
    assert res['changed'] is True and len(cloud.templates_db) == 1


def test_server_error_with_partial_template_deletes_it(cloud):
    def create_partial(body):
        cloud.add_template(body['name'], image_id=body['image_id'], labels={})
        raise magnum_exc.InternalServerError('worker died')
    cloud.cluster_templates.post = create_partial
    res = run_failing(main, BASE)
    assert 'partly created template was deleted' in res['msg'] and 'HTTP 500' in res['msg']
    assert cloud.templates_db == []


def test_server_error_without_template_reports_nothing_left(cloud):
    cloud.fail_next('create', 'template', magnum_exc.InternalServerError('db down'))
    res = run_failing(main, BASE)
    assert 'no template was left behind' in res['msg']


def test_create_sends_apiserver_port_that_magnumclient_create_refuses(cloud):
    res = run_module(main, dict(BASE, apiserver_port=6443))
    assert res['changed'] is True
    assert created(cloud)[0]['apiserver_port'] == 6443
    assert cloud.templates_db[0]['apiserver_port'] == 6443
    # The rerun compares equal: nothing to patch.
    res = run_module(main, dict(BASE, apiserver_port=6443))
    assert res['changed'] is False and len(created(cloud)) == 1
