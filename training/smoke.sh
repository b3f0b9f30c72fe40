#!/usr/bin/env bash
# make train-smoke: the whole training loop on CPU with fresh synthetic data and a tiny random
# Qwen2.5-VL, then the trained checkpoints loaded by finers-segment, finers-eval and the
# ROS node (training/smoke_node.py).
#   LPR (2 steps) -> best-region search with that LPR -> GSE (2 steps, offline best_region
#   reward) and GSE (2 steps, online reward with the frozen LPR, as 2 DeepSpeed ZeRO-3
#   processes: the README's GSE recipe) -> pipeline config -> CLI.
# Also: LPR resumed for one more step, LPR as 2 DeepSpeed ZeRO-2 and ZeRO-3 processes, and a
# LoRA LPR under ZeRO-3 merged and saved (CPU, gloo, loopback).
# Leaves runs/smoke/{lpr,lpr_zero2,lpr_zero3,lpr_lora_zero3,gse,gse_online}; pass a folder to
# use instead of runs/smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
# One thread per process: on a shared 2-core machine torch's thread pool oversubscribes and a
# tiny-model GRPO step takes 16 s instead of 2 s (measured); the ZeRO runs use 1 per rank too.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${1:-runs/smoke}
CONFIGS=training/configs
rm -rf "$OUT"
mkdir -p "$OUT"

"$BIN/finers-make-scenes" --out "$OUT/scenes" --count 4 --width 1920 --height 1080 --seed 5
# The val split: other scenes, evaluated during the LPR run (best checkpoint kept in lpr/best).
"$BIN/finers-make-scenes" --out "$OUT/val" --count 1 --width 1920 --height 1080 --seed 6
"$BIN/python" -c "import sys; from finers_ros.testing.tiny_qwen import build_tiny_qwen; build_tiny_qwen(sys.argv[1])" \
  "$OUT/base"

"$BIN/finers-train" lpr --config "$CONFIGS/smoke_lpr.yaml" --base-model "$OUT/base" \
  --annotations "$OUT/scenes/annotations.json" --output-dir "$OUT/lpr" \
  --eval-annotations "$OUT/val/annotations.json"
# Resume: one more step continues from checkpoint-2 (optimizer, scheduler and RNG state).
"$BIN/finers-train" lpr --config "$CONFIGS/smoke_lpr.yaml" --base-model "$OUT/base" \
  --annotations "$OUT/scenes/annotations.json" --output-dir "$OUT/lpr" --max-steps 3 \
  --eval-annotations "$OUT/val/annotations.json" | tee "$OUT/lpr_resume.log"
grep -q "resuming from .*checkpoint-2" "$OUT/lpr_resume.log"
grep -q '"steps": 3' "$OUT/lpr/finers_train_hashes.json"
# The multi-GPU path on CPUs: 2 processes, DeepSpeed ZeRO-2, gloo over loopback.
PORT=$("$BIN/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$BIN/accelerate" launch --config_file "$CONFIGS/accelerate/zero2.yaml" --num_processes 2 \
  --main_process_ip 127.0.0.1 --main_process_port "$PORT" -m finers_training.cli lpr \
  --config "$CONFIGS/smoke_lpr.yaml" --base-model "$OUT/base" --annotations "$OUT/scenes/annotations.json" \
  --output-dir "$OUT/lpr_zero2"
test -d "$OUT/lpr_zero2/checkpoint-2/global_step2" && test -f "$OUT/lpr_zero2/checkpoint-2/rng_state_1.pth"
# ZeRO-3 as well (parameters sharded): must save the same, node-loadable weights as ZeRO-2.
"$BIN/accelerate" launch --config_file "$CONFIGS/accelerate/zero3.yaml" --num_processes 2 \
  --main_process_ip 127.0.0.1 --main_process_port "$PORT" -m finers_training.cli lpr \
  --config "$CONFIGS/smoke_lpr.yaml" --base-model "$OUT/base" \
  --annotations "$OUT/scenes/annotations.json" --output-dir "$OUT/lpr_zero3" \
  --eval-annotations "$OUT/val/annotations.json"  # saved gathered, evaluated by rank 0
# LoRA under ZeRO-3: the adapters are gathered from the partitions, then merged and saved.
"$BIN/accelerate" launch --config_file "$CONFIGS/accelerate/zero3.yaml" --num_processes 2 \
  --main_process_ip 127.0.0.1 --main_process_port "$PORT" -m finers_training.cli lpr \
  --config "$CONFIGS/smoke_lpr_lora.yaml" --base-model "$OUT/base" \
  --annotations "$OUT/scenes/annotations.json" --output-dir "$OUT/lpr_lora_zero3"
"$BIN/finers-train" search --config "$CONFIGS/smoke_gse.yaml" --lpr "$OUT/lpr" \
  --annotations "$OUT/scenes/annotations.json" --out "$OUT/searched/annotations.json"
"$BIN/finers-train" gse --config "$CONFIGS/smoke_gse.yaml" --base-model "$OUT/base" \
  --annotations "$OUT/searched/annotations.json" --output-dir "$OUT/gse"
# The online reward's frozen LPR under ZeRO-3 (loaded whole, outside the partitioning).
"$BIN/accelerate" launch --config_file "$CONFIGS/accelerate/zero3.yaml" --num_processes 2 \
  --main_process_ip 127.0.0.1 --main_process_port "$PORT" -m finers_training.cli gse \
  --config "$CONFIGS/smoke_gse.yaml" --base-model "$OUT/base" \
  --annotations "$OUT/searched/annotations.json" --output-dir "$OUT/gse_online" \
  --gse-reward online --online-lpr-checkpoint "$OUT/lpr" | tee "$OUT/gse_online.log"

"$BIN/python" - "$OUT" <<'EOF'
"""Check what the runs left: per-term logs, constant lr from step 1, config + hashes."""
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
for run, terms in (("lpr", "lpr_iou"), ("lpr_zero2", "lpr_iou"), ("gse", "gse_region_iou"), ("gse_online", "gse_retro_online")):
    logs = [json.loads(l) for l in (out / run / "log.jsonl").read_text().splitlines()]
    steps = [l for l in logs if f"rewards/{terms}/mean" in l]
    assert len(steps) >= 2, (run, len(steps))
    assert steps[0]["learning_rate"] > 0, f"{run}: first update at lr 0"
    for name in ("config.json", "model.safetensors", "finers_train.yaml", "finers_train_hashes.json"):
        assert (out / run / name).is_file(), (run, name)
from safetensors.torch import load_file

base, zero2, zero3 = (load_file(out / run / "model.safetensors") for run in ("base", "lpr_zero2", "lpr_zero3"))
assert set(zero3) == set(zero2) == set(base), "ZeRO-3 saved other weight names"
assert all((zero3[k] - zero2[k]).abs().max() < 1e-6 for k in base), "ZeRO-3 and ZeRO-2 disagree"
assert any((zero2[k] - base[k]).abs().max() > 0 for k in base), "training changed nothing"
best3 = load_file(out / "lpr_zero3" / "best" / "model.safetensors")  # evaluated at step 2
assert set(best3) == set(zero3) and all((best3[k] == zero3[k]).all() for k in zero3)
# Each ZeRO-3 rank loaded the frozen LPR whole (a partitioned one counts 0 weights).
import re
loaded = re.findall(r"frozen LPR .* loaded, (\d+) weights", (out / "gse_online.log").read_text())
assert [int(n) for n in loaded] == [sum(t.numel() for t in base.values())] * 2, loaded
lora = load_file(out / "lpr_lora_zero3" / "model.safetensors")
assert set(lora) == set(base), "the merged LoRA checkpoint has other weight names"
moved = [k for k in base if (lora[k].float() - base[k].float()).abs().max() > 0]
assert moved and all("_proj." in k for k in moved), moved  # only LoRA's target modules
best = json.loads((out / "searched/annotations.json").read_text())["annotations"]
assert all(len(r["best_region"]) == 4 for r in best)
# TensorBoard, read back with its own reader: per-term rewards and the val metric
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

events = EventAccumulator(str(out / "lpr" / "tensorboard"))
events.Reload()
assert "train/rewards/lpr_iou/mean" in events.Tags()["scalars"], events.Tags()["scalars"]
assert [e.step for e in events.Scalars("eval/gIoU")] == [2, 3], "no eval at steps 2, 3"
assert json.loads((out / "lpr/best/finers_best.json").read_text())["metric"] == "gIoU"
print("train-smoke: runs, logs and checkpoints in place")
EOF

"$BIN/python" -c "import sys, torch; from finers_ros.segmenters.sam_model import build_tiny_sam, save_sam
torch.manual_seed(0); save_sam(build_tiny_sam(), sys.argv[1])" "$OUT/sam_tiny.safetensors"
cat > "$OUT/pipeline.yaml" <<EOF
# The smoke's trained checkpoints in the node's pipeline config (paths relative to this file).
gse: {backend: qwen2_5_vl, checkpoint: gse, max_new_tokens: 24}
lpr: {backend: qwen2_5_vl, checkpoint: lpr/best, max_new_tokens: 24}
segmenter: {backend: sam, model_type: tiny, checkpoint: sam_tiny.safetensors}
EOF
IMAGE=$(ls "$OUT"/scenes/images/*.png | head -n 1)
# A random tiny model answers gibberish: exit 3 (stage failed, result.json written) is expected.
rc=0
"$BIN/finers-segment" "$IMAGE" "find the red screw" --config "$OUT/pipeline.yaml" --out "$OUT/segment" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then echo "finers-segment failed ($rc)" >&2; exit 1; fi
grep -q '"gse_text"' "$OUT/segment/result.json"
"$BIN/finers-eval" --annotations "$OUT/scenes/annotations.json" --config "$OUT/pipeline.yaml" \
  --out "$OUT/eval" --limit 2 --examples 0
test -f "$OUT/eval/metrics.json"
# The ROS node on the same pipeline config: loads the trained checkpoints, answers one
# instruction on a streamed frame with one Detection, exits 0 on SIGINT.
"$BIN/python" training/smoke_node.py "$OUT/pipeline.yaml" "$IMAGE" --out "$OUT/node"
echo "train-smoke: passed ($OUT)"
