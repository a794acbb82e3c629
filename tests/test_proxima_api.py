"""ProximaCalculator settings as ASE parameters (todict, ASE db) and the lazy `mdsurrogate.proxima` exports."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import asdict, fields

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from mdsurrogate.proxima.calculator import ProximaCalculator, ProximaSettings
from mdsurrogate.proxima.targets import si_vacancy_cell

SETTINGS = ProximaSettings(target_err=0.7, min_target_fraction=0.25, history_length=5, n_blend=10, train_freq=None,
                           min_train_points=12, seed=4, db_flush_every=32)


class Untrained:
    """A surrogate that is never trained: every call goes to the target."""

    trained = False
    version = 0


def _calc(**kwargs):
    return ProximaCalculator(LennardJones(sigma=2.1, epsilon=0.1, rc=4.5), surrogate=Untrained(), **kwargs)


def test_todict_holds_every_setting_defaults_included():
    names = {f.name for f in fields(ProximaSettings)}
    assert set(_calc().todict()) == names and _calc().todict() == asdict(ProximaSettings())
    calc = _calc(settings=SETTINGS)
    assert calc.todict() == asdict(SETTINGS)
    assert dict(calc.parameters) == asdict(SETTINGS)
    assert ProximaCalculator.default_parameters == asdict(ProximaSettings())


def test_settings_and_parameters_are_one_store():
    calc = _calc(settings=SETTINGS, n_blend=3)  # keywords win over `settings`
    assert calc.settings.n_blend == 3 and calc.parameters.n_blend == 3
    assert calc.settings == ProximaSettings(**{**asdict(SETTINGS), "n_blend": 3})
    calc.settings.min_target_fraction = 0.5  # attribute writes reach the ASE parameters
    assert calc.parameters["min_target_fraction"] == 0.5 and calc.todict()["min_target_fraction"] == 0.5
    calc.set(target_err=2.0, history_length=4)  # ASE set reaches the settings and the controller
    assert calc.settings.target_err == 2.0 and calc.controller.target_err == 2.0
    assert calc.controller.history_length == 4
    calc.settings = ProximaSettings()
    assert calc.todict() == asdict(ProximaSettings())
    snap = copy.copy(calc.settings)
    calc.settings.n_blend = 7
    assert type(snap) is ProximaSettings and snap.n_blend == 0


def test_bad_settings_are_refused():
    with pytest.raises(TypeError, match="unknown PROXIMA setting"):
        _calc(n_blnd=3)
    calc = _calc()
    for bad in ({"target_err": float("nan")}, {"target_err": 0.0}, {"min_target_fraction": 1.5},
                {"history_length": 0}, {"train_freq": 0}, {"n_blend": -1}, {"seed": 1.5}):
        with pytest.raises(ValueError):
            calc.set(**bad)
    with pytest.raises(ValueError, match="min_target_fraction"):
        ProximaSettings(min_target_fraction=-0.1)
    with pytest.raises(AttributeError):
        calc.settings.nblend = 2
    assert calc.todict() == asdict(ProximaSettings())  # nothing was changed by the refused calls


def test_ase_db_row_records_the_settings(tmp_path):
    from ase.db import connect

    atoms = si_vacancy_cell()
    atoms.calc = _calc(settings=SETTINGS)
    energy = atoms.get_potential_energy()
    db = connect(tmp_path / "rows.db")
    row_id = db.write(atoms)
    row = db.get(id=row_id)
    assert row.calculator == "proximacalculator"
    assert row.calculator_parameters == asdict(SETTINGS)
    assert row.energy == pytest.approx(energy) and np.allclose(row.forces, atoms.get_forces())


def test_package_exports():
    import mdsurrogate.proxima as proxima
    from mdsurrogate.proxima import EnsembleSurrogate
    from mdsurrogate.proxima import ProximaCalculator as PC
    from mdsurrogate.proxima import ProximaSettings as PS
    from mdsurrogate.proxima.surrogate import EnsembleSurrogate as ES

    assert PC is ProximaCalculator and PS is ProximaSettings and EnsembleSurrogate is ES
    assert {"ProximaCalculator", "ProximaSettings", "EnsembleSurrogate"} <= set(proxima.__all__)
    assert "ProximaCalculator" in dir(proxima)
    with pytest.raises(AttributeError):
        proxima.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError):
        from mdsurrogate.proxima import NoSuchThing  # noqa: F401


def test_importing_the_package_is_cheap():
    code = ("import sys, mdsurrogate.proxima as p; heavy = [m for m in ('torch', 'ase', 'torchani') "
            "if m in sys.modules]; assert not heavy, heavy; p.ProximaSettings; assert 'torch' not in sys.modules; "
            "p.ProximaCalculator, p.EnsembleSurrogate; assert 'torch' in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
