"""Variance-based (Sobol) sensitivity indices of the predicted profiles (kadupitiya2021 section 4, Fig. 8).

Sampling is SALib's (`SALib.sample.sobol.sample`: scrambled Sobol' points in Saltelli's scheme, normal or uniform
inputs via problem['dists']). The analysis is SALib's estimators (`SALib.analyze.sobol`: Saltelli 2010 first
order, Jansen total order, Saltelli 2002 second order, bootstrap confidence intervals) computed for every output
point at once while the model outputs stream past in chunks: each estimator is a mean over the N base rows of a
product of output blocks, and each bootstrap resample is the same mean weighted by how often it draws each row,
so all resamples and all outputs are one matrix product (resample counts x per-row terms) per chunk. Nothing of
size N x P is ever held. The numbers equal SALib.analyze.sobol's on every output (tests/test_analysis.py), with
SALib's centring (outputs centred by their overall mean), its bootstrap draws (numpy default_rng(seed).integers,
what SALib draws for a non-zero seed) and its rule that a constant output has indices 0.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import xarray as xr
from SALib.sample import sobol as salib_sobol
from scipy.stats import norm as normal_dist

from mdsurrogate.simulation.system import INPUT_NAMES, N_GRID

#: Bytes of per-row estimator terms (float64) held per chunk; the model's outputs of a chunk are smaller.
CHUNK_BYTES = 48e6


def sobol_problem(inputs: dict[str, float | tuple]) -> tuple[dict, dict[str, float]]:
    """(SALib problem of the uncertain inputs, the fixed inputs) from {name: value} where a float fixes an input
    and ("norm", mean, sd) or ("unif", lo, hi) makes it uncertain."""
    names, bounds, dists, fixed = [], [], [], {}
    for name, spec in inputs.items():
        if isinstance(spec, (tuple, list)):
            if len(spec) != 3 or spec[0] not in ("norm", "unif"):
                raise ValueError(f"input {name}: an uncertain input is ('norm', mean, sd) or ('unif', lo, hi), "
                                 f"got {spec!r}")
            kind, a, b = spec[0], float(spec[1]), float(spec[2])
            if not (np.isfinite(a) and np.isfinite(b)):
                raise ValueError(f"input {name}: {spec!r} has non-finite parameters")
            if kind == "norm" and not b > 0:
                raise ValueError(f"input {name}: the standard deviation must be > 0, got {b}")
            if kind == "unif" and not b > a:
                raise ValueError(f"input {name}: uniform bounds need lo < hi, got {a}, {b}")
            names.append(name)
            bounds.append([a, b])
            dists.append(kind)
        else:
            value = float(spec)
            if not np.isfinite(value):
                raise ValueError(f"input {name} = {spec!r} is not a finite number")
            fixed[name] = value
    if not names:
        raise ValueError("no uncertain input: give at least one as ('norm', mean, sd) or ('unif', lo, hi)")
    return {"num_vars": len(names), "names": names, "bounds": bounds, "dists": dists}, fixed


def _nominal(spec) -> float:
    """Centre of an input's distribution (mean or midpoint), or its fixed value."""
    if isinstance(spec, (tuple, list)):
        return float(spec[1]) if spec[0] == "norm" else 0.5 * (float(spec[1]) + float(spec[2]))
    return float(spec)


def _resample_counts(n: int, num_resamples: int, seed: int) -> np.ndarray:
    """(1 + R, n) weights of the base rows: row 0 the full sample (all ones), row 1 + b how often SALib's bootstrap
    resample b draws each row (r = default_rng(seed).integers(n, size=(n, R)), as SALib.analyze.sobol)."""
    r = np.random.default_rng(seed).integers(n, size=(n, num_resamples))
    counts = np.empty((num_resamples + 1, n), dtype=np.uint16)
    counts[0] = 1
    for b in range(num_resamples):
        counts[b + 1] = np.bincount(r[:, b], minlength=n)
    return counts


class _Accumulator:
    """Sums over the base rows, weighted by the resample counts, of the terms of SALib's estimators.

    Per base row (outputs shifted by a fixed m0, the first chunk's mean): A, B, A^2, B^2, d_j = AB_j - A,
    B d_j, d_j^2, and for second order BA_j and BA_j AB_l - A B (j < l). Plus, over all evaluations, the sum and
    sum of squares (SALib's normalisation) and the min and max (constant outputs) per output.
    """

    def __init__(self, counts: np.ndarray, k: int, second: bool) -> None:
        self.counts, self.k, self.second = counts, k, second
        self.pairs = [(j, m) for j in range(k) for m in range(j + 1, k)] if second else []
        self.n_terms = 4 + 3 * k + ((k + len(self.pairs)) if second else 0)
        self.step = 2 * k + 2 if second else k + 2
        self.m0 = self.acc = None

    def rows_per_chunk(self, P: int) -> int:
        return max(1, int(CHUNK_BYTES // (8 * self.n_terms * P)))

    def add(self, start: int, Y: np.ndarray) -> None:
        """Y: outputs of base rows start.. (rows x step, P), rows in SALib's sample order."""
        k, step = self.k, self.step
        Y = np.asarray(Y, dtype=np.float64)
        P = Y.shape[1]
        if self.m0 is None:
            self.m0 = Y.mean(axis=0)
            self.acc = np.zeros((self.counts.shape[0], self.n_terms * P))
            self.total = np.zeros(P)
            self.total_sq = np.zeros(P)
            self.lo, self.hi = Y.min(axis=0), Y.max(axis=0)
        else:
            self.lo, self.hi = np.minimum(self.lo, Y.min(axis=0)), np.maximum(self.hi, Y.max(axis=0))
        Y = Y - self.m0
        self.total += Y.sum(axis=0)
        self.total_sq += np.einsum("ip,ip->p", Y, Y)
        rows = len(Y) // step
        Y = Y.reshape(rows, step, P)
        A, B, AB = Y[:, 0], Y[:, -1], Y[:, 1:k + 1]
        G = np.empty((rows, self.n_terms, P))
        G[:, 0], G[:, 1] = A, B
        np.multiply(A, A, out=G[:, 2])
        np.multiply(B, B, out=G[:, 3])
        d = np.subtract(AB, A[:, None], out=G[:, 4:4 + k])
        np.multiply(B[:, None], d, out=G[:, 4 + k:4 + 2 * k])
        np.multiply(d, d, out=G[:, 4 + 2 * k:4 + 3 * k])
        if self.second:
            G[:, 4 + 3 * k:4 + 4 * k] = Y[:, k + 1:2 * k + 1]
            AxB = A * B
            for i, (j, m) in enumerate(self.pairs):
                out = G[:, 4 + 4 * k + i]
                np.multiply(Y[:, k + 1 + j], AB[:, m], out=out)
                out -= AxB
        self.acc += self.counts[:, start:start + rows].astype(np.float64) @ G.reshape(rows, -1)

    def indices(self, n: int, conf_level: float) -> dict[str, np.ndarray]:
        """S1, S1_conf, ST, ST_conf (k, P) and, for second order, S2, S2_conf (k, k, P; NaN off j < l)."""
        k, P = self.k, len(self.m0)
        F = self.acc.reshape(-1, self.n_terms, P) / n  # means over the (re)sampled base rows
        delta = self.total / (n * self.step)  # overall mean of the shifted outputs (SALib centres by it)
        var_all = self.total_sq / (n * self.step) - delta**2  # SALib's Y.var(), its normalisation
        mean_ab = 0.5 * (F[:, 0] + F[:, 1])
        var = 0.5 * (F[:, 2] + F[:, 3]) - mean_ab**2  # np.var(np.r_[A, B]) per resample
        ok = (self.hi > self.lo) & (var > np.finfo(float).eps * var_all)  # SALib: constant or no variance -> 0
        safe = np.where(ok, var, 1.0)
        d, Bd, dd = F[:, 4:4 + k], F[:, 4 + k:4 + 2 * k], F[:, 4 + 2 * k:4 + 3 * k]
        S1 = np.where(ok[:, None], (Bd - delta * d) / safe[:, None], 0.0)
        ST = np.where(ok[:, None], 0.5 * dd / safe[:, None], 0.0)
        Z = normal_dist.ppf(0.5 + conf_level / 2)
        out = {"S1": S1[0], "S1_conf": Z * S1[1:].std(axis=0, ddof=1),
               "ST": ST[0], "ST_conf": Z * ST[1:].std(axis=0, ddof=1)}
        if self.second:
            BA = F[:, 4 + 3 * k:4 + 4 * k]
            S2 = np.full((F.shape[0], k, k, P), np.nan)
            for i, (j, m) in enumerate(self.pairs):
                cross = F[:, 4 + 4 * k + i] - delta * (BA[:, j] + d[:, m] - F[:, 1])
                S2[:, j, m] = np.where(ok, cross / safe, 0.0) - S1[:, j] - S1[:, m]
            out["S2"] = S2[0]
            out["S2_conf"] = Z * S2[1:].std(axis=0, ddof=1)
        return out


def sobol_indices(sur, inputs: dict[str, float | tuple], n: int, seed: int = 0, calc_second_order: bool = False,
                  num_resamples: int = 100, conf_level: float = 0.95, allow_extrapolation: bool = False
                  ) -> xr.Dataset:
    """Sobol indices of the surrogate's profiles (its ensemble mean) or of any model, over uncertain inputs.

    sur: a `Surrogate`, or a callable model(X (N, k_all) array) -> (N, P) array (or (N,)) whose columns are the
    keys of `inputs` in order. inputs: {name: float} fixes an input, {name: ("norm", mean, sd)} or
    {name: ("unif", lo, hi)} makes it uncertain (a surrogate needs all five of h, c, d_plus, d_minus, sigma_s).
    n: SALib's base sample size N (a power of 2 keeps the Sobol' points balanced); the model is evaluated
    N (k + 2) times, N (2k + 2) with calc_second_order, k the number of uncertain inputs. seed: SALib's sampling
    seed (scrambling) and bootstrap seed. Sampling is `SALib.sample.sobol.sample`; the indices equal
    `SALib.analyze.sobol.analyze(problem, Y[:, p], calc_second_order, num_resamples, conf_level, seed=seed)` for
    every output p (for seed 0 SALib draws its bootstrap from the global numpy state; here from
    default_rng(0)); a constant output has all indices 0, as in SALib.

    Returns, for a surrogate, S1_n_plus, S1_n_plus_conf, ST_n_plus, ST_n_plus_conf and the same for n_minus and for
    rho (the charge density rho(z), kadupitiya2021 Fig. 8, from n+ - n-) with dims (input, point) and z(point)
    (nm, at the nominal h), plus S2_* (input, input_2, point) with second
    order; for a callable, S1, S1_conf, ST, ST_conf (input, output). Attrs: n_evaluations, wall_time_s
    (eval_time_s of it in the model), seed, n, problem and fixed (JSON), conf_level, num_resamples.
    Inputs outside a surrogate's training ranges (tails of a normal input) raise `ExtrapolationError` unless
    allow_extrapolation=True.
    """
    t0 = time.perf_counter()
    if int(n) != n or n < 2:
        raise ValueError(f"n (SALib's base sample size) must be an integer >= 2, got {n}")
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1) (0.95 for 95 % intervals), got {conf_level}")
    if int(num_resamples) != num_resamples or num_resamples < 2:
        raise ValueError(f"num_resamples (bootstrap resamples of the confidence intervals) must be an integer >= 2, "
                         f"got {num_resamples}")
    n = int(n)
    problem, fixed = sobol_problem(inputs)
    is_surrogate = hasattr(sur, "predict_mean_std")
    if is_surrogate:
        unknown = [name for name in inputs if name not in INPUT_NAMES]
        missing = [name for name in INPUT_NAMES if name not in inputs]
        if unknown or missing:
            wrong = (f"missing {missing}" if missing else "") + (f" unknown {unknown}" if unknown else "")
            raise ValueError(f"a surrogate needs exactly the inputs {list(INPUT_NAMES)}; {wrong.strip()}")
        columns = list(INPUT_NAMES)
    elif callable(sur):
        columns = list(inputs)
    else:
        raise TypeError(f"sobol_indices needs a Surrogate or a callable model, got {type(sur).__name__}")
    k = problem["num_vars"]
    sample = salib_sobol.sample(problem, n, calc_second_order=calc_second_order, seed=seed)
    X = np.empty((len(sample), len(columns)))
    for i, name in enumerate(columns):
        X[:, i] = sample[:, problem["names"].index(name)] if name in problem["names"] else fixed[name]
    del sample
    if is_surrogate:
        sur.check_inputs(X, allow_extrapolation)

        z_fixed = sur.z_grid(np.array([_nominal(inputs["h"])]))[0]
        h_varies = isinstance(inputs["h"], (tuple, list))

        def model(x: np.ndarray) -> np.ndarray:  # [n+, n-, n+ - n-]: the last has the indices of rho(z)
            if h_varies:  # each profile read at the same positions z (its grid scales with its own h)
                y = sur.predict_on_grid(x, np.broadcast_to(z_fixed, (len(x), len(z_fixed))), std=False)[0]
            else:
                y = sur.predict_mean_std(x, std=False)[0]
            return np.concatenate([y, y[:, :N_GRID] - y[:, N_GRID:]], axis=1)
    else:
        model: Callable = sur
    acc = _Accumulator(_resample_counts(n, num_resamples, seed), k, calc_second_order)
    step = acc.step
    t_eval = 0.0
    start, rows = 0, 16
    while start < n:
        stop = min(n, start + rows)
        te = time.perf_counter()
        Y = np.asarray(model(X[start * step:stop * step]))
        t_eval += time.perf_counter() - te
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or len(Y) != (stop - start) * step:
            raise ValueError(f"the model returned shape {Y.shape} for {(stop - start) * step} inputs; "
                             "it must return (N, P) or (N,)")
        if not np.all(np.isfinite(Y)):
            raise ValueError("the model returned non-finite outputs")
        acc.add(start, Y)
        start, rows = stop, acc.rows_per_chunk(Y.shape[1])
    S = acc.indices(n, conf_level)
    P = len(acc.m0)
    attrs = {"n_evaluations": int(n * step), "n": n, "seed": int(seed), "calc_second_order": int(calc_second_order),
             "num_resamples": int(num_resamples), "conf_level": float(conf_level),
             "problem": json.dumps(problem), "fixed": json.dumps(fixed),
             "method": "SALib.sample.sobol.sample + SALib.analyze.sobol estimators (streamed, all outputs)",
             "eval_time_s": t_eval}
    coords = {"input": ("input", problem["names"])}
    if calc_second_order:
        coords["input_2"] = ("input_2", problem["names"])
    data = {}
    if is_surrogate:
        if P != 3 * N_GRID:
            raise ValueError(f"the surrogate returned {P * 2 // 3} outputs, expected {2 * N_GRID}")
        coords["z"] = ("point", z_fixed, {"units": "nm", "long_name": "z (the nominal h's grid; with h uncertain "
                                                           "every profile is read at these positions)"})
        # rho(z) = e N_A (n+ - n-) of the monovalent ions: Sobol indices do not change under a constant factor, and
        # they cannot be combined from those of n+ and n- (Var(n+ - n-) holds their covariance)
        for ion, part in (("n_plus", slice(0, N_GRID)), ("n_minus", slice(N_GRID, 2 * N_GRID)),
                          ("rho", slice(2 * N_GRID, None))):
            for key, v in S.items():
                name = f"{key.split('_')[0]}_{ion}" + ("_conf" if key.endswith("_conf") else "")
                dims = ("input", "input_2", "point") if key.startswith("S2") else ("input", "point")
                data[name] = (dims, v[..., part], {"long_name": f"{key} of {ion}"})
        attrs["surrogate"] = sur.name
    else:
        for key, v in S.items():
            dims = ("input", "input_2", "output") if key.startswith("S2") else ("input", "output")
            data[key] = (dims, v)
    attrs["wall_time_s"] = time.perf_counter() - t0
    return xr.Dataset(data, coords=coords, attrs=attrs)
