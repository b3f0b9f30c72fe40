"""
train-smoke's last step: the trained tiny checkpoints served by the ROS node.

Starts ``finers-perception`` as a separate process (as ``ros2 launch`` would: isolated ROS
domain, loopback discovery, the shipped Fast DDS profile) on the smoke's pipeline config,
streams one synthetic frame, sends one instruction through ``PerceptionClient`` and
requires that the node loaded the checkpoints (status: model loaded, backend qwen2_5_vl),
answered with exactly one Detection (a random tiny model usually answers with an error
outcome, which is fine here: the point is that the checkpoint loads and serves) and exits 0
on SIGINT. A smoke driver, not part of the ROS-free training package.

Usage: python training/smoke_node.py PIPELINE_YAML IMAGE [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2

TIMEOUT_S = 180.0  # model load + one tiny-model cascade on a shared 2-core machine
INSTRUCTION = "find the red screw"


def fail(message: str, node=None) -> int:
    """Print one error line (and the node's log tail); exit code 1."""
    print(f"smoke-node: FAILED: {message}", file=sys.stderr)
    if node is not None:
        print(node.log()[-3000:], file=sys.stderr)
    return 1


def main(argv=None) -> int:
    """Run the node on the trained checkpoints and check one instruction round trip."""
    summary = __doc__.strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="smoke_node", description=summary)
    parser.add_argument("config", type=Path, help="pipeline YAML naming the trained checkpoints")
    parser.add_argument("image", type=Path, help="a synthetic scene image (any size)")
    parser.add_argument("--out", type=Path, default=None, help="where node.log goes")
    args = parser.parse_args(argv)

    from domain_coordinator import domain_id

    from finers_ros.config import load_config
    from finers_ros.ros.launcher import NodeProcess, clean_shared_memory_or_say, ros_environment

    bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if bgr is None:
        return fail(f"cannot read image {args.image}")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # H x W x 3 uint8 RGB
    config = load_config(args.config)
    expected = [f"qwen2_5_vl:{Path(stage.checkpoint).name}" for stage in (config.gse, config.lpr)]
    out = args.out or args.config.parent / "node"
    out.mkdir(parents=True, exist_ok=True)
    with domain_id() as domain:
        os.environ.update(ros_environment(domain))  # this process's participant: same profile
        from finers_ros.ros.client import PerceptionClient

        node = NodeProcess(domain, parameters={"pipeline_config": str(args.config.resolve())},
                           log_path=out / "node.log")
        client = PerceptionClient(domain_id=domain, name="smoke_client")
        try:
            code = _round_trip(client, node, image, expected)
        finally:
            client.close()
            exit_code = node.stop()
            clean_shared_memory_or_say("smoke-node")
    if code:
        return code
    if exit_code != 0:
        return fail(f"node exited with {exit_code} on SIGINT", node)
    print("smoke-node: node exited 0 on SIGINT")
    return 0


def _round_trip(client, node, image, expected: list) -> int:
    """
    Status, one streamed frame, one instruction -> exactly one Detection; 0 when so.

    ``expected``: backend names the status must show (``qwen2_5_vl:<checkpoint folder>``).
    """
    if not client.wait_for_node(TIMEOUT_S):
        return fail("the node did not come up", node)

    def loaded() -> bool:
        return client.status is not None and client.status.model_loaded

    if not client.wait_until(loaded, 30):
        last = client.status.last_error if client.status else "no status"
        return fail(f"status does not report the model loaded ({last})", node)
    status = client.status
    missing = [name for name in expected if name not in status.backend]
    if missing:
        return fail(f"backend {status.backend!r} lacks {', '.join(missing)}", node)
    print(f"smoke-node: node {status.state}, model loaded, backend {status.backend}")
    client.stream(client.frame_message(image, frame_id="camera_optical_frame"), hz=2.0)
    time.sleep(1.0)
    client.send(INSTRUCTION)
    detection = client.next_detection(0, TIMEOUT_S)
    client.stop_stream()
    if detection is None:
        return fail(f"no Detection for {INSTRUCTION!r} within {TIMEOUT_S:g} s", node)
    client.wait_until(lambda: len(client.detections) > 1, 3.0)  # a second one would be a bug
    if len(client.detections) != 1:
        return fail(f"{len(client.detections)} Detections for one instruction", node)
    if detection.error_stage == "model" or "qwen2_5_vl" not in detection.backend:
        return fail(f"the checkpoints did not serve: [{detection.error_stage}] "
                    f"{detection.error} (backend {detection.backend!r})", node)
    outcome = (f"error [{detection.error_stage}] {detection.error}" if detection.error
               else f"found={detection.found} answer={detection.answer!r}")
    print(f"smoke-node: one Detection for {detection.instruction!r}: {outcome} "
          f"(backend {detection.backend})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
