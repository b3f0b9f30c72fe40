"""Vision-language stage backends (GSE and LPR) behind one ``generate(image, prompt)`` call."""
from .base import Generation, VisionLanguageModel
from .registry import build_stage_models

__all__ = ["Generation", "VisionLanguageModel", "build_stage_models"]
