# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.cluster_kubeconfig run by ansible-playbook against the simulated cloud."""

import base64
import os
import stat
import subprocess
import sys

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from test_magnum_support import BUILD_OUTLASTS_NEXT_RUN, one, route_count


def credentials(path):
    cfg = yaml.safe_load(open(path))
    ca = x509.load_pem_x509_certificate(base64.b64decode(cfg['clusters'][0]['cluster']['certificate-authority-data']))
    user = cfg['users'][0]['user']
    cert = x509.load_pem_x509_certificate(base64.b64decode(user['client-certificate-data']))
    key = serialization.load_pem_private_key(base64.b64decode(user['client-key-data']), password=None)
    return cfg, ca, cert, key


@pytest.mark.realservices
def test_tls_kubeconfig_is_signed_by_the_cluster_ca_and_reused(sim_cloud, sim_env, playbook, tmp_path):
    dest = tmp_path / 'hpc-heat.yaml'
    args = {'cluster': 'hpc-heat', 'dest': str(dest)}
    first = playbook(one('cluster_kubeconfig', args), env=sim_env).assert_ok().task('step')
    assert first['changed'] is True and first['certificate_issued'] is True and first['tls'] is True
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600

    cfg, ca, cert, key = credentials(dest)
    assert cfg['current-context'] == 'default' and cfg['users'][0]['name'] == 'admin'
    assert cfg['clusters'][0]['cluster']['server'] == first['api_address']
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == 'admin'
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == 'system:masters'
    cert.verify_directly_issued_by(ca)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert first['certificate_expires']

    second = playbook(one('cluster_kubeconfig', args), env=sim_env).assert_ok().task('step')
    assert second['changed'] is False and second['certificate_issued'] is False
    assert route_count(sim_cloud.requests(), 'POST', '/certificates') == 1

    # After a CA rotation the old certificate is worthless: a new one is issued.
    subprocess.run([os.path.join(os.path.dirname(sys.executable), 'openstack'), 'coe', 'ca', 'rotate', 'hpc-heat'],
                   env=sim_env, check=True, capture_output=True)
    third = playbook(one('cluster_kubeconfig', args), env=sim_env).assert_ok().task('step')
    assert third['changed'] is True and third['certificate_issued'] is True and 'CA' in third['reason']
    new_ca, new_cert = credentials(dest)[1:3]
    new_cert.verify_directly_issued_by(new_ca)
    assert new_ca.fingerprint(new_ca.signature_hash_algorithm) != ca.fingerprint(ca.signature_hash_algorithm)


def test_return_content_without_a_file(sim_cloud, sim_env, playbook):
    result = playbook(one('cluster_kubeconfig', {'cluster': 'hpc-capi', 'return_content': True,
                                                 'context_name': 'capi-admin'}, no_log=False),
                      env=sim_env).assert_ok().task('step')
    cfg = yaml.safe_load(result['kubeconfig'])
    assert cfg['current-context'] == 'capi-admin' and cfg['users'][0]['user']['client-key-data']
    assert result['changed'] is False


def test_http_api_address_gets_a_plain_kubeconfig(sim_cloud_factory, playbook, tmp_path):
    cloud = sim_cloud_factory(kube_api_url='http://127.0.0.1:18080')
    env = dict(os.environ)
    env.update(cloud.env())
    dest = tmp_path / 'plain.yaml'
    result = playbook(one('cluster_kubeconfig', {'cluster': 'hpc-heat', 'dest': str(dest)}), env=env)
    result = result.assert_ok().task('step')
    assert result['tls'] is False and result['certificate_issued'] is False
    cfg = yaml.safe_load(dest.read_text())
    assert cfg['clusters'][0]['cluster'] == {'server': 'http://127.0.0.1:18080'}
    assert route_count(cloud.requests(), 'GET', '/certificates') == 0
    again = playbook(one('cluster_kubeconfig', {'cluster': 'hpc-heat', 'dest': str(dest)}), env=env)
    assert again.assert_ok().task('step')['changed'] is False


def test_kubeconfig_of_a_cluster_being_built_waits_for_its_address(sim_cloud, sim_env, playbook, tmp_path):
    # Long enough that the second playbook starts while the cluster is still being built.
    sim_cloud.set_timings(cluster_create=BUILD_OUTLASTS_NEXT_RUN)
    playbook(one('cluster', {'name': 'fresh', 'cluster_template': 'k8s-capi-v1.30', 'wait': False}),
             env=sim_env).assert_ok()
    result = playbook(one('cluster_kubeconfig', {'cluster': 'fresh', 'dest': str(tmp_path / 'fresh.yaml')}),
                      env=sim_env).assert_ok().task('step')
    assert result['changed'] is True and result['api_address']
