"""PROXIMA with real targets (LAMMPS SW) and the torchani ensemble: physics, exact repeats, state round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.verlet import VelocityVerlet

from mdsurrogate.proxima.calculator import ProximaCalculator, ProximaSettings
from mdsurrogate.proxima.md import MDSettings, init_velocities, run_md
from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig
from mdsurrogate.proxima.targets import available_targets, lammps_si, si_vacancy_cell

torch.set_num_threads(1)
SMALL = SurrogateConfig(hidden=(16,), epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def sw():
    return lammps_si("sw")


def _frames(calc, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = si_vacancy_cell()
        a.set_cell(a.cell * (1 + 0.01 * rng.normal()), scale_atoms=True)
        a.rattle(0.08, seed=seed * 1000 + k)
        a.calc = calc
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces(),
                                       stress=a.get_stress())
        out.append(b)
    return out


def test_sw_cell_and_nve_energy_conservation(sw):
    atoms = si_vacancy_cell()
    assert len(atoms) == 63
    assert atoms.get_volume() == pytest.approx(8 * 5.43**3)
    init_velocities(atoms, 800.0, seed=3)
    calc = ProximaCalculator(sw, settings=ProximaSettings(train_freq=None))
    trace = run_md(atoms, calc, MDSettings(kind="nve", steps=300))
    e = np.asarray(trace.energy)
    assert np.ptp(e) / 63 < 2e-4  # eV/atom over 300 fs
    assert calc.target_calls == 301 and calc.surrogate_calls == 0
    # SW forces are conservative: the target-only trajectory heats the lattice from 0 K potential energy
    assert 300 < np.mean(trace.temperature[100:]) < 600


def test_surrogate_forces_and_stress_are_energy_derivatives(sw):
    sur = EnsembleSurrogate(SMALL)
    sur.fit(_frames(sw, 8), np.random.default_rng(0))
    atoms = _frames(sw, 1, seed=5)[0]
    p = sur.predict(atoms)
    assert p.forces.shape == (2, 63, 3) and p.stress.shape == (2, 6)
    h = 1e-2
    a = atoms.copy()
    a.positions[4, 2] += h
    ep = sur.predict(a).energy
    a.positions[4, 2] -= 2 * h
    em = sur.predict(a).energy
    np.testing.assert_allclose(-(ep - em) / (2 * h), p.forces[:, 4, 2], atol=2e-3)
    es = []
    for d in (h, -h):
        b = atoms.copy()
        b.set_cell(atoms.cell.array @ np.diag([1 + d, 1, 1]), scale_atoms=True)
        es.append(sur.predict(b).energy)
    np.testing.assert_allclose((es[0] - es[1]) / (2 * h) / atoms.get_volume(), p.stress[:, 0], atol=2e-4)
    # the members differ (own splits and initialisations), so the UQ is positive
    assert p.uq > 0


def test_surrogate_learns(sw):
    frames = _frames(sw, 48)
    cfg = SurrogateConfig(hidden=(32,), epochs=12, batch_size=8, lr=3e-3)
    sur = EnsembleSurrogate(cfg)
    test = _frames(sw, 4, seed=9)
    sur.fit(frames, np.random.default_rng(0))
    err_trained = np.mean([np.abs(sur.predict(a).forces.mean(0) - a.get_forces()).mean() for a in test])
    untrained = EnsembleSurrogate(SurrogateConfig(hidden=(32,), epochs=0))
    untrained.fit(frames, np.random.default_rng(0))
    err_untrained = np.mean([np.abs(untrained.predict(a).forces.mean(0) - a.get_forces()).mean() for a in test])
    assert err_trained < 0.6 * err_untrained


def _run(sw, tmp_path, seed, steps, name, state_in=None, atoms=None, save_at=None):
    settings = ProximaSettings(target_err=3.0, min_target_fraction=0.2, n_blend=3, train_freq=10,
                               min_train_points=10, seed=seed)
    calc = ProximaCalculator(sw, settings=settings, db_path=tmp_path / f"{name}.db", surrogate_config=SMALL)
    if atoms is None:
        atoms = si_vacancy_cell()
        init_velocities(atoms, 1000.0, seed)
    if state_in is not None:
        calc.load_state(state_in)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    log = []
    saved = None
    for k in range(steps):
        dyn.run(1)
        log.append((calc.last["used_surrogate"], calc.last["lambda_target"]))
        if save_at is not None and k + 1 == save_at:
            saved = (calc.save_state(tmp_path / f"{name}.state"), atoms.copy())
    return atoms, calc, log, saved


def test_seeded_runs_repeat_exactly(sw, tmp_path):
    a1, c1, l1, _ = _run(sw, tmp_path, 4, 40, "a")
    a2, c2, l2, _ = _run(sw, tmp_path, 4, 40, "b")
    assert np.array_equal(a1.positions, a2.positions)
    assert np.array_equal(a1.get_velocities(), a2.get_velocities())
    assert l1 == l2
    assert c1.surrogate.version >= 3  # retrained every 10 target calls
    assert c1.target_calls == c2.target_calls and c1.controller.history == c2.controller.history
    # the surrogate and blending paths were exercised
    assert any(u for u, _ in l1) or any(lam < 1 for _, lam in l1)


def test_state_round_trip_continues_identically(sw, tmp_path):
    a_full, c_full, log_full, saved = _run(sw, tmp_path, 6, 50, "full", save_at=25)
    state_path, atoms_at_save = saved
    atoms = atoms_at_save.copy()
    atoms.set_momenta(atoms_at_save.get_momenta())  # exact (ASE 3.29: v = p/m, then p = v m, can move the last bit)
    a_cont, c_cont, log_cont, _ = _run(sw, tmp_path, 99, 25, "cont", state_in=state_path, atoms=atoms)
    assert np.array_equal(a_full.positions, a_cont.positions)
    assert log_full[25:] == log_cont
    assert c_full.target_calls == c_cont.target_calls
    assert c_full.surrogate.version == c_cont.surrogate.version
    assert c_full.controller.threshold == c_cont.controller.threshold


@pytest.mark.slow  # about 7 s per GFN1-xTB call on 2 cores
@pytest.mark.skipif("tblite" not in available_targets(), reason="tblite not installed (optional)")
def test_tblite_smoke(tmp_path):
    from mdsurrogate.proxima.experiments import smoke_run

    out = smoke_run("tblite", steps=2, out=tmp_path)
    assert out["target_calls"] == 3 and np.isfinite(out["energy"]).all()


@pytest.mark.slow
@pytest.mark.skipif("cp2k" not in available_targets(), reason="cp2k not installed (optional)")
def test_cp2k_smoke(tmp_path):
    from mdsurrogate.proxima.experiments import smoke_run

    out = smoke_run("cp2k", steps=1, out=tmp_path)
    assert out["target_calls"] == 2


def test_fast_pairs_match_ase_on_a_sheared_cell():
    from ase.neighborlist import primitive_neighbor_list

    from mdsurrogate.proxima.surrogate import _pairs

    a = si_vacancy_cell()
    a.rattle(0.2, seed=0)
    a.set_cell(a.cell.array @ np.array([[1, 0.1, 0.05], [0, 1, -0.08], [0, 0, 1.02]]), scale_atoms=True)
    i, j, s = _pairs(a, 5.0)
    ii, jj, ss = primitive_neighbor_list("ijS", a.pbc, a.cell.array, a.positions, 5.0)
    m = ii < jj
    assert set(zip(i, j, map(tuple, s))) == set(zip(ii[m], jj[m], map(tuple, ss[m])))
    assert len(i) == m.sum() > 0


def test_every_target_result_is_in_the_db(sw, tmp_path):
    from ase.db import connect

    _, calc, _, _ = _run(sw, tmp_path, 4, 30, "dbcheck")
    calc.flush()
    assert len(connect(tmp_path / "dbcheck.db")) == calc.target_calls
