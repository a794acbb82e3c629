"""The papers' splits of a dataset into training and test systems (sun2023): random splitting and deterministic
separation. Counts are of systems: replicas of a system (several seeds) always go to the same side."""

from __future__ import annotations

import numpy as np

from mdsurrogate.dataset.core import _mask, inputs_array, system_groups


def _rows_of(groups: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(groups, chosen))


def split_indices(groups: np.ndarray, n_test: int | float, n_train: int | None = None, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of sun2023's random splitting: a random test set of n_test systems (an int, or a
    fraction in (0, 1) of the systems), then n_train of the rest (all if None). `groups` is the system of every
    row (`system_groups`; any labels): replicas of a system go to the same side.

    Repeatable by seed; for one seed the test set is fixed and the training sets are nested (a larger n_train
    contains every smaller one), as in the papers' learning curves."""
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be one label per row, got shape {groups.shape}")
    _, groups = np.unique(groups, return_inverse=True)  # any labels -> 0..k-1 (system_groups' are already)
    n = int(groups.max()) + 1 if groups.size else 0
    if isinstance(n_test, (float, np.floating)) and not isinstance(n_test, bool):
        if not 0 < n_test < 1:
            raise ValueError(f"n_test as a fraction must be in (0, 1), got {n_test}")
        n_test = int(round(n_test * n))
        if n_test == 0 or n_test >= n:
            raise ValueError(f"n_test = {n_test} systems for that fraction of {n}: the fraction must leave at least "
                             "one test and one training system")
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or n_test < 0:
        raise ValueError(f"n_test must be a non-negative integer or a fraction in (0, 1), got {n_test!r}")
    if n_train is not None and (isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer))
                                or n_train < 1):
        raise ValueError(f"n_train must be a positive integer or None, got {n_train!r}")
    if n_test + (n_train or 0) > n:
        raise ValueError(f"n_test + n_train = {n_test + (n_train or 0)} exceeds the {n} systems of the dataset")
    if n_train is None and n_test >= n and n:
        raise ValueError(f"n_test = {n_test} leaves none of the {n} systems for training")
    perm = np.random.default_rng(seed).permutation(n)
    test = perm[:n_test]
    rest = perm[n_test:]
    train = rest if n_train is None else rest[:n_train]
    return _rows_of(groups, train), _rows_of(groups, test)


def random_split(ds, n_test: int | float, n_train: int | None = None, seed: int = 0):
    """(train, test) datasets of `split_indices` over the systems of `ds` (replicas stay together)."""
    train, test = split_indices(system_groups(inputs_array(ds)), n_test, n_train, seed)
    return ds.isel(system=train), ds.isel(system=test)


def separation_indices(ds, holdout: dict, f: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of sun2023's deterministic separation: hold out every system whose inputs match
    `holdout` (all keys; a value or a list per key), then move a random fraction f (0..1) of them back into
    training (replicas move together); f = A_trans / N_held as in sun2023 section 3.3."""
    if not holdout:
        raise ValueError("holdout must name at least one input, e.g. {'c': 1.0}")
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"f is a fraction in [0, 1] (0.1 = 10 %), got {f}")
    mask = _mask(ds, holdout)
    groups = system_groups(inputs_array(ds))
    held = np.unique(groups[mask])  # label order = first appearance = row order without replicas
    if held.size == 0:
        raise ValueError(f"no system matches holdout {holdout}")
    n_back = int(round(f * held.size))
    back = np.random.default_rng(seed).choice(held, size=n_back, replace=False)
    train_mask = ~mask
    train_mask[_rows_of(groups, back)] = True
    return np.flatnonzero(train_mask), np.flatnonzero(~train_mask)


def deterministic_separation(ds, holdout: dict, f: float = 0.0, seed: int = 0):
    """(train, test) datasets of `separation_indices`."""
    train, test = separation_indices(ds, holdout, f, seed)
    return ds.isel(system=train), ds.isel(system=test)
