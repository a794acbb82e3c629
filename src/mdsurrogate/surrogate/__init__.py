"""The surrogate stage: the papers' profile network (models), BaseNN/ModNN losses (losses), training and deep
ensembles (training, search), the Surrogate that predicts (ensemble), its saved card (card) and fitting (fit).

Names are imported on first use, so `import mdsurrogate.surrogate` does not load torch."""

from __future__ import annotations

from mdsurrogate.lazy import lazy_exports

_EXPORTS = {name: f"mdsurrogate.surrogate.{module}" for name, module in {
    "Surrogate": "ensemble", "ExtrapolationError": "ensemble", "ExtrapolationWarning": "ensemble",
    "inputs_to_array": "ensemble", "default_surrogate_path": "ensemble", "INFERENCE_BATCH": "ensemble",
    "load_surrogate": "card", "save_surrogate": "card", "SurrogateLoadError": "card",
    "fit_surrogate": "fit",
    "SoftLabelLoss": "losses",
    "TrainConfig": "training", "default_config": "training", "paper_config": "training",
    "train_ensemble": "training",
}.items()}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
