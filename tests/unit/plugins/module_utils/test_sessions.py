# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import plugin as ksa_plugin
from keystoneauth1 import session as ksa_session

from ansible_collections.hpcops.coe.plugins.module_utils.sessions import (TOKEN_REFUSED_RETRIES, retry_refused_tokens,
                                                                          widen_connection_pool)


class Service(BaseHTTPRequestHandler):
    """Refuses the tokens minted before `accept_from` (a revocation that keeps catching fresh ones)."""

    accept_from = 0
    seen = []

    def _answer(self):
        token = int(self.headers.get('X-Auth-Token', '0'))
        self.seen.append((self.command, token))
        code = 200 if token >= type(self).accept_from else 401
        body = b'{}'
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


class CountingLogin(ksa_plugin.BaseAuthPlugin):
    """Each login mints the next token number; wrong credentials refuse every login."""

    def __init__(self, wrong=False):
        super().__init__()
        self.logins = 0
        self.token = None
        self.wrong = wrong

        self.lock = threading.Lock()

    def get_token(self, session, **kwargs):
        with self.lock:
            return self._login_if_needed()

    def _login_if_needed(self):
        if self.token is None:
            self.logins += 1
            if self.wrong:
                raise ksa_exc.Unauthorized('The request you have made requires authentication.')
            self.token = str(self.logins)
        return self.token

    def invalidate(self):
        self.token = None
        return True


@pytest.fixture
def service():
    Service.seen = []
    server = ThreadingHTTPServer(('127.0.0.1', 0), Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d/v1/clusters' % server.server_address[1]
    server.shutdown()
    server.server_close()


def session_with(auth, patched=True):
    session = ksa_session.Session(auth=auth)
    return retry_refused_tokens(session) if patched else session


def test_plain_keystoneauth_gives_up_after_one_fresh_token(service):
    # Tokens 1 and 2 are revoked: keystoneauth's own single re-login is not enough.
    Service.accept_from = 3
    auth = CountingLogin()
    resp = session_with(auth, patched=False).request(service, 'GET', raise_exc=False)
    assert resp.status_code == 401 and auth.logins == 2


def test_a_fresh_token_caught_by_the_revocation_is_renewed_again(service):
    Service.accept_from = 3
    auth = CountingLogin()
    resp = session_with(auth).request(service, 'POST', json={'name': 'k8s'}, raise_exc=False)
    assert resp.status_code == 200
    assert auth.logins == 3
    # The POST reached the service three times: refused twice, accepted once.
    assert Service.seen == [('POST', 1), ('POST', 2), ('POST', 3)]


def test_a_service_refusing_every_token_is_given_up_on(service):
    Service.accept_from = 10 ** 6
    auth = CountingLogin()
    resp = session_with(auth).request(service, 'GET', raise_exc=False)
    assert resp.status_code == 401
    # The first login, then one per refusal up to the bound, each with its one re-sent request.
    assert auth.logins == 1 + TOKEN_REFUSED_RETRIES
    assert [token for dummy, token in Service.seen] == list(range(1, 2 + TOKEN_REFUSED_RETRIES))


def test_one_revocation_seen_by_many_threads_costs_one_login(service):
    # Token 1 is revoked while sixteen threads use it: they share one renewal.
    Service.accept_from = 2
    auth = CountingLogin()
    session = session_with(auth)
    auth.get_token(session)
    barrier = threading.Barrier(16)
    codes = []

    def call():
        barrier.wait()
        codes.append(session.request(service, 'GET', raise_exc=False).status_code)

    threads = [threading.Thread(target=call) for dummy in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 16
    # Some threads may have been refused after the renewal began; never one login per thread.
    assert auth.logins == 2
    assert sorted(token for dummy, token in Service.seen if token == 2) == [2] * 16


def test_wrong_credentials_log_in_once(service):
    Service.accept_from = 0
    auth = CountingLogin(wrong=True)
    with pytest.raises(ksa_exc.Unauthorized):
        session_with(auth).request(service, 'GET', raise_exc=False)
    assert auth.logins == 1 and Service.seen == []


def test_requests_raising_or_unauthenticated_are_left_alone(service):
    Service.accept_from = 10 ** 6
    auth = CountingLogin()
    with pytest.raises(ksa_exc.Unauthorized):
        session_with(auth).request(service, 'GET')
    assert auth.logins == 2
    Service.seen = []
    resp = session_with(CountingLogin()).request(service, 'GET', authenticated=False, raise_exc=False)
    assert resp.status_code == 401 and len(Service.seen) == 1


def test_a_session_without_auth_is_sent_once(service):
    Service.accept_from = 10 ** 6
    resp = session_with(None).request(service, 'GET', raise_exc=False)
    assert resp.status_code == 401 and len(Service.seen) == 1


def test_patching_twice_wraps_once():
    session = ksa_session.Session()
    first = retry_refused_tokens(session).request
    assert retry_refused_tokens(session).request is first
    assert retry_refused_tokens(None) is None


def test_the_connection_pool_is_widened_for_the_threads_keeping_keepalive_and_retries():
    session = ksa_session.Session()
    before = dict(session.session.adapters)
    assert widen_connection_pool(session, 32)
    for prefix, adapter in session.session.adapters.items():
        assert type(adapter) is type(before[prefix])
        assert adapter.max_retries.total == before[prefix].max_retries.total
        # requests' public pool manager holds the size each new connection pool gets.
        assert adapter.poolmanager.connection_pool_kw['maxsize'] == 32


def test_a_pool_already_large_enough_or_no_session_is_left_alone():
    session = ksa_session.Session()
    before = dict(session.session.adapters)
    assert not widen_connection_pool(session, 8)
    assert session.session.adapters == before
    assert not widen_connection_pool(None, 32)
