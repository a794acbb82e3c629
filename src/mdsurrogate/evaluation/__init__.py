"""The evaluation stage: the papers' metrics (metrics), scoring a surrogate on held-out MD (scoring), the
baselines (baselines), the studies (studies) and the speedup equations (speedup). Names load on first use."""

from __future__ import annotations

from mdsurrogate.lazy import lazy_exports

_EXPORTS = {name: f"mdsurrogate.evaluation.{module}" for name, module in {
    "evaluate_predictions": "metrics", "success_rate": "metrics", "success_rate_per_system": "metrics",
    "md_noise_floor": "metrics", "overall_rmse": "metrics", "interface_bulk_rmse": "metrics",
    "error_bar_calibration": "metrics",
    "score_surrogate": "scoring", "fit_and_score": "scoring",
    "run_baselines": "baselines", "fit_baselines": "baselines",
    "random_split_report": "studies",
}.items()}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
