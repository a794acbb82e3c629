"""The dataset stage: consolidated profile datasets (core), model-ready arrays (arrays), the papers' splits
(splits), the authors' pickle format (authors_pickle) and summary figures (figures)."""

from mdsurrogate.dataset.arrays import (
    AUTHORS_ERROR_OVERESTIMATE,
    Arrays,
    regrid_profiles,
    to_arrays,
    validate_dataset,
    z_half_widths,
)
from mdsurrogate.dataset.core import (
    consolidate,
    error_bars,
    export_tsv,
    from_authors_pickle,
    from_profiles,
    from_runs,
    inputs_array,
    load_dataset,
    load_parts,
    read_tsv,
    run_rel_errors,
    save,
    select,
    summary,
    system_groups,
    to_authors_pickle,
)
from mdsurrogate.dataset.splits import deterministic_separation, random_split, separation_indices, split_indices

__all__ = [
    "AUTHORS_ERROR_OVERESTIMATE", "Arrays", "consolidate", "deterministic_separation", "error_bars", "export_tsv",
    "from_authors_pickle", "from_profiles", "from_runs", "inputs_array", "load_dataset", "load_parts",
    "random_split", "read_tsv", "regrid_profiles", "run_rel_errors", "save", "select", "separation_indices",
    "split_indices", "summary",
    "system_groups", "to_arrays", "to_authors_pickle", "validate_dataset", "z_half_widths",
]
