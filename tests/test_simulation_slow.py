"""Long physics checks (minutes each): run with `pytest -m slow`."""


import numpy as np
import pytest

from mdsurrogate.simulation import RunControls, simulate
from mdsurrogate.simulation.poisson_boltzmann import solve_system
from mdsurrogate.simulation.profiles import block_average, rebin_mean

pytestmark = pytest.mark.slow

CHEAP = dict(h=4.0, c=0.1, d_plus=0.415, d_minus=0.415, sigma_s=-0.01)


def binned(ds, var, edges):
    _, blocks = rebin_mean(ds["z_bin"].values, ds[f"{var}_blocks"].values, edges)
    return block_average(blocks, int(ds.attrs["n_error_blocks"]))


def agreement(ds_a, ds_b, bin_nm=0.1):
    """Share of 0.1 nm bins (with density) where two runs agree within 2 combined standard errors."""
    h = float(ds_a.attrs["h"])
    edges = np.linspace(-h / 2, h / 2, int(round(h / bin_nm)) + 1)
    ok, tot = 0, 0
    for var in ("n_plus", "n_minus"):
        a, ea = binned(ds_a, var, edges)
        b, eb = binned(ds_b, var, edges)
        m = (a > 1e-3) | (b > 1e-3)
        ok += int((np.abs(a - b) < 2 * np.sqrt(ea**2 + eb**2))[m].sum())
        tot += int(m.sum())
    return ok / tot


def test_weak_coupling_limit_agrees_with_poisson_boltzmann():
    """c = 0.1 M, |sigma_s| = 0.01 C/m^2, d = 0.2 nm (coupling parameter 2 pi l_B^2 sigma/e = 0.2): MD must
    follow mean-field PB with the same wall potential: within 3 SE + 5 % in >= 90 % of 0.1 nm bins."""
    from mdsurrogate.simulation.system import ConfinedElectrolyte

    system = ConfinedElectrolyte(h=4.0, c=0.1, d_plus=0.2, d_minus=0.2, sigma_s=-0.01)
    ds = simulate(system, RunControls(time_tau=3000.0, seed=11))
    pb = solve_system(system, n_cells=800)
    edges = np.linspace(-2.0, 2.0, 41)
    shares = []
    for var, pb_n in (("n_plus", pb.n_plus), ("n_minus", pb.n_minus)):
        md, se = binned(ds, var, edges)
        _, ref = rebin_mean(pb.z, pb_n, edges)
        m = ref > 1e-3
        close = np.abs(md - ref) <= 3 * se + 0.05 * ref
        shares.append(close[m].mean())
        print(var, "share", close[m].mean(), "max rel dev", np.max(np.abs(md - ref)[m] / ref[m]))
    assert min(shares) >= 0.9


def test_uniform_sheet_walls_give_the_mesh_walls_profiles():
    from mdsurrogate.simulation.system import ConfinedElectrolyte

    system = ConfinedElectrolyte(**CHEAP)
    sheet = simulate(system, RunControls(time_tau=600.0, seed=5))
    mesh = simulate(system, RunControls(time_tau=600.0, seed=6, overrides={"wall_model": "mesh"}))
    share = agreement(sheet, mesh)
    print("sheet vs mesh agreement", share)
    assert share >= 0.9


def test_profiles_do_not_depend_on_the_timestep():
    from mdsurrogate.simulation.system import ConfinedElectrolyte

    system = ConfinedElectrolyte(**CHEAP)
    big = simulate(system, RunControls(time_tau=600.0, seed=8))
    small = simulate(system, RunControls(time_tau=600.0, seed=9, overrides={"dt": 0.0025, "sample_every": 40,
                                                                            "block_steps": 4000}))
    share = agreement(big, small)
    print("dt 0.01 vs 0.0025 agreement", share)
    assert share >= 0.9


def test_production_preset_reproduces_the_authors_md(reference_path):
    """Issue 2 validation: share of 0.1 nm bins within 2 combined SE >= 0.95 for three reference systems."""
    from mdsurrogate.dataset.authors_pickle import load_authors_pickle
    from mdsurrogate.simulation.validate import VALIDATION_SYSTEMS, compare_to_reference, reference_entry

    profiles = load_authors_pickle(reference_path)
    for system in VALIDATION_SYSTEMS:
        ds = simulate(system, RunControls(time_tau=2000.0, seed=1))
        cmp = compare_to_reference(ds, reference_entry(profiles, system))
        print(cmp)
        assert cmp.agreement >= 0.95, cmp
