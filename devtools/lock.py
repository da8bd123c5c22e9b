"""
The lock files compiled from pyproject.toml, and the check that they still match it.

    python devtools/lock.py                          recompile both locks (make lock), keeping every pin it can
    python devtools/lock.py --upgrade-package NAME   the same, moving NAME (and what it needs) to its newest release
    python devtools/lock.py --upgrade                every package to its newest release within pyproject.toml
    python devtools/lock.py --check                  exit 1 when a lock no longer matches pyproject.toml (offline)

requirements/runtime.txt    what `make run` installs: [project] dependencies + the `devstack` extra
requirements/app.txt        what the production image (Dockerfile) installs: [project] dependencies alone
requirements/dev.txt        what `make test` installs: the above + the `test` extra
(both with [build-system] requires, so the project installs editable without build isolation)
requirements/installer.txt  uv alone, as dev.txt pins it: pip installs it first, and uv installs the rest

Both are hashed pins for CPython 3.11 on Linux x86_64, compiled by uv (in the test extra, so pinned too).
Each starts with a digest of the pyproject.toml entries it was compiled from; the check recomputes it,
so it needs no network and no resolver: editing a dependency without `make lock` fails `make test`.
Like devstack.py it imports nothing of the project and runs as a script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
PYPROJECT = BASE_DIR / "pyproject.toml"
# The interpreter and platform every lock resolves for (the Dockerfile's python:3.11-slim, CI, developers).
TARGET = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")
DIGEST_PREFIX = "# pyproject-digest: sha256:"
COMPILE_COMMAND = "make lock"


@dataclass(frozen=True)
class Lock:
    path: Path
    extras: tuple[str, ...]
    # Lock only this package of those extras, without [project] dependencies (the installer).
    only: str | None = None


# dev.txt first: runtime.txt is resolved inside its pins, so the two never disagree on a version.
DEV = Lock(BASE_DIR / "requirements" / "dev.txt", ("devstack", "test"))
RUNTIME = Lock(BASE_DIR / "requirements" / "runtime.txt", ("devstack",))
# The production image (Dockerfile): [project] dependencies alone, no embedded Redis or SMTP catcher.
APP = Lock(BASE_DIR / "requirements" / "app.txt", ())
INSTALLER = Lock(BASE_DIR / "requirements" / "installer.txt", ("test",), only="uv")
LOCKS = (DEV, RUNTIME, APP, INSTALLER)


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["project"]
    return project


def requirements_of(lock: Lock, project: dict[str, Any] | None = None) -> list[str]:
    """The pyproject.toml requirement strings a lock is compiled from, the build backend's included."""
    project = project if project is not None else _project()
    optional = project.get("optional-dependencies", {})
    extras = [text for extra in lock.extras for text in optional[extra]]
    if lock.only:
        return [text for text in extras if _canonical(re.split(r"[^A-Za-z0-9._-]", text, maxsplit=1)[0]) == lock.only]
    return [*project.get("dependencies", []), *extras, *build_requirements()]


def build_requirements() -> list[str]:
    """[build-system] requires: locked too, so the editable install of the project needs no build isolation."""
    requires: list[str] = tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]
    return requires


def expected_digest(lock: Lock) -> str:
    """A digest of what the lock depends on: its requirements, requires-python and the target platform."""
    project = _project()
    inputs = {
        "requires-python": project.get("requires-python"),
        "requirements": requirements_of(lock, project),
        "target": list(TARGET),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Lock) -> str | None:
    for line in lock.path.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Lock) -> dict[str, str]:
    """{canonical name: version} of every package the lock pins; raises on a line that is not `name==version`."""
    found: dict[str, str] = {}
    for line in lock.path.read_text().splitlines():
        if not line or line[0] in "# ":
            continue
        match = _PIN.match(line)
        if not match:
            raise ValueError(f"{lock.path.name}: not an exact pin: {line!r}")
        found[_canonical(match[1])] = match[2]
    return found


def unhashed(lock: Lock) -> list[str]:
    """Pinned packages whose entry carries no --hash (pip's --require-hashes would refuse the file)."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.path.read_text())
    return [entry.split("==")[0] for entry in entries if _PIN.match(entry) and "--hash=sha256:" not in entry]


def problems() -> list[str]:
    """Every way the locks disagree with pyproject.toml or each other; empty when they match."""
    from packaging.requirements import Requirement

    found: list[str] = []
    environment = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
    for lock in LOCKS:
        name = lock.path.relative_to(BASE_DIR)
        if not lock.path.exists():
            found.append(f"{name} is missing")
            continue
        if recorded_digest(lock) != expected_digest(lock):
            found.append(f"{name} was compiled from other pyproject.toml dependencies than today's")
        try:
            pinned = pins(lock)
        except ValueError as exc:
            found.append(str(exc))
            continue
        found.extend(f"{name}: {package} has no hash" for package in unhashed(lock))
        for text in requirements_of(lock):
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            version = pinned.get(_canonical(requirement.name))
            if version is None:
                found.append(f"{name} pins nothing for {text!r}")
            elif not requirement.specifier.contains(version, prereleases=True):
                found.append(f"{name} pins {requirement.name}=={version}, outside {text!r}")
    for subset in (lock for lock in LOCKS if lock is not DEV):
        if subset.path.exists() and DEV.path.exists() and not any("exact pin" in problem for problem in found):
            dev_pins = pins(DEV)
            for package, version in pins(subset).items():
                if dev_pins.get(package) != version:
                    found.append(
                        f"{subset.path.name} pins {package}=={version} but dev.txt pins {dev_pins.get(package)}"
                    )
    return found


def compile_locks(upgrade: Sequence[str] = (), *, upgrade_all: bool = False) -> None:
    """Recompile both locks with uv, keeping existing pins unless named in ``upgrade``, and stamp their digests."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        raise SystemExit("uv is not installed: `make install` brings it (test extra).")
    for lock in LOCKS:
        # uv writes a scratch copy (starting from the current pins); the lock is replaced only when it changes,
        # so an unchanged lock keeps its mtime and make does not reinstall from it.
        scratch = lock.path.with_name(f".{lock.path.name}.new")
        if lock.path.exists():
            shutil.copyfile(lock.path, scratch)
        # "-": requirements from standard input (the build requirements; the installer's one package).
        sources = ["-"] if lock.only else [str(PYPROJECT.relative_to(BASE_DIR)), "-"]
        command = [uv, "pip", "compile", "--quiet", *sources, *TARGET,
                   "--generate-hashes", "--custom-compile-command", COMPILE_COMMAND,
                   "--output-file", str(scratch.relative_to(BASE_DIR))]  # fmt: skip
        if not lock.only:
            command += [arg for extra in lock.extras for arg in ("--extra", extra)]
        command += [arg for package in upgrade for arg in ("--upgrade-package", package)]
        command += ["--upgrade"] if upgrade_all else []
        if lock is not DEV:
            command += ["--constraint", str(DEV.path.relative_to(BASE_DIR))]
        stdin = requirements_of(lock) if lock.only else build_requirements()
        try:
            subprocess.run(command, cwd=BASE_DIR, check=True, input="\n".join(stdin), text=True)
            _stamp_digest(scratch, expected_digest(lock))
            if not lock.path.exists() or scratch.read_bytes() != lock.path.read_bytes():
                scratch.replace(lock.path)
                print(f"lock: wrote {lock.path.relative_to(BASE_DIR)}", file=sys.stderr)
        finally:
            scratch.unlink(missing_ok=True)


def _stamp_digest(path: Path, digest: str) -> None:
    lines = [line for line in path.read_text().splitlines() if not line.startswith(DIGEST_PREFIX)]
    # After uv's header lines, where uv still reads the file as the previous pins.
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    lines.insert(header, DIGEST_PREFIX + digest)
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devtools/lock.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the locks against pyproject.toml")
    parser.add_argument("--upgrade-package", "-P", action="append", default=[], metavar="NAME")
    parser.add_argument("--upgrade", action="store_true", help="every package to its newest allowed release")
    args = parser.parse_args(argv)
    if not args.check:
        compile_locks(args.upgrade_package, upgrade_all=args.upgrade)
    found = problems()
    for problem in found:
        print(f"lock: {problem}", file=sys.stderr)
    if found:
        print(f"lock: run `{COMPILE_COMMAND}` and commit requirements/ (docs/dependencies.md)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
