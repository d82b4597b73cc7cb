"""Label selectors, field selectors and node affinity, as the API server and
the scheduler read them."""

import re

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


class SelectorError(ValueError):
    pass


def _split_top(text):
    """Split on commas that are not inside parentheses."""
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
    if cur.strip():
        parts.append(cur)
    return parts


def parse_label_selector(text):
    """Parse a selector string into (key, op, values) requirements."""
    reqs = []
    for part in _split_top(text or ""):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part and "(" not in part:
                key, value = part.split(op, 1)
                reqs.append((key.strip(), "NotIn" if op == "!=" else "In", [value.strip()]))
                break
        else:
            match = _SET_RE.match(part)
            if not match:
                raise SelectorError("unable to parse requirement: %r" % part)
            neg, key, setop, values = match.groups()
            if setop:
                vals = [v.strip() for v in values.split(",") if v.strip()]
                reqs.append((key, "In" if setop == "in" else "NotIn", vals))
            else:
                reqs.append((key, "DoesNotExist" if neg else "Exists", []))
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
