"""mdsurrogate: learn molecular dynamics of soft materials.

Pipeline stages (one sub-package each): simulation -> campaign -> dataset -> surrogate -> evaluation -> analysis ->
studies; the app and the cli on top; proxima (on-the-fly control) on its own. The names a notebook needs are
importable from here (loaded on first use, so `import mdsurrogate` stays cheap)::

    from mdsurrogate import ConfinedElectrolyte, RunControls, simulate, from_runs, Surrogate
"""

from __future__ import annotations

from mdsurrogate.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # simulation
    "ConfinedElectrolyte": "mdsurrogate.simulation.system", "InvalidInput": "mdsurrogate.simulation.system",
    "UnchargedElectrolyte": "mdsurrogate.simulation.system",
    "RunControls": "mdsurrogate.simulation.settings", "SimulationFailed": "mdsurrogate.simulation.settings",
    "simulate": "mdsurrogate.simulation.engine",
    "charge_density": "mdsurrogate.simulation.derived", "integrated_charge": "mdsurrogate.simulation.derived",
    # campaign
    "load_spec": "mdsurrogate.campaign.spec", "run_campaign": "mdsurrogate.campaign.execute",
    "campaign_status": "mdsurrogate.campaign.execute",
    # dataset
    "load_dataset": "mdsurrogate.dataset.core", "from_runs": "mdsurrogate.dataset.core",
    "consolidate": "mdsurrogate.dataset.core", "random_split": "mdsurrogate.dataset.splits",
    "deterministic_separation": "mdsurrogate.dataset.splits",
    # surrogate
    "Surrogate": "mdsurrogate.surrogate.ensemble", "load_surrogate": "mdsurrogate.surrogate.card",
    "SoftLabelLoss": "mdsurrogate.surrogate.losses",
    # evaluation
    "evaluate_predictions": "mdsurrogate.evaluation.metrics", "success_rate": "mdsurrogate.evaluation.metrics",
    "score_surrogate": "mdsurrogate.evaluation.scoring",
    # analysis
    "sweep": "mdsurrogate.analysis.sweeps", "sobol_indices": "mdsurrogate.analysis.sensitivity",
    # proxima
    "ProximaCalculator": "mdsurrogate.proxima.calculator",
}
__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
