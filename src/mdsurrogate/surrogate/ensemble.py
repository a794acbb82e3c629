"""The surrogate: a deep ensemble of profile networks with its card, predicting density profiles with the ensemble
spread for one system or a batch (`Surrogate.predict`), refusing inputs outside its training ranges. A surrogate
is of one system kind (`card["system_kind"]`, `simulation.system.SystemSchema`): the charged-wall system (inputs h,
c, d_plus, d_minus, sigma_s; 502 points) or the uncharged-wall one (h, c, z_p, z_n, d; 150 points).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mdsurrogate.dataset.arrays import regrid_profiles
from mdsurrogate.dataset.core import effective_sigma_s
from mdsurrogate.simulation.derived import charge_density, integrated_charge, screening_length
from mdsurrogate.simulation.system import CHARGED_SCHEMA, SystemSchema, system_schema

#: Rows per forward pass. Small batches keep the (members x batch x 502) activations in the CPU caches: 1e5
#: profiles through a 5-member ensemble on 2 idle cores took 1.5-1.9 s at 128-512 rows, 3.0 s at 8192
#: (torch 2.13, AVX-512, 2026-11-27).
INFERENCE_BATCH = 512


class ExtrapolationError(ValueError):
    """An input lies outside the surrogate's training range."""


class ExtrapolationWarning(UserWarning):
    """Predicting outside the training range (allowed by the caller)."""


#: Folders (in mdsurrogate/data) of the surrogates shipped in the package, by system kind (docs/surrogate.md).
SHIPPED_SURROGATES = {"charged": "surrogate_default", "uncharged": "surrogate_uncharged"}


def default_surrogate_path(system: str = "charged") -> Path:
    """The ensemble of the system kind shipped inside the package (charged: mdsurrogate/data/surrogate_default;
    uncharged: mdsurrogate/data/surrogate_uncharged)."""
    system_schema(system)  # raises for an unknown kind
    return Path(__file__).resolve().parent.parent / "data" / SHIPPED_SURROGATES[system]


def inputs_to_array(inputs: Any, schema: SystemSchema = CHARGED_SCHEMA) -> np.ndarray:
    """(N, 5) float array in the schema's input order (default the charged system's INPUT_NAMES) from a dict,
    NumPy array, pandas DataFrame/Series, xarray Dataset or an object with `.inputs()` (e.g. ConfinedElectrolyte,
    UnchargedElectrolyte). Inputs that lack one of the schema's names raise a one-line ValueError naming them."""
    names, long_names = schema.input_names, schema.long_names
    if hasattr(inputs, "inputs") and callable(inputs.inputs):
        inputs = inputs.inputs()
    if isinstance(inputs, (list, tuple)) and inputs and hasattr(inputs[0], "inputs"):
        inputs = pd.DataFrame([s.inputs() for s in inputs])
    if isinstance(inputs, pd.Series):
        inputs = inputs.to_dict()
    if isinstance(inputs, (dict, pd.DataFrame, xr.Dataset)):
        missing = [k for k in names if k not in inputs]
        if missing:
            raise ValueError(f"inputs lack {', '.join(missing)}; the surrogate of the {schema.kind}-wall system "
                             f"needs {schema.describe()}")
        raw = [np.asarray(inputs[k].values if hasattr(inputs[k], "values") else inputs[k]) for k in names]
        flat = [name for name, r in zip(names, raw) if r.ndim > 1]
        if flat:
            raise ValueError(f"input {flat[0]} must be a number or a 1-D list of systems, got shape "
                             f"{raw[names.index(flat[0])].shape}")
        try:
            cols = [np.atleast_1d(r.astype(float)) for r in raw]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"inputs must be numbers ({exc})") from None
        sizes = {c.size for c in cols}
        if len(sizes) != 1:
            raise ValueError(f"inputs have different lengths {dict(zip(names, (c.size for c in cols)))}")
        X = np.stack(cols, axis=1)
    else:
        X = np.asarray(inputs, dtype=float)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(names):
            raise ValueError(f"array inputs must have shape ({len(names)},) or (N, {len(names)}) with columns "
                             f"{list(names)}, got {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = names[int(np.where(~np.isfinite(X))[1][0])]
        raise ValueError(f"input {bad} ({long_names[bad]}) has non-finite values")
    return X


def derived_profiles(X: np.ndarray, z: np.ndarray, n_plus: np.ndarray, n_minus: np.ndarray,
                     schema: SystemSchema = CHARGED_SCHEMA) -> dict[str, np.ndarray]:
    """The MD's derived quantities of predicted profiles, by the MD's own definitions (`simulation.derived`, as
    `simulation.engine` and the dataset compute them): X (N, 5) inputs of the schema's system, z (N, P) nm,
    n_plus/n_minus (N, P) M. For the uncharged system the walls carry no charge (sigma_s_effective 0), rho =
    e N_A (z_p n+ + z_n n-) with the inputs' valencies, and decay_length is NaN (S starts at 0 at the wall).

    Returns sigma_s_effective (N,) C/m^2 (the wall charge an MD run of these inputs carries, quantised to whole
    counterions, `dataset.core.effective_sigma_s`), charge_density rho(z) = e N_A (n+ - n-) (N, 502) C/m^3,
    integrated_charge S(z) = sigma_s_effective + int rho dz (N, 502) C/m^2 and decay_length (N,) nm
    (`derived.screening_length`: distance from the wall where |S| first falls below |S(wall)|/e; NaN if never).
    """
    X = np.atleast_2d(np.asarray(X, dtype=float))
    z = np.asarray(z, dtype=float)
    rows, inverse = np.unique(X, axis=0, return_inverse=True)  # a sweep repeats most inputs
    sigma = np.array([effective_sigma_s(dict(zip(schema.input_names, map(float, r)))) for r in rows]
                     ).reshape(-1)[inverse.ravel()]
    n_plus, n_minus = np.asarray(n_plus, dtype=float), np.asarray(n_minus, dtype=float)
    if schema.kind == "charged":
        rho = charge_density(n_plus, n_minus)
    else:
        rho = np.empty_like(n_plus)
        z_p, z_n = schema.valencies(X)
        for vp, vn in {(int(a), int(b)) for a, b in zip(z_p, z_n)}:
            sel = (z_p == vp) & (z_n == vn)
            rho[sel] = charge_density(n_plus[sel], n_minus[sel], vp, vn)
    S = integrated_charge(z, rho, sigma[:, None])
    decay = np.array([screening_length(z[i], S[i], X[i, 0]) for i in range(len(X))])
    return {"sigma_s_effective": sigma, "charge_density": rho, "integrated_charge": S, "decay_length": decay}


#: Attributes of the derived variables (names and units as in the MD datasets).
DERIVED_ATTRS = {
    "sigma_s_effective": {"units": "C/m^2", "long_name": "wall charge carried by an MD run of these inputs"},
    "charge_density": {"units": "C/m^3", "long_name": "e (z_p n+ + z_n n-)"},
    "integrated_charge": {"units": "C/m^2", "long_name": "sigma_s_effective + integral of rho from the wall"},
    "decay_length": {"units": "nm", "long_name": "distance from the wall where |S| falls below |S(wall)|/e"},
}


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

    @property
    def system_kind(self) -> str:
        """'charged' or 'uncharged' (a card without system_kind is of the charged system)."""
        return self.card.get("system_kind") or self.members[0].config.system

    @property
    def schema(self) -> SystemSchema:
        """The learning problem of this surrogate's system kind: inputs, units, ranges, profile points."""
        return system_schema(self.system_kind)

    def inputs_to_array(self, inputs: Any) -> np.ndarray:
        """(N, 5) inputs in this surrogate's input order (`inputs_to_array` with its schema)."""
        return inputs_to_array(inputs, self.schema)

    def check_inputs(self, X: np.ndarray, allow_extrapolation: bool = False) -> bool:
        """Raise ExtrapolationError naming the parameter and its training range for inputs outside it; with
        allow_extrapolation warn instead. Returns True when some input extrapolates."""
        X = np.asarray(X, dtype=float)
        schema = self.schema
        if X.ndim != 2 or X.shape[1] != len(schema.input_names):
            raise ValueError(f"inputs must have shape (N, {len(schema.input_names)}), got {X.shape}")
        outside = False
        for i, name in enumerate(schema.input_names):
            plo, phi = schema.physical_limits[name]
            unit, long_name = schema.units[name], schema.long_names[name]
            bad = np.where(~((X[:, i] >= plo) & (X[:, i] <= phi)))[0]  # NaN fails both comparisons
            if bad.size:
                raise ValueError(f"{name} ({long_name}) = {X[bad[0], i]:g} {unit} (system "
                                 f"{int(bad[0])}) is outside the physical limits [{plo:g}, {phi:g}] "
                                 f"{unit}, which extrapolation never crosses")
            if name in schema.integer_inputs:
                bad = np.where(X[:, i] != np.round(X[:, i]))[0]
                if bad.size:
                    raise ValueError(f"{name} ({long_name}) = {X[bad[0], i]:g} (system {int(bad[0])}) must be an "
                                     "integer valency")
            lo, hi = self.training_ranges[name]
            tol = 1e-6 * max(1.0, abs(lo), abs(hi))  # float32 inputs round 0.415 by ~1e-8
            bad = np.where((X[:, i] < lo - tol) | (X[:, i] > hi + tol))[0]
            if bad.size:
                outside = True
                msg = (f"{name} ({long_name}) = {X[bad[0], i]:g} {unit} (system {int(bad[0])}"
                       f"{f' and {bad.size - 1} more' if bad.size > 1 else ''}) is outside the surrogate's training "
                       f"range [{lo:g}, {hi:g}] {unit}")
                if not allow_extrapolation:
                    raise ExtrapolationError(msg + "; pass allow_extrapolation=True (CLI: --allow-extrapolation) "
                                                   "to predict anyway")
                warnings.warn(msg + "; extrapolating, the prediction may be unreliable", ExtrapolationWarning,
                              stacklevel=3)
        return outside

    def z_grid(self, h: np.ndarray) -> np.ndarray:
        """(N, P) bin positions. Charged system: linspace(-a(h), a(h), 502), a(h) interpolated linearly in h from
        the training grids stored in the card (extrapolated linearly outside them; h/2 when the card stores none).
        Uncharged system: linspace(-h/2, h/2, 150), the engine's grid (`simulation.system.uncharged_grid`)."""
        h = np.atleast_1d(np.asarray(h, dtype=float))
        schema = self.schema
        grid = self.card["outputs"].get("z_grid", {})
        hs, aw = np.asarray(grid.get("h", []), float), np.asarray(grid.get("half_width", []), float)
        if schema.z_rule == "half_h" or hs.size == 0:
            a = h / 2
        elif hs.size == 1:
            a = h / 2 + (aw[0] - hs[0] / 2)
        else:
            a = np.interp(h, hs, aw)
            lo_slope = (aw[1] - aw[0]) / (hs[1] - hs[0])
            hi_slope = (aw[-1] - aw[-2]) / (hs[-1] - hs[-2])
            a = np.where(h < hs[0], aw[0] + (h - hs[0]) * lo_slope, a)
            a = np.where(h > hs[-1], aw[-1] + (h - hs[-1]) * hi_slope, a)
        if schema.z_rule == "half_h":  # exactly the engine's linspace(-h/2, h/2, P)
            return np.stack([np.linspace(-x / 2, x / 2, schema.n_points) for x in h]) if len(h) else \
                np.empty((0, schema.n_points))
        u = np.linspace(-1.0, 1.0, schema.n_points)
        return a[:, None] * u[None, :]

    def stacked(self):
        """The members as one StackedEnsemble (built once)."""
        runner = self.__dict__.get("_stacked")
        if runner is None:
            from mdsurrogate.surrogate.models import StackedEnsemble  # noqa: PLC0415 - torch

            for m in self.members:
                m.eval()
            runner = StackedEnsemble(self.members).to(next(self.members[0].parameters()).device)
            self.__dict__["_stacked"] = runner
        return runner

    def _run(self, X: np.ndarray, fn, outputs: int, batch_size: int) -> list[np.ndarray]:
        import torch  # noqa: PLC0415

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
        """Raw member predictions (M, N, 2 P), no range checks; the members run stacked (batched matmuls)."""
        return self._run(X, lambda x: (self.stacked()(x),), 1, batch_size)[0]

    def predict_mean_std(self, X: np.ndarray, std: bool = True, batch_size: int = INFERENCE_BATCH,
                         precision: str = "fp32") -> tuple[np.ndarray, np.ndarray | None]:
        """Ensemble mean and spread (N, 2 P) each (P = 502 or 150 points per ion; spread None for one member), no
        range checks. precision "bf16": bfloat16 matrix products after the first layer, for large evaluations
        of profiles on CPUs with AMX or AVX512-BF16; not for Sobol indices (`StackedEnsemble.mean_std`)."""
        from mdsurrogate.surrogate.models import check_precision  # noqa: PLC0415 - torch

        check_precision(precision)  # before any batch (an empty X runs none)
        mean, spread = self._run(X, lambda x: self.stacked().mean_std(x, std, precision), 2, batch_size)
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
        mean, spread = self.predict_mean_std(X, std=std)
        own = self.z_grid(X[:, 0])
        if own.shape == z.shape and np.allclose(own, z, rtol=0.0, atol=1e-9):
            return mean, spread
        return regrid_profiles(mean, own, z), (regrid_profiles(spread, own, z) if spread is not None else None)

    def predict(self, inputs: Any, allow_extrapolation: bool = False, return_std: bool = True,
                derived: bool = True) -> xr.Dataset:
        """Density profiles for one system or a batch.

        inputs: dict of the five inputs (scalars or arrays), NumPy array (5,) or (N, 5) in the surrogate's input
        order, pandas DataFrame, xarray Dataset or system object: h, c, d_plus, d_minus, sigma_s for the charged
        system, h, c, z_p, z_n, d for the uncharged one (inputs of the other kind raise a one-line ValueError
        naming the missing ones). Returns a Dataset with
        dims (system, point): z (nm), n_plus, n_minus (M; the ensemble mean) and, with return_std and more than
        one member, n_plus_std, n_minus_std (the ensemble spread); with derived (default) also the MD's derived
        quantities of the mean profiles (`derived_profiles`): charge_density (C/m^3), integrated_charge (C/m^2)
        (system, point), decay_length (nm) and sigma_s_effective (system). Inputs outside the training ranges
        raise ExtrapolationError unless allow_extrapolation=True, which warns instead.
        """
        schema = self.schema
        X = inputs_to_array(inputs, schema)
        if len(X) == 0:
            raise ValueError("inputs hold no systems: give at least one set of "
                             f"{', '.join(schema.input_names)}")
        extrapolated = self.check_inputs(X, allow_extrapolation)
        mean, std = self.predict_mean_std(X, std=return_std)
        if not np.all(np.isfinite(mean)) or (std is not None and not np.all(np.isfinite(std))):
            raise ValueError(f"surrogate {self.name!r} produced non-finite profiles; its weights are damaged")
        p = schema.n_points
        data = {name: ("system", X[:, i].astype(int) if name in schema.integer_inputs else X[:, i],
                       {"units": schema.units[name], "long_name": schema.long_names[name]})
                for i, name in enumerate(schema.input_names)}
        data["n_plus"] = (("system", "point"), mean[:, :p], {"units": "M", "long_name": "cation density"})
        data["n_minus"] = (("system", "point"), mean[:, p:], {"units": "M", "long_name": "anion density"})
        if std is not None:
            data["n_plus_std"] = (("system", "point"), std[:, :p], {"units": "M"})
            data["n_minus_std"] = (("system", "point"), std[:, p:], {"units": "M"})
        z = self.z_grid(X[:, 0])
        if derived:
            for name, v in derived_profiles(X, z, mean[:, :p], mean[:, p:], schema).items():
                data[name] = (("system", "point")[:v.ndim], v, DERIVED_ATTRS[name])
        return xr.Dataset(data, coords={"z": (("system", "point"), z, {"units": "nm"})},
                          attrs={"surrogate": self.name, "system_kind": schema.kind,
                                 "weights_sha256": self.card.get("weights", {}).get("sha256", "unsaved"),
                                 "n_members": len(self.members), "extrapolated": int(extrapolated)})

    def save(self, directory: str | Path) -> Path:
        """Write weights and card to `directory` (`card.save_surrogate`)."""
        from mdsurrogate.surrogate.card import save_surrogate  # noqa: PLC0415 - card.py imports this module

        return save_surrogate(self, directory)

    @classmethod
    def load(cls, directory: str | Path | None = None, device: str = "cpu", system: str | None = None
             ) -> "Surrogate":
        """Load and verify a saved surrogate of either system kind (default: the one shipped in the package for
        `system`, 'charged' unless given; `card.load_surrogate`). With both a directory and `system`, a surrogate
        of the other kind is refused."""
        from mdsurrogate.surrogate.card import load_surrogate  # noqa: PLC0415 - card.py imports this module

        return load_surrogate(directory, device, system=system)

    @classmethod
    def fit(cls, ds: xr.Dataset, config=None, n_members: int = 5, n_test: int | float = 0.2, seed: int = 0,
            name: str = "surrogate", description: str = "", checkpoint_dir: str | Path | None = None
            ) -> "Surrogate":
        """Train a deep ensemble on a random training split of `ds` (`fit.fit_surrogate`); the result predicts
        at once and can be saved. Its card lists the held-out test systems (score them with
        `mdsurrogate.evaluation.score_surrogate`)."""
        from mdsurrogate.surrogate.fit import fit_surrogate  # noqa: PLC0415 - fit.py imports this module

        return fit_surrogate(ds, config, n_members=n_members, n_test=n_test, seed=seed, name=name,
                             description=description, checkpoint_dir=checkpoint_dir)[0]
