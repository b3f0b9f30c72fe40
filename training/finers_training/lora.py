"""
LoRA adapters merged into their base in fp32, without touching the model being trained.

A LoRA update at a GRPO learning rate is far smaller than a bf16 weight's rounding step
(2^-8 of it): ``merge_and_unload`` on a bf16 base rounds most of it away, and the saved
checkpoint is the base. The adapters are therefore copied out in fp32 (gathered first under
ZeRO-3, where each rank holds a slice) and merged into the base checkpoint loaded whole in
fp32 (the frozen base is unchanged by training); the result keeps the update, and
``check_update_kept`` refuses a merge that equals its base while the adapters are not zero.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional


def adapters_fp32(peft_model, zero3: bool) -> dict:
    """Copy the adapter weights to CPU fp32 (every process takes part under ZeRO-3)."""
    import torch
    from peft import get_peft_model_state_dict

    gather = nullcontext()
    if zero3:
        import deepspeed

        trained = [p for p in peft_model.parameters() if p.requires_grad]
        gather = deepspeed.zero.GatheredParameters(trained)
    with gather:
        return {k: v.detach().to("cpu", torch.float32, copy=True)
                for k, v in get_peft_model_state_dict(peft_model).items()}


def merged_copy(peft_model, base_model: str | Path, adapters: dict):
    """Return a fresh fp32 model: the ``base_model`` checkpoint with ``adapters`` merged in."""
    import torch
    from peft import get_peft_model, set_peft_model_state_dict

    base_class = type(peft_model.get_base_model())
    base = base_class.from_pretrained(str(base_model), dtype=torch.float32,
                                      local_files_only=True)
    fresh = get_peft_model(base, peft_model.peft_config["default"])
    loaded = set_peft_model_state_dict(fresh, adapters)
    if loaded.unexpected_keys:
        raise RuntimeError(f"the adapters do not fit the base: {loaded.unexpected_keys[:3]}")
    merged = fresh.merge_and_unload()
    check_update_kept(merged, base_model, adapters)
    return merged


def _largest_update(adapters: dict) -> float:
    """Largest |B| entry of the adapters: 0 means LoRA has not moved (B starts at zero)."""
    values = [v.abs().max().item() for k, v in adapters.items() if "lora_B" in k and v.numel()]
    return max(values, default=0.0)


def check_update_kept(merged, base_model: str | Path, adapters: dict) -> Optional[float]:
    """
    Raise RuntimeError when ``merged`` equals its base although the adapters moved.

    Returns the largest weight change (None when the adapters are still zero, nothing to
    keep). Compares every weight of ``merged`` with the base checkpoint's safetensors.
    """
    if _largest_update(adapters) == 0.0:
        return None
    from safetensors import safe_open

    changed, compared = 0.0, 0
    weights = dict(merged.named_parameters())
    for file in sorted(Path(base_model).glob("*.safetensors")):
        with safe_open(str(file), "pt") as base:
            for name in base.keys():
                if name in weights:
                    before = base.get_tensor(name).float()
                    after = weights[name].detach().float().cpu()
                    if before.shape == after.shape:
                        compared += 1
                        changed = max(changed, (after - before).abs().max().item())
    if compared == 0:
        raise RuntimeError(f"no weight of the merged model is named as in {base_model}")
    if changed == 0.0:
        raise RuntimeError(
            "the merged LoRA model equals its base although the adapters are not zero: the "
            "update was lost (merged in a precision that rounds it away?)")
    return changed
