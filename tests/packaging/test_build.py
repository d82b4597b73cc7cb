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
    expected = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.rst", "meta/runtime.yml",
                "meta/execution-environment.yml", "meta/ee-requirements.txt", "execution-environment.yml"}
    # The user documentation and the real-site example ship too.
    for pattern in ("plugins/**/*.py", "roles/**/*", "playbooks/**/*.yml", "docs/**/*.md", "examples/**/*"):
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
    """`ansible-builder create` on the shipped definition, with the tarball as `make build` leaves it."""
    context = tmp_path / "ee"
    context.mkdir()
    (context / "execution-environment.yml").write_text((REPO / "execution-environment.yml").read_text())
    (context / tarball.name).write_bytes(tarball.read_bytes())
    subprocess.run(["ansible-builder", "create", "-f", "execution-environment.yml", "--output-filename", "Containerfile"],
                   cwd=context, check=True, capture_output=True, text=True)
    containerfile = (context / "context" / "Containerfile").read_text()
    assert (context / "context" / "_build" / "collections" / tarball.name).exists()
    requirements = yaml.safe_load((context / "context" / "_build" / "requirements.yml").read_text())
    # The collection is a file source, under a name that holds no version.
    [entry] = requirements["collections"]
    assert entry["type"] == "file" and GALAXY["version"] not in entry["name"]
    assert entry["name"].startswith("collections/") and "/build/" + entry["name"] in containerfile
    # ...which the galaxy stage gives the tarball before it installs the requirements.
    galaxy_stage = containerfile[containerfile.index("AS galaxy"):containerfile.index("AS builder")]
    assert galaxy_stage.index("/build/" + entry["name"]) < galaxy_stage.index("collection install")
    # Python libraries come from introspection, never from a second list in the EE file.
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert "python" not in definition["dependencies"] and "python" not in definition.get("additional_build_files", [])
    assert "introspect" in containerfile


def test_execution_environment_versions_match_runtime_and_readme():
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    minimum = runtime["requires_ansible"].lstrip(">=")
    assert definition["dependencies"]["ansible_core"]["package_pip"] == "ansible-core>=" + minimum
    short = ".".join(minimum.split(".")[:2])
    assert "ansible-core %s or later" % short in (REPO / "README.md").read_text()
    base = definition["images"]["base_image"]["name"]
    assert ":" in base and not base.endswith(":latest"), "the base image is pinned to a release"


def test_introspection_finds_the_python_libraries_of_the_installed_collection(tarball, tmp_path):
    """What ansible-builder puts in the image is what meta/ee-requirements.txt declares."""
    collections = tmp_path / "collections"
    # --force: the development tree on ANSIBLE_COLLECTIONS_PATH would count as "already installed".
    subprocess.run(["ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(collections),
                    str(tarball)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run(["ansible-builder", "introspect", "--sanitize", str(collections)],
                         check=True, capture_output=True, text=True).stdout
    declared = [line.split(">")[0].split("=")[0].strip().lower()
                for line in (REPO / "meta/ee-requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    python_section = out[out.index("python"):]
    # --sanitize leaves out what ansible-core itself brings (PyYAML).
    for name in set(declared) - {"pyyaml"}:
        assert name in python_section.lower(), (name, out)
    assert "hpcops.coe" in python_section
