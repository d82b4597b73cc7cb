"""Label selectors, field selectors and node affinity, as the API server and
the scheduler read them."""

import re

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


class SelectorError(ValueError):
    pass


def _split_top(text, keep_empty=False):
    """Split on commas that are not inside parentheses (empty terms kept with `keep_empty`)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip() or keep_empty:
        parts.append(cur)
    return parts


_KEY = r"(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS_RE = re.compile(r"^\s*(!?)\s*(%s)\s*$" % _KEY)
_EQUALITY_RE = re.compile(r"^\s*(%s)\s*(==|=|!=)\s*(%s)\s*$" % (_KEY, _VALUE))
_SET_RE = re.compile(r"^\s*(%s)\s+(in|notin)\s*\(\s*(%s(?:\s*,\s*%s)*)\s*\)\s*$" % (_KEY, _VALUE, _VALUE))
_COMPARE_RE = re.compile(r"^\s*(%s)\s*([<>])\s*(-?\d+)\s*$" % _KEY)


def parse_label_selector(text):
    """Parse a selector string into (key, op, values) requirements; SelectorError when the API
    server's parser would refuse it (empty terms, invalid keys or values, unbalanced sets)."""
    reqs = []
    if not (text or "").strip():
        return reqs
    for part in _split_top(text, keep_empty=True):
        for pattern in (_EXISTS_RE, _EQUALITY_RE, _SET_RE, _COMPARE_RE):
            match = pattern.match(part)
            if match:
                break
        else:
            raise SelectorError("unable to parse requirement: %r: found invalid syntax or an invalid key or value "
                                "(keys are qualified names, values valid label values)" % part.strip())
        if pattern is _EXISTS_RE:
            reqs.append((match.group(2), "DoesNotExist" if match.group(1) else "Exists", []))
        elif pattern is _EQUALITY_RE:
            reqs.append((match.group(1), "NotIn" if match.group(2) == "!=" else "In", [match.group(3)]))
        elif pattern is _SET_RE:
            values = [v.strip() for v in match.group(3).split(",")]
            reqs.append((match.group(1), "In" if match.group(2) == "in" else "NotIn", values))
        else:
            reqs.append((match.group(1), "Gt" if match.group(2) == ">" else "Lt", [match.group(3)]))
    return reqs


def requirement_matches(labels, key, op, values):
    labels = labels or {}
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    raise SelectorError("unknown operator %r" % op)


def label_selector_matches(labels, text):
    return all(requirement_matches(labels, *req) for req in parse_label_selector(text))


def structured_selector_matches(labels, selector):
    """Match a LabelSelector object ({matchLabels, matchExpressions})."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if (labels or {}).get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not requirement_matches(labels, expr.get("key"), expr.get("operator"), expr.get("values") or []):
            return False
    return True


FIELD_SELECTORS = {
    "metadata.name": lambda o: (o.get("metadata") or {}).get("name"),
    "metadata.namespace": lambda o: (o.get("metadata") or {}).get("namespace"),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName") or "",
    "status.phase": lambda o: (o.get("status") or {}).get("phase") or "",
    "spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower(),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name"),
    "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind"),
    "involvedObject.namespace": lambda o: (o.get("involvedObject") or {}).get("namespace"),
    "reason": lambda o: o.get("reason"),
}
# Which field labels each kind supports besides metadata.name/namespace.
FIELD_LABELS_BY_KIND = {
    "Pod": {"spec.nodeName", "status.phase"},
    "Node": {"spec.unschedulable"},
    "Event": {"involvedObject.name", "involvedObject.kind", "involvedObject.namespace", "reason"},
}


def parse_field_selector(text, kind):
    reqs = []
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS_BY_KIND.get(kind, set())
    for part in _split_top(text or ""):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                key = key.strip()
                if key not in allowed:
                    raise SelectorError('field label not supported: %s' % key)
                reqs.append((key, op != "!=", value.strip()))
                break
        else:
            raise SelectorError("invalid selector: %r; can't understand %r" % (text, part))
    return reqs


def field_selector_matches(obj, reqs):
    for key, equal, value in reqs:
        have = FIELD_SELECTORS[key](obj)
        if (have == value) != equal:
            return False
    return True


# ---------------------------------------------------------------- scheduling

def node_selector_term_matches(node, term):
    labels = (node.get("metadata") or {}).get("labels") or {}
    for expr in term.get("matchExpressions") or []:
        if not requirement_matches(labels, expr.get("key"), expr.get("operator"), expr.get("values") or []):
            return False
    for expr in term.get("matchFields") or []:
        value = (node.get("metadata") or {}).get("name") if expr.get("key") == "metadata.name" else None
        if not requirement_matches({"f": value} if value is not None else {}, "f",
                                   expr.get("operator"), expr.get("values") or []):
            return False
    return True


def pod_fits_node_placement(pod_spec, node):
    """Whether nodeName/nodeSelector/required node affinity/taints admit the node.

    Returns None when it fits, or a short scheduler-style reason.
    """
    name = (node.get("metadata") or {}).get("name")
    labels = (node.get("metadata") or {}).get("labels") or {}
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != name:
        return "didn't match Pod's node name"
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return "didn't match Pod's node affinity/selector"
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(node_selector_term_matches(node, t) for t in terms):
        return "didn't match Pod's node affinity/selector"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in pod_spec.get("tolerations") or []):
            return "had untolerated taint {%s: %s}" % (taint.get("key"), taint.get("value", ""))
    return None


def _tolerates(toleration, taint):
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    op = toleration.get("operator", "Equal")
    if not toleration.get("key"):
        return op == "Exists"
    if toleration.get("key") != taint.get("key"):
        return False
    return op == "Exists" or toleration.get("value", "") == taint.get("value", "")


def selector_string(selector):
    """A LabelSelector object in the string form (as Scale's status.selector shows it)."""
    terms = ["%s=%s" % kv for kv in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op in ("In", "NotIn"):
            terms.append("%s %s (%s)" % (key, op.lower(), ",".join(sorted(values))))
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append("!" + key)
    return ",".join(terms)
