# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Heat stacks, outputs and resources, read through the REST layer (``rest.py``).

openstacksdk's orchestration proxy drops ``nested_depth`` when it lists
resources, and the servers of a Heat-driver Magnum cluster sit two levels
down (ResourceGroup -> member stack -> OS::Nova::Server). The requests go
through an openstacksdk connection's service adapter, so they reuse its
token, catalog and TLS settings, and they need no Heat client library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import quote

from ansible_collections.hpcops.coe.plugins.module_utils.rest import api_get


def _orchestration(conn):
    return conn.orchestration


def stack_path(stack):
    """The canonical URL path of a stack: Heat redirects every other form to it."""
    return '/stacks/%s/%s' % (quote(stack['stack_name'], safe=''), quote(stack['id'], safe=''))


def get_stack(conn, name_or_id, resolve_outputs=True):
    """The stack (dict as Heat returns it), or None when there is no such stack.

    Heat answers ``/stacks/<name or id>`` with a redirect to ``/stacks/<name>/<id>``;
    the HTTP layer follows it.
    """
    params = None if resolve_outputs else {'resolve_outputs': 'false'}
    body = api_get(_orchestration(conn), '/stacks/%s' % quote(name_or_id, safe=''),
                   params=params, missing_ok=True, service='orchestration')
    if body is None:
        return None
    return body.get('stack', body)


def find_stacks(conn, stack_ids):
    """{stack id: stack (list view: name, status, no outputs)} for top-level stacks, in one request.

    Heat's stack list filters by ``id``; that costs one request for any number
    of stacks where a look-up by ID costs two (redirect, then the stack) each.
    Stacks the list does not return (nested ones, or a server ignoring the
    filter and paging) are looked up one by one.
    """
    wanted = [sid for sid in dict.fromkeys(stack_ids) if sid]
    if not wanted:
        return {}
    body = api_get(_orchestration(conn), '/stacks', params={'id': wanted}, service='orchestration')
    found = dict((s.get('id'), s) for s in body.get('stacks') or [] if s.get('id') in wanted)
    for sid in wanted:
        if sid not in found:
            stack = get_stack(conn, sid, resolve_outputs=False)
            if stack is not None:
                found[sid] = stack
    return found


def stack_outputs(stack):
    """Outputs as {key: value}; an output Heat could not resolve maps to None."""
    outputs = {}
    for output in stack.get('outputs') or []:
        key = output.get('output_key')
        if key is not None:
            outputs[key] = None if output.get('output_error') else output.get('output_value')
    return outputs


def output_errors(stack):
    """{key: error} for the outputs Heat failed to resolve."""
    return dict((o['output_key'], o['output_error'])
                for o in stack.get('outputs') or [] if o.get('output_error'))


def list_stack_resources(conn, stack, nested_depth=0, types=None, names=None, with_detail=False):
    """The stack's resources, ``nested_depth`` levels into nested stacks.

    ``types`` and ``names`` are exact matches; they are sent as Heat's filters
    (smaller answers) and applied again here, so a server that ignores a filter
    still yields the same rows.
    """
    params = {}
    if nested_depth:
        params['nested_depth'] = int(nested_depth)
    if types:
        params['type'] = list(types)
    if names:
        params['name'] = list(names)
    if with_detail:
        params['with_detail'] = 'true'
    body = api_get(_orchestration(conn), '%s/resources' % stack_path(stack),
                   params=params or None, service='orchestration')
    rows = body.get('resources') or []
    if types:
        wanted_types = set(types)
        rows = [r for r in rows if r.get('resource_type') in wanted_types]
    if names:
        wanted_names = set(names)
        rows = [r for r in rows if r.get('resource_name') in wanted_names]
    return rows


def resource_stack_id(row):
    """ID of the (possibly nested) stack a resource row belongs to, from its 'stack' link."""
    for link in row.get('links') or []:
        if link.get('rel') == 'stack':
            return link.get('href', '').rstrip('/').rsplit('/', 1)[-1] or None
    return None


def resource_owners(rows):
    """{stack id: the row of the resource that owns that nested stack}, for ``resource_ancestors``."""
    return dict((r.get('physical_resource_id'), r) for r in rows if r.get('physical_resource_id'))


def resource_ancestors(row, owners):
    """Names of the resources that own ``row``'s stack, innermost first.

    A row of a nested stack names its parent only by the owning resource's name
    (``parent_resource``, e.g. ``0`` for a ResourceGroup member), which repeats
    across groups; the owning resource is found instead by matching this row's
    stack ID with the parent row's physical_resource_id (``owners``, made by
    ``resource_owners`` once for all rows of a listing).
    """
    names = []
    seen = set()
    current = row
    while True:
        stack_id = resource_stack_id(current)
        parent = owners.get(stack_id)
        if parent is None or stack_id in seen:
            return names
        seen.add(stack_id)
        names.append(parent.get('resource_name'))
        current = parent


def summarize_stack(stack):
    """The fields of a stack worth returning as facts, with outputs as a mapping."""
    return {
        'id': stack.get('id'),
        'name': stack.get('stack_name'),
        'status': stack.get('stack_status'),
        'status_reason': stack.get('stack_status_reason'),
        'outputs': stack_outputs(stack),
        'output_errors': output_errors(stack),
        'parameters': stack.get('parameters') or {},
        'parent': stack.get('parent'),
        'tags': stack.get('tags') or [],
        'timeout_mins': stack.get('timeout_mins'),
        'creation_time': stack.get('creation_time'),
        'updated_time': stack.get('updated_time'),
    }


def summarize_resource(row):
    """A resource row with its status split into action and state, and its owning stack."""
    status = row.get('resource_status') or ''
    action, _sep, state = status.partition('_')
    return {
        'name': row.get('resource_name'),
        'type': row.get('resource_type'),
        'physical_id': row.get('physical_resource_id') or None,
        'status': status,
        'action': action or None,
        'state': state or None,
        'status_reason': row.get('resource_status_reason'),
        'stack_id': resource_stack_id(row),
        'parent_resource': row.get('parent_resource'),
        'required_by': row.get('required_by') or [],
        'creation_time': row.get('creation_time'),
        'updated_time': row.get('updated_time'),
    }
