"""``finers-export-sam --model-type vit_b --checkpoint sam.pth --out decoder.onnx``:
export SAM's prompt encoder + mask decoder for the onnxruntime / tensorrt runtimes."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..segmenters.sam_export import export_decoder
from ..segmenters.sam_model import SamCheckpointError, load_sam
from .common import CliError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="finers-export-sam", description=__doc__)
    parser.add_argument("--model-type", default="vit_b")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    try:
        sam = load_sam(args.model_type, args.checkpoint)
    except SamCheckpointError as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {export_decoder(sam, args.out, args.opset)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
