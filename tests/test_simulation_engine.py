"""Real LAMMPS runs: physics that would fail if the engine were wrong, failures, early stopping."""

import numpy as np
import pytest
import xarray as xr

from mdsurrogate.simulation import RunControls, SimulationFailed, simulate
from mdsurrogate.simulation.derived import integrated_charge_error
from mdsurrogate.simulation.profiles import block_average, lag1_autocorrelation
from mdsurrogate.simulation.system import AVOGADRO_PER_NM3_PER_MOLAR, ConfinedElectrolyte, particle_counts

CHEAP = ConfinedElectrolyte(h=4.0, c=0.1, d_plus=0.415, d_minus=0.415, sigma_s=-0.01)  # 136 ions, ~1000 steps/s


def processes_in(directory) -> list[str]:
    """PIDs of the processes whose working directory is `directory`."""
    from pathlib import Path

    wd = Path(directory).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry / "cwd").resolve() == wd:
                    found.append(entry.name)
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("md") / "run.nc"
    ds = simulate(CHEAP, RunControls(time_tau=450.0, seed=7), out=out)
    return ds, out


def test_result_file_is_complete_and_self_describing(run):
    ds, out = run
    back = xr.load_dataset(out, engine="h5netcdf")
    for var in ("n_plus", "n_minus", "n_plus_err", "n_minus_err", "charge_density", "integrated_charge"):
        assert back[var].sizes["z"] == 502
        assert np.all(np.isfinite(back[var].values))
    for attr in ("h", "c", "d_plus", "d_minus", "sigma_s", "sigma_s_effective", "seed", "engine_dt",
                 "lammps_version", "git_commit", "mdsurrogate_version", "wall_time_s", "count_n_cations"):
        assert attr in back.attrs
    assert back.attrs["status"] == "done"
    assert not list(out.parent.glob(".*.tmp"))


def test_particle_numbers_are_conserved_in_the_profiles(run):
    """Integral of n(z) over the slit times the area gives back N+ and N-: checks units and binning."""
    ds, _ = run
    counts = particle_counts(CHEAP)
    area = counts.box_length_nm**2
    for var, n in (("n_plus_native", counts.n_cations), ("n_minus_native", counts.n_anions)):
        dz = np.diff(ds["z_bin"].values).mean()
        total = ds[var].values.sum() * dz * AVOGADRO_PER_NM3_PER_MOLAR * area
        assert total == pytest.approx(n, rel=2e-3)


def test_electroneutrality_integrated_charge_vanishes_at_midplane(run):
    ds, _ = run
    S0 = float(np.interp(0.0, ds["z"].values, ds["integrated_charge"].values))
    err = integrated_charge_error(ds["z_bin"].values, ds["n_plus_native_err"].values, ds["n_minus_native_err"].values)
    sigma = float(ds.attrs["sigma_s_effective"])
    assert abs(S0) < 4 * err + 1e-3 * abs(sigma)
    assert err < 0.1 * abs(sigma)
    # and S starts at the wall charge
    assert ds["integrated_charge"].values[0] == pytest.approx(sigma)


def test_profiles_are_mirror_symmetric_within_errors(run):
    ds, _ = run
    for var in ("n_plus_native", "n_minus_native"):
        y, e = ds[var].values, ds[f"{var}_err"].values
        nz = (y > 0) | (y[::-1] > 0)
        chi2 = ((y - y[::-1]) ** 2 / (e**2 + e[::-1] ** 2 + 1e-30))[nz]
        # ~1 for a symmetric profile with honest errors (+~20% from 20-block error estimates and slow modes)
        assert np.mean(chi2) < 2.0, var
        # a mirror asymmetry of one bin width (0.02 nm) would already be detected
        shifted = np.roll(y, 1)
        chi2_shift = ((shifted - y[::-1]) ** 2 / (e**2 + e[::-1] ** 2 + 1e-30))[nz]
        assert np.mean(chi2_shift) > 2.5, var
    # and an asymmetric profile would fail: the counterion excess is real
    assert ds["n_plus"].sel(z=-1.7, method="nearest") > 1.3 * ds["n_minus"].sel(z=-1.7, method="nearest")


def test_no_ion_inside_the_excluded_wall_layer(run):
    """The WCA wall (sigma = d/2) costs > 40 kT within 0.8 d/2 of the wall plane."""
    ds, _ = run
    z = ds["z_bin"].values
    gap = CHEAP.h / 2 - np.abs(z)
    inside = gap < 0.8 * CHEAP.d_plus / 2 - 0.025  # bin half-width margin
    assert inside.sum() >= 4
    assert np.all(ds["n_plus_native"].values[inside] == 0)
    assert np.all(ds["n_minus_native"].values[inside] == 0)
    assert ds["n_plus_native"].values[gap > CHEAP.d_plus].min() > 0


def test_error_blocks_are_decorrelated_and_errors_shrink_as_inverse_sqrt_time(run):
    ds, _ = run
    blocks = ds["n_plus_blocks"].values  # stored 10-tau blocks
    rows = blocks[:, ds["n_plus_native"].values > 0.05]
    from mdsurrogate.simulation.profiles import block_means
    means = block_means(rows, 20)
    assert abs(np.median(lag1_autocorrelation(means))) < 0.2
    # SE from the second half vs the whole run: ratio sqrt(2) for decorrelated blocks
    n = len(rows)
    _, se_half = block_average(rows[n // 2:], 10)
    _, se_full = block_average(rows, 20)
    assert np.median(se_half / se_full) == pytest.approx(np.sqrt(2), rel=0.2)


def test_timeout_is_a_typed_failure_and_writes_nothing(tmp_path):
    out = tmp_path / "never.nc"
    with pytest.raises(SimulationFailed) as exc:
        simulate(CHEAP, RunControls(time_tau=5000.0, timeout_s=3.0), out=out, workdir=tmp_path / "wd")
    assert exc.value.reason == "timeout"
    assert exc.value.log_path.exists()
    assert not out.exists()
    # the kill reached LAMMPS itself: no process is left running in the work directory
    assert processes_in(tmp_path / "wd") == []


def test_two_mpi_ranks_run_and_agree_on_the_counts(tmp_path):
    ds = simulate(CHEAP, RunControls(steps=3000, n_blocks=4, mpi_ranks=2, overrides={"block_steps": 500}),
                  workdir=tmp_path / "wd")
    assert ds.attrs["mpi_ranks"] == 2
    assert "2 by 1 by 1 MPI processor grid" in (tmp_path / "wd" / "log.lammps").read_text() \
        or "1 by 2 by 1 MPI processor grid" in (tmp_path / "wd" / "log.lammps").read_text()


def test_exploding_integration_is_caught(tmp_path):
    out = tmp_path / "never.nc"
    with pytest.raises(SimulationFailed) as exc:
        simulate(CHEAP, RunControls(steps=4000, n_blocks=4, overrides={"dt": 0.2, "block_steps": 500}), out=out,
                 workdir=tmp_path / "wd")
    assert exc.value.reason in {"lost_atoms", "blowup", "nan"}
    assert not out.exists()


def test_failure_diagnosis_from_the_log():
    """LAMMPS' own errors are classified: an ion pushed through a wall in one step is a blow-up, not a bug."""
    from mdsurrogate.simulation.runner import _diagnose

    wall = "ERROR on proc 0: Particle on or inside fix wall surface (src/src/fix_wall_lj126.cpp:95)"
    assert _diagnose(f"step\n{wall}\n", 1)[0] == "blowup"
    assert _diagnose("ERROR: Lost atoms: original 10 current 9\n", 1)[0] == "lost_atoms"
    assert _diagnose("ERROR: Unknown pair style foo\n", 1)[0] == "lammps_error"
    assert _diagnose("run 10\nMDSURROGATE_DONE\n", 0) is None
    # create_atoms only warns when it cannot place every ion; the run would finish, not electroneutral
    short = "WARNING: Only inserted 97 particles out of 100 (src/create_atoms.cpp:1024)\nrun 10\nMDSURROGATE_DONE\n"
    assert _diagnose(short, 0)[0] == "insertion"


def test_run_stops_once_the_requested_error_is_reached(tmp_path):
    ds = simulate(CHEAP, RunControls(time_tau=4000.0, target_rel_error=0.12, seed=3), workdir=tmp_path / "wd")
    assert ds.attrs["rel_error"] <= 0.12
    assert ds.attrs["production_steps"] < ds.attrs["production_steps_planned"]


def test_bad_run_controls_name_the_parameter():
    with pytest.raises(ValueError, match="preset must be one of"):
        RunControls(preset="fast")
    with pytest.raises(ValueError, match=r"time_tau must be a number in \(0, 1e\+08\], got -1.0"):
        RunControls(time_tau=-1.0)
    with pytest.raises(ValueError, match="unknown engine settings"):
        RunControls(overrides={"timestep": 0.1})


def test_sigterm_to_the_caller_stops_lammps_too(tmp_path):
    """`kill <pid>` of a Python process running simulate() must not leave LAMMPS running on its own."""
    import signal
    import subprocess
    import sys
    import time

    wd = (tmp_path / "wd").resolve()
    code = ("from mdsurrogate.simulation import RunControls, simulate\n"
            "from mdsurrogate.simulation.system import ConfinedElectrolyte\n"
            f"simulate(ConfinedElectrolyte(4.0, 0.1, 0.415, 0.415, -0.01), RunControls(time_tau=5000.0), "
            f"workdir={str(wd)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not (wd / "log.lammps").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    deadline = time.monotonic() + 5
    while processes_in(wd) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_in(wd) == []
