# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import threading
import time
import types

import pytest

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from magnumclient import exceptions as magnum_exc
from openstack import exceptions as sdk_exc

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils import openstack as osu
from ansible_collections.hpcops.coe.plugins.module_utils import retries
from ansible_collections.hpcops.coe.plugins.module_utils.magnum_api import MagnumApi
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import Clock


# ---------------------------------------------------------------- errors

def test_http_status_of_each_library():
    assert osu.http_status(magnum_exc.Conflict('busy')) == 409
    assert osu.http_status(ksa_exc.ServiceUnavailable()) == 503
    sdk_error = sdk_exc.HttpException(message='x')
    sdk_error.status_code = 404
    assert osu.http_status(sdk_error) == 404
    assert osu.http_status(ValueError('x')) is None


def test_format_error_names_operation_object_status_and_request():
    exc = magnum_exc.Conflict(message='Conflict', details='Cluster hpc is in UPDATE_IN_PROGRESS status',
                              request_id='req-1')
    text = osu.format_error(exc, 'resize', "cluster 'hpc'")
    assert text == ("Cannot resize cluster 'hpc': Conflict: Cluster hpc is in UPDATE_IN_PROGRESS status "
                    "(HTTP 409, request req-1)")


def test_format_error_merges_duplicate_title_and_detail():
    exc = magnum_exc.BadRequest(message='Quota exceeded', details='Quota exceeded for clusters.')
    assert osu.describe_error(exc) == 'Quota exceeded for clusters. (HTTP 400)'


def test_format_error_for_missing_catalog_entry_and_connection():
    assert 'not in the cloud' in osu.describe_error(ksa_exc.EndpointNotFound('container-infra'))
    assert 'cannot connect' in osu.describe_error(ksa_exc.ConnectFailure('refused'))
    assert 'Magnum' in osu.describe_error(RuntimeError('Could not find requested endpoint in Service Catalog.'))


@pytest.mark.parametrize('exc, idempotent, transient', [
    (magnum_exc.Conflict('busy'), False, True),
    (magnum_exc.HTTPClientError(http_status=429), False, True),
    (magnum_exc.InternalServerError('x'), True, True),
    (magnum_exc.InternalServerError('x'), False, False),
    (magnum_exc.ServiceUnavailable('x'), True, True),
    (magnum_exc.BadRequest('x'), True, False),
    (magnum_exc.NotFound('x'), True, False),
    (ksa_exc.ConnectFailure('x'), False, True),
    (ksa_exc.ConnectionError('reset'), False, False),
    (ksa_exc.ConnectionError('reset'), True, True),
    (ValueError('x'), True, False),
    # Keystone's version discovery names the HTTP status only in its message.
    (ksa_exc.DiscoveryFailure('Could not find versioned identity endpoints. Unavailable (HTTP 503)'), True, True),
    (ksa_exc.DiscoveryFailure('Could not find versioned identity endpoints. Unavailable (HTTP 503)'), False, False),
    (ksa_exc.DiscoveryFailure('Could not find versioned identity endpoints. Not Found (HTTP 404)'), True, False),
    (magnum_exc.Conflict(message='Conflict', details='A node group with name gpu already exists in the cluster hpc.'),
     True, False),
    (magnum_exc.Conflict(message='max_node_count for gpu is invalid (node_count (5) should be less or equal to '
                                 'max_node_count (3))'), True, False),
    (magnum_exc.Conflict('Multiple clusters exist with same name. Please use the cluster uuid instead.'),
     True, False),
    (magnum_exc.Conflict(message='Cluster API address is not available yet'), True, True),
])
def test_is_transient(exc, idempotent, transient):
    assert osu.is_transient(exc, idempotent) is transient


def test_busy_refusal():
    assert osu.is_busy_refusal(magnum_exc.BadRequest(
        message='Resizing a cluster when status is "UPDATE_IN_PROGRESS" is not supported.'))
    assert not osu.is_busy_refusal(magnum_exc.BadRequest(message='Invalid input for field node_count'))
    assert not osu.is_busy_refusal(magnum_exc.Conflict(message='when status is x is not supported'))


# ---------------------------------------------------------------- retries

def flaky(*outcomes):
    calls = []

    def fn():
        calls.append(1)
        out = outcomes[len(calls) - 1]
        if isinstance(out, Exception):
            raise out
        return out
    fn.calls = calls
    return fn


def test_retry_conflicts_then_succeed_with_growing_jittered_delays():
    clock = Clock()
    fn = flaky(magnum_exc.Conflict('a'), magnum_exc.Conflict('b'), magnum_exc.Conflict('c'), 'ok')
    assert osu.retry_call(fn, sleep=clock.sleep, clock=clock, rand=lambda: 0.5, base_delay=1) == 'ok'
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_jitter_stays_within_half_to_full_ceiling():
    for r in (0.0, 0.999):
        clock = Clock()
        fn = flaky(magnum_exc.Conflict('a'), magnum_exc.Conflict('b'), 'ok')
        osu.retry_call(fn, sleep=clock.sleep, clock=clock, rand=lambda: r, base_delay=2)
        assert 1.0 <= clock.sleeps[0] <= 2.0 and 2.0 <= clock.sleeps[1] <= 4.0


def test_no_retry_on_client_errors():
    fn = flaky(magnum_exc.BadRequest('bad'), 'ok')
    with pytest.raises(magnum_exc.BadRequest):
        osu.retry_call(fn, sleep=lambda s: None)
    assert len(fn.calls) == 1


def test_server_errors_retry_only_idempotent_calls():
    fn = flaky(magnum_exc.ServiceUnavailable('x'), 'ok')
    assert osu.retry_call(fn, idempotent=True, sleep=lambda s: None) == 'ok'
    fn = flaky(magnum_exc.ServiceUnavailable('x'), 'ok')
    with pytest.raises(magnum_exc.ServiceUnavailable):
        osu.retry_call(fn, idempotent=False, sleep=lambda s: None)


def test_attempts_bound():
    fn = flaky(*[magnum_exc.Conflict('x')] * 10)
    with pytest.raises(magnum_exc.Conflict):
        osu.retry_call(fn, attempts=4, sleep=lambda s: None, deadline=1e9)
    assert len(fn.calls) == 4


def test_deadline_bound():
    clock = Clock()
    fn = flaky(*[magnum_exc.Conflict('x')] * 50)
    with pytest.raises(magnum_exc.Conflict):
        osu.retry_call(fn, attempts=50, deadline=10, max_delay=4, sleep=clock.sleep, clock=clock)
    assert clock.now <= 10


def test_retry_after_header_is_honoured():
    exc = magnum_exc.ServiceUnavailable('x')
    exc.response = types.SimpleNamespace(headers={'Retry-After': '7'}, status_code=503)
    clock = Clock()
    osu.retry_call(flaky(exc, 'ok'), sleep=clock.sleep, clock=clock, rand=lambda: 0)
    assert clock.sleeps == [7.0]


# ---------------------------------------------------------------- the module base against a real HTTP server

class FakeMagnumAPI(BaseHTTPRequestHandler):
    """Serves /v1/clusters with Magnum's microversion rules (max configurable)."""

    max_version = (1, 8)
    seen = []

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('OpenStack-API-Minimum-Version', 'container-infra 1.1')
        self.send_header('OpenStack-API-Maximum-Version', 'container-infra %d.%d' % self.max_version)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        header = self.headers.get('OpenStack-API-Version', '')
        type(self).seen.append((self.path, header))
        wanted = mg.version_tuple(header) if header else (1, 1)
        if wanted > self.max_version:
            return self._send(406, {'errors': [{'status': 406, 'code': 'client', 'title': 'Not Acceptable',
                                                'detail': 'Version %s was requested but the maximum is %d.%d'
                                                % (header, self.max_version[0], self.max_version[1])}]})
        if self.path.rstrip('/').endswith('/v1'):
            return self._send(200, {'id': 'v1'})
        if '/clusters' in self.path:
            return self._send(200, {'clusters': [{'uuid': 'u1', 'name': 'a'}]})
        return self._send(404, {'errors': [{'title': 'Not Found', 'detail': 'no such path'}]})


@pytest.fixture
def api():
    FakeMagnumAPI.seen = []
    FakeMagnumAPI.max_version = (1, 8)
    server = ThreadingHTTPServer(('127.0.0.1', 0), FakeMagnumAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d/v1' % server.server_address[1]
    server.shutdown()
    server.server_close()


class Failed(Exception):
    pass


def bare_module(endpoint, timeout=60):
    """A CoeOpenStackModule without AnsibleModule/SDK set-up, on a plain keystoneauth session."""
    m = object.__new__(osu.CoeOpenStackModule)
    config = types.SimpleNamespace(get_region_name=lambda s: None, get_interface=lambda s: 'public',
                                   get_endpoint=lambda s: endpoint)
    m.conn = types.SimpleNamespace(session=ksa_session.Session(), config=config)
    m.params = {'timeout': timeout, 'region_name': None, 'interface': 'public'}
    m._started = time.monotonic()
    m.magnum_api = MagnumApi(m.conn, m.magnum_api_version)
    m._resolved, m._templates, m.progress_logs = {}, {}, []

    def fail_json(msg=None, **kwargs):
        raise Failed(msg)
    m.fail_json = fail_json
    m.debug = m.log = lambda msg: None
    return m


def test_client_pins_microversion_and_falls_back_on_406(api):
    m = bare_module(api)
    clusters = m.magnum_call('list', 'clusters', lambda c: c.clusters.list())
    assert [c.uuid for c in clusters] == ['u1']
    headers = [h for p, h in FakeMagnumAPI.seen]
    assert headers == ['container-infra 1.10', 'container-infra 1.8']
    assert m.magnum_api.server_max == (1, 8)
    # Later calls go straight to the served version.
    m.magnum_call('list', 'clusters', lambda c: c.clusters.list())
    assert FakeMagnumAPI.seen[-1][1] == 'container-infra 1.8'


def test_require_version_fails_before_change_with_served_range(api):
    FakeMagnumAPI.max_version = (1, 6)
    m = bare_module(api)
    with pytest.raises(Failed) as err:
        m.require_magnum_version('1.7', 'resize', "cluster 'hpc'")
    assert str(err.value) == ("Cannot resize cluster 'hpc': this needs Magnum API microversion 1.7 or later, and "
                              "this cloud's Magnum serves 1.1 to 1.6. Nothing was changed.")
    # The one probe request learnt the range.
    assert len(FakeMagnumAPI.seen) == 1


def test_require_version_lowers_the_pin_when_enough(api):
    m = bare_module(api)
    m.require_magnum_version('1.7', 'resize')
    assert m.magnum_api.version == (1, 8) and m.magnum.http_client.api_version == '1.8'


def test_version_too_old_for_operation_on_406(api):
    FakeMagnumAPI.max_version = (1, 6)
    m = bare_module(api)
    m.magnum_api.server_max = (1, 9)  # stale knowledge: the 406 corrects it
    with pytest.raises(Failed) as err:
        m.magnum_call('resize', "cluster 'hpc'", lambda c: c.clusters.list(), min_version='1.7')
    assert 'needs 1.7 or later' in str(err.value) and '1.1 to 1.6' in str(err.value)


def test_not_found_is_formatted(api):
    m = bare_module(api)
    with pytest.raises(Failed) as err:
        m.magnum_call('read', "nodegroup 'x'", lambda c: c.http_client.json_request('GET', '/v1/nope'))
    assert str(err.value).startswith("Cannot read nodegroup 'x': ") and 'HTTP 404' in str(err.value)


def test_unreachable_endpoint_is_explained(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(osu, 'time', types.SimpleNamespace(monotonic=clock, sleep=clock.sleep))
    monkeypatch.setattr(retries, 'time', types.SimpleNamespace(monotonic=clock, sleep=clock.sleep))
    m = bare_module('http://127.0.0.1:9/v1', timeout=1)
    with pytest.raises(Failed) as err:
        m.magnum_call('list', 'clusters', lambda c: c.clusters.list())
    assert 'cannot connect' in str(err.value)


def test_on_error_can_absorb_a_404(api):
    m = bare_module(api)
    assert m.magnum_call('read', 'x', lambda c: c.http_client.json_request('GET', '/v1/nope'),
                         on_error=lambda e: 'absent' if osu.http_status(e) == 404 else osu.RAISE) == 'absent'


def test_wait_until_uses_remaining_timeout(monkeypatch):
    m = bare_module('http://unused/v1', timeout=30)
    clock = Clock()
    monkeypatch.setattr(osu, 'time', types.SimpleNamespace(monotonic=clock, sleep=clock.sleep))
    from ansible_collections.hpcops.coe.plugins.module_utils import waiting
    monkeypatch.setattr(waiting, 'time', types.SimpleNamespace(monotonic=clock, sleep=clock.sleep))
    m._started = 0.0
    clock.now = 20.0
    last, err = m.wait_until('x', lambda: 'IN', lambda v: False, None, lambda v: v)
    assert isinstance(err, osu.WaitTimeout) and clock.now == pytest.approx(30.0)
    assert m.waited()[0]['transitions'] == [{'status': 'IN', 'elapsed': 0.0}]


# ---------------------------------------------------------------- resolution

class Service(object):
    def __init__(self, rows, dup=False):
        self.rows = rows
        self.dup = dup

    def find_flavor(self, value, ignore_missing=True):
        if self.dup:
            raise sdk_exc.DuplicateResource('dup')
        return next((r for r in self.rows if value in (r.id, r.name)), None)

    def flavors(self):
        return self.rows


def test_resolve_lists_valid_choices_and_caches():
    m = bare_module('http://unused/v1')
    rows = [types.SimpleNamespace(id='f1', name='m1.small'), types.SimpleNamespace(id='f2', name='bm.gpu')]
    m.conn.compute = Service(rows)
    ref = m.resolve_flavor('bm.gpu', 'flavor')
    assert ref['id'] == 'f2' and m.spellings(ref) == ['bm.gpu', 'f2']
    assert m.resolve_flavor('bm.gpu', 'flavor') is ref
    with pytest.raises(Failed) as err:
        m.resolve_flavor('nope', 'master_flavor')
    assert str(err.value) == ("flavor 'nope' given in master_flavor does not exist (as a name or an ID). "
                              "Valid flavors: bm.gpu, m1.small")


def test_resolve_refuses_duplicate_names():
    m = bare_module('http://unused/v1')
    m.conn.compute = Service([], dup=True)
    with pytest.raises(Failed) as err:
        m.resolve_flavor('gpu', 'flavor')
    assert 'ambiguous' in str(err.value) and 'use the ID' in str(err.value)


def _http(status):
    return sdk_exc.HttpException(message='HTTP %d' % status, http_status=status)


def test_unsure_call_takes_what_landed_instead_of_repeating_it():
    clock = Clock()
    fn = flaky(_http(502), 'made twice')
    looked = []
    got = osu.retry_unsure_call(fn, lambda: looked.append(1) or 'it landed', sleep=clock.sleep, clock=clock)
    assert got == 'it landed' and len(fn.calls) == 1 and looked == [1]


def test_unsure_call_retries_when_nothing_landed_and_rereads_after_each_unsure_answer():
    clock = Clock()
    fn = flaky(_http(503), _http(504), 'ok')
    looked = []
    assert osu.retry_unsure_call(fn, lambda: looked.append(1), sleep=clock.sleep, clock=clock) == 'ok'
    assert len(fn.calls) == 3 and len(looked) == 2


def test_unsure_call_gives_up_on_repeated_500s_and_client_errors():
    clock = Clock()
    fn = flaky(_http(500), _http(500), _http(500), 'never')
    with pytest.raises(sdk_exc.HttpException):
        osu.retry_unsure_call(fn, lambda: None, sleep=clock.sleep, clock=clock, unsure_500s=2)
    assert len(fn.calls) == 3
    fn = flaky(magnum_exc.BadRequest('bad'), 'ok')
    with pytest.raises(magnum_exc.BadRequest):
        osu.retry_unsure_call(fn, lambda: 'x', sleep=clock.sleep, clock=clock)
    assert len(fn.calls) == 1


def test_unsure_call_retries_a_failing_check_like_a_read():
    clock = Clock()
    fn = flaky(_http(503), 'ok')
    checks = flaky(_http(503), None)
    assert osu.retry_unsure_call(fn, checks, sleep=clock.sleep, clock=clock) == 'ok'
    assert len(checks.calls) == 2 and len(fn.calls) == 2
