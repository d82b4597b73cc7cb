"""Authentication and authorization of the simulated API server, judged by the `kubernetes` client,
kubernetes.core and python-magnumclient: requests without valid credentials get 401, a user
without rights 403, and the kubeconfig Magnum signs for a linked cluster authenticates."""

import base64
import json
import ssl
import urllib.error
import urllib.request

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from testworld.kubernetes.playbook_runner import run_playbook
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import
from testworld.openstack import scenario as os_scenario
from testworld.openstack.certs import CertificateAuthority

SCENARIO = {"nodes": [{"name": "n1", "kernel": "6.8.0-45-generic"}], "installed": {"crds": ["monitoring"]}}


@pytest.fixture
def world(kube_world_factory):  # noqa: F811
    return kube_world_factory(SCENARIO)


def kubeconfig(world, tmp_path, user, name="other"):
    """The world's kubeconfig (its server and CA) with another `user` entry."""
    with open(world.kubeconfig, encoding="utf-8") as handle:
        cfg = yaml.safe_load(handle)
    cfg["users"][0]["user"] = user
    path = tmp_path / ("%s.kubeconfig" % name)
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def core_for(path):
    return client.CoreV1Api(config.new_client_from_config(config_file=path))


def status_of(exc, code, reason):
    body = json.loads(exc.body)
    assert exc.status == code
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["reason"] == reason, body
    return body


def _pem_data(text):
    return base64.b64encode(text.encode()).decode()


def test_requests_without_valid_credentials_get_401(world, tmp_path):
    for user in ({}, {"token": "not-a-token"}, {"username": "admin", "password": "admin"}):
        with pytest.raises(ApiException) as err:
            core_for(kubeconfig(world, tmp_path, user)).list_namespace()
        status_of(err.value, 401, "Unauthorized")
    # anonymous requests are refused everywhere, discovery included
    req = urllib.request.Request(world.url + "/api/v1/namespaces/default/configmaps")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=world.ssl_context(), timeout=10)
    assert err.value.code == 401 and json.loads(err.value.read())["reason"] == "Unauthorized"
    assert [r["code"] for r in world.requests()] == [401, 401, 401, 401]


def test_token_without_rights_is_forbidden_until_rbac_grants_them(world, tmp_path):
    world.add_token("reader-token", "reader", groups=["readers"])
    reader = core_for(kubeconfig(world, tmp_path, {"token": "reader-token"}))
    with pytest.raises(ApiException) as err:
        reader.list_namespaced_config_map("default")
    body = status_of(err.value, 403, "Forbidden")
    assert body["message"] == ('configmaps is forbidden: User "reader" cannot list resource "configmaps" in API '
                               'group "" in the namespace "default"')
    # discovery stays open to every authenticated user
    assert reader.get_api_resources().group_version == "v1"

    admin = config.new_client_from_config(config_file=world.kubeconfig)
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role("default", {
        "metadata": {"name": "read-config"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding("default", {
        "metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-config"},
        "subjects": [{"kind": "Group", "name": "readers", "apiGroup": "rbac.authorization.k8s.io"}]})
    assert reader.list_namespaced_config_map("default").kind == "ConfigMapList"
    # the Role is namespaced and grants reads only
    with pytest.raises(ApiException) as err:
        reader.list_namespaced_config_map("kube-system")
    status_of(err.value, 403, "Forbidden")
    with pytest.raises(ApiException) as err:
        reader.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    status_of(err.value, 403, "Forbidden")


def test_client_certificates_of_the_cluster_ca_authenticate(world, tmp_path):
    cert, key = world.client_certificate("admin", groups=["system:masters"])
    admin = core_for(kubeconfig(world, tmp_path, {"client-certificate-data": _pem_data(cert),
                                                  "client-key-data": _pem_data(key)}, "admin"))
    assert [n.metadata.name for n in admin.list_node().items] == ["n1"]
    assert world.requests()[-1]["user"] == "admin"

    cert, key = world.client_certificate("alice")
    alice = core_for(kubeconfig(world, tmp_path, {"client-certificate-data": _pem_data(cert),
                                                  "client-key-data": _pem_data(key)}, "alice"))
    with pytest.raises(ApiException) as err:
        alice.list_node()
    status_of(err.value, 403, "Forbidden")

    # a certificate some other CA signed is refused in the TLS handshake, as by a real API server
    cert, key = CertificateAuthority("another-ca").issue("admin", organizations=["system:masters"])
    (tmp_path / "stranger.pem").write_text(cert + key)
    context = world.ssl_context()
    context.load_cert_chain(str(tmp_path / "stranger.pem"))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(urllib.request.Request(world.url + "/api/v1/nodes"), context=context, timeout=10)


def test_clients_verify_the_serving_certificate(world, tmp_path):
    with open(world.kubeconfig, encoding="utf-8") as handle:
        cfg = yaml.safe_load(handle)
    del cfg["clusters"][0]["cluster"]["certificate-authority-data"]
    path = tmp_path / "no-ca.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception) as err:  # urllib3 wraps the verification failure
        core_for(str(path)).list_node()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_magnum_signed_kubeconfig_of_a_linked_cluster_authenticates(kube_world_factory, sim_cloud_factory,  # noqa: F811
                                                                     monkeypatch, tmp_path):
    import openstack
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from magnumclient import client as magnum_client

    world = kube_world_factory("kube-demo.yml")
    cloud_scenario = os_scenario.load("default")
    cloud = sim_cloud_factory(scenario=cloud_scenario, kube_api_url=world.url,
                              kube_ca={"cert": world.ca_file, "key": world.ca_key_file})
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", cloud.clouds_yaml)
    magnum = magnum_client.Client("1", session=openstack.connect(cloud="hpcops-sim").session, api_version="latest")
    cluster = next(c for c in magnum.clusters.list() if c.status == "CREATE_COMPLETE")
    cluster = magnum.clusters.get(cluster.uuid)
    assert cluster.api_address == world.url

    # what hpcops.coe.cluster_kubeconfig does: a key and CSR for CN=admin, O=system:masters, signed by Magnum
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
        x509.NameAttribute(NameOID.COMMON_NAME, "admin")])).sign(key, hashes.SHA256())
    signed = magnum.certificates.create(cluster_uuid=cluster.uuid,
                                        csr=csr.public_bytes(serialization.Encoding.PEM).decode())
    ca = magnum.certificates.get(cluster.uuid)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "magnum",
           "clusters": [{"name": "c", "cluster": {"server": cluster.api_address,
                                                  "certificate-authority-data": _pem_data(ca.pem)}}],
           "users": [{"name": "admin", "user": {"client-certificate-data": _pem_data(signed.pem),
                                                "client-key-data": _pem_data(key_pem)}}],
           "contexts": [{"name": "magnum", "context": {"cluster": "c", "user": "admin"}}]}
    path = tmp_path / "magnum.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    assert core_for(str(path)).list_namespace().items
    assert world.requests()[-1]["user"] == "admin"


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Read
      kubernetes.core.k8s_info:
        kind: ConfigMap
        namespace: default
"""


def test_kubernetes_core_is_refused_a_wrong_token(world, tmp_path):
    ok = run_playbook(world, PLAY)
    assert ok.rc == 0, ok.stdout + ok.stderr
    bad = kubeconfig(world, tmp_path, {"token": "wrong"})
    refused = run_playbook(world, PLAY, env={"K8S_AUTH_KUBECONFIG": bad})
    assert refused.rc != 0
    assert "401" in refused.stdout and "Unauthorized" in refused.stdout
