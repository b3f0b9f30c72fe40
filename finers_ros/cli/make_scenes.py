"""``finers-make-scenes --out DIR --count N [--seed S]``: synthetic FineRS-4k-format scenes."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import MAX_FRAME_SIDE
from ..data.synthetic import SceneConfig, write_dataset
from .common import CliError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="finers-make-scenes", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    args = parser.parse_args(argv)
    if args.count < 0 or args.seed < 0:
        raise CliError(f"--count {args.count} --seed {args.seed}: both must be >= 0")
    if not (0 < args.width <= MAX_FRAME_SIDE and 0 < args.height <= MAX_FRAME_SIDE):
        raise CliError(f"--width {args.width} --height {args.height}: "
                       f"expected 1..{MAX_FRAME_SIDE} pixels")
    try:
        path = write_dataset(args.out, args.count, args.seed, SceneConfig(args.width, args.height),
                             progress=True)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {args.count} scenes and {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
