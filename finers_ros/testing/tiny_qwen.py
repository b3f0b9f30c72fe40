"""
A tiny Qwen2.5-VL with random weights, saved as a normal checkpoint directory.

The vocabulary is a byte-level BPE trained on the FineRS prompts and answers, with the Qwen
special tokens and a Qwen-style chat template; the processor is the stock
``Qwen2_5_VLProcessor`` (same image patching and token counts as the real model). The
directory loads through ``QwenVLModel`` exactly as a downloaded checkpoint would.
"""
from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list:
    from ..prompts import gse_prompt, lpr_prompt

    texts = [
        gse_prompt("find the red screw"),
        lpr_prompt("find the red screw"),
        gse_prompt("what colour is it", "open"),
        lpr_prompt("which one", "option", ["A. red", "B. blue"]),
    ]
    texts += [
        "<think> the red object is on the left </think><answer>{'bbox': [10, 20, 266, 276], "
        "'response': 'The object is found.'}</answer>",
        "{'bbox': [1, 2, 30, 40], 'points_1': [5, 6], 'points_2': [7, 8], "
        "'response': 'No object founded'}",
        "0 1 2 3 4 5 6 7 8 9 10 100 256 512 1080 1920 [ ] { } , : ' \"",
    ]
    return texts * 4


def build_tokenizer(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_qwen(directory: str | Path, seed: int = 0, hidden_size: int = 64) -> Path:
    """Write a random tiny Qwen2.5-VL checkpoint (model + processor) to ``directory``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    heads = 4
    head_dim = hidden_size // heads
    quarter = head_dim // 2 // 4
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter],
            },
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=hidden_size,
            fullatt_block_indexes=[1],
            window_size=112,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.save_pretrained(str(directory), safe_serialization=True)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    # The published Qwen2.5-VL preprocessor config: 3136 <= pixels <= 12845056.
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": 3136, "longest_edge": 12845056})
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(directory))
    return directory
