"""Shared CLI plumbing: one-line errors and non-zero exits for bad input."""
from __future__ import annotations

import sys
from pathlib import Path

MAX_REASON_CHARS = 500


class CliError(SystemExit):
    """Print ``finers: <reason>`` on stderr and exit with ``code``."""

    def __init__(self, reason: str, code: int = 2):
        reason = " ".join(str(reason).split())  # library messages (YAML, torch) span lines
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[:MAX_REASON_CHARS - 3] + "..."
        print(f"{sys.argv[0].rsplit('/', 1)[-1]}: error: {reason}", file=sys.stderr)
        super().__init__(code)


def output_dir(path: Path) -> Path:
    """``path`` created as a folder before any work is done; a CliError when it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write to {path}: {exc.strerror or exc}") from exc
    return path


def bringup_banner(pipeline) -> str:
    """One line naming the backends; bring-up parts are called out, as they are not FineRS."""
    parts = {"GSE": pipeline.gse, "LPR": pipeline.lpr, "segmenter": pipeline.segmenter}
    bringup = [role for role, part in parts.items() if "bringup" in part.name]
    if len(bringup) == len(parts):
        return (
            "backend: bring-up (weight-free colour/size/position grounding, no model weights); "
            "configure Qwen2.5-VL and SAM checkpoints for real FineRS inference"
        )
    if bringup:
        return (f"backend: {pipeline.backend_name} (bring-up {', '.join(bringup)}: weight-free, "
                "not FineRS)")
    return f"backend: {pipeline.backend_name}"


def load_pipeline(config_path):
    """Return the configured pipeline, its backend line printed; a load failure is a CliError."""
    from ..config import ConfigError, load_config
    from ..pipeline import FineRSPipeline

    try:
        pipeline = FineRSPipeline.from_config(load_config(config_path))
    except (ConfigError, RuntimeError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    banner = bringup_banner(pipeline)
    print(banner)
    return pipeline, banner
