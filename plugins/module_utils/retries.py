# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One retry policy for every OpenStack call: bounded attempts and deadline, jittered backoff, Retry-After.

``is_transient`` decides which errors a retry may cure (and only for idempotent
calls where the first attempt may have been applied); ``retry_unsure_call``
covers calls that create something, by asking whether the first attempt landed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import re
import time

from ansible_collections.hpcops.coe.plugins.module_utils.errors import http_status

try:
    from keystoneauth1 import exceptions as ksa_exc
    HAS_KEYSTONEAUTH = True
except ImportError:
    ksa_exc = None
    HAS_KEYSTONEAUTH = False


RETRY_ALWAYS = (409, 429)
RETRY_IF_IDEMPOTENT = (500, 502, 503, 504)

# Magnum also answers 409 for input it will never accept (NodeGroupInvalidInput,
# NodeGroupAlreadyExists, several objects with one name, a template in use):
# retrying those only delays the error.
PERMANENT_CONFLICT = re.compile(
    r'already exists|multiple \w+ exist|is invalid|not valid|should be less|referenced|same name', re.I)
# Magnum refuses actions on a cluster that is mid-operation with 400
# "Resizing a cluster when status is "UPDATE_IN_PROGRESS" is not supported."
BUSY_REFUSAL = re.compile(r'when (its )?status is .*not supported', re.I)


def error_text(exc):
    return ' '.join(str(p) for p in (getattr(exc, 'message', None), getattr(exc, 'details', None), exc) if p)


def is_busy_refusal(exc):
    """Magnum refused because the cluster is busy: wait for it to settle, then retry."""
    return http_status(exc) == 400 and bool(BUSY_REFUSAL.search(error_text(exc)))


def is_transient(exc, idempotent=True):
    """Whether retrying the call that raised `exc` is safe and may succeed.

    409 and 429 mean the server refused the request without applying it (a
    lock, a short conflict): retryable, unless the conflict is one Magnum
    never resolves by itself. 5xx may have been applied, so only idempotent
    calls retry on them. A refused TCP connection never reached the server.
    """
    status = http_status(exc)
    if status == 409 and PERMANENT_CONFLICT.search(error_text(exc)):
        return False
    if status in RETRY_ALWAYS:
        return True
    if status in RETRY_IF_IDEMPOTENT:
        return idempotent
    if HAS_KEYSTONEAUTH:
        if isinstance(exc, (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout)):
            return True
        if isinstance(exc, ksa_exc.ConnectionError):
            return idempotent
    return False


def _retry_after(exc):
    headers = getattr(getattr(exc, 'response', None), 'headers', None) or {}
    try:
        value = headers.get('Retry-After') or headers.get('retry-after')
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def retry_call(fn, idempotent=True, attempts=6, deadline=120.0, base_delay=1.0, max_delay=20.0,
               retry_if=None, on_retry=None, sleep=None, clock=None, rand=None):
    """Call `fn()`; retry transient failures with exponential backoff and jitter.

    Bounded twice: at most `attempts` calls, and no sleep past `deadline`
    seconds from the first call (the last error is raised then). The jitter
    keeps parallel runs (e.g. forks of one play) from retrying in lockstep.
    """
    retry_if = retry_if or (lambda e: is_transient(e, idempotent))
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    rand = rand or random.random
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classification is retry_if's job
            if attempt >= attempts or not retry_if(exc):
                raise
            ceiling = min(max_delay, base_delay * (2 ** (attempt - 1)))
            delay = ceiling / 2.0 + rand() * ceiling / 2.0
            hinted = _retry_after(exc)
            if hinted is not None:
                delay = max(delay, min(hinted, max_delay))
            remaining = deadline - (clock() - start)
            if remaining <= delay:
                raise
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            sleep(delay)


def is_unsure(exc):
    """Whether a failed call may still have taken effect: a 5xx, or a connection lost after sending.

    A refused connection (nothing was sent) is not unsure; neither is any 4xx.
    """
    status = http_status(exc)
    if status in RETRY_IF_IDEMPOTENT:
        return True
    if HAS_KEYSTONEAUTH and status is None:
        if isinstance(exc, (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout)):
            return False
        return isinstance(exc, ksa_exc.ConnectionError)
    return False


def retry_unsure_call(fn, landed, retry_if=None, unsure_500s=2, **kwargs):
    """``retry_call`` for a call that is not idempotent (it makes something), such as an attach.

    After an error that leaves unknown whether the call took effect (``is_unsure``),
    ``landed()`` is asked before the next try: a value other than None is what the
    call made, and is returned as its result; None means it did not land, and the
    call is retried within the same bounds (attempts, deadline) as every retry. The
    reads ``landed()`` makes are retried like any idempotent call. A plain 500 is
    retried at most ``unsure_500s`` times: services also answer 500 for failures a
    retry does not cure (Nova's InterfaceAttachFailed when no physical NIC is free).
    ``retry_if`` decides about every other error (default: ``is_transient``).
    """
    retry_if = retry_if or (lambda e: is_transient(e, idempotent=False))
    state = {'unsure': None, '500s': 0}

    def attempt():
        if state['unsure'] is not None:
            found = landed()
            if found is not None:
                return found
            state['unsure'] = None
        try:
            return fn()
        except Exception as exc:
            if is_unsure(exc):
                state['unsure'] = exc
                if http_status(exc) == 500:
                    state['500s'] += 1
            raise

    def retryable(exc):
        if exc is state['unsure']:
            return http_status(exc) != 500 or state['500s'] <= unsure_500s
        if state['unsure'] is not None:
            # landed() itself failed: a read, retried like any idempotent call.
            return is_transient(exc, idempotent=True)
        return retry_if(exc)

    return retry_call(attempt, retry_if=retryable, **kwargs)
