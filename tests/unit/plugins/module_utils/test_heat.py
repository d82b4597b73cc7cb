# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import heat, rest
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeCloud, FakeResponse


# Reads retry transient errors with real sleeps; the errors these tests inject need no waiting.
pytestmark = pytest.mark.usefixtures('no_retry_waits')


class Recorder:
    """An adapter answering every GET with one canned response."""

    service_type = 'orchestration'

    def __init__(self, response):
        self.response = response
        self.calls = []

    def get(self, url, params=None, headers=None, raise_exc=False):
        self.calls.append((url, params, headers, raise_exc))
        return self.response


class Conn:
    def __init__(self, response):
        self.orchestration = Recorder(response)


STACK = {'id': 'sid-1', 'stack_name': 'k8s-abc', 'stack_status': 'CREATE_COMPLETE',
         'outputs': [{'output_key': 'api_address', 'output_value': '10.0.0.2'},
                     {'output_key': 'kube_masters', 'output_value': ['172.24.4.10']},
                     {'output_key': 'broken', 'output_value': None, 'output_error': 'Attribute not found'}]}


def test_get_stack_missing_is_none_and_never_raises_through_the_adapter():
    conn = Conn(FakeResponse(404, {'error': {'message': 'The Stack (x) could not be found.'}}))
    assert heat.get_stack(conn, 'x') is None
    url, params, headers, raise_exc = conn.orchestration.calls[0]
    assert url == '/stacks/x' and params is None and raise_exc is False


def test_get_stack_quotes_the_name_and_can_skip_outputs():
    conn = Conn(FakeResponse(200, {'stack': STACK}))
    assert heat.get_stack(conn, 'a b/c', resolve_outputs=False)['id'] == 'sid-1'
    assert conn.orchestration.calls[0][:2] == ('/stacks/a%20b%2Fc', {'resolve_outputs': 'false'})


def test_outputs_as_mapping_with_errors_apart():
    assert heat.stack_outputs(STACK) == {'api_address': '10.0.0.2', 'kube_masters': ['172.24.4.10'], 'broken': None}
    assert heat.output_errors(STACK) == {'broken': 'Attribute not found'}
    summary = heat.summarize_stack(STACK)
    assert summary['name'] == 'k8s-abc' and summary['status'] == 'CREATE_COMPLETE'
    assert summary['outputs']['api_address'] == '10.0.0.2'


def test_list_resources_sends_nested_depth_and_filters():
    conn = Conn(FakeResponse(200, {'resources': []}))
    heat.list_stack_resources(conn, STACK, nested_depth=2, types=['OS::Nova::Server'], names=['kube-master'],
                              with_detail=True)
    url, params, _headers, _raise = conn.orchestration.calls[0]
    assert url == '/stacks/k8s-abc/sid-1/resources'
    assert params == {'nested_depth': 2, 'type': ['OS::Nova::Server'], 'name': ['kube-master'],
                      'with_detail': 'true'}


def test_list_resources_filters_again_when_the_server_ignores_filters():
    rows = [{'resource_name': 'kube-master', 'resource_type': 'OS::Nova::Server'},
            {'resource_name': 'kube_masters', 'resource_type': 'OS::Heat::ResourceGroup'},
            {'resource_name': 'api_lb', 'resource_type': 'OS::Octavia::LoadBalancer'}]
    conn = Conn(FakeResponse(200, {'resources': rows}))
    assert heat.list_stack_resources(conn, STACK, types=['OS::Nova::Server']) == rows[:1]
    assert heat.list_stack_resources(conn, STACK, names=['kube_masters', 'api_lb']) == rows[1:]
    assert conn.orchestration.calls[0][1] == {'type': ['OS::Nova::Server']}


@pytest.mark.parametrize('status,body,expected', [
    (409, {'errors': [{'title': 'Conflict', 'detail': 'Cluster is busy'}]}, 'Cluster is busy'),
    (400, {'explanation': 'bad', 'error': {'message': 'Invalid nested_depth', 'type': 'Invalid'}}, 'Invalid nested_depth'),
    (404, {'itemNotFound': {'message': 'Instance x could not be found.', 'code': 404}}, 'Instance x could not be found.'),
    (502, None, 'fake'),
])
def test_api_errors_carry_the_service_message_and_status(status, body, expected):
    conn = Conn(FakeResponse(status, body))
    with pytest.raises(rest.ApiError) as err:
        rest.api_get(conn.orchestration, '/x')
    assert err.value.status_code == status
    assert err.value.message == expected
    assert 'HTTP %d' % status in str(err.value)


def test_resource_ancestors_walk_up_by_stack_ids():
    cloud = FakeCloud()
    cluster = cloud.add_heat_cluster('h', 'h-aaaaaaaaaaaa', masters=1, workers=1)
    rows = cloud.resources[cluster['stack_id']]
    server_rows = [r for r in rows if r['resource_type'] == 'OS::Nova::Server']
    owners = heat.resource_owners(rows)
    assert [heat.resource_ancestors(r, owners) for r in server_rows] == [['0', 'kube_masters'], ['0', 'kube_minions']]
    # A row whose stack link loops back on itself ends the walk instead of spinning.
    loop = {'resource_name': 'x', 'physical_resource_id': 's1', 'links': [{'rel': 'stack', 'href': 'h/s/s1'}]}
    assert heat.resource_ancestors(loop, heat.resource_owners([loop])) == ['x']


def test_summarize_resource_splits_the_status():
    row = {'resource_name': 'kube-master', 'resource_type': 'OS::Nova::Server', 'physical_resource_id': 'srv-1',
           'resource_status': 'CREATE_IN_PROGRESS', 'parent_resource': '0',
           'links': [{'rel': 'self', 'href': 'h/stacks/m/mid/resources/kube-master'},
                     {'rel': 'stack', 'href': 'h/stacks/m/mid'}]}
    summary = heat.summarize_resource(row)
    assert (summary['action'], summary['state'], summary['stack_id'], summary['physical_id']) == (
        'CREATE', 'IN_PROGRESS', 'mid', 'srv-1')
    assert heat.summarize_resource({'physical_resource_id': ''})['physical_id'] is None


def test_find_stacks_lists_once_and_looks_up_only_what_the_list_lacks():
    cloud = FakeCloud()
    a = cloud.add_heat_cluster('a', 'a-aaaaaaaaaaaa')
    b = cloud.add_heat_cluster('b', 'b-bbbbbbbbbbbb')
    found = heat.find_stacks(cloud, [a['stack_id'], b['stack_id'], a['stack_id'], None])
    assert sorted(s['stack_name'] for s in found.values()) == ['a-aaaaaaaaaaaa', 'b-bbbbbbbbbbbb']
    assert cloud.calls[0][1:3] == ('/stacks', {'id': [a['stack_id'], b['stack_id']]})
    assert len(cloud.calls) == 1

    # A server that does not filter, and pages before reaching the stack: look it up by ID.
    cloud.route_orchestration_list = cloud.route_orchestration
    cloud.route_orchestration = lambda path, query, headers: (
        FakeResponse(200, {'stacks': []}) if path == '/stacks' else cloud.route_orchestration_list(path, query, headers))
    cloud.calls = []
    found = heat.find_stacks(cloud, [a['stack_id'], 'gone'])
    assert list(found) == [a['stack_id']]
    assert [c[1] for c in cloud.calls] == ['/stacks', '/stacks/%s' % a['stack_id'], '/stacks/gone']
    assert heat.find_stacks(cloud, []) == {}
