"""
LoRA adapters merged into their base in fp32, without touching the model being trained.

A LoRA update at a GRPO learning rate is far smaller than a bf16 weight's rounding step
(2^-8 of it): ``merge_and_unload`` on a bf16 base rounds most of it away, and the saved
checkpoint is the base. The adapters are therefore copied out in fp32 (gathered first under
ZeRO-3, where each rank holds a slice) and merged into the base checkpoint loaded whole in
fp32 (the frozen base is unchanged by training); the result keeps the update, and
``check_update_kept`` refuses a merge whose weights lost the update (differ from the base by
other than scale x B @ A).
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


def lora_updates(peft_model) -> dict:
    """
    Return {weight name after a merge: (base weight, scale x B @ A)}, fp32 on the CPU.

    One entry per layer LoRA wraps, the update computed in fp32 from the adapters; names are
    the merged model's (``base_model.model.`` dropped), for ``check_update_kept``.
    """
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    updates = {}
    for name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.lora_A:
            continue
        a = module.lora_A["default"].weight.detach().float().cpu()
        b = module.lora_B["default"].weight.detach().float().cpu()
        base = module.get_base_layer().weight.detach().float().cpu().clone()
        merged_name = f"{name[len(prefix):] if name.startswith(prefix) else name}.weight"
        updates[merged_name] = (base, module.scaling["default"] * (b @ a))
    return updates


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
    updates = lora_updates(fresh)
    merged = fresh.merge_and_unload()
    check_update_kept(merged, updates)
    return merged


def check_update_kept(merged, updates: dict, tolerance: float = 0.1) -> Optional[float]:
    """
    Raise RuntimeError when the merged weights lost more than ``tolerance`` of LoRA's update.

    ``updates``: ``lora_updates`` of the model before the merge. Returns the relative error
    ``|merged - base - update| / |update|`` over all wrapped layers (about 1e-7 merged in
    fp32; near 1 in bf16, where a small update rounds away); None when the update is zero.
    """
    weights = dict(merged.named_parameters())
    missing = sorted(set(updates) - set(weights))
    if missing:
        raise RuntimeError(f"the merged model lacks LoRA's layers: {missing[:3]}")
    error = wanted = 0.0
    for name, (base, update) in updates.items():
        applied = weights[name].detach().float().cpu() - base
        error += float((applied - update).square().sum())
        wanted += float(update.square().sum())
    if wanted == 0.0:
        return None
    relative = (error / wanted) ** 0.5
    if relative > tolerance:
        raise RuntimeError(
            f"the merged LoRA model lost {min(relative, 1.0):.0%} of the trained update "
            "(merged in a precision that rounds it away?)")
    return relative
