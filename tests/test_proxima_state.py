"""PROXIMA state files and ensemble blobs: safetensors + JSON, exact round trips, hostile and broken files refused."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.lj import LennardJones
from ase.md.verlet import VelocityVerlet

from mdsurrogate.proxima.calculator import ProximaCalculator, ProximaSettings
from mdsurrogate.proxima.md import init_velocities
from mdsurrogate.proxima.stateio import StateFormatError, pack
from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig
from mdsurrogate.proxima.targets import si_vacancy_cell

torch.set_num_threads(1)
TINY = SurrogateConfig(hidden=(8,), epochs=1, batch_size=8)


def _target():
    return LennardJones(sigma=2.1, epsilon=0.1, rc=4.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A calculator after 14 MD steps with on-the-fly training (threshold set, blending exercised) and its file."""
    tmp = tmp_path_factory.mktemp("state")
    settings = ProximaSettings(target_err=5.0, min_target_fraction=0.2, n_blend=2, train_freq=6, min_train_points=6,
                               seed=3)
    calc = ProximaCalculator(_target(), settings=settings, surrogate_config=TINY)
    atoms = si_vacancy_cell()
    init_velocities(atoms, 600.0, seed=1)
    atoms.calc = calc
    VelocityVerlet(atoms, 1.0 * units.fs).run(14)
    assert calc.surrogate.trained and calc.controller.history
    path = calc.save_state(tmp / "run.state")
    return calc, atoms, path


def _marker_pickle(marker) -> bytes:
    """A pickle whose loading creates `marker` (the classic `__reduce__` payload)."""

    class Evil:
        def __reduce__(self):
            return open, (str(marker), "w")

    return pickle.dumps(Evil())


def _fresh():
    return ProximaCalculator(_target(), settings=ProximaSettings(seed=11), surrogate_config=TINY)


def _one_line_value_error(exc_info, name) -> str:
    msg = str(exc_info.value)
    assert isinstance(exc_info.value, ValueError) and "\n" not in msg and str(name) in msg
    return msg


def test_state_file_is_safetensors_and_json(run):
    _, _, path = run
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata()
        assert any(k for k in fh.keys())
    assert meta["format"] == "mdsurrogate-proxima" and meta["kind"] == "calculator-state"
    assert '"settings"' in meta["tree"] and '"controller"' in meta["tree"]


def test_state_round_trip_restores_controller_and_predictions(run):
    calc, atoms, path = run
    other = _fresh()
    other.load_state(path)
    a, b = calc.get_state(), other.get_state()
    assert b["settings"] == a["settings"] and other.settings == calc.settings
    assert other.controller == calc.controller
    assert other.controller.history == calc.controller.history and other.controller.threshold is not None
    for key in ("blend_index", "new_points", "n_calls", "target_calls", "surrogate_calls", "rng", "last", "timers"):
        assert b[key] == a[key], key
    # the cost report's per-call times continue after a resume (they restarted at 0 before)
    assert other.target_time == calc.target_time > 0 and other.surrogate_time == calc.surrogate_time
    assert set(b["results"]) == set(a["results"])
    for k, v in a["results"].items():
        assert np.array_equal(b["results"][k], v)
    assert np.array_equal(other.atoms.positions, calc.atoms.positions)
    assert np.array_equal(other.atoms.get_momenta(), calc.atoms.get_momenta())
    assert len(other._memory) == len(calc._memory)
    for x, y in zip(other._memory, calc._memory):
        assert np.array_equal(x.positions, y.positions) and np.array_equal(x.get_forces(), y.get_forces())
        assert x.get_potential_energy() == y.get_potential_energy()
    p, q = calc.surrogate.predict(atoms), other.surrogate.predict(atoms)
    assert other.surrogate.version == calc.surrogate.version
    assert np.array_equal(p.energy, q.energy) and np.array_equal(p.forces, q.forces)
    assert np.array_equal(p.stress, q.stress)


def test_restored_calculator_continues_identically(run, tmp_path):
    calc, atoms, path = run
    twins = []
    for _ in range(2):
        c = _fresh()
        c.load_state(path)
        a = atoms.copy()
        a.set_momenta(atoms.get_momenta())
        a.calc = c
        VelocityVerlet(a, 1.0 * units.fs).run(6)
        twins.append((a, c))
    (a1, c1), (a2, c2) = twins
    untimed = [{k: v for k, v in c.last.items() if not k.startswith("t_")} for c in (c1, c2)]
    assert np.array_equal(a1.positions, a2.positions) and untimed[0] == untimed[1]
    assert c1.n_calls == calc.n_calls + 6  # the restored counters continue
    assert c1.rng.bit_generator.state == c2.rng.bit_generator.state


def test_ensemble_bytes_round_trip(run, tmp_path):
    calc, atoms, _ = run
    blob = calc.surrogate.to_bytes()
    copy = EnsembleSurrogate.from_bytes(blob)
    p, q = calc.surrogate.predict(atoms), copy.predict(atoms)
    assert np.array_equal(p.forces, q.forces) and np.array_equal(p.energy, q.energy)
    assert copy.config == calc.surrogate.config and copy.train_log == calc.surrogate.train_log
    path = calc.surrogate.save(tmp_path / "ens.safetensors")
    assert np.array_equal(EnsembleSurrogate.load(path).predict(atoms).stress, p.stress)


@pytest.mark.parametrize("wrap", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_and_never_run(tmp_path, wrap):
    probe = tmp_path / "probe"
    pickle.loads(_marker_pickle(probe))  # the payload is real: loading it runs code
    assert probe.exists()
    marker = tmp_path / "pwned"
    payload = _marker_pickle(marker)
    path = tmp_path / "evil.state"
    if wrap == "pickle":
        path.write_bytes(payload)
    else:
        torch.save(_Box(marker), path)  # the old format: a torch zip around the pickle
    calc = _fresh()
    with pytest.raises(ValueError) as exc:
        calc.load_state(path)
    msg = _one_line_value_error(exc, path)
    assert "pickle" in msg
    with pytest.raises(ValueError) as exc:
        EnsembleSurrogate.load(path)
    _one_line_value_error(exc, path)
    with pytest.raises(ValueError):
        EnsembleSurrogate.from_bytes(path.read_bytes())
    assert not marker.exists()
    assert calc.n_calls == 0 and calc.controller.threshold is None


class _Box:
    """Pickled by torch.save; unpickling it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_truncated_and_garbage_files_give_value_error(run, tmp_path):
    calc, _, path = run
    blob = path.read_bytes()
    rng = np.random.default_rng(0)
    cases = {
        "empty": b"", "short": blob[:5], "half": blob[: len(blob) // 2], "tail_cut": blob[:-7],
        "garbage": rng.bytes(4096), "text": b"hello world, not a state file\n" * 10,
        "flipped_header": blob[:8] + b"{" * 40 + blob[48:],
    }
    before = calc.get_state()["n_calls"]
    for name, data in cases.items():
        p = tmp_path / f"{name}.state"
        p.write_bytes(data)
        with pytest.raises(ValueError) as exc:
            calc.load_state(p)
        _one_line_value_error(exc, p)
        with pytest.raises(ValueError):
            EnsembleSurrogate.from_bytes(data, source=str(p))
    assert calc.n_calls == before  # a refused file changes nothing


def test_wellformed_files_with_wrong_content_give_value_error(run, tmp_path):
    calc, _, path = run
    state = calc.get_state()
    ens = tmp_path / "ens.state"
    ens.write_bytes(calc.surrogate.to_bytes())  # the wrong kind of file
    bad_threshold = dict(state, controller=dict(state["controller"], threshold=float("nan")))
    bad_settings = dict(state, settings=dict(state["settings"], min_target_fraction=3.0))
    bad_blend = dict(state, blend_index=99)
    bad_net = dict(state, surrogate=dict(state["surrogate"], config=dict(state["surrogate"]["config"],
                                                                          hidden=[10**6])))
    missing = {k: v for k, v in state.items() if k != "rng"}
    files = {"ens": ens}
    for name, st in {"threshold": bad_threshold, "settings": bad_settings, "blend": bad_blend, "net": bad_net,
                     "missing": missing}.items():
        files[name] = tmp_path / f"{name}.state"
        files[name].write_bytes(pack(st, "calculator-state"))
    for name, p in files.items():
        with pytest.raises(ValueError) as exc:
            calc.load_state(p)
        _one_line_value_error(exc, p)
    with pytest.raises(StateFormatError, match="expected 'calculator-state'"):
        calc.load_state(ens)


def test_get_state_writes_pending_target_results_first(tmp_path):
    """Target results waiting for the db's next batched write are written before a state is taken, and a
    restored state drops the pending frames of the branch it abandons."""
    settings = ProximaSettings(target_err=5.0, min_target_fraction=1.0, db_flush_every=1000, train_freq=None, seed=3)
    calc = ProximaCalculator(_target(), settings=settings, surrogate_config=TINY, db_path=tmp_path / "t.db")
    atoms = si_vacancy_cell()
    init_velocities(atoms, 600.0, seed=1)
    atoms.calc = calc
    VelocityVerlet(atoms, 1.0 * units.fs).run(5)
    assert len(calc._pending) == 6 and not (tmp_path / "t.db").exists()
    state = calc.get_state()
    assert calc._pending == [] and len(calc.training_frames()) == 6
    VelocityVerlet(atoms, 1.0 * units.fs).run(2)  # a branch that is then abandoned
    assert len(calc._pending) == 2
    calc.set_state(state)
    assert calc._pending == [] and len(calc.training_frames()) == 6
