"""The analysis stage: what the surrogate says about the physics. Profiles along one input with the others fixed
(sweeps) and variance-based (Sobol) sensitivity indices of the profiles (sensitivity, kadupitiya2021 Fig. 8).
Names load on first use."""

from __future__ import annotations

from mdsurrogate.lazy import lazy_exports

_EXPORTS = {name: f"mdsurrogate.analysis.{module}" for name, module in {
    "sweep": "sweeps",
    "sobol_indices": "sensitivity", "sobol_problem": "sensitivity",
}.items()}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
