# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import base64
import os
import stat

import yaml

from ansible_collections.hpcops.coe.plugins.modules import cluster_kubeconfig
from ansible_collections.hpcops.coe.tests.unit.plugins.modules.test_cluster_fakes import (  # pylint: disable=unused-import
    FakeCA,
    cloud,
    run_failing,
    run_module,
)

main = cluster_kubeconfig.main


def seed(cloud, tls_disabled=False, address='https://10.0.0.5:6443', **fields):
    tpl = cloud.add_template('k8s-v1', tls_disabled=tls_disabled)
    fields.setdefault('status', 'CREATE_COMPLETE')
    c = cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], api_address=address, **fields)
    cloud.ca = FakeCA()
    return c


def signs(cloud):
    return [a for op, k, a in cloud.calls if (op, k) == ('create', 'certificate')]


def test_writes_tls_kubeconfig_0600_with_admin_cert(cloud, tmp_path):
    seed(cloud)
    dest = tmp_path / 'kube' / 'config'
    res = run_module(main, dict(cluster='hpc', dest=str(dest)))
    assert res['changed'] is True and res['certificate_issued'] is True and res['tls'] is True
    assert 'kubeconfig' not in res
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest.parent).st_mode) == 0o700
    cfg = yaml.safe_load(dest.read_text())
    assert cfg['clusters'][0]['cluster']['server'] == 'https://10.0.0.5:6443'
    assert base64.b64decode(cfg['clusters'][0]['cluster']['certificate-authority-data']).decode() == cloud.ca.pem
    assert cfg['users'][0]['name'] == 'admin' and cfg['current-context'] == 'default'
    subject = cloud.ca.signed[0].rfc4514_string()
    assert 'CN=admin' in subject and 'O=system:masters' in subject


def test_rerun_reuses_certificate(cloud, tmp_path):
    seed(cloud)
    dest = str(tmp_path / 'config')
    run_module(main, dict(cluster='hpc', dest=dest))
    before = open(dest).read()
    res = run_module(main, dict(cluster='hpc', dest=dest))
    assert res['changed'] is False and res['certificate_issued'] is False
    assert 'matches' in res['reason']
    assert len(signs(cloud)) == 1
    assert open(dest).read() == before


def test_rotated_ca_issues_a_new_certificate(cloud, tmp_path):
    seed(cloud)
    dest = str(tmp_path / 'config')
    run_module(main, dict(cluster='hpc', dest=dest))
    cloud.ca = FakeCA(name='rotated')
    res = run_module(main, dict(cluster='hpc', dest=dest))
    assert res['changed'] is True and res['certificate_issued'] is True
    assert 'current CA' in res['reason']


def test_certificate_expiring_soon_is_renewed(cloud, tmp_path):
    seed(cloud)
    cloud.ca.days = 10
    dest = str(tmp_path / 'config')
    run_module(main, dict(cluster='hpc', dest=dest))
    res = run_module(main, dict(cluster='hpc', dest=dest, renew_before_days=30))
    assert res['certificate_issued'] is True and 'renew_before_days' in res['reason']
    res = run_module(main, dict(cluster='hpc', dest=dest, renew_before_days=5))
    assert res['certificate_issued'] is False and res['changed'] is False


def test_wrong_mode_is_fixed_without_new_certificate(cloud, tmp_path):
    seed(cloud)
    dest = str(tmp_path / 'config')
    run_module(main, dict(cluster='hpc', dest=dest))
    os.chmod(dest, 0o644)
    res = run_module(main, dict(cluster='hpc', dest=dest))
    assert res['changed'] is True and res['certificate_issued'] is False
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_changed_api_address_rewrites_with_same_certificate(cloud, tmp_path):
    c = seed(cloud)
    dest = str(tmp_path / 'config')
    run_module(main, dict(cluster='hpc', dest=dest))
    c['api_address'] = 'https://10.0.0.9:6443'
    res = run_module(main, dict(cluster='hpc', dest=dest))
    assert res['changed'] is True and res['certificate_issued'] is False
    assert yaml.safe_load(open(dest))['clusters'][0]['cluster']['server'] == 'https://10.0.0.9:6443'


def test_force_issues_a_new_certificate(cloud, tmp_path):
    seed(cloud)
    dest = str(tmp_path / 'config')
    run_module(main, dict(cluster='hpc', dest=dest))
    res = run_module(main, dict(cluster='hpc', dest=dest, force=True))
    assert res['certificate_issued'] is True and len(signs(cloud)) == 2


def test_http_address_gets_no_tls_material(cloud, tmp_path):
    seed(cloud, address='http://127.0.0.1:8001')
    dest = str(tmp_path / 'config')
    res = run_module(main, dict(cluster='hpc', dest=dest, return_content=True))
    assert res['tls'] is False and res['certificate_issued'] is False
    cfg = yaml.safe_load(res['kubeconfig'])
    assert cfg['clusters'][0]['cluster'] == {'server': 'http://127.0.0.1:8001'}
    assert cfg['current-context'] == 'hpc'
    assert signs(cloud) == [] and ('get', 'ca') not in cloud.ops()
    res = run_module(main, dict(cluster='hpc', dest=dest))
    assert res['changed'] is False


def test_tls_disabled_template_gets_no_tls_material(cloud):
    seed(cloud, tls_disabled=True)
    res = run_module(main, dict(cluster='hpc', return_content=True))
    assert res['tls'] is False
    assert 'certificate-authority-data' not in res['kubeconfig']


def test_return_content_only_when_asked(cloud, tmp_path):
    seed(cloud)
    res = run_module(main, dict(cluster='hpc', return_content=True, context_name='hpc-admin'))
    cfg = yaml.safe_load(res['kubeconfig'])
    assert cfg['current-context'] == 'hpc-admin'
    assert 'client-key-data' in cfg['users'][0]['user']


def test_check_mode_requests_no_certificate(cloud, tmp_path):
    seed(cloud)
    dest = tmp_path / 'config'
    res = run_module(main, dict(cluster='hpc', dest=str(dest)), check=True)
    assert res['changed'] is True and signs(cloud) == [] and not dest.exists()


def test_needs_dest_or_return_content(cloud):
    seed(cloud)
    res = run_failing(main, dict(cluster='hpc'))
    assert 'dest' in res['msg'] and 'return_content' in res['msg']


def test_dest_directory_is_refused(cloud, tmp_path):
    seed(cloud)
    res = run_failing(main, dict(cluster='hpc', dest=str(tmp_path)))
    assert 'is a directory' in res['msg']


def test_cluster_without_address_and_not_busy_fails(cloud, tmp_path):
    seed(cloud, address=None, status='CREATE_FAILED', status_reason='boom')
    res = run_failing(main, dict(cluster='hpc', dest=str(tmp_path / 'c')))
    assert 'no API address' in res['msg'] and 'boom' in res['msg']


def test_waits_for_address_of_cluster_being_created(cloud, tmp_path):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'])
    cloud.ca = FakeCA()
    res = run_module(main, dict(cluster='hpc', dest=str(tmp_path / 'c')))
    assert res['changed'] is True and res['api_address'].startswith('https://')


def test_unknown_cluster_lists_existing(cloud, tmp_path):
    seed(cloud)
    res = run_failing(main, dict(cluster='nope', dest=str(tmp_path / 'c')))
    assert "cluster 'nope'" in res['msg'] and 'hpc' in res['msg']


def test_non_kubernetes_cluster_is_refused(cloud, tmp_path):
    tpl = cloud.add_template('swarm', coe='swarm')
    cloud.add_cluster('sw', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE', api_address='tcp://1.2.3.4:2376')
    res = run_failing(main, dict(cluster='sw', dest=str(tmp_path / 'c')))
    assert 'only Kubernetes' in res['msg']
