"""Offline stand-in for get-pip.py, used by ansible-test --venv.

ansible-test bootstraps pip into each of its empty virtualenvs by running a
downloaded get-pip.py with pip's install arguments. Where that download is not
reachable, this script does the same job: ensurepip provides a pip, and that pip
installs what was asked for, from the machine's configured package index.
"""
import os
import subprocess
import sys


def main():
    import ensurepip

    saved = {name: os.environ.get(name) for name in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS")}
    ensurepip.bootstrap(upgrade=True)
    # ensurepip overrides these while it runs and leaves them behind; the real
    # install must see the machine's own pip configuration (index, certificates).
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
