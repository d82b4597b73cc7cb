import re
import time

import pytest
from magnumclient import exceptions as mexc
from os_simhelpers import Api, cluster_state, visible_cluster, wait_for

from testworld.openstack import scenario as scenario_mod

LATEST = {"OpenStack-API-Version": "container-infra latest"}
SUMMARY = {"uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels", "node_count", "status",
           "master_flavor_id", "flavor_id", "create_timeout", "master_count", "stack_id", "health_status", "links"}


def _wait_status(magnum, ident, status, timeout=10):
    def settled():
        cluster = visible_cluster(magnum, ident)
        return cluster if cluster.status == status else None

    return wait_for(settled, timeout=timeout, what="cluster %s %s" % (ident, status))


def _template(magnum, name):
    return magnum.cluster_templates.get(name).uuid


def test_microversion_negotiation(os_api, os_conn, sim_cloud):
    r = os_api.get("/container-infra/v1/clusters")
    assert r.headers["OpenStack-API-Version"] == "container-infrastructure-management 1.1"
    assert r.headers["OpenStack-API-Minimum-Version"].endswith(" 1.1")
    assert r.headers["OpenStack-API-Maximum-Version"].endswith(" 1.12")
    assert r.headers["Vary"] == "OpenStack-API-Version"
    r = os_api.get("/container-infra/v1/clusters", headers=LATEST)
    assert r.headers["OpenStack-API-Version"] == "container-infrastructure-management 1.12"
    r = os_api.get("/container-infra/v1/clusters",
                   headers={"OpenStack-API-Version": "container-infrastructure-management 1.9"})
    assert r.status_code == 200 and r.headers["OpenStack-API-Version"].endswith(" 1.9")
    r = os_api.get("/container-infra/v1/clusters", headers={"OpenStack-API-Version": "container-infra 1.13"})
    assert r.status_code == 406
    err = r.json()["errors"][0]
    assert err["code"] == "magnum.microversion-unsupported" and err["status"] == 406
    assert (err["min_version"], err["max_version"]) == ("1.1", "1.12")
    assert set(err) >= {"request_id", "code", "status", "title", "detail", "links"}
    ident = "hpc-capi"
    assert os_api.get("/container-infra/v1/clusters/%s/nodegroups" % ident,
                      headers={"OpenStack-API-Version": "container-infra 1.8"}).status_code == 406
    r = os_api.post("/container-infra/v1/clusters/%s/actions/upgrade" % ident, json={"cluster_template": "x"},
                    headers={"OpenStack-API-Version": "container-infra 1.7"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["detail"] == "Cluster upgrade is not supported in the provided microversion."
    assert os_api.post("/container-infra/v1/clusters/%s/actions/resize" % ident, json={"node_count": 2}
                       ).status_code == 406  # no header: 1.1
    # openstacksdk sends no Magnum microversion, so its resize is refused
    cluster = os_conn.container_infrastructure_management.get_cluster(cluster_state(sim_cloud, ident)["uuid"])
    with pytest.raises(Exception) as e:
        cluster.resize(os_conn.container_infrastructure_management, node_count=3)
    assert "406" in str(e.value)


def test_magnumclient_out_of_range_version(os_conn):
    from magnumclient import client

    m = client.Client("1", session=os_conn.session, api_version="1.99")
    with pytest.raises(mexc.NotAcceptable) as e:
        m.clusters.list()
    assert e.value.http_status == 406


def test_root_documents(sim_cloud):
    import requests

    root = requests.get(sim_cloud.url + "/container-infra").json()
    assert root["versions"][0]["max_version"] == "1.12" and root["versions"][0]["min_version"] == "1.1"
    v1 = requests.get(sim_cloud.url + "/container-infra/v1").json()
    assert v1["id"] == "v1" and v1["clusters"][0]["rel"] == "self"


def test_cluster_template_crud(os_magnum, os_api):
    t = os_magnum.cluster_templates.create(name="t1", coe="kubernetes", image_id="fedora-coreos-40",
                                           keypair_id="hpc-key", external_network_id="public",
                                           flavor_id="m1.small", labels={"kube_tag": "v1.29.1"})
    assert t.cluster_distro == "fedora-coreos" and t.server_type == "vm" and t.network_driver == "flannel"
    assert t.public is False and t.floating_ip_enabled is True
    t = os_magnum.cluster_templates.update(t.uuid, [{"op": "replace", "path": "/name", "value": "t1b"},
                                                    {"op": "add", "path": "/labels/extra", "value": "x"}])
    assert t.name == "t1b" and t.labels == {"kube_tag": "v1.29.1", "extra": "x"}
    r = os_api.post("/container-infra/v1/clustertemplates",
                    json={"name": "bad", "coe": "kubernetes", "image_id": "cirros-0.6"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["detail"] == "Image cirros-0.6 doesn't contain os_distro field."
    r = os_api.post("/container-infra/v1/clustertemplates",
                    json={"name": "bad", "coe": "kubernetes", "image_id": "fedora-coreos-40", "flavor_id": "xl"})
    assert r.status_code == 400 and r.json()["errors"][0]["detail"] == "Unable to find flavor xl."
    r = os_api.post("/container-infra/v1/clustertemplates", json={"name": "bad", "image_id": "fedora-coreos-40"})
    assert r.status_code == 400 and "coe" in r.json()["errors"][0]["detail"]
    in_use = os_magnum.cluster_templates.get("k8s-heat-fcos")
    with pytest.raises(mexc.BadRequest, match="is referenced by one or multiple clusters"):
        os_magnum.cluster_templates.delete(in_use.uuid)
    os_magnum.cluster_templates.delete(t.uuid)
    with pytest.raises(mexc.NotFound):
        os_magnum.cluster_templates.get(t.uuid)


def test_cluster_create_validation(os_api, os_magnum):
    tid = _template(os_magnum, "k8s-heat-fcos")
    url = "/container-infra/v1/clusters"

    def post(body, headers=None):
        r = os_api.post(url, json=body, headers=headers)
        return r.status_code, (r.json()["errors"][0]["detail"] if r.status_code >= 400 else r.json())

    code, detail = post({"name": "1bad", "cluster_template_id": tid})
    assert code == 400 and "^[a-zA-Z][a-zA-Z0-9_.-]*$" in detail
    assert post({"name": "a" * 243, "cluster_template_id": tid})[0] == 400
    assert post({"name": "a" * 242, "cluster_template_id": tid})[0] == 202
    code, detail = post({"name": "x", "cluster_template_id": "nope"})
    assert (code, detail) == (400, "ClusterTemplate nope could not be found.")
    code, detail = post({"name": "x", "cluster_template_id": tid, "colour": "red"})
    assert code == 400 and "colour" in detail
    code, detail = post({"name": "x", "cluster_template_id": tid, "node_count": 0})
    assert code == 400 and "zero" in detail
    assert post({"name": "zero", "cluster_template_id": tid, "node_count": 0}, LATEST)[0] == 202
    code, detail = post({"name": "x", "cluster_template_id": tid, "master_count": 3})
    assert (code, detail) == (400, "master_count must be 1 when master_lb_enabled is False")
    code, detail = post({"name": "x", "cluster_template_id": tid, "keypair": "nokey"})
    assert (code, detail) == (404, "Unable to find keypair nokey.")
    bare = os_magnum.cluster_templates.create(name="nokp", coe="kubernetes", image_id="fedora-coreos-40",
                                              flavor_id="m1.small")
    # As real Magnum: a keypair is optional, and checked only when given (template create never checks it).
    assert post({"name": "x", "cluster_template_id": bare.uuid})[0] == 202
    assert post({"name": "x", "cluster_template_id": bare.uuid, "keypair": "hpc-key"})[0] == 202
    badkey = os_magnum.cluster_templates.create(name="badkp", coe="kubernetes", image_id="fedora-coreos-40",
                                                flavor_id="m1.small", keypair_id="nokey")
    assert post({"name": "x", "cluster_template_id": badkey.uuid}) == (404, "Unable to find keypair nokey.")


def test_cluster_quota(sim_cloud_factory):
    scn = scenario_mod.load("default")
    scn["quotas"] = {"clusters": 3}
    cloud = sim_cloud_factory(scn)
    api = Api(cloud.url)
    r = api.post("/container-infra/v1/clusters", json={"name": "over", "cluster_template_id": "k8s-heat-fcos"})
    assert r.status_code == 403
    assert r.json()["errors"][0]["detail"].startswith("Resource limit exceeded: You have reached the maximum "
                                                      "clusters per project, 3.")


def test_list_summary_detail_and_paging(os_api):
    body = os_api.get("/container-infra/v1/clusters").json()
    assert all(set(c) == SUMMARY for c in body["clusters"])
    assert "next" not in body
    page = os_api.get("/container-infra/v1/clusters", params={"limit": 2}).json()
    assert len(page["clusters"]) == 2 and "marker=%s" % page["clusters"][-1]["uuid"] in page["next"]
    detail = os_api.get("/container-infra/v1/clusters/detail").json()["clusters"]
    heat = next(c for c in detail if c["name"] == "hpc-heat")
    assert heat["api_address"].startswith("https://") and heat["api_address"].endswith(":6443")
    assert heat["master_addresses"] and len(heat["node_addresses"]) == 3
    assert heat["status_reason"] == "Stack CREATE completed successfully"
    capi = next(c for c in detail if c["name"] == "hpc-capi")
    assert capi["master_addresses"] == [] and capi["node_addresses"] == []
    assert re.match(r"^kube-[a-z0-9]{5}$", capi["stack_id"])


def test_show_by_name_and_duplicate_names(os_api, os_magnum):
    tid = _template(os_magnum, "k8s-capi-v1.30")
    for dummy in range(2):
        assert os_api.post("/container-infra/v1/clusters", json={"name": "dup", "cluster_template_id": tid}
                           ).status_code == 202
    # both copies must be visible (a new cluster answers 404 for a moment)
    wait_for(lambda: len([c for c in os_api.get("/container-infra/v1/clusters").json()["clusters"]
                          if c["name"] == "dup"]) == 2, what="both dup clusters listed")
    r = os_api.get("/container-infra/v1/clusters/dup")
    assert r.status_code == 409
    assert r.json()["errors"][0] == {
        "request_id": "", "code": "client", "status": 409, "title": "Multiple clusters exist with same name",
        "detail": "Multiple clusters exist with same name. Please use the cluster uuid instead.", "links": []}
    assert os_magnum.clusters.get("hpc-capi").name == "hpc-capi"
    r = os_api.get("/container-infra/v1/clusters/nope")
    assert r.status_code == 404 and r.json()["errors"][0]["detail"] == "Cluster nope could not be found."


def test_patch_rules(os_magnum, sim_cloud):
    with pytest.raises(mexc.BadRequest, match=r"cannot change cluster property\(ies\) name"):
        os_magnum.clusters.update("hpc-capi", [{"op": "replace", "path": "/name", "value": "x"}])
    with pytest.raises(mexc.BadRequest, match="internal attribute"):
        os_magnum.clusters.update("hpc-capi", [{"op": "replace", "path": "/api_address", "value": "x"}])
    os_magnum.clusters.update("hpc-capi", [{"op": "replace", "path": "/health_status", "value": "UNHEALTHY"}])
    assert os_magnum.clusters.get("hpc-capi").health_status == "UNHEALTHY"
    # An update that lasts longer than the requests below, however loaded the machine.
    sim_cloud.set_timings(cluster_update=120)
    os_magnum.clusters.update("hpc-capi", [{"op": "replace", "path": "/node_count", "value": 3}])
    c = os_magnum.clusters.get("hpc-capi")
    assert c.status == "UPDATE_IN_PROGRESS" and c.node_count == 3
    with pytest.raises(mexc.BadRequest, match='Updating a cluster when status is "UPDATE_IN_PROGRESS" is not'):
        os_magnum.clusters.update("hpc-capi", [{"op": "replace", "path": "/node_count", "value": 2}])
    with pytest.raises(mexc.BadRequest, match="Resizing a cluster when status is"):
        os_magnum.clusters.resize(c.uuid, 2)
    assert os_magnum.clusters.get("hpc-capi").status == "UPDATE_IN_PROGRESS"


def test_heat_cluster_lifecycle(os_magnum, os_heat, os_conn, sim_cloud):
    from heatclient import exc as hexc

    uuid = os_magnum.clusters.create(name="t-heat", cluster_template_id=_template(os_magnum, "k8s-heat-fcos"),
                                     node_count=2).uuid
    c = visible_cluster(os_magnum, uuid)
    assert c.status == "CREATE_IN_PROGRESS" and c.api_address is None and c.node_addresses == []
    stack = os_heat.stacks.get(c.stack_id)
    assert re.match(r"^t-heat-[a-z0-9]{12}$", stack.stack_name) and stack.stack_status == "CREATE_IN_PROGRESS"
    c = _wait_status(os_magnum, uuid, "CREATE_COMPLETE")
    names = sorted(s["name"] for s in sim_cloud.state()["servers"] if s["name"].startswith(stack.stack_name))
    assert names == [stack.stack_name + "-master-0", stack.stack_name + "-node-0", stack.stack_name + "-node-1"]
    master_ip = c.master_addresses[0]
    assert c.api_address == "https://%s:6443" % master_ip and len(c.node_addresses) == 2
    stack = os_heat.stacks.get(c.stack_id)
    outputs = {o["output_key"]: o["output_value"] for o in stack.outputs}
    assert outputs["api_address"] == master_ip
    assert sorted(outputs["kube_minions_private"]) == sorted(c.node_addresses)
    assert stack.stack_status == "CREATE_COMPLETE"
    rows = os_heat.resources.list(c.stack_id, nested_depth=2)
    servers = {s["name"]: s["id"] for s in sim_cloud.state()["servers"]}
    minions = [r for r in rows if r.resource_name == "kube-minion"]
    assert sorted(r.physical_resource_id for r in minions) == sorted(
        servers[stack.stack_name + "-node-%d" % i] for i in range(2))
    assert {r.parent_resource for r in minions} == {"0", "1"}
    groups = {r.resource_name: r for r in rows if r.resource_type == "OS::Heat::ResourceGroup"}
    assert set(groups) == {"kube_masters", "kube_minions"}
    assert any(link["rel"] == "nested" for link in groups["kube_minions"].links)
    assert not hasattr(groups["kube_minions"], "parent_resource")
    os_magnum.clusters.delete(uuid)
    assert os_magnum.clusters.get(uuid).status == "DELETE_IN_PROGRESS"
    wait_for(lambda: uuid not in {x.uuid for x in os_magnum.clusters.list()}, what="cluster gone")
    with pytest.raises(hexc.HTTPNotFound):
        os_heat.stacks.get(c.stack_id)
    assert not [s for s in sim_cloud.state()["servers"] if s["name"].startswith(stack.stack_name)]
    assert sim_cloud.state()["counts"]["orphaned_ports"] == 0


def test_capi_cluster_resize_keeps_machines_and_upgrade_replaces_them(os_magnum, os_api, os_heat, sim_cloud):
    uuid = os_magnum.clusters.create(name="t-capi", cluster_template_id=_template(os_magnum, "k8s-capi-v1.30"),
                                     node_count=2, flavor_id="bm.compute").uuid
    c = _wait_status(os_magnum, uuid, "CREATE_COMPLETE")
    assert re.match(r"^kube-[a-z0-9]{5}$", c.stack_id)
    assert c.master_addresses == [] and c.node_addresses == [] and c.coe_version == "v1.30.4"
    assert c.stack_id not in {s.id for s in os_heat.stacks.list()}
    workers = cluster_state(sim_cloud, "t-capi")["nodegroups"][1]
    assert all(re.match(r"^%s-default-worker-[a-z0-9]{5}-[a-z0-9]{5}$" % c.stack_id, n)
               for n in workers["server_names"])
    cp = cluster_state(sim_cloud, "t-capi")["nodegroups"][0]["server_names"][0]
    assert re.match(r"^%s-control-plane-[a-z0-9]{5}-[a-z0-9]{5}$" % c.stack_id, cp)
    # a scale-up adds a machine (with the primary network only) and keeps the others as they are
    net = os_api.get("/network/v2.0/networks", params={"name": "eth-10g"}).json()["networks"][0]
    r = os_api.post("/compute/v2.1/servers/%s/os-interface" % workers["servers"][0],
                    json={"interfaceAttachment": {"net_id": net["id"]}})
    assert r.status_code == 200
    os_magnum.clusters.resize(uuid, 3)
    c = _wait_status(os_magnum, uuid, "UPDATE_COMPLETE")
    after = cluster_state(sim_cloud, "t-capi")["nodegroups"][1]
    assert len(after["servers"]) == 3 and set(workers["servers"]) < set(after["servers"])
    state = {s["id"]: s for s in sim_cloud.state()["servers"]}
    new = (set(after["servers"]) - set(workers["servers"])).pop()
    assert state[new]["networks"] == ["private"] and "eth-10g" in state[workers["servers"][0]]["networks"]
    # scale down naming the node to remove keeps the others
    victim, keep = after["servers"][0], after["servers"][1:]
    os_magnum.clusters.resize(uuid, 2, nodes_to_remove=[victim])
    _wait_status(os_magnum, uuid, "UPDATE_COMPLETE")
    assert sorted(cluster_state(sim_cloud, "t-capi")["nodegroups"][1]["servers"]) == sorted(keep)
    os_magnum.clusters.upgrade(uuid, _template(os_magnum, "k8s-capi-v1.31"), max_batch_size=1)
    assert os_magnum.clusters.get(uuid).status == "UPDATE_IN_PROGRESS"
    c = _wait_status(os_magnum, uuid, "UPDATE_COMPLETE")
    assert c.cluster_template_id == _template(os_magnum, "k8s-capi-v1.31") and c.coe_version == "v1.31.2"
    assert not set(cluster_state(sim_cloud, "t-capi")["nodegroups"][1]["servers"]) & set(keep)


def test_resize_bounds_and_nodegroups(os_magnum, os_api):
    with pytest.raises(mexc.BadRequest, match="Resizing gpu outside the allowed range: min_node_count = 0, "
                       "max_node_count = 4"):
        os_magnum.clusters.resize("hpc-heat", 5, nodegroup="gpu")
    with pytest.raises(mexc.BadRequest, match="Resizing the master nodegroup is not supported by this driver."):
        os_magnum.clusters.resize("hpc-heat", 3, nodegroup="default-master")
    ng = os_magnum.nodegroups.create("hpc-heat", name="ib", node_count=1, flavor_id="bm.compute",
                                     max_node_count=3)
    assert ng.status == "CREATE_IN_PROGRESS" and ng.role == "worker" and ng.is_default is False
    assert os_magnum.clusters.get("hpc-heat").status == "UPDATE_IN_PROGRESS"
    with pytest.raises(mexc.Conflict, match="A node group with name ib already exists in the cluster hpc-heat."):
        os_magnum.nodegroups.create("hpc-heat", name="ib")
    with pytest.raises(mexc.BadRequest, match="Creating master nodegroups is currently not supported."):
        os_magnum.nodegroups.create("hpc-heat", name="m2", role="master")
    with pytest.raises(mexc.Conflict, match="Cluster API address is not available yet"):
        os_magnum.nodegroups.create("hpc-building", name="late")
    with pytest.raises(mexc.BadRequest, match="Deleting a default nodegroup is not supported."):
        os_magnum.nodegroups.delete("hpc-heat", "default-worker")
    wait_for(lambda: os_magnum.nodegroups.get("hpc-heat", "ib").status == "CREATE_COMPLETE", what="ng created")
    assert os_magnum.clusters.get("hpc-heat").status == "UPDATE_COMPLETE"
    ng = os_magnum.nodegroups.update("hpc-heat", "ib", [{"op": "replace", "path": "/max_node_count", "value": 5}])
    assert ng.max_node_count == 5
    with pytest.raises(mexc.BadRequest):
        os_magnum.nodegroups.update("hpc-heat", "ib", [{"op": "replace", "path": "/node_count", "value": 2}])
    with pytest.raises(mexc.Conflict, match="should be less or equal to"):
        os_magnum.nodegroups.update("hpc-heat", "ib", [{"op": "replace", "path": "/min_node_count", "value": 9}])
    roles = {n.name: n.role for n in os_magnum.nodegroups.list("hpc-heat")}
    assert roles == {"default-master": "master", "default-worker": "worker", "gpu": "worker", "ib": "worker"}
    assert [n.name for n in os_magnum.nodegroups.list("hpc-heat", role="master")] == ["default-master"]
    listed = os_api.get("/container-infra/v1/clusters/hpc-heat/nodegroups", headers=LATEST).json()["nodegroups"][0]
    assert set(listed) == {"uuid", "name", "flavor_id", "node_count", "role", "is_default", "image_id", "status",
                           "stack_id"}
    os_magnum.nodegroups.delete("hpc-heat", "ib")
    wait_for(lambda: "ib" not in {n.name for n in os_magnum.nodegroups.list("hpc-heat")}, what="ng deleted")


def test_certificates(os_magnum, sim_cloud):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    uuid = cluster_state(sim_cloud, "hpc-capi")["uuid"]
    ca = x509.load_pem_x509_certificate(os_magnum.certificates.get(cluster_uuid=uuid).pem.encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])).sign(key, hashes.SHA256()))
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    signed = os_magnum.certificates.create(cluster_uuid=uuid, csr=pem)
    assert signed.csr == pem
    cert = x509.load_pem_x509_certificate(signed.pem.encode())
    assert cert.issuer == ca.subject
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                           cert.signature_hash_algorithm)
    with pytest.raises(mexc.BadRequest):
        os_magnum.certificates.create(cluster_uuid=uuid, csr="not a csr")


def test_failure_injection(os_magnum, os_heat, sim_cloud):
    sim_cloud.set_faults([
        {"kind": "cluster_create_failed", "name_regex": "^boom", "reason": "Resource CREATE failed: quota"},
        {"kind": "cluster_delete_failed", "name_regex": "^boom", "reason": "Resource DELETE failed: busy"},
        {"kind": "cluster_stuck", "name_regex": "^stuck"},
    ])
    tid = _template(os_magnum, "k8s-heat-fcos")
    boom = os_magnum.clusters.create(name="boom", cluster_template_id=tid, node_count=1).uuid
    stuck = os_magnum.clusters.create(name="stuck", cluster_template_id=tid, node_count=1).uuid
    c = _wait_status(os_magnum, boom, "CREATE_FAILED")
    assert c.status_reason == "Resource CREATE failed: quota"
    assert c.faults == {"default-master": "Resource CREATE failed: quota",
                        "default-worker": "Resource CREATE failed: quota"}
    assert os_heat.stacks.get(c.stack_id).stack_status == "CREATE_FAILED"
    os_magnum.clusters.delete(boom)
    c = _wait_status(os_magnum, boom, "DELETE_FAILED")
    assert c.status_reason == "Resource DELETE failed: busy"
    time.sleep(1.0)
    assert visible_cluster(os_magnum, stuck).status == "CREATE_IN_PROGRESS"


def test_baremetal_cluster_fails_when_pool_runs_out(os_magnum, os_heat):
    uuid = os_magnum.clusters.create(name="greedy", cluster_template_id=_template(os_magnum, "k8s-heat-fcos"),
                                     node_count=5, flavor_id="bm.gpu").uuid
    c = _wait_status(os_magnum, uuid, "CREATE_FAILED")
    assert "No valid host was found" in c.status_reason and "kube-minion" in c.status_reason
    failed = os_heat.resources.list(c.stack_id, nested_depth=2, filters={"status": "FAILED"})
    assert {r.resource_name for r in failed} >= {"kube-minion"}


def test_kube_api_url_override(sim_cloud_factory):
    cloud = sim_cloud_factory(kube_api_url="https://127.0.0.1:16443")
    api = Api(cloud.url)
    detail = api.get("/container-infra/v1/clusters/detail").json()["clusters"]
    assert {c["api_address"] for c in detail if c["status"] == "CREATE_COMPLETE"} == {"https://127.0.0.1:16443"}


def test_magnum_master_release(sim_cloud_factory):
    cloud = sim_cloud_factory(magnum_release="master")
    api = Api(cloud.url)
    r = api.get("/container-infra/v1/clusters/hpc-capi", headers=LATEST)
    assert r.headers["OpenStack-API-Version"] == "container-infrastructure-management 1.14"
    body = r.json()
    assert "cluster_id" in body and "stack_id" not in body
    ng = api.get("/container-infra/v1/clusters/hpc-capi/nodegroups/default-worker", headers=LATEST).json()
    assert "node_labels" in ng and "node_taints" in ng
    r = api.post("/container-infra/v1/clustertemplates", headers=LATEST, json={
        "name": "legacy", "coe": "kubernetes", "image_id": "fedora-coreos-40", "labels": {"hpcops_sim_driver": "heat"}})
    assert r.status_code == 400 and "not supported" in r.json()["errors"][0]["detail"]
    # master takes the driver from the image's magnum_driver property
    r = api.post("/container-infra/v1/clustertemplates", headers=LATEST, json={
        "name": "capi", "coe": "kubernetes", "image_id": "ubuntu-jammy-kube-v1.30.4"})
    assert r.status_code == 201 and r.json()["driver"] == "k8s_capi_helm_v1"
    assert r.headers["Location"].endswith("/clustertemplates/" + r.json()["uuid"])


def test_openstacksdk_coe_views(os_conn, os_magnum, sim_cloud):
    coe = os_conn.container_infrastructure_management
    clusters = {c.name: c for c in coe.clusters()}
    assert set(clusters) == {"hpc-heat", "hpc-capi", "hpc-building"}
    c = coe.get_cluster(clusters["hpc-heat"].id)
    assert c.status == "CREATE_COMPLETE" and c.api_address.endswith(":6443")
    assert c.status_reason == "Stack CREATE completed successfully"
    templates = {t.name for t in coe.cluster_templates()}
    assert "k8s-capi-v1.30" in templates
    created = coe.create_cluster(name="sdk", cluster_template_id=os_conn.get_cluster_template("k8s-capi-v1.30").id,
                                 node_count=1)
    assert created.id
    assert visible_cluster(os_magnum, created.id).status == "CREATE_IN_PROGRESS"
    assert coe.get_cluster(created.id).status == "CREATE_IN_PROGRESS"


def test_labels_merge_and_diffs(os_magnum):
    tid = _template(os_magnum, "k8s-heat-fcos")
    merged = os_magnum.clusters.create(name="merged", cluster_template_id=tid, merge_labels=True,
                                       labels={"kube_tag": "v1.29.0", "extra": "x"}).uuid
    c = visible_cluster(os_magnum, merged)
    assert c.labels == {"kube_tag": "v1.29.0", "hpcops_sim_driver": "heat", "extra": "x"}
    assert (c.labels_overridden, c.labels_added, c.labels_skipped) == ({"kube_tag": "v1.28.9"}, {"extra": "x"}, {})
    assert c.master_flavor_id == "m1.large" and c.flavor_id == "m1.small" and c.keypair == "hpc-key"
    plain = os_magnum.clusters.create(name="plain", cluster_template_id=tid, labels={"extra": "x"}).uuid
    c = visible_cluster(os_magnum, plain)
    assert c.labels == {"extra": "x"}
    assert c.labels_skipped == {"kube_tag": "v1.28.9", "hpcops_sim_driver": "heat"}
