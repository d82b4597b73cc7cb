"""Clients this project did not write judge the simulated cloud: openstack.cloud's
modules and its `openstack` inventory plugin (ansible-playbook / ansible-inventory
subprocesses), openstacksdk, python-magnumclient and the `openstack` CLI. Each
test checks an answer the real services give: list views, request validation,
Magnum's keypair, version-header and create-visibility semantics.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from os_simhelpers import Api, visible_cluster

HERE = os.path.dirname(os.path.abspath(__file__))
OPENSTACK = os.path.join(os.path.dirname(sys.executable), "openstack")
# Fields of Magnum's cluster list view (ClusterCollection converts rows with expand=False).
CLUSTER_LIST_FIELDS = {"uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels",
                       "node_count", "status", "master_flavor_id", "flavor_id", "create_timeout", "master_count",
                       "stack_id", "health_status", "links"}


def _playbook_runner():
    """run_playbook from the integration suite (JSON results per task), loaded by path."""
    path = os.path.join(os.path.dirname(HERE), "integration", "conftest.py")
    spec = importlib.util.spec_from_file_location("hpcops_integration_playbooks", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- Magnum -------------------------------------------------------------------------------------------
def test_magnum_lists_headers_and_keypairs(os_conn, os_magnum, os_api):
    """Template lists carry every field (magnumclient and openstacksdk filter on them), the
    version headers name container-infrastructure-management, and keypairs are optional."""
    coe = os_conn.container_infrastructure_management
    listed = {t.name: t for t in os_magnum.cluster_templates.list()}
    shown = os_magnum.cluster_templates.get("k8s-capi-v1.30")
    assert listed["k8s-capi-v1.30"].image_id == shown.image_id == "ubuntu-jammy-kube-v1.30.4"
    assert listed["k8s-capi-v1.30"].coe == "kubernetes" and listed["k8s-capi-v1.30"].labels == shown.labels
    # openstacksdk's cloud layer filters the list view client-side (openstack.cloud's coe_cluster_template does)
    found = os_conn.get_cluster_template("k8s-heat-fcos", filters={"coe": "kubernetes",
                                                                   "image_id": "fedora-coreos-40"})
    assert found is not None and found.name == "k8s-heat-fcos"
    raw = os_api.get("/container-infra/v1/clustertemplates").json()["clustertemplates"]
    one = os_api.get("/container-infra/v1/clustertemplates/k8s-heat-fcos").json()
    assert set(next(t for t in raw if t["name"] == "k8s-heat-fcos")) == set(one)
    assert all(set(c) == CLUSTER_LIST_FIELDS for c in os_api.get("/container-infra/v1/clusters").json()["clusters"])

    for alias in ("container-infra", "container-infrastructure-management", "container-infrastructure"):
        r = os_api.get("/container-infra/v1/clusters", headers={"OpenStack-API-Version": alias + " 1.9"})
        assert r.headers["OpenStack-API-Version"] == "container-infrastructure-management 1.9"
        assert r.headers["OpenStack-API-Minimum-Version"] == "container-infrastructure-management 1.1"
        assert r.headers["OpenStack-API-Maximum-Version"] == "container-infrastructure-management 1.12"

    # Template create never checks the keypair; cluster create checks it only when one is given.
    tpl = coe.create_cluster_template(name="judge-nokey", coe="kubernetes", image_id="fedora-coreos-40",
                                      flavor_id="m1.small", keypair_id="no-such-key", is_floating_ip_enabled=False)
    bare = coe.create_cluster_template(name="judge-bare", coe="kubernetes", image_id="fedora-coreos-40",
                                       flavor_id="m1.small", is_floating_ip_enabled=False)
    assert tpl.keypair_id == "no-such-key" and bare.keypair_id is None
    uuid = os_magnum.clusters.create(name="judge-nokey", cluster_template_id=bare.id, node_count=1).uuid
    assert visible_cluster(os_magnum, uuid).keypair is None
    from magnumclient import exceptions as magnum_exc
    with pytest.raises(magnum_exc.NotFound, match="Unable to find keypair no-such-key"):
        os_magnum.clusters.create(name="judge-badkey", cluster_template_id=tpl.id, node_count=1)


def test_magnum_23_advertises_1_14(sim_cloud_factory):
    cloud = sim_cloud_factory(scenario="default", magnum_release="23")
    r = Api(cloud.url).get("/container-infra/v1/clusters", headers={"OpenStack-API-Version": "container-infra latest"})
    assert r.headers["OpenStack-API-Maximum-Version"] == "container-infrastructure-management 1.14"
    assert r.headers["OpenStack-API-Version"] == "container-infrastructure-management 1.14"
    assert all("cluster_id" in c and "stack_id" not in c for c in r.json()["clusters"])


def test_new_cluster_answers_404_for_a_moment(os_magnum, sim_cloud):
    """A create's 202 comes before Magnum stores the cluster; the `cluster_visible` timing
    sets how long, and 0 turns it off."""
    from magnumclient import exceptions as magnum_exc

    tid = os_magnum.cluster_templates.get("k8s-capi-v1.30").uuid
    sim_cloud.set_timings(cluster_visible=30)
    uuid = os_magnum.clusters.create(name="judge-late", cluster_template_id=tid, node_count=1).uuid
    with pytest.raises(magnum_exc.NotFound):
        os_magnum.clusters.get(uuid)
    assert "judge-late" not in {c.name for c in os_magnum.clusters.list()}
    with pytest.raises(magnum_exc.NotFound):
        os_magnum.nodegroups.list(uuid)
    sim_cloud.set_timings(cluster_visible=0)
    assert os_magnum.clusters.get(uuid).name == "judge-late"  # the setting applies to clusters created earlier too
    early = os_magnum.clusters.create(name="judge-early", cluster_template_id=tid, node_count=1).uuid
    assert os_magnum.clusters.get(early).status == "CREATE_IN_PROGRESS"


# -- Neutron and Nova ----------------------------------------------------------------------------------
def test_neutron_and_nova_validate_requests(os_conn):
    """openstacksdk's requests get the answers real Neutron and Nova give to malformed input."""
    from openstack import exceptions as sdk_exc

    net = os_conn.network.find_network("eth-25g")
    subnet = os_conn.network.get_subnet(net.subnet_ids[0])
    other = os_conn.network.get_subnet(os_conn.network.find_network("eth-10g").subnet_ids[0])

    r = os_conn.network.post("/ports", json={"port": {"network_id": net.id, "colour": "blue"}})
    assert r.status_code == 400 and r.json()["NeutronError"]["message"] == "Unrecognized attribute(s) 'colour'"
    with pytest.raises(sdk_exc.BadRequestException, match="not a valid MAC address"):
        os_conn.network.create_port(network_id=net.id, mac_address="fa:16:3e:zz:00:01")
    with pytest.raises(sdk_exc.BadRequestException, match="not a valid IP for the specified subnet"):
        os_conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": subnet.id,
                                                                   "ip_address": "10.99.0.5"}])
    with pytest.raises(sdk_exc.BadRequestException, match="invalid subnet"):
        os_conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": other.id}])
    with pytest.raises(sdk_exc.BadRequestException, match="overlaps with another subnet"):
        os_conn.network.create_subnet(network_id=net.id, cidr="10.25.128.0/24", ip_version=4)
    r = os_conn.network.put("/networks/%s" % net.id, json={"network": {"status": "DOWN"}})
    assert r.status_code == 400 and r.json()["NeutronError"]["message"] == "Unrecognized attribute(s) 'status'"
    good = os_conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": subnet.id,
                                                                      "ip_address": "10.25.7.7"}])
    assert good.fixed_ips == [{"subnet_id": subnet.id, "ip_address": "10.25.7.7"}]
    os_conn.network.create_subnet(network_id=net.id, cidr="10.26.0.0/24", ip_version=4)  # disjoint: fine

    # The quota routes Nova reads before booting with a network (python-neutronclient adds ".json").
    project = os_conn.current_project_id
    quota = os_conn.network.get_quota(project)
    assert quota.ports == 500 and quota.networks == 100
    details = os_conn.network.get_quota(project, details=True)
    assert details.ports["used"] >= 1 and details.ports["limit"] == 500
    assert os_conn.network.get("/quotas/%s.json" % project).json()["quota"]["port"] == 500

    # Nova: schema formats are checked before any lookup.
    server = next(s for s in os_conn.compute.servers() if s.name.startswith("hpc-heat"))
    with pytest.raises(sdk_exc.BadRequestException, match="is not a 'uuid'"):
        os_conn.compute.create_server_interface(server, net_id="eth-25g")
    with pytest.raises(sdk_exc.NotFoundException):
        os_conn.compute.create_server_interface(server, net_id="0" * 8 + "-0000-4000-8000-" + "0" * 12)
    flavor = os_conn.compute.find_flavor("m1.small")
    with pytest.raises(sdk_exc.BadRequestException, match="imageRef.*is not a 'uuid'"):
        os_conn.compute.create_server(name="judge-bad", flavor_id=flavor.id, image_id="fedora-coreos-40",
                                      networks=[{"uuid": net.id}])
    with pytest.raises(sdk_exc.BadRequestException, match="networks/0/uuid.*is not a 'uuid'"):
        os_conn.compute.create_server(name="judge-bad", flavor_id=flavor.id,
                                      image_id=os_conn.image.find_image("cirros-0.6").id,
                                      networks=[{"uuid": "eth-25g"}])


def test_heat_stack_list_view(os_heat, os_api):
    """Heat's list names the project only in an admin's global_tenant listing."""
    stacks = os_api.get("/orchestration/v1/%s/stacks" % os_api.project_id).json()["stacks"]
    assert stacks and all("project" not in s and {"id", "stack_name", "stack_status", "links"} <= set(s)
                          for s in stacks)
    every = os_api.get("/orchestration/v1/%s/stacks?global_tenant=true" % os_api.project_id).json()["stacks"]
    assert every and all(s["project"] == os_api.project_id for s in every)
    assert {s.stack_name for s in os_heat.stacks.list()} == {s["stack_name"] for s in stacks}


def test_cli_template_list_fields(sim_env):
    out = subprocess.run([OPENSTACK, "coe", "cluster", "template", "list", "--fields", "coe,image_id,server_type",
                          "-f", "json"], env=sim_env, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["k8s-heat-fcos"]["image_id"] == "fedora-coreos-40" and rows["k8s-heat-fcos"]["coe"] == "kubernetes"
    assert rows["k8s-capi-v1.30"]["server_type"] == "vm"


# -- openstack.cloud's modules and inventory plugin -------------------------------------------------------
JUDGES_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/openstack.cloud.openstack:
      cloud: hpcops-sim
    group/hpcops.coe.openstack:
      cloud: hpcops-sim
  tasks:
    - name: template create
      openstack.cloud.coe_cluster_template: &template
        name: judge-tpl
        coe: kubernetes
        image_id: fedora-coreos-40
        flavor_id: m1.small
        master_flavor_id: m1.small
        external_network_id: public
        labels: {kube_tag: v1.30.4, hpcops_sim_driver: capi}
      register: tpl
    - name: template rerun
      openstack.cloud.coe_cluster_template: *template
    - name: cluster without keypair
      openstack.cloud.coe_cluster: &cluster
        name: judge-cluster
        cluster_template_id: "{{ tpl.cluster_template.id }}"
        node_count: 1
        master_count: 1
        wait: false
    - name: hpcops cluster create through the 404 window
      hpcops.coe.cluster:
        name: judge-hpcops
        cluster_template: judge-tpl
        node_count: 1
        timeout: 300
    - name: cluster rerun
      openstack.cloud.coe_cluster: *cluster
    - name: server boot
      openstack.cloud.server:
        name: judge-vm
        image: cirros-0.6
        flavor: m1.small
        network: private
        key_name: hpc-key
        auto_ip: false
        timeout: 120
    - name: server info
      openstack.cloud.server_info:
        name: judge-vm
    - name: port with a fixed IP
      openstack.cloud.port:
        name: judge-port
        network: eth-25g
        fixed_ips: [{ip_address: 10.25.9.9, subnet_id: "{{ subnet_25g }}"}]
    - name: port with a fixed IP outside its subnet
      openstack.cloud.port:
        name: judge-port-outside
        network: eth-25g
        fixed_ips: [{ip_address: 10.10.9.9, subnet_id: "{{ subnet_25g }}"}]
      ignore_errors: true
    - name: port with a malformed MAC
      openstack.cloud.port:
        name: judge-port-mac
        network: eth-25g
        mac_address: "fa:16:3e:00:01"
      ignore_errors: true
    - name: stack info
      openstack.cloud.stack_info:
        name: "{{ heat_stack }}"
"""


def test_openstack_cloud_modules_as_judges(sim_cloud, sim_env, os_api, tmp_path):
    heat_stack = next(s["name"] for s in sim_cloud.state()["stacks"]
                      if s["id"] == next(c for c in sim_cloud.state()["clusters"]
                                         if c["name"] == "hpc-heat")["stack_id"])
    net = next(n for n in os_api.get("/network/v2.0/networks").json()["networks"] if n["name"] == "eth-25g")
    # long enough that the hpcops.coe.cluster task meets the 404 right after its create
    sim_cloud.set_timings(cluster_visible=2.0)
    runner = _playbook_runner()
    run = runner.run_playbook(JUDGES_PLAYBOOK, extravars={"subnet_25g": net["subnets"][0], "heat_stack": heat_stack},
                              env=sim_env, workdir=str(tmp_path), timeout=600)
    run.assert_ok()
    tpl = run.task("template create")["cluster_template"]
    assert run.entry("template create")["status"] == "changed"
    assert run.entry("template rerun")["status"] == "ok", run.task("template rerun")
    assert run.task("template rerun")["cluster_template"]["id"] == tpl["id"]
    assert [t["name"] for t in os_api.get("/container-infra/v1/clustertemplates").json()["clustertemplates"]
            ].count("judge-tpl") == 1
    assert run.entry("cluster without keypair")["status"] == "changed"
    assert run.entry("cluster rerun")["status"] == "ok"
    assert run.task("hpcops cluster create through the 404 window")["cluster"]["status"] == "CREATE_COMPLETE"
    clusters = os_api.get("/container-infra/v1/clusters").json()["clusters"]
    assert [c["name"] for c in clusters].count("judge-cluster") == 1
    assert next(c for c in clusters if c["name"] == "judge-cluster")["keypair"] is None
    assert run.entry("server boot")["status"] == "changed"
    info = run.task("server info")["servers"]
    assert len(info) == 1 and info[0]["status"] == "ACTIVE" and "private" in info[0]["addresses"]
    port = run.task("port with a fixed IP")["port"]
    assert port["fixed_ips"] == [{"ip_address": "10.25.9.9", "subnet_id": net["subnets"][0]}]
    outside = run.entry("port with a fixed IP outside its subnet")
    assert outside["status"] == "failed" and "not a valid IP for the specified subnet" in outside["result"]["msg"]
    mac = run.entry("port with a malformed MAC")
    assert mac["status"] == "failed" and "not a valid MAC address" in mac["result"]["msg"]
    stacks = run.task("stack info")["stacks"]
    assert [s["name"] for s in stacks] == [heat_stack] and stacks[0]["status"] == "CREATE_COMPLETE"
    names = {p["name"] for p in os_api.get("/network/v2.0/ports").json()["ports"]}
    assert "judge-port" in names and not names & {"judge-port-outside", "judge-port-mac"}


def test_openstack_inventory_plugin(sim_cloud, sim_env, tmp_path):
    inventory = tmp_path / "judges.openstack.yml"
    inventory.write_text("plugin: openstack.cloud.openstack\nonly_clouds: [hpcops-sim]\nfail_on_errors: true\n"
                         "clouds_yaml_path: [%s]\n" % sim_cloud.clouds_yaml)
    env = _playbook_runner().ansible_env(str(tmp_path), sim_env)
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", str(inventory),
                           "--list"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    servers = {s["name"]: s for s in sim_cloud.state()["servers"]}
    hostvars = inv["_meta"]["hostvars"]
    heat_nodes = [n for n in servers if n.startswith("hpc-heat")]
    assert heat_nodes and set(heat_nodes) <= set(hostvars)
    node = hostvars[heat_nodes[0]]
    assert _plain(node["openstack"]["id"]) == servers[heat_nodes[0]]["id"]
    assert _plain(node["ansible_host"]) and _plain(node["openstack"]["status"]) == "ACTIVE"


def _plain(value):
    """A value from ansible-inventory's JSON, without its unsafe-text wrapper."""
    return value.get("__ansible_unsafe", value) if isinstance(value, dict) else value
