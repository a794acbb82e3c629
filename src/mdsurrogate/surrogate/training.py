"""Training of BaseNN / ModNN networks and deep ensembles (sun2023, kadupitiya2021).

`paper_config()` is the papers' recipe (Adam 1e-4, batch 32, fixed epochs, raw outputs); `default_config()` is
ours: output scaling, a larger learning rate with a cosine schedule, larger batches and early stopping on the
validation split. Every stochastic step (initialisation, validation split, shuffling, soft labels) follows `seed`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mdsurrogate.dataset.arrays import Arrays
from mdsurrogate.dataset.core import system_groups
from mdsurrogate.io import atomic_path, write_json_atomic
from mdsurrogate.surrogate.losses import make_loss
from mdsurrogate.surrogate.models import (
    NetworkConfig,
    ProfileNet,
    StackedEnsemble,
    output_scaling,
    resolve_device,
    symmetrize,
)

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one network. batch_size None = full batch; patience None = run all max_epochs."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: str = "soft"  # 'soft' (ModNN) or 'mse' (BaseNN)
    lr: float = 1e-4
    batch_size: int | None = 32
    max_epochs: int = 20000
    patience: int | None = None  # epochs without validation improvement before stopping
    schedule: str = "constant"  # 'constant' or 'cosine' (decays to lr * min_lr_factor over max_epochs)
    min_lr_factor: float = 0.01
    weight_decay: float = 0.0
    output_scaling: str = "none"
    val_fraction: float = 0.2
    eval_every: int = 1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in ("soft", "mse"):
            raise ValueError(f"loss must be 'soft' (ModNN) or 'mse' (BaseNN), got {self.loss!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (full batch), got {self.batch_size}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["network"] = self.network.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["network"] = NetworkConfig.from_dict(d["network"])
        return cls(**d)


def paper_config(max_epochs: int = 20000, loss: str = "soft", seed: int = 0) -> TrainConfig:
    """The papers' recipe: paper network, Adam lr 1e-4, batch 32, fixed epochs, no output scaling."""
    return TrainConfig(network=NetworkConfig(), loss=loss, lr=1e-4, batch_size=32, max_epochs=max_epochs,
                       patience=None, schedule="constant", output_scaling="none", seed=seed)


def default_config(loss: str = "mse", seed: int = 0, hidden: tuple[int, ...] = (128, 256)) -> TrainConfig:
    """Our default: widths 128, 256 (from the papers' grid) with SiLU, no dropout, mirrored (symmetric) profiles,
    standardised outputs, full-batch Adam lr 1e-2 with cosine decay over 6000 epochs, early stopping (patience 1000).

    On the authors' 81-system subset (65/16 split, one network) each change lowered the test E: paper recipe
    0.030 M after 15000 epochs; dropout 0.1 -> 0: 0.020 -> 0.011; mirror: -> 0.010; SiLU and longer full-batch
    training: -> 0.006. It reaches the paper recipe's error >10x sooner (benchmarks/train_cost.py).
    The default loss is BaseNN's MSE: with this recipe ModNN's soft labels did not lower the test error on the
    authors' data (docs/surrogate.md); pass loss='soft' for ModNN.
    """
    net = NetworkConfig(hidden=tuple(hidden), activations=("silu",) * len(hidden), dropout=0.0, mirror=True)
    return TrainConfig(network=net, loss=loss, lr=1e-2, batch_size=None, max_epochs=6000, patience=1000,
                       schedule="cosine", output_scaling="standard", eval_every=10, seed=seed)


@dataclass
class TrainResult:
    model: ProfileNet
    config: TrainConfig
    best_epoch: int
    best_val_mse: float
    epochs_run: int
    train_time_s: float
    history: list[dict] = field(default_factory=list)


def split_validation(n: int, val_fraction: float, seed: int, groups: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices, the papers' 80/20 split of the training set, over systems: `groups` is the
    system of every row (`dataset.system_groups`: replicas with other seeds share one), so that replicas fall on
    one side. Without replicas (groups 0..n-1, the default) this is a seeded permutation of the rows."""
    groups = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    if groups.shape != (n,):
        raise ValueError(f"groups must hold one label per row ({n}), got shape {groups.shape}")
    k = int(groups.max()) + 1 if n else 0
    perm = np.random.default_rng([seed, 7]).permutation(k)
    n_val = int(round(val_fraction * k))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    if n_val >= k:
        raise ValueError(f"val_fraction {val_fraction} leaves no training systems out of {k}")
    val = np.isin(groups, perm[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


def _save_checkpoint(directory: Path, name: str, model: ProfileNet, meta: dict) -> None:
    from safetensors.torch import save_file  # noqa: PLC0415 - torch

    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / f"{name}.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json_atomic(directory / f"{name}.json", meta)


def load_checkpoint(directory: str | Path, name: str = "best") -> tuple[ProfileNet, dict]:
    """Rebuild a network from `<name>.safetensors` + `<name>.json` written during training."""
    from safetensors.torch import load_file  # noqa: PLC0415 - torch

    directory = Path(directory)
    meta = json.loads((directory / f"{name}.json").read_text())
    config = TrainConfig.from_dict(meta["config"])
    model = ProfileNet(config.network)
    model.load_state_dict(load_file(str(directory / f"{name}.safetensors")))
    return model, meta


def train_network(train: Arrays, config: TrainConfig, val: Arrays | None = None,
                  checkpoint_dir: str | Path | None = None, checkpoint_every: int = 500,
                  callback: Callable[[int, ProfileNet, float], bool | None] | None = None) -> TrainResult:
    """Train one network; early-stop on the validation MSE (sun2023 eq. 1) and return the best weights.

    val None: the last `val_fraction` of a seeded permutation of `train` is held out. `callback(epoch, model,
    train_time_s)` runs after each evaluation outside the timed region; returning True stops training.
    checkpoint_dir: the best weights (best.safetensors/.json) and every `checkpoint_every` epochs the latest
    (last.*) are written atomically there.
    """
    device = resolve_device(config.device)
    if val is None and config.val_fraction > 0:
        tr_idx, va_idx = split_validation(len(train), config.val_fraction, config.seed, system_groups(train.X))
        train, val = train.take(tr_idx), train.take(va_idx)
    torch.manual_seed(config.seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed + 1)
    shift, scale = output_scaling(train.Y, config.output_scaling)
    if config.network.mirror:  # a mirrored output is only symmetric in physical units with symmetric scaling
        shift, scale = symmetrize(shift), symmetrize(scale)
    model = ProfileNet(config.network, y_shift=shift, y_scale=scale).to(device)

    f32 = dict(dtype=torch.float32, device=device)
    X = torch.as_tensor(train.X, **f32)
    Ys = torch.as_tensor((train.Y - shift) / scale, **f32)
    Es = torch.as_tensor(train.EPS / scale, **f32)
    if val is not None:
        Xv = torch.as_tensor(val.X, **f32)
        Yv = torch.as_tensor(val.Y, **f32)
    n = len(X)
    bs = n if config.batch_size is None else min(config.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = None
    if config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.max_epochs * steps_per_epoch,
                                                           eta_min=config.lr * config.min_lr_factor)
    loss_fn = make_loss(config.loss, gen)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None

    best_val, best_epoch, best_state = math.inf, 0, None
    last_saved = 0  # epoch of the latest 'last' checkpoint
    history: list[dict] = []
    train_time = 0.0
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        total = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model.forward_scaled(X[idx]), Ys[idx], Es[idx])
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
        stop = False
        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            record = {"epoch": epoch, "train_loss": total / n}
            if val is not None:
                model.eval()
                with torch.inference_mode():
                    val_mse = float(torch.mean((model(Xv) - Yv) ** 2))
                record["val_mse"] = val_mse
                if val_mse < best_val:
                    best_val, best_epoch = val_mse, epoch
                    best_state = copy.deepcopy(model.state_dict())
                elif config.patience is not None and epoch - best_epoch >= config.patience:
                    stop = True
            train_time += time.perf_counter() - t0
            history.append({**record, "time_s": train_time})
            if ckpt is not None:
                meta = {"config": config.as_dict(), "epoch": epoch, "best_epoch": best_epoch, "best_val_mse": best_val}
                if best_epoch == epoch:
                    _save_checkpoint(ckpt, "best", model, meta)
                if epoch - last_saved >= checkpoint_every:  # at the first evaluation that many epochs on
                    _save_checkpoint(ckpt, "last", model, meta)
                    last_saved = epoch
            if callback is not None and callback(epoch, model, train_time):
                stop = True
        else:
            train_time += time.perf_counter() - t0
        if stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epoch
    model.eval()
    return TrainResult(model=model.cpu(), config=config, best_epoch=best_epoch, best_val_mse=best_val,
                       epochs_run=epoch, train_time_s=train_time, history=history)


def member_seeds(seed: int, n_members: int) -> list[int]:
    """Independent seeds of the ensemble members, derived from one seed."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_members, dtype=np.uint32) % (2**31)]


def train_ensemble(train: Arrays, config: TrainConfig, n_members: int = 5, seed: int = 0,
                   checkpoint_dir: str | Path | None = None) -> list[TrainResult]:
    """Deep ensemble: n_members networks with independent seeds (initialisation, validation split, batches,
    soft labels); their spread is the surrogate's uncertainty."""
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    results = []
    for i, s in enumerate(member_seeds(seed, n_members)):
        sub = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member{i}"
        results.append(train_network(train, replace(config, seed=s), checkpoint_dir=sub))
    return results


def predict_arrays(models: list[ProfileNet], X: np.ndarray, batch_size: int = 16384) -> np.ndarray:
    """Stacked member predictions (M, N, P) for raw inputs X (N, 5), on the models' device.

    Several members with one architecture run as one StackedEnsemble (batched matmuls)."""

    for m in models:
        m.eval()
    dev = next(models[0].parameters()).device
    runner = None
    if len(models) > 1:
        try:
            runner = StackedEnsemble(models).to(dev)
        except ValueError:
            runner = None
    out = np.empty((len(models), len(X), models[0].config.n_outputs), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            xb = torch.as_tensor(np.asarray(X[i:i + batch_size], dtype=np.float32), device=dev)
            if runner is not None:
                out[:, i:i + batch_size] = runner(xb).cpu().numpy()
            else:
                for j, m in enumerate(models):
                    out[j, i:i + batch_size] = m(xb).cpu().numpy()
    return out
