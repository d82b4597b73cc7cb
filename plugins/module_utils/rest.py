# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The collection's one way of sending a request to an OpenStack API.

Requests go through an openstacksdk connection's service adapters (keystoneauth),
so they reuse its token, catalog, region, interface and TLS settings. Reads are
retried by the shared retry policy (``retries.py``); error answers become
``ApiError`` with the service's own message; collections that link their next
page are read whole by ``paged``. Magnum is reached through ``magnum_api.py``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hpcops.coe.plugins.module_utils.retries import retry_call


class ApiError(Exception):
    """An OpenStack API answered with an error status."""

    def __init__(self, service, method, url, status, message):
        self.service = service
        self.url = url
        # Named like the client libraries' attribute, so shared error formatting finds it.
        self.status_code = status
        self.message = message
        super(ApiError, self).__init__(
            '%s %s %s failed with HTTP %s: %s' % (service, method, url, status, message))


def _error_message(response):
    """The human part of an OpenStack error body, whatever the service's format."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or '').strip()[:500]
    if isinstance(body, dict):
        # Magnum: {"errors": [{"title", "detail"}]}
        errors = body.get('errors')
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return errors[0].get('detail') or errors[0].get('title') or str(errors[0])
        # Heat: {"explanation", "error": {"message", "type"}}
        error = body.get('error')
        if isinstance(error, dict):
            return error.get('message') or body.get('explanation') or str(error)
        # Nova/Neutron: {"itemNotFound": {"message", "code"}} or {"NeutronError": {...}}
        for value in body.values():
            if isinstance(value, dict) and 'message' in value:
                return value['message']
    return str(body)[:500]


def api_get(adapter, url, params=None, headers=None, missing_ok=False, service=None):
    """GET ``url`` (relative to the adapter's endpoint, or absolute) and return the JSON body.

    Returns None on 404 when ``missing_ok``; raises ApiError on any other error status.
    A read is idempotent: transient errors (5xx, 429, a refused connection) are retried
    through the shared retry layer, within a minute.
    """
    def once():
        response = adapter.get(url, params=params, headers=headers, raise_exc=False)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise ApiError(service or getattr(adapter, 'service_type', 'openstack'), 'GET', url,
                           response.status_code, _error_message(response))
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()
    return retry_call(once, idempotent=True, deadline=60.0)


def paged(adapter, url, key, params=None, headers=None, service=None):
    """Every item of a collection that links its next page as ``<key>_links`` (Nova, Neutron, Glance).

    One GET per page; the next link carries the whole query. Stops at an empty page
    or a link already followed (a server that loops would otherwise never end).
    """
    items = []
    seen = set()
    while url:
        body = api_get(adapter, url, params=params, headers=headers, service=service)
        page = body.get(key) or []
        items.extend(page)
        url = None
        if page:
            for link in body.get('%s_links' % key) or []:
                if link.get('rel') == 'next' and link.get('href') not in seen:
                    url = link['href']
                    seen.add(url)
        params = None
    return items
