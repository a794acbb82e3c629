"""Hyperparameter grid search as in the papers (sun2023 section 2.2), run in a process pool.

The papers' grid: n1 {128, 256, 512}, n2 {256, 512}, lr {1e-4, 2e-4}, batch {32, 64}, scored by the validation
loss (eq. 1) on the same 80/20 split for every point.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from mdsurrogate.dataset.arrays import Arrays
from mdsurrogate.dataset.core import system_groups
from mdsurrogate.surrogate.models import NetworkConfig
from mdsurrogate.surrogate.training import TrainConfig, split_validation, train_network

PAPER_SEARCH_GRID: dict[str, tuple] = {"n1": (128, 256, 512), "n2": (256, 512), "lr": (1e-4, 2e-4),
                                       "batch_size": (32, 64)}
#: The same widths around our default recipe (full batch or 32, larger learning rates).
DEFAULT_SEARCH_GRID: dict[str, tuple] = {"n1": (128, 256, 512), "n2": (256, 512), "lr": (5e-3, 1e-2),
                                         "batch_size": (None, 32)}
_GRID_KEYS = {"n1", "n2", "lr", "batch_size", "dropout", "weight_decay", "loss", "output_scaling"}


@dataclass(frozen=True)
class SearchResult:
    params: dict
    val_mse: float
    best_epoch: int
    train_time_s: float


def apply_params(base: TrainConfig, params: dict) -> TrainConfig:
    """A TrainConfig with grid parameters (n1, n2 = the two hidden widths; others TrainConfig fields)."""
    unknown = set(params) - _GRID_KEYS
    if unknown:
        raise ValueError(f"unknown grid parameters {sorted(unknown)}; allowed {sorted(_GRID_KEYS)}")
    net = base.network
    hidden = list(net.hidden)
    if "n1" in params:
        hidden[0] = int(params["n1"])
    if "n2" in params:
        if len(hidden) < 2:
            raise ValueError("n2 needs a network with at least two hidden layers")
        hidden[1] = int(params["n2"])
    net = NetworkConfig(**{**net.as_dict(), "hidden": tuple(hidden), "activations": tuple(net.activations),
                           "dropout": params.get("dropout", net.dropout)})
    rest = {k: v for k, v in params.items() if k not in ("n1", "n2", "dropout")}
    return replace(base, network=net, **rest)


def grid_points(grid: dict[str, tuple]) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _init_worker(threads: int) -> None:
    import torch  # noqa: PLC0415 - torch

    torch.set_num_threads(threads)


def _run_point(args) -> SearchResult:
    train, val, config, params = args
    r = train_network(train, config, val=val)
    return SearchResult(params=params, val_mse=r.best_val_mse, best_epoch=r.best_epoch, train_time_s=r.train_time_s)


def grid_search(train: Arrays, base: TrainConfig, grid: dict[str, tuple] | None = None, n_workers: int = 2,
                threads_per_worker: int = 1, seed: int = 0) -> list[SearchResult]:
    """Train one network per grid point on a shared seeded train/validation split; results sorted by val MSE.

    n_workers > 1 runs the points in a spawn-based process pool (each worker with `threads_per_worker` torch
    threads); n_workers = 1 runs them in this process.
    """
    grid = PAPER_SEARCH_GRID if grid is None else grid
    tr, va = split_validation(len(train), base.val_fraction or 0.2, seed, system_groups(train.X))
    tr_a, va_a = train.take(tr), train.take(va)
    jobs = [(tr_a, va_a, replace(apply_params(base, p), seed=seed), p) for p in grid_points(grid)]
    if n_workers <= 1:
        results = [_run_point(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads_per_worker,)) as pool:
            results = list(pool.map(_run_point, jobs))
    return sorted(results, key=lambda r: r.val_mse)
