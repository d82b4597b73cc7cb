"""The built collection holds the collection and nothing of the development tree."""
import pathlib
import subprocess
import tarfile

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
# Everything that helps develop the collection but is no part of it.
CLUTTER = (".ci/", ".cache/", ".venv/", ".testworld/", "tests/", "testworld/", "tools/",
           "benchmarks/", "molecule/", "Makefile", "requirements/test.txt", "pytest.ini")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    path = out / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert path.exists(), f"expected {path.name}, found {[p.name for p in out.iterdir()]}"
    return path


def names_in(path):
    with tarfile.open(path) as archive:
        return {member.name for member in archive.getmembers()}


def test_tarball_has_no_development_clutter(tarball):
    leaked = sorted(n for n in names_in(tarball) if n.startswith(CLUTTER) or n in {c.rstrip("/") for c in CLUTTER})
    assert leaked == []


def test_tarball_has_every_plugin_role_and_playbook(tarball):
    names = names_in(tarball)
    expected = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
                "meta/execution-environment.yml"}
    for pattern in ("plugins/**/*.py", "roles/**/*", "playbooks/**/*.yml"):
        expected |= {str(p.relative_to(REPO)) for p in REPO.glob(pattern)
                     if p.is_file() and "__pycache__" not in p.parts}
    assert sorted(expected - names) == []


def test_every_module_is_in_exactly_one_action_group():
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    groups = runtime["action_groups"]
    grouped = [m for members in groups.values() for m in members]
    modules = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__")
    assert sorted(set(modules) - set(grouped)) == [], "modules missing from meta/runtime.yml action_groups"
    assert len(grouped) == len(set(grouped)), "a module is listed in two action groups"


def test_execution_environment_installs_the_built_collection(tarball, tmp_path):
    context = tmp_path / "ee"
    context.mkdir()
    (context / "execution-environment.yml").write_text((REPO / "execution-environment.yml").read_text())
    (context / tarball.name).write_bytes(tarball.read_bytes())
    subprocess.run(["ansible-builder", "create", "-f", "execution-environment.yml", "--output-filename", "Containerfile"],
                   cwd=context, check=True, capture_output=True, text=True)
    containerfile = (context / "context" / "Containerfile").read_text()
    assert f"ansible-galaxy collection install /tmp/{tarball.name}" in containerfile
    assert (context / "context" / "_build" / "collections" / tarball.name).exists()
    requirements = (context / "context" / "_build" / "requirements.yml").read_text()
    assert "openstack.cloud" in requirements and "kubernetes.core" in requirements
