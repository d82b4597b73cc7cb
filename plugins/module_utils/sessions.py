# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection's keystoneauth sessions treat a refused token.

Shared by the modules (through CoeOpenStackModule) and the inventory plugin:
every client they use (openstacksdk and python-magnumclient)
sends its requests through the one session of the SDK connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

# Logins a request may make after a service refuses its token.
TOKEN_REFUSED_RETRIES = 4

_MARK = '_hpcops_retries_refused_tokens'


def retry_refused_tokens(session, retries=TOKEN_REFUSED_RETRIES):
    """Make `session` log in again, once for all threads, when a service refuses a token.

    keystoneauth by itself invalidates the token on a service's 401, logs in and
    re-sends once. Keystone revokes by time (a password change, a role removal,
    a token flush), so the token it has just minted can fall under the same
    revocation and the re-sent request is refused again. The service applied
    neither request, so sending it once more with yet another token is safe for
    any method, POST included.

    The modules send from many threads over one session. When a revocation
    catches them all, one login is enough: a thread whose refused request left
    before another thread's login re-sends with that newer token instead of
    dropping it, so a revocation costs one login rather than one per thread.

    Only requests that carry a token and ask for the response instead of an
    exception (as the SDK and the Magnum client both do) are handled here; the
    others keep keystoneauth's single re-login. Keystone refusing the
    credentials themselves raises from the login and is never retried:
    repeated failed logins can lock an account.
    """
    send = getattr(session, 'request', None)
    if not callable(send) or getattr(session, _MARK, False):
        return session
    lock = threading.Lock()
    # How many times a refusal made this session drop its token.
    renewals = [0]

    def request(url, method, **kwargs):
        auth = kwargs.get('auth') or getattr(session, 'auth', None)
        retryable = (auth is not None and kwargs.get('authenticated') is not False
                     and kwargs.get('raise_exc') is False)
        if not retryable:
            return send(url, method, **kwargs)
        kwargs = dict(kwargs, allow_reauth=False)
        for attempt in range(retries + 1):
            with lock:
                seen = renewals[0]
            resp = send(url, method, **kwargs)
            if getattr(resp, 'status_code', None) != 401 or attempt == retries:
                return resp
            with lock:
                # Drop the token only if no other thread has renewed it since this request
                # left. A plugin with nothing to drop would send the same refused credentials.
                if renewals[0] == seen:
                    if not auth.invalidate():
                        return resp
                    renewals[0] += 1
        return resp

    # An instance attribute: the SDK's adapters and the clients call session.request.
    session.request = request
    setattr(session, _MARK, True)
    return session


def widen_connection_pool(session, size):
    """Let `size` threads keep their connections open on the keystoneauth `session`.

    requests keeps 10 connections per host by default; more worker threads than
    that would open and drop a connection per call. Each mounted adapter is
    replaced by a new one of the same class built with the larger pool, through
    the adapters' public constructor (keystoneauth mounts its TCP keep-alive
    adapter, which is kept that way). A session that cannot be widened stays as
    it is: a small pool is slower, not wrong.
    """
    http = getattr(session, 'session', None)
    adapters = getattr(http, 'adapters', None)
    if not adapters or size <= 10:
        return False
    widened = False
    for prefix, adapter in list(adapters.items()):
        try:
            http.mount(prefix, type(adapter)(pool_maxsize=size, max_retries=adapter.max_retries))
        except (TypeError, AttributeError, ValueError):
            continue
        widened = True
    return widened
