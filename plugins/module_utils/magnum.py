# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Magnum domain knowledge shared by the hpcops.coe modules.

Everything here is pure (no client, no network) so the decision logic can be
unit tested without a cloud: status families, label normalisation, name
matching with ambiguity detection, driver kind detection and the shapes the
modules return.
"""

import re

IN_PROGRESS = 'IN_PROGRESS'
COMPLETE = 'COMPLETE'
FAILED = 'FAILED'
UNKNOWN = 'UNKNOWN'

# Magnum's cluster name rule (magnum/api/validation.py); nodegroups share it.
NAME_PATTERN = re.compile(r'^[a-zA-Z][a-zA-Z0-9_.-]*$')
NAME_MAX_LENGTH = 242

_UUID_RE = re.compile(
    r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')

# Template fields Magnum still accepts in a PATCH while clusters use the template.
TEMPLATE_FIELDS_UPDATABLE_IN_USE = frozenset(['public', 'hidden', 'name'])

DRIVER_HEAT = 'heat'
DRIVER_CAPI = 'capi'
DRIVER_UNKNOWN = 'unknown'

# Known Magnum driver names that are not Heat based (template field `driver`).
_CAPI_DRIVER_HINTS = ('capi', 'cluster_api', 'cluster-api', 'helm')


class MagnumInputError(ValueError):
    """Bad module input, detected before anything is changed."""


def is_uuid(value):
    return isinstance(value, str) and bool(_UUID_RE.match(value))


def status_family(status):
    """Map a Magnum status (cluster or nodegroup) to IN_PROGRESS/COMPLETE/FAILED/UNKNOWN."""
    if not status:
        return UNKNOWN
    status = str(status).upper()
    if status.endswith('_IN_PROGRESS'):
        return IN_PROGRESS
    if status.endswith('_FAILED'):
        return FAILED
    if status.endswith('_COMPLETE'):
        return COMPLETE
    return UNKNOWN


def is_busy(status):
    return status_family(status) == IN_PROGRESS


def is_deleting(status):
    return str(status or '').upper() in ('DELETE_IN_PROGRESS', 'DELETE_COMPLETE')


def label_value(value, key='?'):
    """One label value as Magnum stores it: a string, booleans as 'true'/'false'."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return ''
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        # Magnum labels that carry lists (e.g. extra_network_names) are
        # space- or comma-separated strings; refuse to guess which.
        raise MagnumInputError(
            "label '%s' has a list value %r; Magnum labels are strings: join the items "
            "with the separator the driver expects (for example ',' or ' ')" % (key, value))
    if isinstance(value, dict):
        raise MagnumInputError("label '%s' has a mapping value; Magnum labels are flat strings" % key)
    return str(value)


def normalize_labels(labels):
    """Labels as Magnum returns them: every key and value a string.

    Without this an int or bool label differs from what Magnum reports on
    every run and a module would never be idempotent.
    """
    if labels is None:
        return None
    if not isinstance(labels, dict):
        raise MagnumInputError('labels must be a mapping of strings, got %s' % type(labels).__name__)
    return dict((str(k), label_value(v, k)) for k, v in labels.items())


def effective_labels(template_labels, labels, merge_labels):
    """The labels Magnum gives a cluster/nodegroup created with these inputs."""
    if labels is None:
        return dict(template_labels or {})
    if merge_labels:
        merged = dict(template_labels or {})
        merged.update(labels)
        return merged
    return dict(labels)


def labels_match(current, wanted, merge_labels):
    """Whether an existing object's labels satisfy the wanted ones.

    With merge_labels the wanted labels only have to be present with the same
    values (the rest came from the template); without it they must be equal.
    """
    if wanted is None:
        return True
    current = normalize_labels(current or {})
    if merge_labels:
        return all(current.get(k) == v for k, v in wanted.items())
    return current == wanted


def label_differences(current, wanted, merge_labels):
    """{key: (current, wanted)} for every label that does not match."""
    current = normalize_labels(current or {})
    diffs = {}
    for key, value in (wanted or {}).items():
        if current.get(key) != value:
            diffs[key] = (current.get(key), value)
    if not merge_labels and wanted is not None:
        for key, value in current.items():
            if key not in wanted:
                diffs[key] = (value, None)
    return diffs


def validate_name(name, what='cluster'):
    if not isinstance(name, str) or not name:
        raise MagnumInputError('%s name must be a non-empty string' % what)
    if len(name) > NAME_MAX_LENGTH:
        raise MagnumInputError('%s name %r is %d characters long; Magnum allows at most %d'
                               % (what, name, len(name), NAME_MAX_LENGTH))
    if not NAME_PATTERN.match(name):
        raise MagnumInputError(
            '%s name %r is not valid: Magnum names start with a letter and contain only '
            'letters, digits, "_", "." and "-"' % (what, name))


def field(obj, key, default=None):
    """Read a field from a dict or a client resource object.

    A resource is read through its public to_dict(): a missing attribute of a
    python-magnumclient resource that was not loaded in full (what create()
    returns) would otherwise be fetched with an extra GET.
    """
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    if hasattr(obj, 'to_dict'):
        return obj.to_dict().get(key, default)
    return getattr(obj, key, default)


def to_dict(obj):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, 'to_dict'):
        return obj.to_dict()
    return dict(vars(obj))


def object_id(obj):
    return field(obj, 'uuid') or field(obj, 'id')


def match_name_or_id(items, value, kind, exclude=None):
    """Pick the one item whose uuid/id or name is `value`.

    Returns None when nothing matches. Names are not unique in Magnum: several
    matches raise MagnumInputError listing them instead of picking one.
    `exclude` drops items (e.g. clusters being deleted) from name matching.
    """
    if value is None:
        return None
    for item in items:
        if value in (field(item, 'uuid'), field(item, 'id')):
            return item
    named = [i for i in items if field(i, 'name') == value and not (exclude and exclude(i))]
    if len(named) > 1:
        raise MagnumInputError(
            "%d %ss are named '%s' (Magnum names are not unique): %s. Use the uuid instead of the name, "
            "or delete the extra ones." % (
                len(named), kind, value,
                ', '.join('%s (%s%s)' % (
                    object_id(i), field(i, 'status') or 'no status',
                    ', created %s' % field(i, 'created_at') if field(i, 'created_at') else '')
                    for i in named)))
    return named[0] if named else None


def keeper_of(items, name):
    """After a concurrent create: which same-named cluster (or template) stays.

    Magnum lists clusters and templates in creation order (its database id), so
    the first one listed is the oldest; every racer computes the same answer, and
    a run that did not yet see a younger duplicate still keeps the right one.
    """
    named = [i for i in items if field(i, 'name') == name and not is_deleting(field(i, 'status'))]
    return named[0] if named else None


def driver_kind(cluster, template=None):
    """Heat-style (a Heat stack per cluster) or Cluster-API-style cluster.

    Heat drivers store the stack's UUID in stack_id (cluster_id from 1.13);
    Cluster-API drivers store the CAPI cluster name there (magnum-cluster-api
    `kube-xxxxx`, magnum-capi-helm `<name>-<id>`) and report no node addresses.
    """
    driver = str(field(template, 'driver') or '').lower()
    if driver and any(h in driver for h in _CAPI_DRIVER_HINTS):
        return DRIVER_CAPI
    ref = field(cluster, 'cluster_id') or field(cluster, 'stack_id')
    if ref:
        return DRIVER_HEAT if is_uuid(ref) else DRIVER_CAPI
    status = str(field(cluster, 'status') or '')
    if (status_family(status) == COMPLETE and field(cluster, 'api_address')
            and not field(cluster, 'master_addresses') and not field(cluster, 'node_addresses')):
        return DRIVER_CAPI
    if driver:
        return DRIVER_HEAT
    return DRIVER_UNKNOWN


CLUSTER_SUMMARY_FIELDS = (
    'uuid', 'name', 'status', 'status_reason', 'health_status', 'health_status_reason',
    'cluster_template_id', 'api_address', 'master_addresses', 'node_addresses',
    'master_count', 'node_count', 'master_flavor_id', 'flavor_id', 'keypair', 'labels',
    'labels_added', 'labels_overridden', 'labels_skipped',
    'fixed_network', 'fixed_subnet', 'floating_ip_enabled', 'master_lb_enabled',
    'docker_volume_size', 'create_timeout', 'discovery_url', 'coe_version',
    'container_version', 'faults', 'project_id', 'user_id', 'created_at', 'updated_at',
)

NODEGROUP_SUMMARY_FIELDS = (
    'uuid', 'name', 'cluster_id', 'role', 'is_default', 'status', 'status_reason',
    'flavor_id', 'image_id', 'node_count', 'min_node_count', 'max_node_count',
    'node_addresses', 'labels', 'labels_added', 'labels_overridden', 'labels_skipped',
    'docker_volume_size', 'stack_id', 'node_labels', 'node_taints',
)


def summarize_cluster(cluster, template=None, nodegroups=None):
    """The cluster as the modules return it (stable keys, driver kind added)."""
    data = to_dict(cluster) or {}
    out = dict((k, data.get(k)) for k in CLUSTER_SUMMARY_FIELDS)
    ref = data.get('cluster_id') or data.get('stack_id')
    out['id'] = data.get('uuid')
    out['stack_id'] = ref
    out['cluster_id'] = ref
    out['driver_kind'] = driver_kind(data, template)
    out['status_family'] = status_family(data.get('status'))
    if template is not None:
        out['cluster_template_name'] = field(template, 'name')
    for key in ('master_addresses', 'node_addresses'):
        if out[key] is None:
            out[key] = []
    if out['labels'] is None:
        out['labels'] = {}
    if nodegroups is not None:
        out['nodegroups'] = [summarize_nodegroup(ng) for ng in nodegroups]
    return out


def describe_failed(kind, name, obj, nodes_in_error=()):
    """One sentence on a cluster or nodegroup in a *_FAILED status: Magnum's reason, faults, nodes in ERROR."""
    status = field(obj, 'status')
    reason = (field(obj, 'status_reason') or 'Magnum gives no reason').rstrip('.')
    text = "%s '%s' (%s) is %s: %s." % (kind.capitalize(), name, object_id(obj), status, reason)
    faults = field(obj, 'faults') or {}
    if isinstance(faults, dict) and faults:
        text += ' Faults: %s.' % '; '.join('%s: %s' % (k, str(v).rstrip('.')) for k, v in sorted(faults.items()))
    if nodes_in_error:
        text += ' Nodes in ERROR: %s.' % ', '.join(nodes_in_error)
    return text


def summarize_nodegroup(nodegroup):
    data = to_dict(nodegroup) or {}
    out = dict((k, data.get(k)) for k in NODEGROUP_SUMMARY_FIELDS)
    out['id'] = data.get('uuid')
    out['status_family'] = status_family(data.get('status'))
    if out['labels'] is None:
        out['labels'] = {}
    if out['node_addresses'] is None:
        out['node_addresses'] = []
    return out


def version_tuple(version):
    """'1.10' or 'container-infra 1.10' -> (1, 10); 'latest' -> (99999, 0)."""
    if version is None:
        return None
    text = str(version).strip().split()[-1] if str(version).strip() else ''
    if text == 'latest':
        return (99999, 0)
    try:
        major, minor = text.split('.', 1)
        return (int(major), int(minor))
    except ValueError:
        return None


def version_text(version):
    if isinstance(version, tuple):
        return '%d.%d' % version
    return str(version)


# Microversions gating the operations the modules use (see the Magnum API reference).
MV_RESIZE = '1.7'
MV_UPGRADE = '1.8'
MV_NODEGROUPS = '1.9'
MV_ZERO_NODES = '1.10'


def plan_cluster_changes(current, desired, template_labels=None):
    """Compare an existing cluster with the wanted one.

    `desired` holds only what the user set; values that name OpenStack objects
    are lists of acceptable spellings, the user's own first, then the id and
    the name, so that a cluster created with a flavor name matches the same
    flavor given by id.

    Returns dict(resize=int|None, nodes_to_remove=list, upgrade=str|None,
    rejected=[{field, current, wanted, why}]).
    """
    plan = {'resize': None, 'nodes_to_remove': [], 'upgrade': None, 'rejected': []}

    def reject(name, cur, want, why):
        plan['rejected'].append({'field': name, 'current': cur, 'wanted': want, 'why': why})

    node_count = desired.get('node_count')
    cur_nodes = field(current, 'node_count')
    if node_count is not None and node_count != cur_nodes:
        plan['resize'] = node_count
    remove = desired.get('nodes_to_remove') or []
    if remove:
        if plan['resize'] is None or plan['resize'] >= (cur_nodes or 0):
            # Removing named nodes only makes sense while shrinking; otherwise
            # the input is already satisfied (the nodes were removed before).
            remove = []
        plan['nodes_to_remove'] = list(remove)

    template = desired.get('cluster_template_id')
    if template is not None and template != field(current, 'cluster_template_id'):
        plan['upgrade'] = template

    master_count = desired.get('master_count')
    if master_count is not None and master_count != field(current, 'master_count'):
        reject('master_count', field(current, 'master_count'), master_count,
               'Magnum cannot change the number of masters of an existing cluster')

    for key in ('flavor_id', 'master_flavor_id', 'keypair', 'fixed_network', 'fixed_subnet'):
        accepted = desired.get(key)
        if accepted is None:
            continue
        cur = field(current, key)
        if cur not in accepted:
            reject(key, cur, accepted[0], 'set when the cluster is created; Magnum cannot change it')

    for key in ('floating_ip_enabled', 'master_lb_enabled', 'docker_volume_size'):
        want = desired.get(key)
        if want is None:
            continue
        cur = field(current, key)
        if cur is not None and cur != want:
            reject(key, cur, want, 'set when the cluster is created; Magnum cannot change it')

    labels = desired.get('labels')
    if labels is not None:
        merge = desired.get('merge_labels', True)
        if not labels_match(field(current, 'labels'), labels, merge):
            diffs = label_differences(field(current, 'labels'), labels, merge)
            reject('labels', dict((k, v[0]) for k, v in diffs.items()),
                   dict((k, v[1]) for k, v in diffs.items()),
                   'labels are set when the cluster is created; Magnum cannot change them')
    return plan


def plan_nodegroup_changes(current, desired):
    """Like plan_cluster_changes for a nodegroup.

    Returns dict(resize=int|None, nodes_to_remove=list, patch=[json-patch ops], rejected=[...]).
    """
    plan = {'resize': None, 'nodes_to_remove': [], 'patch': [], 'rejected': []}

    def reject(name, cur, want, why):
        plan['rejected'].append({'field': name, 'current': cur, 'wanted': want, 'why': why})

    node_count = desired.get('node_count')
    cur_nodes = field(current, 'node_count')
    if node_count is not None and node_count != cur_nodes:
        plan['resize'] = node_count
        remove = desired.get('nodes_to_remove') or []
        if remove and node_count < (cur_nodes or 0):
            plan['nodes_to_remove'] = list(remove)

    for key in ('min_node_count', 'max_node_count'):
        want = desired.get(key)
        if want is not None and want != field(current, key):
            plan['patch'].append({'op': 'replace', 'path': '/' + key, 'value': want})

    role = desired.get('role')
    if role is not None and role != field(current, 'role'):
        reject('role', field(current, 'role'), role, 'a nodegroup keeps the role it was created with')
    for key in ('flavor_id', 'image_id'):
        accepted = desired.get(key)
        if accepted is None:
            continue
        cur = field(current, key)
        if cur not in accepted:
            reject(key, cur, accepted[0],
                   'set when the nodegroup is created; create a new nodegroup and delete this one')
    want = desired.get('docker_volume_size')
    if want is not None and field(current, 'docker_volume_size') not in (None, want):
        reject('docker_volume_size', field(current, 'docker_volume_size'), want,
               'set when the nodegroup is created; create a new nodegroup and delete this one')
    labels = desired.get('labels')
    if labels is not None:
        merge = desired.get('merge_labels', True)
        if not labels_match(field(current, 'labels'), labels, merge):
            diffs = label_differences(field(current, 'labels'), labels, merge)
            reject('labels', dict((k, v[0]) for k, v in diffs.items()),
                   dict((k, v[1]) for k, v in diffs.items()),
                   'labels are set when the nodegroup is created; create a new nodegroup and delete this one')
    return plan


def describe_rejections(kind, name, rejected):
    lines = []
    for r in rejected:
        lines.append('%s (is %r, wanted %r): %s' % (r['field'], r['current'], r['wanted'], r['why']))
    return ("%s '%s' exists and differs in what cannot be changed in place: %s. Nothing was changed; "
            "delete and recreate the %s (state=absent, then state=present), or align the input with it."
            % (kind, name, '; '.join(lines), kind))


def check_counts(node_count=None, min_node_count=None, max_node_count=None, what='nodegroup'):
    """Magnum's nodegroup size rules, checked before any request is sent."""
    if node_count is not None and node_count < 0:
        raise MagnumInputError('node_count must be 0 or more, got %d' % node_count)
    if min_node_count is not None and min_node_count < 0:
        raise MagnumInputError('min_node_count must be 0 or more, got %d' % min_node_count)
    if max_node_count is not None and max_node_count < 1:
        raise MagnumInputError('max_node_count must be 1 or more, got %d' % max_node_count)
    if min_node_count is not None and max_node_count is not None and min_node_count > max_node_count:
        raise MagnumInputError('min_node_count (%d) is greater than max_node_count (%d)'
                               % (min_node_count, max_node_count))
    if node_count is not None:
        if min_node_count is not None and node_count < min_node_count:
            raise MagnumInputError('node_count %d of %s is below its min_node_count %d'
                                   % (node_count, what, min_node_count))
        if max_node_count is not None and node_count > max_node_count:
            raise MagnumInputError('node_count %d of %s is above its max_node_count %d'
                                   % (node_count, what, max_node_count))
