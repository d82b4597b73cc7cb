"""Run ansible-playbook against a KubeWorld and collect structured results.

    result = run_playbook(world, "tests/integration/playbooks/accelerators.yml", extra_vars={...})
    result.rc, result.stats["changed"], result.task("Install NFD")["result"]
"""

import json
import os
import sys
import tempfile

import attrs
import yaml

from testworld import ansible_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


@attrs.define
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    records: list

    @property
    def stats(self):
        counts = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0}
        for rec in self.records:
            status = rec["status"]
            if status in ("ok", "failed", "skipped"):
                counts[status] += 1
            if status == "ok" and rec["result"].get("changed"):
                counts["changed"] += 1
        return counts

    def changed_tasks(self):
        return [r["task"] for r in self.records if r["status"] == "ok" and r["result"].get("changed")]

    def failed(self):
        return [r for r in self.records if r["status"] == "failed"]

    def task(self, name):
        """The last result of the task named `name` (exact name, or a unique prefix)."""
        hits = [r for r in self.records if name in (r["task"], r.get("name"))] or \
               [r for r in self.records if r["task"].startswith(name) or (r.get("name") or "").startswith(name)]
        if not hits:
            raise KeyError("no result for task %r; tasks run: %s" % (name, [r["task"] for r in self.records]))
        return hits[-1]

    def explain(self):
        return "rc=%d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (self.rc, self.stdout[-6000:], self.stderr[-3000:])


def playbook_env(world, results_file=None, extra=None):
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO, ".cache", "collections"))
    tmp = os.path.join(world.state_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    env.update({
        "K8S_AUTH_KUBECONFIG": world.kubeconfig,
        # kubernetes.core caches API discovery per host in TMPDIR; worlds reuse ports
        "TMPDIR": ansible_run.short_tmpdir(tmp),
        "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(tmp, "ansible-remote"),
        "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
        "ANSIBLE_CALLBACKS_ENABLED": "hpcops_results",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    })
    if results_file:
        env["HPCOPS_RESULTS_FILE"] = results_file
    env.update(extra or {})
    return env


def run_playbook(world, playbook, extra_vars=None, check=False, diff=False, tags=None, skip_tags=None,
                 env=None, timeout=600, verbosity=0):
    """Run a playbook (a path, or YAML text / a list of plays) against `world`."""
    workdir = tempfile.mkdtemp(prefix="play-", dir=world.state_dir)
    if isinstance(playbook, (list, dict)) or (isinstance(playbook, str) and "\n" in playbook):
        path = os.path.join(workdir, "playbook.yml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(playbook if isinstance(playbook, str) else yaml.safe_dump(playbook, sort_keys=False))
        playbook = path
    results = os.path.join(workdir, "results.jsonl")
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    cmd = [binary, "-i", "localhost,", "-c", "local", playbook]
    if extra_vars:
        vars_file = os.path.join(workdir, "vars.json")
        with open(vars_file, "w", encoding="utf-8") as handle:
            json.dump(extra_vars, handle)
        cmd += ["-e", "@" + vars_file]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if tags:
        cmd += ["--tags", ",".join(tags) if isinstance(tags, (list, tuple)) else tags]
    if skip_tags:
        cmd += ["--skip-tags", ",".join(skip_tags) if isinstance(skip_tags, (list, tuple)) else skip_tags]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc = ansible_run.run(cmd, env=playbook_env(world, results, env), capture_output=True, text=True,
                           timeout=timeout, cwd=REPO, check=False)
    records = []
    if os.path.exists(results):
        with open(results, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    return PlaybookResult(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, records=records)
