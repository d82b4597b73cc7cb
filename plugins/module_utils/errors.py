# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an OpenStack client library's exception says: its HTTP status, request ID, and one readable line.

Works on the exceptions of every library the collection reaches OpenStack with
(keystoneauth, openstacksdk, python-magnumclient, and the REST layer's ApiError).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from keystoneauth1 import exceptions as ksa_exc
    HAS_KEYSTONEAUTH = True
except ImportError:
    ksa_exc = None
    HAS_KEYSTONEAUTH = False


def http_status(exc):
    """The HTTP status carried by any client library's exception, or None."""
    for attr in ('http_status', 'status_code', 'code'):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, 'response', None)
    value = getattr(response, 'status_code', None)
    if isinstance(value, int):
        return value
    if HAS_KEYSTONEAUTH and isinstance(exc, ksa_exc.DiscoveryFailure):
        # Keystone's version discovery failing on an HTTP error says so only in its message.
        found = re.search(r'\(HTTP (\d{3})\)', str(exc))
        if found:
            return int(found.group(1))
    return None


def request_id(exc):
    rid = getattr(exc, 'request_id', None)
    if rid:
        return rid
    headers = getattr(getattr(exc, 'response', None), 'headers', None) or {}
    try:
        return headers.get('x-openstack-request-id') or headers.get('X-OpenStack-Request-ID')
    except AttributeError:
        return None


def _clean(text):
    return ' '.join(str(text).split()) if text else ''


def describe_error(exc):
    """A one-line explanation of a client exception (no 'Cannot ...' prefix)."""
    status = http_status(exc)
    if HAS_KEYSTONEAUTH and isinstance(exc, ksa_exc.EndpointNotFound):
        return 'the service is not in the cloud\'s catalog for this region and interface (%s)' % _clean(exc)
    if HAS_KEYSTONEAUTH and isinstance(exc, (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout)):
        return 'cannot connect to the API endpoint: %s' % _clean(exc)
    if HAS_KEYSTONEAUTH and isinstance(exc, ksa_exc.Unauthorized):
        return 'authentication failed (check cloud/auth): %s' % _clean(exc)
    if isinstance(exc, RuntimeError) and 'endpoint' in str(exc).lower():
        # magnumclient turns any failure to find its endpoint (Keystone's included) into RuntimeError.
        return 'cannot find the container-infra (Magnum) endpoint: %s' % _clean(exc)

    title = _clean(getattr(exc, 'message', None))
    details = getattr(exc, 'details', None)
    if isinstance(details, (dict, list)):
        details = str(details)
    details = _clean(details)
    if details.startswith('{') and title:
        # magnumclient puts the raw body in details when it found no detail field.
        details = ''
    if title and details and (details in title or title in details):
        text = details if len(details) >= len(title) else title
    elif title and details:
        text = '%s: %s' % (title, details)
    else:
        text = title or details or _clean(exc) or exc.__class__.__name__
    # magnumclient appends "(HTTP 409)" to str(exc); keep one status marker.
    text = text.replace(' (HTTP %s)' % status, '') if status else text
    extra = []
    if status:
        extra.append('HTTP %d' % status)
    rid = request_id(exc)
    if rid:
        extra.append('request %s' % rid)
    return '%s (%s)' % (text, ', '.join(extra)) if extra else text


def format_error(exc, op, obj=None):
    """'Cannot <op> <obj>: <what the service said> (HTTP n, request id)'."""
    target = ' %s' % obj if obj else ''
    return 'Cannot %s%s: %s' % (op, target, describe_error(exc))
