"""The consolidated profile dataset: build, load, select, split, import and export (see core.py)."""

from mdsurrogate.dataset.core import (
    charge_density,
    consolidate,
    deterministic_separation,
    export_tsv,
    from_authors_pickle,
    from_profiles,
    from_run_files,
    inputs_array,
    integrated_charge,
    load,
    random_split,
    read_tsv,
    save,
    select,
    summary,
    system_groups,
    to_authors_pickle,
)

__all__ = [
    "charge_density", "consolidate", "deterministic_separation", "export_tsv", "from_authors_pickle",
    "from_profiles", "from_run_files", "inputs_array", "integrated_charge", "load", "random_split", "read_tsv",
    "save", "select", "summary", "system_groups", "to_authors_pickle",
]
