"""
ROS's Python lint conventions, checked with ament's own linters.

``ament_flake8`` with ament's configuration (99 columns; only flake8's own checks run, since the
import-order, quotes and other flake8 plugins ament can use are not installed) and
``ament_pep257`` with its default 'ament' convention (pep257 docstrings: summary line on the
second line, imperative mood, a period, a blank line before the description).
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Relative to the repository root; a directory stands for every *.py file below it.
LINTED = [
    "finers_ros",
    "test",
    "training",
    "benchmarks",
    "tools",
    "tools/perception_node",  # a Python script without .py: flake8 only (pep257 matches *.py)
    "launch",
    "setup.py",
]


def _lint(module: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # ament_flake8 walks its working directory looking for AMENT_IGNORE markers: an empty one
    # keeps it out of .venv and build trees.
    command = [sys.executable, "-m", module, *(str(ROOT / path) for path in LINTED)]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)


def test_linted_paths_exist():
    missing = [path for path in LINTED if not (ROOT / path).exists()]
    assert not missing, f"linted paths that do not exist: {missing}"


def test_flake8_ament_config(tmp_path):
    run = _lint("ament_flake8.main", tmp_path)
    report = run.stdout.split("Checked files:")[0]
    assert run.returncode == 0, f"ament_flake8 found problems:\n{report}\n{run.stderr}"
    checked = re.search(r"^(\d+) files checked$", report, re.MULTILINE)
    assert checked and int(checked.group(1)) >= len(LINTED), report


def test_pep257_ament_convention(tmp_path):
    run = _lint("ament_pep257.main", tmp_path)
    assert run.returncode == 0, f"ament_pep257 found problems:\n{run.stderr}"
    checked = [line for line in run.stdout.splitlines() if line.startswith("checking ")]
    assert len(checked) >= len(LINTED), f"ament_pep257 checked only {len(checked)} files"
