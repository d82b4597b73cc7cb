# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for integration tests that run ansible-playbook.

`run_playbook(playbook, extravars, env, check=False, diff=False)` runs a
playbook (a path, or YAML text) in a subprocess against localhost and returns
a `PlaybookRun` with every task result as parsed JSON. Results come from a
small notification callback written next to the run (ansible-core has no JSON
stdout callback), so the normal stdout stays readable in failure reports.

The test-world fixtures (`sim_cloud`, `sim_env`, ...) come from
`testworld.pytest_plugin`; pass `sim_env` (or any dict) as `env`.
"""

import json
import os
import sys
import tempfile
import textwrap

import pytest

from testworld import ansible_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CALLBACK_NAME = 'hpcops_results'

_CALLBACK_SOURCE = textwrap.dedent('''
    # Records every task result as one JSON line in $HPCOPS_RESULTS_FILE.
    import json
    import os

    from ansible.plugins.callback import CallbackBase

    try:
        from ansible.vars.clean import module_response_deepcopy, strip_internal_keys
    except ImportError:  # pragma: no cover - layout of older ansible-core
        module_response_deepcopy = strip_internal_keys = None

    DOCUMENTATION = """
    name: hpcops_results
    type: notification
    short_description: write task results as JSON lines (test helper)
    description: Writes one JSON object per task result to the file named by HPCOPS_RESULTS_FILE.
    """


    class CallbackModule(CallbackBase):
        CALLBACK_VERSION = 2.0
        CALLBACK_TYPE = 'notification'
        CALLBACK_NAME = 'hpcops_results'
        CALLBACK_NEEDS_ENABLED = True

        def __init__(self, *args, **kwargs):
            super(CallbackModule, self).__init__(*args, **kwargs)
            self._path = os.environ.get('HPCOPS_RESULTS_FILE')
            self._play = None

        def v2_playbook_on_play_start(self, play):
            self._play = play.get_name()

        def _warnings(self, result):
            out = []
            for w in getattr(result, 'warnings', None) or []:
                event = getattr(w, 'event', None)
                out.append(getattr(event, 'msg', None) or str(w))
            return out

        def _record(self, result, status, ignore_errors=False):
            if not self._path:
                return
            data = result._result
            try:
                data = strip_internal_keys(module_response_deepcopy(data))
            except Exception:
                data = dict(data)
            # Registered variables carry failed/skipped; the raw result may not.
            if isinstance(data, dict):
                data.setdefault('failed', status in ('failed', 'unreachable'))
                if status == 'skipped':
                    data.setdefault('skipped', True)
            task = result._task
            entry = {
                'play': self._play,
                'task': task.get_name(),
                'action': task.action,
                'host': result._host.get_name(),
                'status': status,
                'ignore_errors': bool(ignore_errors),
                'warnings': self._warnings(result) or list(data.get('warnings') or []),
                'result': data,
            }
            with open(self._path, 'a') as f:
                f.write(json.dumps(entry, default=str) + '\\n')

        def v2_runner_on_ok(self, result):
            self._record(result, 'changed' if result._result.get('changed') else 'ok')

        def v2_runner_on_failed(self, result, ignore_errors=False):
            self._record(result, 'failed', ignore_errors)

        def v2_runner_on_skipped(self, result):
            self._record(result, 'skipped')

        def v2_runner_on_unreachable(self, result):
            self._record(result, 'unreachable')
''')


class PlaybookRun(object):
    """The outcome of one ansible-playbook run."""

    def __init__(self, rc, stdout, stderr, results, command):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.results = results
        self.command = command

    def __repr__(self):
        return '<PlaybookRun rc=%s tasks=%d>' % (self.rc, len(self.results))

    def task(self, name):
        """The result dict of the last task called `name` (KeyError if none ran)."""
        hits = [r for r in self.results if r['task'] == name]
        if not hits:
            raise KeyError('no task %r ran; tasks: %s' % (name, [r['task'] for r in self.results]))
        return hits[-1]['result']

    def entry(self, name):
        """The full record (status, warnings, result, ...) of the last task called `name`."""
        hits = [r for r in self.results if r['task'] == name]
        if not hits:
            raise KeyError('no task %r ran; tasks: %s' % (name, [r['task'] for r in self.results]))
        return hits[-1]

    @property
    def failed(self):
        return [r for r in self.results if r['status'] in ('failed', 'unreachable') and not r['ignore_errors']]

    @property
    def changed(self):
        return [r['task'] for r in self.results if r['status'] == 'changed']

    def explain(self):
        """Text for assertion messages: the tail of stdout/stderr and failed tasks."""
        failed = '\n'.join('%s: %s' % (r['task'], r['result'].get('msg')) for r in self.results
                           if r['status'] == 'failed')
        return 'rc=%s\nfailed tasks:\n%s\n--- stdout ---\n%s\n--- stderr ---\n%s' % (
            self.rc, failed, self.stdout[-4000:], self.stderr[-2000:])

    def assert_ok(self):
        assert self.rc == 0 and not self.failed, self.explain()
        return self


def _callback_dir():
    path = os.path.join(tempfile.gettempdir(), 'hpcops-coe-callbacks-%d' % os.getuid())
    os.makedirs(path, exist_ok=True)
    target = os.path.join(path, CALLBACK_NAME + '.py')
    current = None
    if os.path.exists(target):
        with open(target) as f:
            current = f.read()
    if current != _CALLBACK_SOURCE:
        fd, tmp = tempfile.mkstemp(dir=path, suffix='.tmp')
        with os.fdopen(fd, 'w') as f:
            f.write(_CALLBACK_SOURCE)
        os.replace(tmp, target)
    return path


def collections_path():
    return os.environ.get('ANSIBLE_COLLECTIONS_PATH') or os.path.join(REPO, '.cache', 'collections')


def ansible_env(workdir, extra=None):
    """Environment for an isolated ansible-playbook run in `workdir`."""
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections_path(),
        'ANSIBLE_CALLBACK_PLUGINS': _callback_dir(),
        'ANSIBLE_CALLBACKS_ENABLED': CALLBACK_NAME,
        'ANSIBLE_STDOUT_CALLBACK': 'default',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'ANSIBLE_HOME': os.path.join(workdir, 'ansible-home'),
        'ANSIBLE_LOCAL_TEMP': os.path.join(workdir, 'ansible-tmp'),
        'ANSIBLE_REMOTE_TEMP': os.path.join(workdir, 'ansible-tmp'),
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable,
        'PYTHONWARNINGS': 'ignore',
    })
    # The venv's bin holds ansible-playbook and the module's Python.
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    if extra:
        env.update(dict((k, str(v)) for k, v in extra.items()))
    return env


def run_playbook(playbook, extravars=None, env=None, check=False, diff=False, workdir=None, timeout=1200,
                 verbosity=0, limit=None, tags=None):
    """Run `playbook` (path or YAML text) on localhost; return a PlaybookRun.

    `extravars` go in as a JSON file (types survive), `env` is added to the
    environment (e.g. OS_CLIENT_CONFIG_FILE from the sim), `check`/`diff`
    add --check/--diff. A YAML text playbook is written into `workdir`.
    """
    workdir = workdir or tempfile.mkdtemp(prefix='hpcops-play-')
    os.makedirs(workdir, exist_ok=True)
    if '\n' in playbook or playbook.lstrip().startswith('-'):
        fd, path = tempfile.mkstemp(prefix='playbook-', suffix='.yml', dir=workdir)
        with os.fdopen(fd, 'w') as f:
            f.write(textwrap.dedent(playbook))
        playbook = path
    inventory = os.path.join(workdir, 'inventory.yml')
    with open(inventory, 'w') as f:
        json.dump({'all': {'hosts': {'localhost': {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}, f)
    fd, results_file = tempfile.mkstemp(prefix='results-', suffix='.jsonl', dir=workdir)
    os.close(fd)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory, playbook]
    if extravars:
        fd, varsfile = tempfile.mkstemp(prefix='extravars-', suffix='.json', dir=workdir)
        with os.fdopen(fd, 'w') as f:
            json.dump(extravars, f)
        cmd += ['-e', '@' + varsfile]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    if limit:
        cmd += ['--limit', limit]
    if tags:
        cmd += ['--tags', ','.join(tags) if isinstance(tags, (list, tuple)) else tags]
    if verbosity:
        cmd.append('-' + 'v' * verbosity)
    full_env = ansible_env(workdir, env)
    full_env['HPCOPS_RESULTS_FILE'] = results_file
    proc = ansible_run.run(cmd, env=full_env, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                           check=False)
    results = []
    with open(results_file) as f:
        for line in f:
            if line.strip():
                results.append(json.loads(line))
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results, cmd)


@pytest.fixture
def playbook(tmp_path):
    """run_playbook bound to the test's tmp_path: `playbook(text_or_path, extravars, env, ...)`."""
    def run(pb, extravars=None, env=None, **kwargs):
        kwargs.setdefault('workdir', str(tmp_path))
        return run_playbook(pb, extravars=extravars, env=env, **kwargs)
    return run
