"""Prediction with a trained model (METHOD.md 7): sliding window, export, and the predictor front door."""

from core.inference.export import OutputLayout, export_logits, write_probabilities
from core.inference.predictor import Prediction, Predictor, PredictorError
from core.inference.sliding_window import (
    SlidingWindowSettings,
    gaussian_importance_map,
    sliding_window_logits,
    window_starts,
)

__all__ = [
    "OutputLayout",
    "Prediction",
    "Predictor",
    "PredictorError",
    "SlidingWindowSettings",
    "export_logits",
    "gaussian_importance_map",
    "sliding_window_logits",
    "window_starts",
    "write_probabilities",
]
