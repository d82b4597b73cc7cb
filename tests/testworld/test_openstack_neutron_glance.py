import requests
from os_simhelpers import Api


def test_network_discovery_documents(sim_cloud):
    v = requests.get(sim_cloud.url + "/network").json()["versions"][0]
    assert v["id"] == "v2.0" and v["links"][0]["href"].endswith("/network/v2.0/")
    assert requests.get(sim_cloud.url + "/network/v2.0").status_code == 401


def test_provider_attributes_are_admin_only(os_api, sim_cloud):
    nets = {n["name"]: n for n in os_api.get("/network/v2.0/networks").json()["networks"]}
    assert nets["eth-10g"]["provider:physical_network"] == "physnet10g"
    assert nets["eth-10g"]["provider:network_type"] == "vlan" and nets["eth-10g"]["mtu"] == 9000
    assert nets["ib-100g"]["segments"] == [{"provider:network_type": "flat", "provider:physical_network": "ib",
                                            "provider:segmentation_id": None}]
    assert nets["ib-100g"]["mtu"] == 4092 and "provider:physical_network" not in nets["ib-100g"]
    demo = Api(sim_cloud.url, user="demo", password="demo-secret")
    dnets = {n["name"]: n for n in demo.get("/network/v2.0/networks").json()["networks"]}
    assert "provider:physical_network" not in dnets["eth-10g"] and "segments" not in dnets["ib-100g"]
    port = demo.get("/network/v2.0/ports", params={"limit": 1}).json()["ports"][0]
    assert "binding:vnic_type" in port and "binding:host_id" not in port and "binding:profile" not in port
    outsider = Api(sim_cloud.url, user="outsider", password="outsider-secret", project="other")
    assert outsider.get("/network/v2.0/ports").json()["ports"] == []
    assert {n["name"] for n in outsider.get("/network/v2.0/networks").json()["networks"]} == {"public"}


def test_port_filters_fields_paging_and_errors(os_api):
    ports = os_api.get("/network/v2.0/ports").json()["ports"]
    p = ports[0]
    ip = p["fixed_ips"][0]["ip_address"]
    by_ip = os_api.get("/network/v2.0/ports", params={"fixed_ips": "ip_address=%s" % ip}).json()["ports"]
    assert [x["id"] for x in by_ip] == [p["id"]]
    by_dev = os_api.get("/network/v2.0/ports", params={"device_id": p["device_id"]}).json()["ports"]
    assert p["id"] in {x["id"] for x in by_dev}
    both = os_api.get("/network/v2.0/ports", params=[("id", ports[0]["id"]), ("id", ports[1]["id"])]).json()["ports"]
    assert len(both) == 2
    only = os_api.get("/network/v2.0/ports", params=[("fields", "id"), ("fields", "mac_address")]).json()["ports"]
    assert set(only[0]) == {"id", "mac_address"}
    page = os_api.get("/network/v2.0/ports", params={"limit": 2}).json()
    assert len(page["ports"]) == 2 and page["ports_links"][0]["rel"] == "next"
    r = os_api.get("/network/v2.0/ports", params={"bogus": "x"})
    assert r.status_code == 400 and r.json()["NeutronError"]["message"] == "[bogus] is invalid attribute for filtering"
    r = os_api.get("/network/v2.0/ports/nope")
    assert r.status_code == 404
    assert r.json() == {"NeutronError": {"type": "PortNotFound", "message": "Port nope could not be found.",
                                         "detail": ""}}


def test_port_create_update_delete_and_conflicts(os_api):
    net = os_api.get("/network/v2.0/networks", params={"name": "eth-25g"}).json()["networks"][0]
    r = os_api.post("/network/v2.0/ports", json={"port": {"network_id": net["id"], "name": "p1",
                                                          "binding:vnic_type": "direct",
                                                          "fixed_ips": [{"ip_address": "10.25.9.9"}]}})
    assert r.status_code == 201
    port = r.json()["port"]
    assert port["status"] == "DOWN" and port["device_id"] == "" and port["binding:vnic_type"] == "direct"
    assert port["fixed_ips"][0]["subnet_id"] == net["subnets"][0]
    r = os_api.post("/network/v2.0/ports", json={"port": {"network_id": net["id"], "mac_address": port["mac_address"]}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "MacAddressInUse"
    r = os_api.post("/network/v2.0/ports", json={"port": {"network_id": net["id"],
                                                          "fixed_ips": [{"ip_address": "10.25.9.9"}]}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "IpAddressAlreadyAllocated"
    r = os_api.request("PUT", "/network/v2.0/ports/%s" % port["id"], json={"port": {"name": "renamed"}})
    assert r.json()["port"]["name"] == "renamed" and r.json()["port"]["revision_number"] > port["revision_number"]
    assert os_api.delete("/network/v2.0/ports/%s" % port["id"]).status_code == 204
    r = os_api.post("/network/v2.0/ports", json={"port": {"name": "no-net"}})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "HTTPBadRequest"


def test_sdk_network_views(os_conn):
    net = os_conn.network.find_network("eth-25g")
    assert net.provider_physical_network == "physnet25g" and net.mtu == 9000
    subnet = os_conn.network.get_subnet(net.subnet_ids[0])
    assert subnet.cidr == "10.25.0.0/16"
    assert list(os_conn.network.ips()) == []
    assert {e.alias for e in os_conn.network.extensions()} >= {"binding", "provider", "segment"}


def test_glance_images_and_versions(os_api, os_conn):
    assert requests.get(os_api.url + "/image/versions").json()["versions"][0]["status"] == "CURRENT"
    assert requests.get(os_api.url + "/image").status_code == 300
    imgs = {i.name: i for i in os_conn.image.images()}
    assert imgs["fedora-coreos-40"].os_distro == "fedora-coreos"
    assert imgs["cirros-0.6"].os_distro is None
    raw = os_api.get("/image/v2/images/%s" % imgs["ubuntu-jammy-kube-v1.30.4"].id).json()
    assert raw["os_distro"] == "ubuntu" and raw["kube_version"] == "v1.30.4" and raw["status"] == "active"
    page = os_api.get("/image/v2/images", params={"limit": 1}).json()
    assert page["next"].startswith("/v2/images?") and "marker=" in page["next"]
    r = os_api.get("/image/v2/images/nope")
    assert r.status_code == 404 and "No image found with ID nope" in r.text
