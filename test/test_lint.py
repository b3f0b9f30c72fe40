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
    "finers_ros/__init__.py",
    "finers_ros/commands.py",
    "finers_ros/config.py",
    "finers_ros/depth3d.py",
    "finers_ros/geometry.py",
    "finers_ros/metrics.py",
    "finers_ros/overlay.py",
    "finers_ros/parsing.py",
    "finers_ros/pipeline.py",
    "finers_ros/prompts.py",
    "finers_ros/result.py",
    "finers_ros/serving.py",
    "finers_ros/stamp_buffer.py",
    "finers_ros/bringup",
    "finers_ros/cli",
    "finers_ros/data",
    "finers_ros/segmenters",
    "finers_ros/stages/__init__.py",
    "finers_ros/stages/base.py",
    "finers_ros/stages/bringup.py",
    "finers_ros/stages/openai_server.py",
    "finers_ros/stages/qwen_vl.py",
    "finers_ros/stages/registry.py",
    "finers_ros/testing/__init__.py",
    "finers_ros/testing/tiny_qwen.py",
    "finers_ros/testing/vllm_server.py",
    "test/test_lint.py",
    "test/test_prompts_parsing.py",
    "test/test_parsing_fuzz.py",
    "test/test_metrics.py",
    "test/test_annotations.py",
    "test/test_cli.py",
    "test/test_pipeline.py",
    "test/test_pipeline_fuzz.py",
    "test/test_geometry.py",
    "test/test_qwen.py",
    "test/test_bringup.py",
    "test/test_sam.py",
    "test/test_config.py",
    "test/test_synthetic.py",
    "test/test_shapes.py",
    "test/test_overlay.py",
    "test/test_image_codec.py",
    "test/test_depth3d.py",
    "training",
    "benchmarks",
    "tools",
    "launch",
    "setup.py",
    "test/conftest.py",
    "test/faulty_pipelines.py",
    "test/test_bag_path.py",
    "test/test_bags.py",
    "test/test_memory.py",
    "test/test_recorder.py",
    "test/test_sam_runtimes.py",
    "test/test_tensorrt_fallback.py",
    "test/test_training_bad_records.py",
    "test/test_training_config.py",
    "test/test_training_data.py",
    "test/test_training_learning.py",
    "test/test_training_lora.py",
    "test/test_training_rewards.py",
    "test/test_vllm_server.py",
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
