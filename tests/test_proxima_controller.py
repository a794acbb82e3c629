"""PROXIMA controller, blending schedule and decision logic with stub calculators (no LAMMPS, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from mdsurrogate.proxima.calculator import (
    ControllerState,
    ProximaCalculator,
    ProximaSettings,
    blend_weight,
    step_blend_index,
)
from mdsurrogate.proxima.surrogate import Prediction
from mdsurrogate.proxima.targets import si_vacancy_cell


def test_blend_weight_pinned_values():
    assert blend_weight(0, 10) == 1.0
    assert blend_weight(10, 10) == 0.0
    assert blend_weight(5, 10) == pytest.approx(0.5, abs=1e-15)
    assert blend_weight(1, 10) == pytest.approx((math.cos(math.pi / 10) + 1) / 2)
    # symmetric about n/2 and monotone decreasing
    w = [blend_weight(i, 10) for i in range(11)]
    assert all(a > b for a, b in zip(w, w[1:]))
    assert all(w[i] + w[10 - i] == pytest.approx(1.0) for i in range(11))
    # n = 0: plain PROXIMA, all or nothing
    assert blend_weight(0, 0) == 1.0 and blend_weight(1, 0) == 0.0


def test_blend_index_steps_and_clips():
    i = 0
    seq = []
    for use in [False, True, True, True, True, False, True, True, True, True, True, True]:
        i = step_blend_index(i, use, 4)
        seq.append(i)
    assert seq == [0, 1, 2, 3, 4, 3, 4, 4, 4, 4, 4, 4]
    assert step_blend_index(0, True, 0) == 1 and step_blend_index(1, True, 0) == 1
    assert step_blend_index(1, False, 0) == 0


def test_controller_threshold_hand_computed():
    c = ControllerState(target_err=0.9, history_length=8)
    for _ in range(7):
        c.update(0.5, 1.0)
        assert c.threshold is None and c.alpha is None
    c.update(0.5, 1.0)
    assert c.alpha == pytest.approx(2.0)
    assert c.threshold == pytest.approx(0.9 / 2.0 / 2.0)  # 0.225
    c.update(0.5, 2.0)  # history: 7 x (0.5, 1.0) + (0.5, 2.0)
    assert c.alpha == pytest.approx((7 * 2.0 + 4.0) / 8)  # 2.25
    assert c.threshold == pytest.approx(0.225 - (9.0 / 8 - 0.9) / 2.25)  # 0.125
    c.update(0.5, 100.0)
    assert c.threshold == 0.0  # floored
    assert len(c.history) == 8


def test_controller_threshold_rises_when_errors_small():
    c = ControllerState(target_err=0.9, history_length=8)
    for _ in range(8):
        c.update(0.2, 0.3)
    t0 = c.threshold
    c.update(0.2, 0.3)
    assert c.threshold == pytest.approx(t0 + (0.9 - 0.3) / 1.5)


def test_uq_metric_pinned():
    f = np.zeros((2, 3, 3))
    f[0, 1] = [1.0, 0, 0]
    f[1, 1] = [-1.0, 0, 0]
    f[0, 2] = [0, 0.3, 0]
    f[1, 2] = [0, 0.3, 0]
    p = Prediction(energy=np.zeros(2), forces=f, stress=np.zeros((2, 6)))
    assert p.uq == pytest.approx(1.0)


class ConstTarget(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, e=1.0, f=1.0, s=0.01):
        super().__init__()
        self.e, self.f, self.s, self.calls = e, f, s, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        n = len(self.atoms)
        self.results = {"energy": self.e, "free_energy": self.e, "forces": np.full((n, 3), self.f),
                        "stress": np.full(6, self.s)}


class StubSurrogate:
    """Two members with forces f +- spread: UQ = spread * sqrt(3); energy e, stress s."""

    trained = True
    version = 7

    def __init__(self, e=-1.0, f=-1.0, s=-0.01, spread=0.1):
        self.e, self.f, self.s, self.spread = e, f, s, spread

    def predict(self, atoms):
        n = len(atoms)
        forces = np.stack([np.full((n, 3), self.f + self.spread), np.full((n, 3), self.f - self.spread)])
        return Prediction(energy=np.array([self.e, self.e]), forces=forces, stress=np.full((2, 6), self.s))


def _calc(n_blend, min_target_fraction=0.0, threshold=1.0, seed=0):
    calc = ProximaCalculator(ConstTarget(), surrogate=StubSurrogate(),
                             settings=ProximaSettings(n_blend=n_blend, min_target_fraction=min_target_fraction,
                                                      train_freq=None, seed=seed))
    calc.controller.threshold = threshold
    calc.controller.alpha = 1.0
    return calc


def _step(calc, atoms, k):
    atoms.positions[0, 0] += 1e-3 * (k + 1)  # a new configuration each call
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()[0, 0]


def test_blend_mixes_target_and_surrogate():
    atoms = si_vacancy_cell()
    calc = _calc(n_blend=2)
    e1, f1 = _step(calc, atoms, 0)  # i = 1 -> lambda_target = 0.5
    assert calc.last["lambda_target"] == pytest.approx(0.5)
    assert e1 == pytest.approx(0.0) and f1 == pytest.approx(0.0)
    assert calc.target.calls == 1 and not calc.last["used_surrogate"]
    assert calc.last["error"] == pytest.approx(2.0 * math.sqrt(3))  # |(1,1,1) - (-1,-1,-1)|
    e2, f2 = _step(calc, atoms, 1)  # i = 2 = n -> pure surrogate, target not called
    assert calc.last["used_surrogate"] and e2 == pytest.approx(-1.0) and f2 == pytest.approx(-1.0)
    assert calc.target.calls == 1 and calc.surrogate_calls == 1
    calc.controller.threshold = 0.0  # UQ above threshold: blend back out
    _step(calc, atoms, 2)
    assert calc.blend_index == 1 and calc.last["lambda_target"] == pytest.approx(0.5)
    _step(calc, atoms, 3)
    assert calc.blend_index == 0 and calc.last["lambda_target"] == 1.0
    assert atoms.get_potential_energy() == pytest.approx(1.0)


def test_plain_proxima_switches_at_once():
    atoms = si_vacancy_cell()
    calc = _calc(n_blend=0)
    e, _ = _step(calc, atoms, 0)
    assert calc.last["used_surrogate"] and e == pytest.approx(-1.0) and calc.target.calls == 0
    calc.controller.threshold = 0.1  # UQ = 0.1 * sqrt(3) > 0.1
    e, _ = _step(calc, atoms, 1)
    assert not calc.last["used_surrogate"] and e == pytest.approx(1.0) and calc.target.calls == 1


def test_no_threshold_means_target():
    atoms = si_vacancy_cell()
    calc = _calc(n_blend=0, threshold=None)
    for k in range(3):
        e, _ = _step(calc, atoms, k)
        assert e == pytest.approx(1.0)
    assert calc.target_calls == 3 and calc.surrogate_calls == 0


def test_forced_target_fraction_is_seeded():
    atoms = si_vacancy_cell()

    def decisions(seed):
        calc = _calc(n_blend=0, min_target_fraction=0.3, threshold=1e9, seed=seed)
        calc.settings.target_err = 1e9  # keep the threshold high
        out = []
        for k in range(200):
            _step(calc, atoms, k)
            out.append(calc.last["used_surrogate"])
        return np.array(out)

    a, b, c = decisions(1), decisions(1), decisions(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.2 < 1 - a.mean() < 0.4  # about 30 % forced target calls
    draws = np.random.default_rng(1).random(200)
    assert np.array_equal(a, draws > 0.3)
