"""Box + points -> mask on the LPR crop, behind one interface (``Segmenter``)."""
from .base import Segmentation, Segmenter
from .registry import build_segmenter

__all__ = ["Segmentation", "Segmenter", "build_segmenter"]
