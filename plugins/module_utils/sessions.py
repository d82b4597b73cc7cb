# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection's keystoneauth sessions treat a refused token.

Shared by the modules (through CoeOpenStackModule) and the inventory plugin:
every client they use (openstacksdk and python-magnumclient)
sends its requests through the one session of the SDK connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Logins after the one keystoneauth makes by itself, per request.
TOKEN_REFUSED_RETRIES = 2

_MARK = '_hpcops_retries_refused_tokens'


def retry_refused_tokens(session, retries=TOKEN_REFUSED_RETRIES):
    """Make `session` log in again when a service refuses a token it has just renewed.

    On a service's 401, keystoneauth invalidates the token, logs in and re-sends
    once. Keystone revokes by time (a password change, a role removal, a token
    flush), so the token it has just minted can fall under the same revocation
    and the re-sent request is refused again. The service applied neither
    request, so sending it once more with yet another token is safe for any
    method, POST included.

    Only requests that carry a token and ask for the response instead of an
    exception (as the SDK and the Magnum client both do) are retried.
    Keystone refusing the credentials themselves raises from the login and is
    never retried: repeated failed logins can lock an account.
    """
    send = getattr(session, 'request', None)
    if not callable(send) or getattr(session, _MARK, False):
        return session

    def request(url, method, **kwargs):
        auth = kwargs.get('auth') or getattr(session, 'auth', None)
        retryable = (auth is not None and kwargs.get('authenticated') is not False
                     and kwargs.get('raise_exc') is False)
        resp = send(url, method, **kwargs)
        for dummy in range(retries if retryable else 0):
            if getattr(resp, 'status_code', None) != 401:
                break
            # Drop the refused token first: one login and one request per retry. A plugin
            # with nothing to drop would send the same refused credentials again.
            if not auth.invalidate():
                break
            resp = send(url, method, **dict(kwargs, allow_reauth=False))
        return resp

    # An instance attribute: the SDK's adapters and the clients call session.request.
    session.request = request
    setattr(session, _MARK, True)
    return session
