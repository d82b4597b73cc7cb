# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Kubernetes modules of hpcops.coe share.

The client and its authentication come from kubernetes.core (same options,
same environment variables, same kubeconfig handling as kubernetes.core.k8s).
On top of it:

- server-side apply with a field manager, so reruns are no-ops and fields
  other controllers own (status, labels NFD or KMM write) are left alone;
- check mode and diff through the API server's dry-run, so check mode shows
  what the server would really store (defaults, pruning, validation);
- waits that poll, and API errors turned into messages that say what was
  being done, what the server answered and what to change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import re
import traceback

from ansible_collections.hpcops.coe.plugins.module_utils.argspec import refuse_unclear_input
from ansible_collections.hpcops.coe.plugins.module_utils.waiting import WaitFailed, WaitTimeout, wait_for

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
except ImportError:  # kubernetes.core is a declared dependency; the module reports it below
    AUTH_ARG_SPEC = {}

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    HAS_K8S_CORE = True
    K8S_CORE_IMPORT_ERROR = None
except ImportError:
    HAS_K8S_CORE = False
    K8S_CORE_IMPORT_ERROR = traceback.format_exc()
    AnsibleK8SModule = None

try:
    from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError, ResourceNotUniqueError
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

    class DynamicApiError(Exception):
        pass

    class ResourceNotFoundError(Exception):
        pass

    class ResourceNotUniqueError(Exception):
        pass

DEFAULT_FIELD_MANAGER = 'hpcops.coe'

# Options every Kubernetes module of the collection has besides kubernetes.core's auth options.
COMMON_ARG_SPEC = dict(
    state=dict(type='str', default='present', choices=['present', 'absent']),
    field_manager=dict(type='str', default=DEFAULT_FIELD_MANAGER),
    force_conflicts=dict(type='bool', default=False),
    wait=dict(type='bool', default=True),
    wait_timeout=dict(type='int', default=300),
    wait_sleep=dict(type='float', default=2.0),
)

# Metadata the server writes; never part of a change or a diff.
_SERVER_METADATA = ('managedFields', 'resourceVersion', 'generation', 'uid', 'creationTimestamp', 'selfLink')

DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
DNS1123_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
LABEL_VALUE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')


class KubeError(Exception):
    """A failed API call, with the answer of the server when there was one."""

    def __init__(self, message, status=None, reason=None, body=None):
        super(KubeError, self).__init__(message)
        self.status = status
        self.reason = reason
        self.body = body


def argument_spec(**extra):
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(copy.deepcopy(COMMON_ARG_SPEC))
    spec.update(extra)
    return spec


def new_module(argument_spec, **kwargs):
    """An AnsibleModule wrapped the way kubernetes.core's client expects it."""
    refuse_unclear_input(argument_spec, **kwargs)
    if not HAS_K8S_CORE:
        from ansible.module_utils.basic import AnsibleModule
        module = AnsibleModule(argument_spec=argument_spec, **kwargs)
        module.fail_json(msg='The kubernetes.core collection is required (ansible-galaxy collection install '
                             'kubernetes.core).', exception=K8S_CORE_IMPORT_ERROR)
    return AnsibleK8SModule(argument_spec=argument_spec, supports_check_mode=True, **kwargs)


# ------------------------------------------------------------------ validation helpers

def label_key_problem(key):
    """Why `key` is not a valid label key, or None."""
    if not isinstance(key, str) or not key:
        return 'a label key must be a non-empty string'
    prefix, name = key.rpartition('/')[::2]
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return ('prefix %r must be a DNS subdomain (lower case letters, digits, "-" and ".", at most 253 '
                'characters)' % prefix)
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        return ('name part %r must be 1-63 characters of letters, digits, "-", "_" or ".", starting and ending '
                'with a letter or digit' % name)
    return None


def label_value_problem(value):
    if not isinstance(value, str):
        return 'label values are strings (quote true/false and numbers)'
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return ('value %r must be empty or 1-63 characters of letters, digits, "-", "_" or ".", starting and '
                'ending with a letter or digit' % value)
    return None


def name_problem(name, what='name', label=False):
    pattern, limit = (DNS1123_LABEL, 63) if label else (DNS1123_SUBDOMAIN, 253)
    if not name or len(name) > limit or not pattern.match(name):
        return ('%s %r must be lower case letters, digits and "-"%s, start and end with a letter or digit, at most '
                '%d characters' % (what, name, '' if label else ' or "."', limit))
    return None


def selector_matches(labels, selector):
    """A map selector (KMM's Module selector, a nodeSelector): every key equal."""
    labels = labels or {}
    return all(k in labels and labels[k] == v for k, v in (selector or {}).items())


# ------------------------------------------------------------------ object helpers

def strip_server_fields(obj, keep_status=False):
    """A copy of `obj` without what the server maintains, for diffs and comparisons."""
    if not obj:
        return {}
    out = copy.deepcopy(obj)
    meta = out.get('metadata') or {}
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    annotations = meta.get('annotations') or {}
    annotations.pop('kubectl.kubernetes.io/last-applied-configuration', None)
    if not annotations:
        meta.pop('annotations', None)
    if not keep_status:
        out.pop('status', None)
    return out


def obj_ref(obj):
    meta = obj.get('metadata') or {}
    if meta.get('namespace'):
        return '%s %s/%s' % (obj.get('kind'), meta['namespace'], meta.get('name'))
    return '%s %s' % (obj.get('kind'), meta.get('name'))


def condition(obj, ctype):
    for cond in ((obj or {}).get('status') or {}).get('conditions') or []:
        if cond.get('type') == ctype:
            return cond
    return None


# ------------------------------------------------------------------ records of checks that passed

# The node facts a check from pods depends on besides its own inputs: a node that registers again has a new
# UID, a reboot a new boot ID (drivers and links come up again).
NODE_INFO_INPUTS = ('bootID', 'kernelVersion', 'osImage', 'containerRuntimeVersion', 'kubeletVersion')


def node_identity(node):
    """{'uid', 'info'}: who a node is and what it booted, for the digest of a check's inputs."""
    info = (node.get('status') or {}).get('nodeInfo') or {}
    return {'uid': (node.get('metadata') or {}).get('uid'),
            'info': dict((key, info.get(key)) for key in NODE_INFO_INPUTS)}


def inputs_digest(inputs):
    """sha256 over JSON-able inputs, independent of key order: equal digests, equal inputs."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_json(record, key, default):
    """A JSON value kept under `key` in a record ConfigMap's data; `default` when absent, unreadable or
    not of the default's type (a record edited by hand is checked again rather than trusted)."""
    try:
        found = json.loads(((record or {}).get('data') or {}).get(key) or 'null')
    except ValueError:
        return default
    return found if isinstance(found, type(default)) else default


def container_problem(pod):
    """A one-line reason why a pod is not running fine, or None."""
    status = pod.get('status') or {}
    for cond in status.get('conditions') or []:
        if cond.get('type') == 'PodScheduled' and cond.get('status') == 'False':
            return 'not scheduled: %s' % (cond.get('message') or cond.get('reason'))
    for cs in (status.get('initContainerStatuses') or []) + (status.get('containerStatuses') or []):
        state = cs.get('state') or {}
        waiting = state.get('waiting')
        if waiting and waiting.get('reason') not in (None, 'ContainerCreating', 'PodInitializing'):
            return '%s: %s' % (waiting.get('reason'), waiting.get('message') or '')
        term = state.get('terminated')
        if term and term.get('exitCode'):
            return 'container %s exited with %s (%s): %s' % (
                cs.get('name'), term.get('exitCode'), term.get('reason'), term.get('message') or '')
    if status.get('phase') in ('Pending', None):
        return 'pending (%s)' % (status.get('reason') or 'starting')
    return None


# ------------------------------------------------------------------ the client

class Kube(object):
    """kubernetes.core's client plus apply, dry-run diff, waits and clear errors."""

    def __init__(self, module, field_manager=None, force_conflicts=None):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.field_manager = field_manager or self.params.get('field_manager') or DEFAULT_FIELD_MANAGER
        self.force_conflicts = self.params.get('force_conflicts') if force_conflicts is None else force_conflicts
        self.warnings = []
        if not HAS_KUBERNETES:
            from ansible.module_utils.basic import missing_required_lib
            module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)
        try:
            self.k8s = get_api_client(module)
        except CoreException as exc:
            module.fail_json(msg='Could not configure the Kubernetes client: %s' % exc)
        except Exception as exc:  # kubeconfig parsing errors come in many types
            module.fail_json(msg='Could not configure the Kubernetes client (check kubeconfig/context/host): %s'
                                 % exc, exception=traceback.format_exc())
        self.client = self.k8s.client
        self._resources = {}

    # -------------------------------------------------------------- errors

    @staticmethod
    def explain(exc, action):
        """Turn a client exception into a KubeError naming the action and the server's answer."""
        status = getattr(exc, 'status', None)
        body = getattr(exc, 'body', None)
        message, reason = None, getattr(exc, 'reason', None)
        if body:
            try:
                parsed = json.loads(body if isinstance(body, str) else body.decode('utf-8'))
                message = parsed.get('message')
                reason = parsed.get('reason') or reason
                body = parsed
            except (ValueError, AttributeError):
                message = str(body)[:500]
        text = '%s failed: %s' % (action, message or exc)
        if status == 403:
            text += (' (HTTP 403 Forbidden: the credentials in use lack this RBAC permission; grant it to the user or '
                     'service account of the kubeconfig/context, or run with other credentials)')
        elif status == 409 and reason == 'Conflict' and 'Apply failed' in (message or ''):
            text += (' (another field manager owns these fields; set force_conflicts=true to take them over, or '
                     'change them with that manager)')
        elif status == 401:
            text += ' (HTTP 401 Unauthorized: the token or certificate of the kubeconfig/context was refused)'
        elif status:
            text += ' (HTTP %s %s)' % (status, reason or '')
        return KubeError(text, status=status, reason=reason, body=body)

    # -------------------------------------------------------------- discovery

    def resource(self, api_version, kind, required=True):
        key = (api_version, kind)
        if key in self._resources:
            return self._resources[key]
        found = None
        for attempt in (0, 1):
            try:
                found = self.client.resources.get(api_version=api_version, kind=kind)
                break
            except (ResourceNotFoundError, ResourceNotUniqueError):
                if attempt == 0:
                    # discovery is cached on disk; a CRD installed since then needs a refresh
                    try:
                        self.client.resources.invalidate_cache()
                    except Exception:  # pylint: disable=broad-except
                        break
            except DynamicApiError as exc:
                raise self.explain(exc, 'Discovery of %s %s' % (api_version, kind))
        if found is None and required:
            raise KubeError('The API server does not serve %s %s: the component that defines it (its '
                            'CustomResourceDefinition) is not installed yet.' % (api_version, kind), status=404)
        if found is not None:
            self._resources[key] = found
        return found

    def served(self, api_version, kind):
        return self.resource(api_version, kind, required=False) is not None

    # -------------------------------------------------------------- reads

    def get(self, api_version, kind, name, namespace=None):
        res = self.resource(api_version, kind)
        try:
            return res.get(name=name, namespace=namespace).to_dict()
        except DynamicApiError as exc:
            if getattr(exc, 'status', None) == 404:
                return None
            raise self.explain(exc, 'Reading %s %s' % (kind, '%s/%s' % (namespace, name) if namespace else name))

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        res = self.resource(api_version, kind, required=False)
        if res is None:
            return []
        params = {}
        if namespace:
            params['namespace'] = namespace
        if label_selector:
            params['label_selector'] = label_selector
        if field_selector:
            params['field_selector'] = field_selector
        try:
            items = res.get(**params).to_dict().get('items') or []
        except DynamicApiError as exc:
            raise self.explain(exc, 'Listing %s%s' % (kind, ' in namespace %s' % namespace if namespace else ''))
        for item in items:
            item.setdefault('apiVersion', api_version)
            item.setdefault('kind', kind)
        return items

    def nodes(self):
        return self.list('v1', 'Node')

    def pod_log(self, namespace, name, tail_lines=20):
        """The last lines of a pod's log, or '' when it cannot be read."""
        try:
            from kubernetes.client import CoreV1Api
            return CoreV1Api(self.client.client).read_namespaced_pod_log(name, namespace, tail_lines=tail_lines) or ''
        except Exception:  # pylint: disable=broad-except
            return ''

    def events_for(self, obj):
        """Warning events about `obj`, newest last, as 'Reason: message' lines."""
        meta = obj.get('metadata') or {}
        selector = 'involvedObject.name=%s' % meta.get('name')
        try:
            events = self.list('v1', 'Event', meta.get('namespace') or 'default', field_selector=selector)
        except KubeError:
            return []
        events = [e for e in events if e.get('type') == 'Warning' and
                  (e.get('involvedObject') or {}).get('kind') == obj.get('kind')]
        events.sort(key=lambda e: e.get('lastTimestamp') or '')
        return ['%s: %s' % (e.get('reason'), e.get('message')) for e in events]

    # -------------------------------------------------------------- writes

    def apply(self, definition, force=None):
        """Server-side apply `definition` (dry-run in check mode).

        Returns a dict: changed, before, after (what the server stores or would
        store), diff ({before, after} without server-maintained fields).
        """
        api_version, kind = definition['apiVersion'], definition['kind']
        meta = definition.get('metadata') or {}
        name, namespace = meta.get('name'), meta.get('namespace')
        what = obj_ref(definition)
        res = self.resource(api_version, kind, required=not self.check_mode)
        before = self.get(api_version, kind, name, namespace) if res is not None else None
        if res is None:
            self.warnings.append('%s: %s %s is not served yet, so check mode could not ask the API server; it would '
                                 'be created.' % (what, api_version, kind))
            return self._result(before, definition, dry=True)
        force = self.force_conflicts if force is None else force
        try:
            after = res.server_side_apply(body=copy.deepcopy(definition), name=name, namespace=namespace,
                                          field_manager=self.field_manager, force_conflicts=force,
                                          dry_run='All' if self.check_mode else None).to_dict()
        except DynamicApiError as exc:
            err = self.explain(exc, 'Applying %s' % what)
            if self.check_mode and err.status == 404 and namespace and 'namespaces' in str(err):
                self.warnings.append('%s: namespace %s does not exist yet, so check mode could not ask the API '
                                     'server; it would be created.' % (what, namespace))
                return self._result(before, definition, dry=True)
            raise err
        return self._result(before, after)

    @staticmethod
    def _result(before, after, dry=False):
        left, right = strip_server_fields(before), strip_server_fields(after)
        if dry and before:
            merged = copy.deepcopy(left)
            for key, value in right.items():
                merged[key] = value
            right = merged
        return {'changed': left != right, 'before': before, 'after': after,
                'diff': {'before': left, 'after': right}}

    def delete(self, api_version, kind, name, namespace=None):
        """Delete if present; returns whether something was (or would be) deleted."""
        res = self.resource(api_version, kind, required=False)
        if res is None:
            return False
        if self.get(api_version, kind, name, namespace) is None:
            return False
        if self.check_mode:
            return True
        try:
            options = {'apiVersion': 'v1', 'kind': 'DeleteOptions', 'propagationPolicy': 'Background'}
            res.delete(name=name, namespace=namespace, body=options)
        except DynamicApiError as exc:
            if getattr(exc, 'status', None) == 404:
                return False
            raise self.explain(exc, 'Deleting %s %s' % (kind, '%s/%s' % (namespace, name) if namespace else name))
        return True

    def delete_collection(self, api_version, kind, namespace, label_selector):
        """Delete every object of a kind in a namespace that matches label_selector, in one request (dependents
        in the background); returns whether the request was sent (not in check mode, not for an unserved kind)."""
        res = self.resource(api_version, kind, required=False)
        if res is None or self.check_mode:
            return False
        try:
            options = {'apiVersion': 'v1', 'kind': 'DeleteOptions', 'propagationPolicy': 'Background'}
            res.delete(namespace=namespace, label_selector=label_selector, body=options)
        except DynamicApiError as exc:
            raise self.explain(exc, 'Deleting the %ss labelled %s in namespace %s' % (kind, label_selector, namespace))
        return True

    def create(self, definition):
        res = self.resource(definition['apiVersion'], definition['kind'])
        try:
            return res.create(body=definition, namespace=(definition.get('metadata') or {}).get('namespace'),
                              field_manager=self.field_manager).to_dict()
        except DynamicApiError as exc:
            raise self.explain(exc, 'Creating %s' % obj_ref(definition))

    # -------------------------------------------------------------- waits

    def wait(self, what, fetch, is_done, timeout=None, sleep=None, is_failed=None):
        """Poll until is_done(fetch()). Returns (done, last value, seconds waited).

        done is False at the deadline and also as soon as is_failed(value) holds: a
        wait that can no longer succeed ends there, and the caller, which knows what
        is_failed looks for, explains it from the last value.
        """
        timeout = self.params.get('wait_timeout', 300) if timeout is None else timeout
        sleep = self.params.get('wait_sleep', 2.0) if sleep is None else sleep
        try:
            result = wait_for(fetch, is_done, is_failed=is_failed, timeout=timeout, interval=sleep,
                              max_interval=max(sleep, 10.0), backoff=1.0, what=what)
            return True, result.value, result.elapsed
        except (WaitTimeout, WaitFailed) as exc:
            return False, exc.last, exc.elapsed

    def fail(self, msg, **kwargs):
        if self.warnings:
            kwargs.setdefault('warnings', []).extend(self.warnings)
        self.module.fail_json(msg=msg, **kwargs)

    def exit(self, **kwargs):
        if self.warnings:
            for warning in self.warnings:
                self.module.warn(warning)
        self.module.exit_json(**kwargs)
