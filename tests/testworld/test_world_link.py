"""The two simulators linked: the Kubernetes nodes are the servers of the Magnum clusters.

The simulated cloud registers every cluster server that becomes ACTIVE as a node of the
Kubernetes test world (PUT /_sim/nodes/{name}, the flavor naming the hardware profile) and
removes it when the server is deleted; the clients here are the real ones
(python-magnumclient, the `kubernetes` client).
"""

import json
import socket
import urllib.error
import urllib.request

import pytest
from os_simhelpers import cluster_state, visible_cluster, wait_for

from testworld.kubernetes import components
from testworld.kubernetes.apiserver import route_of
from testworld.kubernetes.pytest_fixtures import kube_world_factory  # noqa: F401 pylint: disable=unused-import
from testworld.openstack import scenario as os_scenario
from testworld.openstack.certs import CertificateAuthority

KERNELS = {"5.14.0-427.13.1.el9_4.x86_64", "5.14.0-503.11.1.el9_5.x86_64"}
NFD = "feature.node.kubernetes.io/"
GPU_LABEL = NFD + "pci-0302_10de.present"
RDMA_LABEL = NFD + "custom-rdma.capable"


def _empty_cloud():
    """default.yml without its clusters and loose servers, so every node comes from the test."""
    scn = os_scenario.load("default")
    scn["clusters"] = []
    scn["servers"] = []
    return scn


def _magnum(cloud, monkeypatch):
    import openstack
    from magnumclient import client

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", cloud.clouds_yaml)
    conn = openstack.connect(cloud="hpcops-sim")
    return client.Client("1", session=conn.session, api_version="latest")


def _core(world):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=world.kubeconfig))


def _nodes(core):
    return {n.metadata.name: n for n in core.list_node().items}


def _servers(cloud, cluster):
    """{server name: (nodegroup, server id)} of a cluster."""
    out = {}
    for ng in cluster_state(cloud, cluster)["nodegroups"]:
        for sid, name in zip(ng["servers"], ng["server_names"]):
            out[name] = (ng["name"], sid)
    return out


def _wait_nodes_are_servers(cloud, core, cluster, what):
    def settled():
        servers = _servers(cloud, cluster)
        active = {s["name"] for s in cloud.state()["servers"] if s["status"] == "ACTIVE"}
        return servers if set(servers) <= active and set(_nodes(core)) == set(servers) else None
    return wait_for(settled, timeout=60, what=what)


def _wait_status(magnum, ident, status):
    def reached():
        cluster = visible_cluster(magnum, ident)
        return cluster if cluster.status == status else None
    return wait_for(reached, timeout=15, what="cluster %s %s" % (ident, status))


def _http(world, method, path, body=None):
    """The world's control API (/_sim/, no credentials) over TLS verified against the cluster CA."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(world.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5, context=world.ssl_context()) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _kube_ca(world):
    """The kube world's CA for the cloud: Magnum hands it out and signs client certificates with it."""
    return {"cert": world.ca_file, "key": world.ca_key_file}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the kube world on its own --------------------------------------------------------------------------

def test_kube_world_registers_nodes_from_profiles(kube_world_factory):  # noqa: F811
    world = kube_world_factory("kube-demo.yml")
    core = _core(world)
    assert _nodes(core) == {}
    status, listing = _http(world, "GET", "/_sim/nodes")
    assert status == 200 and listing["nodes"] == []
    assert listing["profiles"] == ["bm.compute", "bm.gpu", "m1.large", "m1.small"]
    status, node = _http(world, "PUT", "/_sim/nodes/gpu-a", {
        "profile": "bm.gpu", "labels": {"team": "hpc"}, "address": "10.0.3.7", "providerID": "openstack:///x",
        "taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]})
    assert status == 201 and node["profile"] == "bm.gpu" and node["kernel"] == "5.14.0-427.13.1.el9_4.x86_64"
    # the same again changes nothing; the second node of the profile boots the other kernel
    assert _http(world, "PUT", "/_sim/nodes/gpu-a", {"profile": "bm.gpu"})[0] == 200
    assert world.register_node("gpu-b", "bm.gpu")["status"]["nodeInfo"]["kernelVersion"] == \
        "5.14.0-503.11.1.el9_5.x86_64"
    nodes = _nodes(core)
    gpu_a = nodes["gpu-a"]
    assert gpu_a.metadata.labels["team"] == "hpc" and gpu_a.spec.provider_id == "openstack:///x"
    assert [(t.key, t.value, t.effect) for t in gpu_a.spec.taints] == [("gpu", "true", "NoSchedule")]
    assert gpu_a.status.capacity["cpu"] == "96" and gpu_a.status.capacity["memory"] == "512Gi"
    assert [a.address for a in gpu_a.status.addresses if a.type == "InternalIP"] == ["10.0.3.7"]
    assert {c.type: c.status for c in gpu_a.status.conditions}["Ready"] == "True"
    assert nodes["gpu-b"].status.node_info.os_image == "Red Hat Enterprise Linux 9.5 (Plow)"
    # refusals
    assert _http(world, "PUT", "/_sim/nodes/gpu-c", {"profile": "bm.nothing"})[0] == 422
    assert _http(world, "PUT", "/_sim/nodes/Not_A_Name", {"profile": "bm.gpu"})[0] == 422
    assert _http(world, "PUT", "/_sim/nodes/gpu-a", {"profile": "bm.compute"})[0] == 409
    assert _http(world, "PUT", "/_sim/nodes/gpu-c", {"labels": {}})[0] == 400
    # the controllers treat them like scenario nodes: NFD labels them, DaemonSets and pods run there
    components.deploy_nfd(world, wait=False)
    world.wait_for(lambda: world.node_labels("gpu-b").get(GPU_LABEL) == "true", what="NFD labels on gpu-b")
    assert world.node_labels("gpu-b")[NFD + "kernel-version.full"] == "5.14.0-503.11.1.el9_5.x86_64"
    world.wait_for(lambda: {p["spec"].get("nodeName") for p in world.list("v1", "Pod", "node-feature-discovery")
                            if p["metadata"]["name"].startswith("nfd-worker")} == {"gpu-b"},
                   what="an NFD worker on gpu-b only (gpu-a is tainted)")
    on_b = [p["metadata"]["name"] for p in world.list("v1", "Pod") if p["spec"].get("nodeName") == "gpu-b"]
    assert len(on_b) >= 2  # the NFD worker, nfd-master and cert-manager found their node
    # a node leaving takes its pods and its NodeFeature with it
    assert _http(world, "DELETE", "/_sim/nodes/gpu-b") == (200, {"deleted": "gpu-b"})
    assert "gpu-b" not in _nodes(core)
    assert not [p for p in world.list("v1", "Pod") if p["spec"].get("nodeName") == "gpu-b"]
    assert not [f for f in world.list("nfd.k8s-sigs.io/v1alpha1", "NodeFeature") if f["metadata"]["name"] == "gpu-b"]
    assert _http(world, "DELETE", "/_sim/nodes/gpu-b")[0] == 404
    assert world.unregister_node("gpu-a") is True and world.unregister_node("gpu-a") is False
    # every deployment pod goes back to Pending: no node is left
    world.wait_for(lambda: all(p["status"].get("phase") == "Pending" for p in world.list("v1", "Pod")),
                   what="pods pending without nodes")
    assert not world.errors
    assert not [r for r in world.requests() if r["path"].startswith("/_sim")]


# -- linked -----------------------------------------------------------------------------------------------

def test_kube_world_counts_requests_by_route(kube_world_factory):  # noqa: F811
    world = kube_world_factory("kube-demo.yml")
    core = _core(world)
    assert _http(world, "DELETE", "/_sim/requests") == (200, {"reset": True})
    assert _http(world, "GET", "/_sim/requests") == (200, {"total": 0, "by_route": {}})
    core.list_node()
    core.list_node()
    core.read_namespace("default")
    core.list_namespaced_pod("default")
    core.list_namespaced_pod("kube-system")
    with pytest.raises(Exception):
        core.read_namespaced_config_map("nothing-here", "default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "counted"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("counted", "default", {"data": {"a": "2"}})
    status, counts = _http(world, "GET", "/_sim/requests")
    # the /_sim/ requests themselves are not counted; refused requests are
    assert status == 200 and counts == {"total": 8, "by_route": {
        "GET /api/v1/nodes": 2,
        "GET /api/v1/namespaces/{ns}": 1,
        "GET /api/v1/namespaces/{ns}/pods": 2,
        "GET /api/v1/namespaces/{ns}/configmaps/{name}": 1,
        "POST /api/v1/namespaces/{ns}/configmaps": 1,
        "PATCH /api/v1/namespaces/{ns}/configmaps/{name}": 1}}
    # the counts are the world's, the request log too keeps every request
    assert len(world.requests()) >= 8
    assert _http(world, "DELETE", "/_sim/requests")[0] == 200
    assert _http(world, "GET", "/_sim/requests")[1]["total"] == 0
    assert _http(world, "POST", "/_sim/requests")[0] == 404
    # the route of other paths: group APIs, subresources, watches, discovery
    assert route_of("POST", "/apis/batch/v1/namespaces/gpu/jobs") == "POST /apis/batch/v1/namespaces/{ns}/jobs"
    assert route_of("PATCH", "/api/v1/nodes/gpu-a/status") == "PATCH /api/v1/nodes/{name}/status"
    assert route_of("GET", "/apis/apps/v1/daemonsets", {"watch": "true"}) == "GET /apis/apps/v1/daemonsets (watch)"
    assert route_of("GET", "/apis/apps/v1/") == "GET /apis/apps/v1"


def test_capi_cluster_servers_are_the_kubernetes_nodes(kube_world_factory, sim_cloud_factory,  # noqa: F811
                                                       monkeypatch):
    world = kube_world_factory("kube-demo.yml")
    components.deploy_nfd(world, wait=False)
    cloud = sim_cloud_factory(scenario=_empty_cloud(), kube_api_url=world.url, kube_ca=_kube_ca(world))
    magnum = _magnum(cloud, monkeypatch)
    core = _core(world)

    tid = magnum.cluster_templates.get("k8s-capi-v1.30").uuid
    uuid = magnum.clusters.create(name="linked", cluster_template_id=tid, master_count=1, node_count=2,
                                  flavor_id="bm.compute").uuid
    cluster = _wait_status(magnum, uuid, "CREATE_COMPLETE")
    assert cluster.api_address == world.url
    magnum.nodegroups.create(uuid, name="gpu", flavor_id="bm.gpu", node_count=2, min_node_count=0,
                             max_node_count=4)
    wait_for(lambda: magnum.nodegroups.get(uuid, "gpu").status == "CREATE_COMPLETE", what="gpu nodegroup")
    servers = _wait_nodes_are_servers(cloud, core, "linked", "nodes = servers")
    assert len(servers) == 5 and sorted(ng for ng, _sid in servers.values()) == \
        ["default-master", "default-worker", "default-worker", "gpu", "gpu"]

    state = cloud.state()
    fixed = {sid: [ip for p in state["ports"] if p["device_id"] == sid for ip in p["fixed_ips"]]
             for _ng, sid in servers.values()}
    nodes = _nodes(core)
    for name, (ng, sid) in servers.items():
        node = nodes[name]
        labels = node.metadata.labels
        assert labels["magnum.openstack.org/nodegroup"] == ng
        assert node.spec.provider_id == "openstack:///%s" % sid
        internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        assert internal == fixed[sid][:1]
        if ng == "default-master":
            assert labels["magnum.openstack.org/role"] == "master"
            assert labels["node-role.kubernetes.io/control-plane"] == ""
            assert "node-role.kubernetes.io/worker" not in labels
            assert [(t.key, t.effect) for t in node.spec.taints] == \
                [("node-role.kubernetes.io/control-plane", "NoSchedule")]
            assert node.status.capacity["cpu"] == "8"  # m1.large, the template's master flavor
        else:
            assert labels["magnum.openstack.org/role"] == "worker"
            assert labels["node-role.kubernetes.io/worker"] == ""
            assert not node.spec.taints
            assert node.status.capacity["cpu"] == ("96" if ng == "gpu" else "64")

    # NFD labels what the flavor's hardware has
    workers = [n for n, (ng, _sid) in servers.items() if ng != "default-master"]

    def labelled():
        current = _nodes(core)
        return all(NFD + "kernel-version.full" in current[n].metadata.labels for n in workers) and current
    nodes = wait_for(labelled, timeout=10, what="NFD labels on every worker")
    for name in workers:
        labels = nodes[name].metadata.labels
        assert labels[RDMA_LABEL] == "true"
        assert (labels.get(GPU_LABEL) == "true") == (servers[name][0] == "gpu")
        assert labels[NFD + "kernel-version.full"] == nodes[name].status.node_info.kernel_version
    # the bare-metal nodes boot the two kernels in turn
    assert {nodes[n].status.node_info.kernel_version for n in workers} == KERNELS
    for ng in ("gpu", "default-worker"):
        assert {nodes[n].status.node_info.kernel_version for n in workers if servers[n][0] == ng} == KERNELS

    # scaling the GPU nodegroup down, naming the machine, removes exactly that node
    gpu = {name: sid for name, (ng, sid) in servers.items() if ng == "gpu"}
    victim = sorted(gpu)[0]
    magnum.clusters.resize(uuid, 1, nodes_to_remove=[gpu[victim]], nodegroup="gpu")
    _wait_status(magnum, uuid, "UPDATE_COMPLETE")
    after = _wait_nodes_are_servers(cloud, core, "linked", "node removed on resize")
    assert victim not in after and set(gpu) - {victim} <= set(after)
    # a scale-down naming no machine deletes what the delete policy picks and keeps the rest: the nodes follow
    old_workers = {name for name, (ng, _sid) in after.items() if ng == "default-worker"}
    magnum.clusters.resize(uuid, 1)
    _wait_status(magnum, uuid, "UPDATE_COMPLETE")
    after = _wait_nodes_are_servers(cloud, core, "linked", "node removed on scale-down")
    new_workers = {name for name, (ng, _sid) in after.items() if ng == "default-worker"}
    assert len(new_workers) == 1 and new_workers < old_workers
    assert _nodes(core)[new_workers.pop()].metadata.labels["magnum.openstack.org/nodegroup"] == "default-worker"

    # deleting the cluster removes every node
    magnum.clusters.delete(uuid)
    wait_for(lambda: not cloud.state()["clusters"], timeout=15, what="cluster deleted")
    wait_for(lambda: not _nodes(core), timeout=10, what="every node gone")
    link = cloud.state()["kube_link"]
    assert link["state"] == "up" and link["nodes"] == [] and not link["errors"]
    assert not world.errors


def test_heat_cluster_servers_are_the_kubernetes_nodes(kube_world_factory, sim_cloud_factory,  # noqa: F811
                                                       monkeypatch):
    world = kube_world_factory("kube-demo.yml")
    cloud = sim_cloud_factory(scenario=_empty_cloud(), kube_api_url=world.url, kube_ca=_kube_ca(world))
    magnum = _magnum(cloud, monkeypatch)
    core = _core(world)
    tid = magnum.cluster_templates.get("k8s-heat-fcos").uuid
    uuid = magnum.clusters.create(name="heat-linked", cluster_template_id=tid, node_count=1).uuid
    _wait_status(magnum, uuid, "CREATE_COMPLETE")
    servers = _wait_nodes_are_servers(cloud, core, "heat-linked", "nodes = servers")
    stack = cluster_state(cloud, "heat-linked")["stack_id"]
    assert len(servers) == 2 and all(name.endswith(("-master-0", "-node-0")) for name in servers)
    assert stack  # Heat-style names: <stack name>-master-0 / -node-0
    nodes = _nodes(core)
    assert {n: nodes[n].metadata.labels["magnum.openstack.org/role"] for n in nodes} == \
        {n: "master" if n.endswith("-master-0") else "worker" for n in servers}
    assert {nodes[n].status.capacity["cpu"] for n in nodes} == {"2", "8"}  # m1.small worker, m1.large master
    magnum.clusters.delete(uuid)
    wait_for(lambda: not _nodes(core), timeout=15, what="every node gone")


@pytest.mark.parametrize("where", ["nothing", "https", "not-a-kube-world"])
def test_cloud_works_without_a_kube_world(sim_cloud_factory, monkeypatch, where):
    if where == "nothing":
        url = "http://127.0.0.1:%d" % _free_port()
    elif where == "https":
        url = "https://127.0.0.1:%d" % _free_port()
    else:
        # another simulated cloud: it answers HTTP, but has no /_sim/nodes
        url = sim_cloud_factory(scenario=_empty_cloud()).url
    cloud = sim_cloud_factory(scenario=_empty_cloud(), kube_api_url=url)
    magnum = _magnum(cloud, monkeypatch)
    tid = magnum.cluster_templates.get("k8s-capi-v1.30").uuid
    uuid = magnum.clusters.create(name="alone", cluster_template_id=tid, node_count=1).uuid
    assert _wait_status(magnum, uuid, "CREATE_COMPLETE").api_address == url
    assert cloud.wait_idle(10)
    link = cloud.state()["kube_link"]
    expected = {"nothing": "down", "https": "disabled", "not-a-kube-world": "not-a-kube-world"}[where]
    assert link["state"] == expected and link["nodes"] == []
    if where == "https":
        assert link["calls"] == 0  # the address of a real cluster is never called
    elif where == "not-a-kube-world":
        assert link["calls"] == 1 and "not a Kubernetes test world" in link["errors"][0]
    magnum.clusters.delete(uuid)
    wait_for(lambda: not cloud.state()["clusters"], timeout=15, what="cluster deleted")


def test_kube_world_started_late_gets_the_nodes(kube_world_factory, sim_cloud_factory, monkeypatch,  # noqa: F811
                                                tmp_path):
    port = _free_port()
    ca = CertificateAuthority("late-ca")
    ca_files = {"cert": str(tmp_path / "ca.crt"), "key": str(tmp_path / "ca.key")}
    for what, text in (("cert", ca.pem), ("key", ca.key_pem)):
        with open(ca_files[what], "w", encoding="utf-8") as handle:
            handle.write(text)
    cloud = sim_cloud_factory(scenario=_empty_cloud(), kube_api_url="https://127.0.0.1:%d" % port, kube_ca=ca_files)
    magnum = _magnum(cloud, monkeypatch)
    tid = magnum.cluster_templates.get("k8s-capi-v1.30").uuid
    magnum.clusters.create(name="early", cluster_template_id=tid, node_count=1)
    wait_for(lambda: cloud.state()["kube_link"]["state"] == "down", what="the link finds no kube world")
    world = kube_world_factory("kube-demo.yml", port=port, ca=ca_files)
    core = _core(world)
    # the link retries every few seconds and then registers what it missed
    _wait_nodes_are_servers(cloud, core, "early", "nodes registered once the kube world is up")
    assert cloud.state()["kube_link"]["state"] == "up"
