import pytest
from os_simhelpers import cluster_state


@pytest.fixture
def stack(sim_cloud):
    stack_id = cluster_state(sim_cloud, "hpc-heat")["stack_id"]
    return next(s for s in sim_cloud.state()["stacks"] if s["id"] == stack_id)


def test_versions_document(sim_cloud):
    import requests

    r = requests.get(sim_cloud.url + "/orchestration")
    assert r.status_code == 300 and r.json()["versions"][0]["id"] == "v1.0"


def test_lookup_redirects_keep_suffix_and_query(os_api, stack):
    base = "/orchestration/v1/%s/stacks" % os_api.project_id
    for ident in (stack["name"], stack["id"]):
        r = os_api.get("%s/%s" % (base, ident), allow_redirects=False)
        assert r.status_code == 302
        assert r.headers["Location"] == "%s%s/%s/%s" % (os_api.url, base, stack["name"], stack["id"])
    r = os_api.get("%s/%s/resources?nested_depth=2&type=OS::Nova::Server" % (base, stack["name"]),
                   allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/stacks/%s/%s/resources?nested_depth=2&type=OS::Nova::Server"
                                          % (stack["name"], stack["id"]))
    rows = os_api.session.get(r.headers["Location"], headers={"X-Auth-Token": os_api.token}).json()["resources"]
    assert {x["resource_type"] for x in rows} == {"OS::Nova::Server"} and len(rows) == 3
    row = rows[0]
    assert set(row) == {"resource_name", "logical_resource_id", "physical_resource_id", "resource_type",
                        "resource_status", "resource_status_reason", "creation_time", "updated_time",
                        "required_by", "links", "parent_resource"}
    assert {link["rel"] for link in row["links"]} == {"self", "stack"}
    r = os_api.get("%s/%s/%s" % (base, "wrong-name", stack["id"]))
    assert r.status_code == 404
    assert r.json() == {"explanation": "The resource could not be found.", "code": 404, "title": "Not Found",
                        "error": {"message": "The Stack (wrong-name) could not be found.", "traceback": None,
                                  "type": "EntityNotFound"}}


def test_heatclient_show_outputs_and_nested_resources(os_heat, stack, sim_cloud):
    s = os_heat.stacks.get(stack["name"])
    assert s.id == stack["id"] and s.stack_status == "CREATE_COMPLETE" and s.parent is None
    keys = {o["output_key"] for o in os_heat.stacks.output_list(stack["id"])["outputs"]}
    assert keys >= {"api_address", "kube_masters", "kube_minions", "kube_masters_private", "kube_minions_private"}
    api = os_heat.stacks.output_show(stack["id"], "api_address")["output"]["output_value"]
    assert "https://%s:6443" % api == cluster_state(sim_cloud, "hpc-heat")["api_address"]
    top = os_heat.resources.list(stack["id"])
    assert "kube_minions" in {r.resource_name for r in top} and not any(hasattr(r, "parent_resource") for r in top)
    depth1 = os_heat.resources.list(stack["id"], nested_depth=1)
    members = [r for r in depth1 if getattr(r, "parent_resource", None) == "kube_minions"]
    assert sorted(r.resource_name for r in members) == ["0", "1"]
    assert all(r.resource_type.endswith("kubeminion.yaml") for r in members)
    depth2 = os_heat.resources.list(stack["id"], nested_depth=2)
    assert len(depth2) > len(depth1)
    res = os_heat.resources.get(stack["id"], "kube_minions")
    assert res.resource_type == "OS::Heat::ResourceGroup" and res.resource_status == "CREATE_COMPLETE"
    only = os_heat.resources.list(stack["id"], nested_depth=2, filters={"name": "kube-master"})
    assert len(only) == 1 and only[0].physical_resource_id in {s["id"] for s in sim_cloud.state()["servers"]}


def test_stack_list_and_nested(os_heat, sim_cloud):
    top = {s.stack_name for s in os_heat.stacks.list()}
    heat_stack = cluster_state(sim_cloud, "hpc-heat")["stack_id"]
    assert len(top) == 2  # the cluster stack and its non-default nodegroup's stack
    nested = list(os_heat.stacks.list(show_nested=True))
    assert len(nested) > len(top) and any(s.parent == heat_stack for s in nested)


def test_openstacksdk_orchestration(os_conn, stack):
    s = os_conn.orchestration.find_stack(stack["name"])
    assert s.id == stack["id"]
    full = os_conn.orchestration.get_stack(s)
    assert {o["output_key"] for o in full.outputs} >= {"kube_minions_private"}
    names = {r.name for r in os_conn.orchestration.resources(s)}
    assert {"kube_masters", "kube_minions"} <= names


def test_show_without_resolving_outputs_leaves_them_out(os_heat, os_api, stack):
    # heatclient sends ?resolve_outputs=False; Heat then omits the key, as format_stack does.
    lean = os_heat.stacks.get(stack["id"], resolve_outputs=False)
    assert lean.id == stack["id"] and lean.stack_status == "CREATE_COMPLETE"
    assert "outputs" not in lean.to_dict()
    full = os_heat.stacks.get(stack["id"])
    assert {o["output_key"] for o in full.outputs} >= {"api_address"}
    base = "/orchestration/v1/%s/stacks/%s/%s" % (os_api.project_id, stack["name"], stack["id"])
    for value, has_outputs in (("false", False), ("FALSE", False), ("True", True)):
        body = os_api.get("%s?resolve_outputs=%s" % (base, value)).json()["stack"]
        assert ("outputs" in body) is has_outputs, value
    r = os_api.get(base + "?resolve_outputs=maybe")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == ('Unrecognized value "maybe" for "resolve_outputs", '
                                            'acceptable values are: true, false.')
