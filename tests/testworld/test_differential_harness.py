"""The differential check's own logic (testworld/realservices/differential.py), without the real
services: shapes, comparison, allowlist matching, and the whole sequence against the simulator."""

import pytest

from testworld.realservices import differential


def obs(status=200, body=None, location=False):
    return {'status': status, 'location': location, 'kind': 'json' if body is not None else 'empty',
            'shape': differential.shape(body) if body is not None else {},
            'values': differential.values(body) if body is not None else {}}


def test_shape_records_key_paths_types_and_list_elements():
    got = differential.shape({'a': [{'x': 1}, {'x': None, 'y': 'z'}], 'b': [], 'c': True})
    assert got == {'$': 'object', '$.a': 'array', '$.a[]': 'object', '$.a[].x': 'null|number', '$.a[].y': 'string',
                   '$.b': 'empty array', '$.c': 'bool'}


def test_compare_reports_status_location_body_and_keys():
    assert differential.compare(obs(200, {'a': 1}), obs(200, {'a': 2})) == []
    diffs = dict(differential.compare(obs(404, {'error': {'message': 'x'}}, location=True), obs(403, {'error': {}})))
    assert set(diffs) == {'status', 'location', 'key $.error.message'}
    assert dict(differential.compare(obs(204), obs(200, {})))['body'] == 'body: sim empty, real json'
    # Values are compared only where they tell one error or state from another.
    diffs = differential.compare(obs(404, {'error': {'type': 'EntityNotFound', 'message': 'a'}}),
                                 obs(404, {'error': {'type': 'HTTPNotFound', 'message': 'b'}}))
    assert diffs == [('value $.error.type', '$.error.type: sim "EntityNotFound", real "HTTPNotFound"')]
    # In list elements, which ones hold null is the list's data; a key null only on one side is not.
    assert differential.compare(obs(200, {'s': [{'t': None}, {'t': 'x'}]}), obs(200, {'s': [{'t': 'y'}]})) == []
    assert differential.compare(obs(200, {'s': [{'t': None}]}), obs(200, {'s': [{'t': 'y'}]})) != []
    assert differential.compare(obs(200, {'s': {'t': None}}), obs(200, {'s': {'t': 'y'}})) != []
    # A token's methods are a set to Keystone: their order is not a difference.
    assert differential.compare(obs(201, {'token': {'methods': ['token', 'password']}}),
                                obs(201, {'token': {'methods': ['password', 'token']}})) == []


def test_judge_allows_only_what_the_allowlist_names():
    step = differential.Step('s1', 'a step', None)
    sim, real = {'s1': obs(200, {'a': 1, 'b': {'c': 1}})}, {'s1': obs(200, {'b': {'c': 'x', 'd': 1}})}
    rows, stale = differential.judge([step], sim, real, {'s1': [{'id': 's1', 'differs': ['key $.b*'], 'reason': 'r'}]})
    assert rows[0]['verdict'] == 'unexplained' and rows[0]['unexplained'] == ['$.a: sim number, real absent']
    assert not stale
    allow = {'s1': [{'id': 's1', 'differs': ['key $.a', 'key $.b*'], 'reason': 'r'}],
             's2': [{'id': 's2', 'differs': 'status', 'reason': 'unused'}]}
    rows, stale = differential.judge([step], sim, real, allow)
    assert rows[0]['verdict'] == 'allowed' and rows[0]['reasons'] == ['r']
    assert stale == ['s2']
    assert differential.summarize(rows, stale) == {'compared': 1, 'identical': 0, 'allowed': 1, 'unexplained': 0,
                                                   'stale_allowlist_entries': 1}


def test_checked_in_allowlist_names_existing_steps_with_reasons():
    ids = {s.id for s in differential.steps()}
    assert len(ids) == len(differential.steps()) >= 80
    allow = differential.load_allowlist()
    assert set(allow) <= ids
    for entries in allow.values():
        for entry in entries:
            assert len(entry['reason']) > 40, entry


@pytest.mark.parametrize('bad', [{'id': 'x', 'differs': 'status'}, {'differs': 'status', 'reason': 'r'}])
def test_allowlist_entries_need_id_differs_and_reason(tmp_path, bad):
    path = tmp_path / 'allow.yml'
    path.write_text(differential.yaml.safe_dump([bad]))
    with pytest.raises(ValueError):
        differential.load_allowlist(str(path))


def test_whole_sequence_on_two_simulators_is_identical(sim_cloud_factory):
    """The sequence runs to its end on the simulator (stack create, update, delete included)
    and observes the same things on two of them: what the check reports is the service's."""
    a, b = sim_cloud_factory(), sim_cloud_factory()
    sequence = differential.steps()
    first = differential.run_side(differential.Side('sim', a.clouds_yaml, a.cloud_name), sequence)
    second = differential.run_side(differential.Side('sim', b.clouds_yaml, b.cloud_name), sequence)
    rows, dummy = differential.judge(sequence, first, second, {})
    assert [r['id'] for r in rows if r['verdict'] != 'identical'] == []
    statuses = {s.id: first[s.id]['status'] for s in sequence}
    assert statuses['heat-create'] == 201 and statuses['heat-create-duplicate'] == 409
    assert statuses['heat-update-patch'] == 202 and statuses['heat-delete'] == 204
    assert statuses['heat-deleted-show'] == 200 and statuses['heat-delete-again'] == 404
    assert 500 not in statuses.values()
