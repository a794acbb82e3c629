"""PROXIMA and PROXIMA+BLEND as an ASE calculator (paper section 2, Algorithm 1; SPEC 6).

Per call:
1. the ensemble predicts; UQ = max over atoms of the mean over members of |F_m - F_mean|;
2. `use` = threshold exists and UQ < threshold and a uniform draw > min_target_fraction;
3. blending index i += 1 if `use` else -= 1, clipped to [0, n]; lambda_target = (cos(pi i/n) + 1)/2
   (paper eq. for f); the pure surrogate result only at i = n, otherwise the target runs and E, F, stress are
   mixed lambda_target * F + (1 - lambda_target) * S (paper eq. 2). n = 0 is plain PROXIMA;
4. on each target call err = max over atoms |F_target - F_mean| and UQ enter a history of the last 8;
   alpha = mean(err/UQ); first threshold = target_err/alpha/2, then threshold -= (mean err - target_err)/alpha,
   floored at 0 (PROXIMA eqs. 1 and 3);
5. every target result is written to an ASE db; every `train_freq` target calls the ensemble is retrained.

Every random draw comes from one seeded numpy Generator, so a run repeats exactly; `get_state`/`set_state`
round-trip the whole controller, the generator and the models.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig


def blend_weight(i: int, n: int) -> float:
    """Target weight lambda_target = (cos(pi i/n) + 1)/2 (paper 2.2); n = 0: 1 unless i > 0 (plain PROXIMA)."""
    if n == 0:
        return 0.0 if i > 0 else 1.0
    return (math.cos(math.pi * i / n) + 1.0) / 2.0


def step_blend_index(i: int, use_surrogate: bool, n: int) -> int:
    """Algorithm 1: i += 1 on a surrogate decision, -= 1 otherwise, clipped to [0, max(n, 1)]."""
    top = max(n, 1)
    return min(top, max(0, i + (1 if use_surrogate else -1)))


@dataclass
class ControllerState:
    """PROXIMA threshold controller (Zamora et al. eqs. 1 and 3, no intercept as in the reference code)."""

    target_err: float = 0.9
    history_length: int = 8
    threshold: float | None = None
    alpha: float | None = None
    history: list | None = None  # [(uq, err)], newest last

    def update(self, uq: float, err: float) -> None:
        """Add one (UQ, error) observation and update alpha and the threshold."""
        hist = deque(self.history or [], maxlen=self.history_length)
        hist.append((float(uq), float(err)))
        self.history = list(hist)
        if len(hist) < self.history_length:
            return
        uqs, errs = np.array(self.history).T
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(uqs > 0, errs / np.where(uqs > 0, uqs, 1.0), np.inf)
        self.alpha = float(np.mean(ratios))
        if not np.isfinite(self.alpha) or self.alpha <= 0:
            return
        if self.threshold is None:
            self.threshold = self.target_err / self.alpha / 2.0
        else:
            self.threshold -= (float(np.mean(errs)) - self.target_err) / self.alpha
            self.threshold = max(self.threshold, 0.0)


@dataclass
class ProximaSettings:
    """User settings (paper 3: target error 0.9 eV/A, forced target fraction 0.1, n = 0 or 10, 2 networks)."""

    target_err: float = 0.9
    min_target_fraction: float = 0.1
    history_length: int = 8
    n_blend: int = 0
    train_freq: int | None = 1  # retrain after this many new target results; None: never on the fly
    min_train_points: int = 10
    seed: int = 0
    db_flush_every: int = 64  # target results are written to the db in transactions of this many


class ProximaCalculator(Calculator):
    """ASE calculator switching/blending between a target calculator and an ensemble surrogate."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, target: Calculator, surrogate: EnsembleSurrogate | None = None,
                 settings: ProximaSettings | None = None, db_path: str | Path | None = None,
                 surrogate_config: SurrogateConfig | None = None, **kwargs):
        super().__init__(**kwargs)
        self.target = target
        self.settings = settings or ProximaSettings()
        self.surrogate = surrogate if surrogate is not None else EnsembleSurrogate(
            surrogate_config or SurrogateConfig())
        self.db_path = Path(db_path) if db_path is not None else None
        self.rng = np.random.default_rng(self.settings.seed)
        self.controller = ControllerState(self.settings.target_err, self.settings.history_length)
        self.blend_index = 0
        self.new_points = 0
        self.n_calls = 0
        self.target_calls = 0
        self.surrogate_calls = 0  # calls answered by the pure surrogate
        self.target_time = 0.0
        self.surrogate_time = 0.0
        self.train_time = 0.0
        self.last: dict = {}
        self._memory: list = []  # target results when no db is used
        self._pending: list = []  # target results not yet written to the db

    # --- the algorithm ---------------------------------------------------------------------------
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        s = self.settings
        t0 = time.perf_counter()
        pred = None
        uq = math.inf
        if self.surrogate.trained:
            pred = self.surrogate.predict(self.atoms)
            uq = pred.uq
        t_surr = time.perf_counter() - t0
        self.surrogate_time += t_surr
        draw = float(self.rng.random())  # drawn every call so the stream does not depend on the branch
        thr = self.controller.threshold
        use = pred is not None and thr is not None and uq < thr and draw > s.min_target_fraction
        self.blend_index = step_blend_index(self.blend_index, use, s.n_blend)
        lam = blend_weight(self.blend_index, s.n_blend)
        pure_surrogate = pred is not None and self.blend_index == max(s.n_blend, 1) and use
        self.n_calls += 1
        err = None
        if pure_surrogate:
            e, f, st = pred.energy.mean(), pred.forces.mean(axis=0), pred.stress.mean(axis=0)
            self.surrogate_calls += 1
            t_target = 0.0
        else:
            t1 = time.perf_counter()
            e_t, f_t, st_t = self._run_target()
            t_target = time.perf_counter() - t1
            self.target_time += t_target
            self.target_calls += 1
            self._store(e_t, f_t, st_t)
            if pred is not None:
                f_mean = pred.forces.mean(axis=0)
                err = float(np.linalg.norm(f_t - f_mean, axis=-1).max())
                self.controller.update(uq, err)
                e_s, st_s = pred.energy.mean(), pred.stress.mean(axis=0)
                e, f, st = (lam * e_t + (1 - lam) * e_s, lam * f_t + (1 - lam) * f_mean,
                            lam * st_t + (1 - lam) * st_s)
            else:
                e, f, st = e_t, f_t, st_t
                lam = 1.0
            self.new_points += 1
            if s.train_freq is not None and self.new_points >= s.train_freq:
                self.retrain()
        self.results = {"energy": float(e), "free_energy": float(e), "forces": np.array(f, dtype=float),
                        "stress": np.array(st, dtype=float)}
        self.last = {"used_surrogate": bool(pure_surrogate), "surrogate_decision": bool(use),
                     "lambda_target": float(lam if not pure_surrogate else 0.0), "blend_index": self.blend_index,
                     "uq": None if not np.isfinite(uq) else float(uq), "error": err,
                     "threshold": self.controller.threshold, "alpha": self.controller.alpha,
                     "target_calls": self.target_calls, "surrogate_calls": self.surrogate_calls,
                     "model_version": self.surrogate.version, "t_target": t_target, "t_surrogate": t_surr}

    def _run_target(self):
        at = self.atoms.copy()
        at.calc = self.target
        return at.get_potential_energy(), at.get_forces().copy(), at.get_stress().copy()

    def _store(self, e, f, st):
        at = self.atoms.copy()
        at.calc = SinglePointCalculator(at, energy=e, forces=f, stress=st)
        if self.db_path is None:
            self._memory.append(at)
            return
        self._pending.append(at)
        if len(self._pending) >= self.settings.db_flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending target results to the ASE db in one transaction."""
        if self.db_path is None or not self._pending:
            return
        from ase.db import connect

        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.db_path) as db:
            for at in self._pending:
                db.write(at)
        self._pending = []

    def training_frames(self) -> list:
        self.flush()
        if self.db_path is None:
            return list(self._memory)
        if not self.db_path.exists():
            return []
        from ase.db import connect

        return [row.toatoms() for row in connect(self.db_path).select()]

    def retrain(self) -> bool:
        """Retrain the ensemble on every stored target result (each member its own 90 % split)."""
        self.new_points = 0
        frames = self.training_frames()
        if len(frames) < self.settings.min_train_points:
            return False
        t0 = time.perf_counter()
        self.surrogate.fit(frames, self.rng)
        self.train_time += time.perf_counter() - t0
        return True

    # --- state -----------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Everything that determines the continuation: controller, blend index, counters, rng, models."""
        return {"settings": asdict(self.settings), "controller": asdict(self.controller),
                "blend_index": self.blend_index, "new_points": self.new_points, "n_calls": self.n_calls,
                "target_calls": self.target_calls, "surrogate_calls": self.surrogate_calls,
                "rng": self.rng.bit_generator.state, "surrogate": self.surrogate.get_state(),
                "last": dict(self.last), "results": {k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in self.results.items()},
                "atoms": None if self.atoms is None else self.atoms.copy(),
                "memory": [(a.copy(), a.get_potential_energy(), a.get_forces(), a.get_stress())
                           for a in self._memory]}

    def set_state(self, state: dict) -> None:
        self.settings = ProximaSettings(**state["settings"])
        self.controller = ControllerState(**state["controller"])
        self.blend_index = state["blend_index"]
        self.new_points = state["new_points"]
        self.n_calls = state["n_calls"]
        self.target_calls = state["target_calls"]
        self.surrogate_calls = state["surrogate_calls"]
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.surrogate = EnsembleSurrogate.from_state(state["surrogate"])
        self._memory = []
        for at, e, f, st in state["memory"]:
            at = at.copy()
            at.calc = SinglePointCalculator(at, energy=e, forces=f, stress=st)
            self._memory.append(at)
        self.reset()
        # the cached result of the last call: an integrator asking again at the same positions gets it back
        self.last = dict(state["last"])
        if state["atoms"] is not None:
            self.atoms = state["atoms"].copy()
            self.results = {k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in state["results"].items()}

    def save_state(self, path: str | Path) -> Path:
        """Write the state (torch pickle) and a copy of the training db next to it (`<path>.db`), atomically."""
        from mdsurrogate.io import atomic_path

        path = Path(path)
        self.flush()
        with atomic_path(path) as tmp:
            torch.save(self.get_state(), tmp)
        if self.db_path is not None and self.db_path.exists():
            with atomic_path(path.with_suffix(path.suffix + ".db")) as tmp:
                shutil.copyfile(self.db_path, tmp)
        return path

    def load_state(self, path: str | Path) -> None:
        """Restore `save_state` output; the saved db copy replaces this calculator's db."""
        path = Path(path)
        self.set_state(torch.load(path, weights_only=False))
        self._pending = []
        db_copy = path.with_suffix(path.suffix + ".db")
        if self.db_path is not None:
            if db_copy.exists():
                shutil.copyfile(db_copy, self.db_path)
            elif self.db_path.exists():
                self.db_path.unlink()

    def counts(self) -> dict:
        return {"calls": self.n_calls, "target_calls": self.target_calls, "surrogate_calls": self.surrogate_calls,
                "target_time_s": self.target_time, "surrogate_time_s": self.surrogate_time,
                "train_time_s": self.train_time}
