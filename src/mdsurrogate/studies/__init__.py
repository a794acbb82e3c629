"""The studies stage: the papers' studies, each one module with a `run(study, ...)` over one shared runner
(`runner.StudyRun`: output folder, cached resumable tasks, figures, table.md and study.json).

ntrain (sun2023 Figs. 5, 8), separation (sun2023 Figs. 9-10), speedup (sun2023 eqs. 4-10), softlabels
(kadupitiya2021 Figs. 3-4), sensitivity (kadupitiya2021 Fig. 8), trendlines (kadupitiya2020 Fig. 6, kadupitiya2021
Fig. 7), profiles (predicted vs MD), active_learning (beyond the papers). `mdsurrogate study NAME --help`."""

from __future__ import annotations

from mdsurrogate.lazy import lazy_exports

_EXPORTS = {"StudyRun": "mdsurrogate.studies.runner", "DataSource": "mdsurrogate.studies.runner"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
