"""The campaign stage: specs (spec), the SQLite ledger (ledger), execution on a local pool or Parsl (execute,
backends, worker, parsl_configs), the directory layout (layout) and runs reused from committed datasets (reuse).
Names load on first use."""

from __future__ import annotations

from mdsurrogate.lazy import lazy_exports

_EXPORTS = {name: f"mdsurrogate.campaign.{module}" for name, module in {
    "CampaignSpec": "spec", "SpecError": "spec", "load_spec": "spec", "parse_spec": "spec",
    "run_campaign": "execute", "campaign_status": "execute", "CampaignObserver": "execute",
    "campaign_dir": "layout", "Ledger": "ledger", "reused_runs": "reuse",
}.items()}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
