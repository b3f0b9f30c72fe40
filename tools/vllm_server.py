#!/usr/bin/env python3
"""
A real vLLM server here: ``make vllm-server`` (install, tiny model, serve until Ctrl-C).

    tools/vllm_server.py install             # .venv-vllm from tools/vllm-requirements.txt (cached)
    tools/vllm_server.py build-model DIR     # tiny random Qwen2.5-VL vLLM's CPU attention accepts
    tools/vllm_server.py serve [--model DIR] [--port P] [--config-out FILE]
    tools/vllm_server.py shm-snapshot FILE   # before a supervised server starts (ExecStartPre)
    tools/vllm_server.py clean-shm --since-file FILE [--user NAME]   # after it (ExecStopPost)

``serve`` starts ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1, waits for
``/health``, writes a pipeline config pointing GSE and LPR at it (``--config-out``), and stops
the server cleanly on Ctrl-C / SIGTERM; a server that dies on its own is reported, and the
shared-memory segments it left in /dev/shm are removed. ``shm-snapshot`` / ``clean-shm`` do
that removal for a server another supervisor runs (systemd): the Python segments (``psm_*``,
``sem.mp-*``) of the user that appeared since the snapshot and that no live process holds.
Run it with the project venv (.venv/bin/python).
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import sys
from pathlib import Path

import yaml

from finers_ros.testing.vllm_server import (
    REPO,
    ServerBuildError,
    VLLMServer,
    build_checkpoint,
    install,
    stage_server_config,
)
from finers_ros.testing.shm_cleanup import (
    read_snapshot,
    remove_new_unheld,
    segment_names,
    write_snapshot,
)

DEFAULT_MODEL = REPO / "outputs" / "vllm" / "tiny-qwen"


def write_pipeline_config(server: VLLMServer, path: Path) -> Path:
    """GSE and LPR on ``server`` (the bring-up segmenter: no SAM weights needed here)."""
    stage = {"backend": "openai", "max_new_tokens": 64, "server": stage_server_config(server)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {"gse": stage, "lpr": dict(stage, server=dict(stage["server"]))}, sort_keys=False
        )
    )
    return path


def serve(args) -> int:
    install()
    model = build_checkpoint(Path(args.model))
    server = VLLMServer(model, port=args.port, dtype=args.dtype)
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.start(timeout_s=args.timeout)
        config = write_pipeline_config(server, Path(args.config_out))
        print(
            f"vLLM serving {server.served_name} at {server.base_url} "
            f"(ready in {server.startup_s:.0f} s; "
            f"log {server.log_path})\npipeline config: {config}\nCtrl-C stops it.",
            flush=True,
        )
        code = server.wait()  # a crash: its segments are removed before this returns
        print(f"vLLM server exited with {code}: {server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        print("vLLM server stopped", flush=True)


def _uid(user) -> int:
    return os.geteuid() if user is None else pwd.getpwnam(user).pw_uid


def shm_snapshot(args) -> int:
    """Write the user's Python segments in /dev/shm now: what ``clean-shm`` must leave alone."""
    names = segment_names(owner=_uid(args.user))
    write_snapshot(Path(args.file), names)
    print(f"{len(names)} shared-memory segment(s) in /dev/shm noted in {args.file}")
    return 0


def clean_shm(args) -> int:
    """Remove the user's Python segments made since the snapshot that no live process holds."""
    try:
        before = read_snapshot(Path(args.since_file))
    except OSError as exc:
        print(f"vllm-server: no snapshot to compare with ({exc}); nothing removed",
              file=sys.stderr)
        return 2
    print(remove_new_unheld(before, owner=_uid(args.user)).line(), flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="create or update .venv-vllm (cached)")
    build = commands.add_parser("build-model", help="write the tiny Qwen2.5-VL checkpoint")
    build.add_argument("directory", nargs="?", default=str(DEFAULT_MODEL))
    run = commands.add_parser("serve", help="install, build the tiny model, serve until Ctrl-C")
    run.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="checkpoint directory (built if absent)"
    )
    run.add_argument("--port", type=int, default=None, help="default: a free port")
    run.add_argument("--dtype", default="float32")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for /health")
    run.add_argument(
        "--config-out", default=str(REPO / "outputs" / "vllm" / "pipeline_vllm_local.yaml")
    )
    snapshot = commands.add_parser(
        "shm-snapshot", help="note the Python segments in /dev/shm before a server starts"
    )
    snapshot.add_argument("file", help="where to write the list (one name a line)")
    clean = commands.add_parser(
        "clean-shm",
        help="remove the Python segments in /dev/shm made since shm-snapshot and held by none",
    )
    clean.add_argument("--since-file", required=True, help="the file shm-snapshot wrote")
    for command in (snapshot, clean):
        command.add_argument(
            "--user", default=None, help="whose segments (default: the user running this)"
        )
    args = parser.parse_args(argv)
    try:
        if args.command == "shm-snapshot":
            return shm_snapshot(args)
        if args.command == "clean-shm":
            return clean_shm(args)
        if args.command == "install":
            print(install())
        elif args.command == "build-model":
            print(build_checkpoint(Path(args.directory)))
        else:
            return serve(args)
    except ServerBuildError as exc:
        print(f"vllm-server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
