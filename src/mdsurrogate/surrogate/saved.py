"""Saved surrogates: a directory with the weights (safetensors, never a pickle) and a JSON card.

card.json holds the inputs and their design and training ranges, the output grid, the architecture and training
recipe, the training data provenance, test metrics, library versions and the sha256 of the weights file.
`load_surrogate` checks all of it and refuses a corrupted or mismatched directory with a clear message.
`Surrogate.predict` turns one system or a batch into density profiles with the ensemble spread.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from mdsurrogate.simulation.system import DESIGN_RANGES, INPUT_LONG_NAMES, INPUT_NAMES, INPUT_UNITS

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FORMAT = "mdsurrogate-surrogate"
CARD_VERSION = 1
N_POINTS = 502


#: Rows per forward pass. Small batches keep the (members x batch x 502) activations in the CPU caches: 1e5
#: profiles through a 5-member ensemble on 2 idle cores took 1.5-1.9 s at 128-512 rows, 3.0 s at 8192
#: (torch 2.13, AVX-512, 2026-11-27).
INFERENCE_BATCH = 512


class SurrogateLoadError(ValueError):
    """A saved surrogate directory is missing, corrupted or inconsistent."""


class ExtrapolationError(ValueError):
    """An input lies outside the surrogate's training range."""


class ExtrapolationWarning(UserWarning):
    """Predicting outside the training range (allowed by the caller)."""


def default_surrogate_path() -> Path:
    """The ensemble shipped inside the package (mdsurrogate/data/surrogate_default)."""
    return Path(__file__).resolve().parent.parent / "data" / "surrogate_default"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inputs_to_array(inputs: Any) -> np.ndarray:
    """(N, 5) float array in INPUT_NAMES order from a dict, NumPy array, pandas DataFrame/Series, xarray Dataset
    or an object with `.inputs()` (e.g. ConfinedElectrolyte)."""
    import pandas as pd

    if hasattr(inputs, "inputs") and callable(inputs.inputs):
        inputs = inputs.inputs()
    if isinstance(inputs, (list, tuple)) and inputs and hasattr(inputs[0], "inputs"):
        inputs = pd.DataFrame([s.inputs() for s in inputs])
    if isinstance(inputs, pd.Series):
        inputs = inputs.to_dict()
    if isinstance(inputs, (dict, pd.DataFrame, xr.Dataset)):
        missing = [k for k in INPUT_NAMES if k not in inputs]
        if missing:
            raise ValueError(f"inputs lack {missing}; the surrogate needs {list(INPUT_NAMES)} "
                             f"({', '.join(f'{k} in {INPUT_UNITS[k]}' for k in INPUT_NAMES)})")
        cols = [np.atleast_1d(np.asarray(inputs[k].values if hasattr(inputs[k], "values") else inputs[k],
                                         dtype=float)).ravel() for k in INPUT_NAMES]
        sizes = {c.size for c in cols}
        if len(sizes) != 1:
            raise ValueError(f"inputs have different lengths {dict(zip(INPUT_NAMES, (c.size for c in cols)))}")
        X = np.stack(cols, axis=1)
    else:
        X = np.asarray(inputs, dtype=float)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(INPUT_NAMES):
            raise ValueError(f"array inputs must have shape (5,) or (N, 5) with columns {list(INPUT_NAMES)}, "
                             f"got {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = INPUT_NAMES[int(np.where(~np.isfinite(X))[1][0])]
        raise ValueError(f"input {bad} ({INPUT_LONG_NAMES[bad]}) has non-finite values")
    return X


@dataclass
class Surrogate:
    """A trained ensemble of ProfileNets plus its card."""

    members: list  # list[ProfileNet]
    card: dict

    @property
    def training_ranges(self) -> dict[str, tuple[float, float]]:
        return {d["name"]: tuple(d["training_range"]) for d in self.card["inputs"]}

    @property
    def name(self) -> str:
        return self.card.get("name", "surrogate")

    def check_inputs(self, X: np.ndarray, allow_extrapolation: bool = False) -> bool:
        """Raise ExtrapolationError naming the parameter and its training range for inputs outside it; with
        allow_extrapolation warn instead. Returns True when some input extrapolates."""
        outside = False
        for i, name in enumerate(INPUT_NAMES):
            lo, hi = self.training_ranges[name]
            tol = 1e-6 * max(1.0, abs(lo), abs(hi))  # float32 inputs round 0.415 by ~1e-8
            bad = np.where((X[:, i] < lo - tol) | (X[:, i] > hi + tol))[0]
            if bad.size:
                outside = True
                unit = INPUT_UNITS[name]
                msg = (f"{name} ({INPUT_LONG_NAMES[name]}) = {X[bad[0], i]:g} {unit} (system {int(bad[0])}"
                       f"{f' and {bad.size - 1} more' if bad.size > 1 else ''}) is outside the surrogate's training "
                       f"range [{lo:g}, {hi:g}] {unit}")
                if not allow_extrapolation:
                    raise ExtrapolationError(msg + "; pass allow_extrapolation=True (CLI: --allow-extrapolation) "
                                                   "to predict anyway")
                warnings.warn(msg + "; extrapolating, the prediction may be unreliable", ExtrapolationWarning,
                              stacklevel=3)
        return outside

    def z_grid(self, h: np.ndarray) -> np.ndarray:
        """(N, 502) bin positions: linspace(-a(h), a(h), 502), a(h) interpolated linearly in h from the training
        grids stored in the card (extrapolated linearly outside them; h/2 when the card stores none)."""
        h = np.atleast_1d(np.asarray(h, dtype=float))
        grid = self.card["outputs"].get("z_grid", {})
        hs, aw = np.asarray(grid.get("h", []), float), np.asarray(grid.get("half_width", []), float)
        if hs.size == 0:
            a = h / 2
        elif hs.size == 1:
            a = h / 2 + (aw[0] - hs[0] / 2)
        else:
            a = np.interp(h, hs, aw)
            lo_slope = (aw[1] - aw[0]) / (hs[1] - hs[0])
            hi_slope = (aw[-1] - aw[-2]) / (hs[-1] - hs[-2])
            a = np.where(h < hs[0], aw[0] + (h - hs[0]) * lo_slope, a)
            a = np.where(h > hs[-1], aw[-1] + (h - hs[-1]) * hi_slope, a)
        u = np.linspace(-1.0, 1.0, N_POINTS)
        return a[:, None] * u[None, :]

    def stacked(self):
        """The members as one StackedEnsemble (built once)."""
        runner = self.__dict__.get("_stacked")
        if runner is None:
            from mdsurrogate.surrogate.models import StackedEnsemble

            for m in self.members:
                m.eval()
            runner = StackedEnsemble(self.members).to(next(self.members[0].parameters()).device)
            self.__dict__["_stacked"] = runner
        return runner

    def _run(self, X: np.ndarray, fn, outputs: int, batch_size: int) -> list[np.ndarray]:
        import torch

        X = np.ascontiguousarray(X, dtype=np.float32)
        dev = self.stacked().x_min.device
        results: list[list[np.ndarray]] = [[] for _ in range(outputs)]
        # A few profiles are faster on one thread: waking a second thread costs more than the work (and
        # milliseconds when the cores are busy).
        threads = torch.get_num_threads()
        small = dev.type == "cpu" and len(X) < 64 and threads > 1
        if small:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                for i in range(0, len(X), batch_size):
                    res = fn(torch.from_numpy(X[i:i + batch_size]).to(dev))
                    for k, r in enumerate(res):
                        results[k].append(None if r is None else r.cpu().numpy())
        finally:
            if small:
                torch.set_num_threads(threads)
        return [None if not parts or parts[0] is None else np.concatenate(parts, axis=-2) for parts in results]

    def predict_array(self, X: np.ndarray, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """Raw member predictions (M, N, 1004), no range checks; the members run stacked (batched matmuls)."""
        return self._run(X, lambda x: (self.stacked()(x),), 1, batch_size)[0]

    def predict_mean_std(self, X: np.ndarray, std: bool = True, batch_size: int = INFERENCE_BATCH
                         ) -> tuple[np.ndarray, np.ndarray | None]:
        """Ensemble mean and spread (N, 1004) each (spread None for one member), no range checks."""
        mean, spread = self._run(X, lambda x: self.stacked().mean_std(x, std), 2, batch_size)
        return mean, spread

    def predict_on_grid(self, X: np.ndarray, z: np.ndarray, std: bool = True
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """Ensemble mean and spread (N, 2 * P) on other z grids z (N, P): each predicted profile is interpolated
        linearly from the surrogate's grid (`z_grid`) to z, the layout [n+ on z, n- on z] (no range checks).
        Use it to score against MD binned differently, e.g. the authors' grids [-a(h), a(h)] vs h/2."""
        X = np.asarray(X, dtype=float)
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[0] != len(X):
            raise ValueError(f"z must have shape (N, P) with N = {len(X)} systems, got {z.shape}")
        from mdsurrogate.surrogate.data import regrid_profiles

        mean, spread = self.predict_mean_std(X, std=std)
        own = self.z_grid(X[:, 0])
        if own.shape == z.shape and np.allclose(own, z, rtol=0.0, atol=1e-9):
            return mean, spread
        return regrid_profiles(mean, own, z), (regrid_profiles(spread, own, z) if spread is not None else None)

    def predict(self, inputs: Any, allow_extrapolation: bool = False, return_std: bool = True) -> xr.Dataset:
        """Density profiles for one system or a batch.

        inputs: dict of the five inputs (scalars or arrays), NumPy array (5,) or (N, 5) in INPUT_NAMES order,
        pandas DataFrame, or xarray Dataset with variables h, c, d_plus, d_minus, sigma_s. Returns a Dataset with
        dims (system, point): z (nm), n_plus, n_minus (M; the ensemble mean) and, with return_std and more than
        one member, n_plus_std, n_minus_std (the ensemble spread). Inputs outside the training ranges raise
        ExtrapolationError unless allow_extrapolation=True, which warns instead.
        """
        X = inputs_to_array(inputs)
        extrapolated = self.check_inputs(X, allow_extrapolation)
        mean, std = self.predict_mean_std(X, std=return_std)
        data = {name: ("system", X[:, i], {"units": INPUT_UNITS[name], "long_name": INPUT_LONG_NAMES[name]})
                for i, name in enumerate(INPUT_NAMES)}
        data["n_plus"] = (("system", "point"), mean[:, :N_POINTS], {"units": "M", "long_name": "cation density"})
        data["n_minus"] = (("system", "point"), mean[:, N_POINTS:], {"units": "M", "long_name": "anion density"})
        if std is not None:
            data["n_plus_std"] = (("system", "point"), std[:, :N_POINTS], {"units": "M"})
            data["n_minus_std"] = (("system", "point"), std[:, N_POINTS:], {"units": "M"})
        return xr.Dataset(data, coords={"z": (("system", "point"), self.z_grid(X[:, 0]), {"units": "nm"})},
                          attrs={"surrogate": self.name, "weights_sha256": self.card["weights"]["sha256"],
                                 "n_members": len(self.members), "extrapolated": int(extrapolated)})

    def save(self, directory: str | Path) -> Path:
        return save_surrogate(self, directory)


def build_card(members: list, *, name: str, training_X: np.ndarray, z_half_width: dict[float, float],
               train_config: dict, member_info: list[dict], training_data: dict, metrics: dict,
               description: str = "") -> dict:
    """The card of a new surrogate; training ranges are the min/max of the inputs it was trained on."""
    from mdsurrogate.provenance import provenance

    ranges = {name_: (float(training_X[:, i].min()), float(training_X[:, i].max()))
              for i, name_ in enumerate(INPUT_NAMES)}
    return {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        "name": name,
        "description": description,
        "inputs": [{"name": k, "long_name": INPUT_LONG_NAMES[k], "unit": INPUT_UNITS[k],
                    "design_range": list(DESIGN_RANGES[k]), "training_range": list(ranges[k])} for k in INPUT_NAMES],
        "outputs": {"variables": ["n_plus", "n_minus"], "units": "M", "n_points": N_POINTS,
                    "layout": "network output y[0:502] = n_plus, y[502:1004] = n_minus on the z grid",
                    "z_grid": {"rule": "z = linspace(-a(h), a(h), 502); a(h) linear in h through these points",
                               "h": list(z_half_width), "half_width": list(z_half_width.values())}},
        "architecture": members[0].config.as_dict(),
        "n_members": len(members),
        "training": {"config": train_config, "members": member_info},
        "training_data": training_data,
        "metrics": metrics,
        "versions": provenance("torch", "scikit-learn", "safetensors"),
    }


def save_surrogate(surrogate: Surrogate, directory: str | Path) -> Path:
    """Write weights + card into `directory` atomically (built in a sibling temp dir, then renamed)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        tensors = {f"member{i}.{k}": v.detach().cpu().contiguous().float()
                   for i, m in enumerate(surrogate.members) for k, v in m.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": CARD_FORMAT})
        card = dict(surrogate.card)
        card["n_members"] = len(surrogate.members)
        card["weights"] = {"file": WEIGHTS_FILE, "sha256": _sha256(tmp / WEIGHTS_FILE), "dtype": "float32",
                           "n_tensors": len(tensors), "bytes": (tmp / WEIGHTS_FILE).stat().st_size}
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        surrogate.card = card
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_surrogate(directory: str | Path | None = None, device: str = "cpu") -> Surrogate:
    """Load and verify a saved surrogate (default: the one shipped in the package)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mdsurrogate.surrogate.models import NetworkConfig, ProfileNet

    directory = default_surrogate_path() if directory is None else Path(directory)
    card_path = directory / CARD_FILE
    if not directory.is_dir():
        raise SurrogateLoadError(f"{directory}: no such surrogate directory")
    if not card_path.is_file():
        raise SurrogateLoadError(f"{directory}: missing {CARD_FILE}; not a saved surrogate")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SurrogateLoadError(f"{card_path}: corrupted card, not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise SurrogateLoadError(f"{card_path}: not a {CARD_FORMAT} card (format={card.get('format')!r})"
                                 if isinstance(card, dict) else f"{card_path}: card must be a JSON object")
    if card.get("format_version") != CARD_VERSION:
        raise SurrogateLoadError(f"{card_path}: card format_version {card.get('format_version')!r} is not supported "
                                 f"(this mdsurrogate reads version {CARD_VERSION})")
    try:
        weights = card["weights"]
        config = NetworkConfig.from_dict(card["architecture"])
        n_members = int(card["n_members"])
        names = [d["name"] for d in card["inputs"]]
        for d in card["inputs"]:
            lo, hi = d["training_range"]
            if not lo <= hi:
                raise ValueError(f"training_range of {d['name']} is empty")
    except (KeyError, TypeError, ValueError) as exc:
        raise SurrogateLoadError(f"{card_path}: incomplete or invalid card ({exc})") from None
    if tuple(names) != INPUT_NAMES:
        raise SurrogateLoadError(f"{card_path}: inputs {names} do not match {list(INPUT_NAMES)}")
    wpath = directory / weights.get("file", WEIGHTS_FILE)
    if not wpath.is_file():
        raise SurrogateLoadError(f"{directory}: weights file {wpath.name} is missing")
    digest = _sha256(wpath)
    if digest != weights.get("sha256"):
        raise SurrogateLoadError(f"{wpath}: sha256 {digest[:12]}... does not match the card's "
                                 f"{str(weights.get('sha256'))[:12]}...; the weights are corrupted or belong to "
                                 "another surrogate")
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SurrogateLoadError(f"{wpath}: unreadable safetensors file ({exc})") from None
    members = []
    for i in range(n_members):
        prefix = f"member{i}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        model = ProfileNet(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise SurrogateLoadError(f"{wpath}: member {i} does not match the architecture in the card "
                                     f"({str(exc).splitlines()[0]})") from None
        model.eval()
        members.append(model.to(torch.device(device)))
    extra = {k for k in tensors if not any(k.startswith(f"member{i}.") for i in range(n_members))}
    if extra:
        raise SurrogateLoadError(f"{wpath}: tensors {sorted(extra)[:3]} are not described by the card "
                                 f"(n_members={n_members})")
    return Surrogate(members=members, card=card)


def fit_surrogate(ds: xr.Dataset, config=None, n_members: int = 5, n_test: int | float = 0.2, seed: int = 0,
                  name: str = "surrogate", description: str = "", checkpoint_dir: str | Path | None = None
                  ) -> tuple[Surrogate, dict]:
    """Train a deep ensemble on a random train split of `ds`, score it on the held-out test split, and return
    (Surrogate with card, report). n_test = 0 trains on every system (the card then carries no test metrics)."""
    from mdsurrogate.evaluation.metrics import evaluate_predictions, success_rate_per_system
    from mdsurrogate.surrogate.data import split_by_system, to_arrays, z_half_widths
    from mdsurrogate.surrogate.training import default_config, train_ensemble

    config = default_config() if config is None else config
    arrays = to_arrays(ds)
    if n_test:
        tr, te = split_by_system(arrays, n_test, seed)
    else:
        tr, te = np.arange(len(arrays)), np.array([], dtype=int)
    train = arrays.take(tr)
    results = train_ensemble(train, config, n_members=n_members, seed=seed, checkpoint_dir=checkpoint_dir)
    members = [r.model for r in results]
    keys = [str(k) for k in ds["key"].values] if "key" in ds.coords else None
    training_data = {
        "source": ds.attrs.get("source", "unknown"), "source_sha256": ds.attrs.get("source_sha256", "unknown"),
        "error_scale": float(ds.attrs.get("error_scale", 1.0)), "n_systems": int(len(arrays)),
        "n_train": int(len(tr)), "n_test": int(len(te)), "split": "random", "split_seed": int(seed),
        "train_systems": [keys[i] for i in tr] if keys else tr.tolist(),
        "test_systems": [keys[i] for i in te] if keys else te.tolist(),
    }
    metrics: dict = {}
    report: dict = {"members": [{"seed": r.config.seed, "best_epoch": r.best_epoch, "best_val_mse": r.best_val_mse,
                                 "train_time_s": r.train_time_s} for r in results]}
    sur = Surrogate(members=members, card={})
    if len(te):
        test = arrays.take(te)
        pred = sur.predict_array(test.X)
        metrics["test_ensemble"] = evaluate_predictions(test.Y, pred.mean(axis=0), test.EPS)
        per_member = [evaluate_predictions(test.Y, p, test.EPS) for p in pred]
        metrics["test_member_mean"] = {k: float(np.mean([m[k] for m in per_member])) for k in per_member[0]}
        metrics["test_A_j"] = success_rate_per_system(test.Y, pred.mean(axis=0), test.EPS).tolist()
        metrics["units"] = "E, E_I/E_B in M; MSE in M^2; A = success rate (kadupitiya2021 eq. 10)"
    sur.card = build_card(members, name=name, training_X=train.X, z_half_width=z_half_widths(ds.isel(system=tr)),
                          train_config=config.as_dict(), member_info=report["members"], training_data=training_data,
                          metrics=metrics, description=description)
    report["metrics"] = metrics
    return sur, report
