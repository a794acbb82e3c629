"""Sweeps: the surrogate's profiles while one input runs over values and the others stay fixed (kadupitiya2020
Fig. 6 trendlines), with the MD's derived quantities (charge density, integrated charge, decay length)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from mdsurrogate.simulation.system import INPUT_LONG_NAMES, INPUT_NAMES, INPUT_UNITS


def sweep(sur, base: dict[str, float], name: str, values, allow_extrapolation: bool = False) -> xr.Dataset:
    """Profiles from the surrogate `sur` while input `name` takes `values` and the other inputs stay at `base`.

    Returns a Dataset with dims (value, point): z (nm), n_plus, n_minus (M, ensemble mean), n_plus_std,
    n_minus_std (M, ensemble spread, with more than one member), rho (C/m^3) and S (C/m^2), the charge density and
    integrated charge by the MD's definitions (`simulation.derived.charge_density`, `integrated_charge` from the
    wall charge an MD run carries, `sigma_s_effective`), and decay_length (value) in nm
    (`derived.screening_length`). The dim `value` carries the swept values as coordinate `value` and as a
    coordinate named by the input (e.g. `c`); attrs: input, surrogate, base (JSON) and base_<input> each.
    Values outside the training ranges raise `ExtrapolationError` unless allow_extrapolation=True.
    """
    if name not in INPUT_NAMES:
        raise ValueError(f"unknown input {name!r}; the inputs are {list(INPUT_NAMES)}")
    values = np.asarray(values, dtype=float)
    if values.ndim == 0:
        values = values[None]
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values of {name} must be a non-empty 1-D list, got shape {values.shape}")
    missing = [k for k in INPUT_NAMES if k != name and k not in base]
    if missing:
        raise ValueError(f"base lacks {missing}; a sweep over {name} fixes all other inputs")
    fixed = {k: float(base[k]) for k in INPUT_NAMES if k != name}
    inputs = {k: (values if k == name else np.full(values.size, fixed[k])) for k in INPUT_NAMES}
    pred = sur.predict(inputs, allow_extrapolation=allow_extrapolation, return_std=True, derived=True)
    pred = pred.rename({"system": "value", "charge_density": "rho", "integrated_charge": "S"})
    keep = ["n_plus", "n_minus", "n_plus_std", "n_minus_std", "rho", "S", "decay_length", "sigma_s_effective"]
    out = pred[[v for v in keep if v in pred]]
    vattrs = {"units": INPUT_UNITS[name], "long_name": INPUT_LONG_NAMES[name], "input": name}
    out = out.assign_coords(value=("value", values, vattrs), **{name: ("value", values, vattrs)})
    out.attrs = {"input": name, "surrogate": sur.name, "base": json.dumps(fixed),
                 **{f"base_{k}": v for k, v in fixed.items()},
                 "weights_sha256": pred.attrs.get("weights_sha256", ""), "extrapolated": pred.attrs["extrapolated"]}
    return out
