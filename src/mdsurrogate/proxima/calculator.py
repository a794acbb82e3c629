"""PROXIMA and PROXIMA+BLEND as an ASE calculator (paper section 2, Algorithm 1).

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
round-trip the whole controller, the generator and the models. The settings are ASE parameters
(`calc.parameters`, `calc.todict()`, `calc.set(n_blend=10)`); `calc.settings` reads and writes the same values.
State files are safetensors + JSON (`stateio`), never pickles.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from mdsurrogate.io import atomic_path
from mdsurrogate.proxima.stateio import StateFormatError, one_line, pack, unpack

if TYPE_CHECKING:
    from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig

STATE_KIND = "calculator-state"


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


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass
class ProximaSettings:
    """User settings (paper 3.1: target error 0.9 eV/A, the target "at least 20 % of the time", n = 0 or 10, 2
    networks). The default forced fraction 0.1 is a library default; the experiments use the paper's 0.2."""

    target_err: float = 0.9
    min_target_fraction: float = 0.1
    history_length: int = 8
    n_blend: int = 0
    train_freq: int | None = 1  # retrain after this many new target results; None: never on the fly
    min_train_points: int = 10
    seed: int = 0
    db_flush_every: int = 64  # target results are written to the db in transactions of this many

    def __post_init__(self):
        if not (_is_num(self.target_err) and math.isfinite(self.target_err) and self.target_err > 0):
            raise ValueError(f"target_err must be a finite number > 0 (eV/A), got {self.target_err!r}")
        if not (_is_num(self.min_target_fraction) and 0 <= self.min_target_fraction <= 1):
            raise ValueError(f"min_target_fraction must be in [0, 1], got {self.min_target_fraction!r}")
        for name, lo in (("history_length", 1), ("n_blend", 0), ("min_train_points", 1), ("seed", 0),
                         ("db_flush_every", 1)):
            v = getattr(self, name)
            if not (_is_int(v) and v >= lo):
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.train_freq is not None and not (_is_int(self.train_freq) and self.train_freq >= 1):
            raise ValueError(f"train_freq must be None or an integer >= 1, got {self.train_freq!r}")


SETTING_NAMES = tuple(f.name for f in fields(ProximaSettings))


class SettingsView(ProximaSettings):
    """`ProximaCalculator.settings`: the ProximaSettings fields, read from and written to `calc.parameters`."""

    def __init__(self, calc: "ProximaCalculator"):  # not the dataclass __init__: the values live in calc
        object.__setattr__(self, "_calc", calc)

    def __getattribute__(self, name):
        if name in SETTING_NAMES:
            return object.__getattribute__(self, "_calc").parameters[name]
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        if name not in SETTING_NAMES:
            raise AttributeError(f"{name!r} is not a PROXIMA setting; settings: {list(SETTING_NAMES)}")
        self._calc.set(**{name: value})

    def __eq__(self, other):
        return asdict(self) == asdict(other) if isinstance(other, ProximaSettings) else NotImplemented

    def snapshot(self) -> ProximaSettings:
        """A detached copy of the current values."""
        return ProximaSettings(**asdict(self))

    def __copy__(self):
        return self.snapshot()

    def __deepcopy__(self, memo):
        return self.snapshot()

    def __reduce__(self):
        return ProximaSettings, tuple(getattr(self, n) for n in SETTING_NAMES)


class ProximaCalculator(Calculator):
    """ASE calculator switching/blending between a target calculator and an ensemble surrogate.

    Settings come from `settings` and/or keyword arguments (`ProximaCalculator(t, n_blend=10)`, the keywords
    win) and are stored as ASE parameters, so `todict()` and an ASE db row record all of them.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    default_parameters = asdict(ProximaSettings())

    def __init__(self, target: Calculator, surrogate: EnsembleSurrogate | None = None,
                 settings: ProximaSettings | None = None, db_path: str | Path | None = None,
                 surrogate_config: SurrogateConfig | None = None, **kwargs):
        super().__init__(**{**(asdict(settings) if settings is not None else {}), **kwargs})
        self.target = target
        if surrogate is None:
            from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig  # noqa: PLC0415 - torch

            surrogate = EnsembleSurrogate(surrogate_config or SurrogateConfig())
        self.surrogate = surrogate
        self.db_path = Path(db_path) if db_path is not None else None
        p = self.parameters
        self.rng = np.random.default_rng(p.seed)
        self.controller = ControllerState(p.target_err, p.history_length)
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

    # --- settings as ASE parameters --------------------------------------------------------------
    @property
    def settings(self) -> SettingsView:
        """The settings (a live view of `self.parameters`: `calc.settings.n_blend = 3` sets the parameter)."""
        return SettingsView(self)

    @settings.setter
    def settings(self, value: ProximaSettings) -> None:
        self.set(**asdict(value))

    def set(self, **kwargs) -> dict:
        """ASE `set` for the settings: names and values are checked; target_err and history_length also reach
        the controller. The seed is used at construction only."""
        unknown = sorted(set(kwargs) - set(SETTING_NAMES))
        if unknown:
            raise TypeError(f"unknown PROXIMA setting(s) {unknown}; settings: {list(SETTING_NAMES)}")
        ProximaSettings(**{**{k: self.parameters[k] for k in SETTING_NAMES}, **kwargs})  # validates
        changed = super().set(**kwargs)
        controller = getattr(self, "controller", None)
        if controller is not None:
            if "target_err" in changed:
                controller.target_err = float(changed["target_err"])
            if "history_length" in changed:
                controller.history_length = int(changed["history_length"])
        return changed

    def todict(self, skip_default: bool = False) -> dict:
        """Every setting, defaults included (ASE's default would drop them), e.g. for `ase.db` rows."""
        return super().todict(skip_default=skip_default)

    # --- the algorithm ---------------------------------------------------------------------------
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        s = self.parameters
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
        if len(self._pending) >= self.parameters.db_flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending target results to the ASE db in one transaction."""
        if self.db_path is None or not self._pending:
            return
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
        return [row.toatoms() for row in connect(self.db_path).select()]

    def retrain(self) -> bool:
        """Retrain the ensemble on every stored target result (each member its own 90 % split)."""
        self.new_points = 0
        frames = self.training_frames()
        if len(frames) < self.parameters.min_train_points:
            return False
        t0 = time.perf_counter()
        self.surrogate.fit(frames, self.rng)
        self.train_time += time.perf_counter() - t0
        return True

    # --- state -----------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Everything that determines the continuation: controller, blend index, counters, timers, rng, models.
        Pending target results are written to the db first (the db itself travels beside a saved state)."""
        self.flush()
        return {"settings": asdict(self.settings), "controller": asdict(self.controller),
                "blend_index": self.blend_index, "new_points": self.new_points, "n_calls": self.n_calls,
                "target_calls": self.target_calls, "surrogate_calls": self.surrogate_calls,
                "timers": {"target_time": self.target_time, "surrogate_time": self.surrogate_time,
                           "train_time": self.train_time},
                "rng": self.rng.bit_generator.state, "surrogate": self.surrogate.get_state(),
                "last": dict(self.last),
                "results": {k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in self.results.items()},
                "atoms": None if self.atoms is None else self.atoms.copy(),
                "memory": [(a.copy(), a.get_potential_energy(), a.get_forces(), a.get_stress())
                           for a in self._memory]}

    def set_state(self, state: dict, source: str = "state") -> None:
        """Restore `get_state` output. It is checked first: a malformed state raises StateFormatError (a
        ValueError) naming `source` and leaves the calculator unchanged."""
        try:
            new = _checked_state(state, source)
        except StateFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, AssertionError, RuntimeError) as exc:
            raise StateFormatError(f"{source}: invalid PROXIMA state ({one_line(exc)})") from None
        self.parameters.update(new["settings"])
        for key in ("controller", "blend_index", "new_points", "n_calls", "target_calls", "surrogate_calls", "rng",
                    "surrogate"):
            setattr(self, key, new[key])
        for key, value in new["timers"].items():  # the cost report's per-call times continue, not restart
            setattr(self, key, value)
        self._memory = new["memory"]
        self._pending = []  # frames of a branch this state abandons never reach the db
        self.reset()
        # the cached result of the last call: an integrator asking again at the same positions gets it back
        self.last = new["last"]
        if new["atoms"] is not None:
            self.atoms = new["atoms"]
            self.results = new["results"]

    def save_state(self, path: str | Path) -> Path:
        """Write the state (safetensors + JSON, see `stateio`) and a copy of the training db next to it
        (`<path>.db`), atomically."""
        path = Path(path)
        self.flush()
        blob = pack(self.get_state(), STATE_KIND)
        with atomic_path(path) as tmp:
            tmp.write_bytes(blob)
        if self.db_path is not None and self.db_path.exists():
            with atomic_path(path.with_suffix(path.suffix + ".db")) as tmp:
                shutil.copyfile(self.db_path, tmp)
        return path

    def load_state(self, path: str | Path) -> None:
        """Restore `save_state` output; the saved db copy replaces this calculator's db. Never unpickles: a
        malformed or hostile file raises StateFormatError (a ValueError) naming it."""
        path = Path(path)
        self.set_state(unpack(path.read_bytes(), STATE_KIND, path), source=str(path))
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


def _checked_state(state: dict, source: str) -> dict:
    """The parts of a `get_state` dict, type- and range-checked and rebuilt (raises on anything malformed)."""
    from mdsurrogate.proxima.surrogate import EnsembleSurrogate  # noqa: PLC0415 - torch, torchani

    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    settings = ProximaSettings(**state["settings"])
    c = dict(state["controller"])
    hist = c["history"]
    controller = ControllerState(target_err=float(c["target_err"]), history_length=c["history_length"],
                                 threshold=None if c["threshold"] is None else float(c["threshold"]),
                                 alpha=None if c["alpha"] is None else float(c["alpha"]),
                                 history=None if hist is None else [(float(u), float(e)) for u, e in hist])
    if not (_is_int(controller.history_length) and controller.history_length >= 1):
        raise ValueError(f"controller history_length must be an integer >= 1, got {controller.history_length!r}")
    if not (math.isfinite(controller.target_err) and controller.target_err > 0):
        raise ValueError(f"controller target_err must be finite and > 0, got {controller.target_err!r}")
    if controller.threshold is not None and not (math.isfinite(controller.threshold) and controller.threshold >= 0):
        raise ValueError(f"controller threshold must be null or finite and >= 0, got {controller.threshold!r}")
    out = {"settings": asdict(settings), "controller": controller}
    top = {"blend_index": max(settings.n_blend, 1)}
    for key in ("blend_index", "new_points", "n_calls", "target_calls", "surrogate_calls"):
        v = state[key]
        if not (_is_int(v) and 0 <= v <= top.get(key, v)):
            raise ValueError(f"{key} must be an integer in [0, {top.get(key, 'inf')}], got {v!r}")
        out[key] = int(v)
    timers = state.get("timers", {})  # states saved before the timers were part of them restart them at 0
    if not isinstance(timers, dict) or set(timers) - {"target_time", "surrogate_time", "train_time"}:
        raise ValueError(f"timers must be a dict of target_time, surrogate_time, train_time, got {timers!r}")
    out["timers"] = {}
    for key, v in timers.items():
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
            raise ValueError(f"timers.{key} must be a finite number >= 0, got {v!r}")
        out["timers"][key] = float(v)
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    out["rng"] = rng
    out["surrogate"] = EnsembleSurrogate.from_state(state["surrogate"], source)
    out["memory"] = []
    for at, e, f, st in state["memory"]:
        if not isinstance(at, Atoms):
            raise TypeError("memory frames must be atoms")
        at = at.copy()
        at.calc = SinglePointCalculator(at, energy=float(e), forces=np.asarray(f, dtype=float),
                                        stress=np.asarray(st, dtype=float))
        out["memory"].append(at)
    if not isinstance(state["last"], dict) or not isinstance(state["results"], dict):
        raise TypeError("last and results must be dicts")
    out["last"] = dict(state["last"])
    atoms = state["atoms"]
    if atoms is not None and not isinstance(atoms, Atoms):
        raise TypeError("atoms must be atoms or null")
    out["atoms"] = None if atoms is None else atoms.copy()
    out["results"] = {k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in state["results"].items()}
    return out
