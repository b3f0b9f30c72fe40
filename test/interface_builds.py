"""
Interface packages that only the tests build (vision_msgs is not on PyPI).

A package under ``test/interfaces/`` is built with the project's own colcon machinery
(``tools/build_interfaces.py``) into ``build/test-interfaces/<name>-<hash>/``, keyed by a hash
of its files, so a rebuild happens only when a definition changes; a file lock lets parallel
runs share one build. The venv is left as it is: processes that need the package get its
paths in their environment (``environment``), set before they start, because the RMW loads
type support libraries by name.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "test" / "interfaces"
CACHE = ROOT / "build" / "test-interfaces"


def _content_hash(package: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    digest.update((ROOT / "tools" / "build_interfaces.py").read_bytes())
    return digest.hexdigest()[:16]


def _colcon_build():
    spec = importlib.util.spec_from_file_location("build_interfaces",
                                                  ROOT / "tools" / "build_interfaces.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.colcon_build


def build(name: str) -> Path:
    """Return the install prefix of test interface package ``name``, building it if needed."""
    package = SOURCES / name
    folder = CACHE / f"{name}-{_content_hash(package)}"
    install = folder / "install"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "done").exists():
            return install
        shutil.rmtree(folder, ignore_errors=True)
        sources = folder / "src"
        sources.mkdir(parents=True)
        shutil.copytree(package, sources / name)
        try:
            _colcon_build()(sources, folder / "build", install, folder / "log",
                            capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"building {name} failed:\n{(exc.stdout or '')[-3000:]}\n"
                               f"{(exc.stderr or '')[-3000:]}") from exc
        (folder / "done").write_text("built\n")
    return install


def environment(install: Path) -> dict:
    """Return PYTHONPATH and LD_LIBRARY_PATH that put ``install``'s interfaces first."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = install / "lib" / python / "site-packages"
    paths = {"PYTHONPATH": site, "LD_LIBRARY_PATH": install / "lib"}
    return {key: os.pathsep.join(p for p in (str(value), os.environ.get(key, "")) if p)
            for key, value in paths.items()}
