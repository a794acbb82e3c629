"""kadupitiya2020's system: ions of valencies z_p, z_n between uncharged walls (issue 12, engine part).

Fast checks of the vocabulary and the decks, then two real runs (z_p = 1 and 3, c = 0.3 M, h = 3 nm, d = 0.5 nm,
22 000 steps of the production preset with 0.01 sigma bins; about 20-40 s each on one core) that test physics
which would fail if the engine were wrong: electroneutrality, mirror symmetry, the contact theorem (the wall
force balances the ions' pressure) and the valency dependence against Poisson-Boltzmann and the primitive model.
"""

import hashlib
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from mdsurrogate.cli import app
from mdsurrogate.simulation import RunControls, UnchargedElectrolyte, runtime, simulate
from mdsurrogate.simulation.deck import lammps_input
from mdsurrogate.simulation.derived import ELEMENTARY_CHARGE, MOLAR_TO_PER_M3
from mdsurrogate.simulation.poisson_boltzmann import msa_osmotic_coefficient, solve_system
from mdsurrogate.simulation.profiles import block_average
from mdsurrogate.simulation.system import (
    AVOGADRO_PER_NM3_PER_MOLAR,
    BJERRUM_LENGTH_NM,
    N_GRID_UNCHARGED,
    ConfinedElectrolyte,
    InvalidInput,
    make_system,
    parse_key,
    parse_uncharged_key,
    particle_counts,
    system_key,
    uncharged_grid_points,
)

# ---------------------------------------------------------------------------------------------- vocabulary


@pytest.mark.parametrize("bad, message", [
    ({"h": 2.9}, r"h \(confinement length\) = 2.9 nm is outside the design range \[3.0, 4.0\]"),
    ({"c": 0.95}, r"c \(salt concentration .*\) = 0.95 M is outside the design range \[0.3, 0.9\]"),
    ({"d": 0.45}, r"d \(ion diameter\) = 0.45 nm is outside the design range \[0.5, 0.75\]"),
    ({"z_p": 4}, r"z_p \(cation valency\) = 4 is not one of the allowed valencies \[1, 2, 3\]"),
    ({"z_p": 1.5}, r"z_p .* = 1.5 is not one of the allowed valencies"),
    ({"z_n": -3}, r"z_n \(anion valency\) = -3 is not one of the allowed valencies \[-1, -2\]"),
    ({"z_n": 1}, r"z_n .* = 1 is not one of"),
    ({"h": float("nan")}, r"h \(confinement length\) must be a finite number"),
])
def test_inputs_outside_the_design_name_the_parameter_and_range(bad, message):
    inputs = {"h": 3.5, "c": 0.5, "z_p": 2, "z_n": -1, "d": 0.6, **bad}
    with pytest.raises(InvalidInput, match=message):
        UnchargedElectrolyte(**inputs)


def test_outside_design_only_physical_limits_apply():
    s = UnchargedElectrolyte(h=2.0, c=0.05, z_p=4, z_n=-3, d=0.4, allow_outside_design=True)
    assert (s.z_p, s.z_n) == (4, -3)
    with pytest.raises(InvalidInput, match=r"z_p .* = 5 is not one of the allowed valencies \[1, 2, 3, 4\]"):
        UnchargedElectrolyte(h=3.0, c=0.5, z_p=5, z_n=-1, d=0.5, allow_outside_design=True)


@pytest.mark.parametrize("inputs, L, n_minus, n_plus", [
    # N- = int(c 0.6022 L^2 h), rounded up to a multiple of z_p; N+ = |z_n| N- / z_p (authors' preprocessor)
    ((3.0, 0.9, 3, -1, 0.5), 10.0, 162, 54),   # int(162.59) = 162 = 3 x 54
    ((3.0, 0.3, 3, -1, 0.5), 15.0, 123, 41),   # int(121.95) = 121 -> 123
    ((4.0, 0.5, 2, -1, 0.6), 15.0, 270, 135),  # int(270.99) = 270, already even
    ((3.3, 0.35, 3, -2, 0.714), 15.0, 156, 104),
    ((3.0, 0.9, 1, -2, 0.5), 10.0, 162, 324),
    ((4.0, 0.6, 2, -2, 0.75), 10.0, 144, 144),
])
def test_counts_follow_the_authors_rule_and_are_electroneutral(inputs, L, n_minus, n_plus):
    s = UnchargedElectrolyte(*inputs)
    n_raw = int(s.c * 0.6022 * L * L * s.h)
    expected_minus = n_raw + (-n_raw) % s.z_p
    assert expected_minus >= n_raw and expected_minus - n_raw < s.z_p
    counts = particle_counts(s)
    assert counts.box_length_nm == L
    assert counts.n_anions == expected_minus
    assert counts.n_cations * s.z_p == abs(s.z_n) * counts.n_anions  # electroneutral
    assert (counts.counterions, counts.mesh_per_wall, counts.sigma_s_effective) == (0, 0, 0.0)
    assert (counts.n_anions, counts.n_cations) == (n_minus, n_plus)  # the hand values


def test_key_carries_the_valencies_and_round_trips():
    s = UnchargedElectrolyte(3.2, 0.9, 3, -2, 0.65)
    assert s.key() == "Z_3.2_p_3_n_-2_d_0.65_a_0.65_c_0.9_i_0_uncharged"
    assert parse_uncharged_key(s.key()) == s.inputs() == {"h": 3.2, "c": 0.9, "z_p": 3, "z_n": -2, "d": 0.65}
    assert make_system(s.inputs()) == s
    with pytest.raises(ValueError, match="uncharged-wall system"):
        parse_key(s.key())  # the charged-wall parser refuses uncharged keys
    # the charged keys are unchanged
    c = ConfinedElectrolyte(4.4, 0.5, 0.415, 0.415, -0.015)
    assert c.key() == system_key(c.inputs()) == "Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_0.5_i_-0.015"
    assert make_system(c.inputs()) == c and (c.z_p, c.z_n, c.kind) == (1, -1, "charged")
    assert len(uncharged_grid_points()) == 11 * 7 * 3 * 6


def test_the_two_system_kinds_never_share_a_key():
    # a charged system with sigma_s = 0 and d+ = d- has the authors' fields of the uncharged z_p = 1, z_n = -1 one
    c = ConfinedElectrolyte(4.0, 0.5, 0.5, 0.5, 0.0, allow_outside_design=True)
    u = UnchargedElectrolyte(4.0, 0.5, 1, -1, 0.5)
    assert c.key() == "Z_4_p_1_n_-1_d_0.5_a_0.5_c_0.5_i_0"
    assert u.key() == "Z_4_p_1_n_-1_d_0.5_a_0.5_c_0.5_i_0_uncharged"
    assert parse_key(c.key()) == c.inputs() and parse_uncharged_key(u.key()) == u.inputs()
    with pytest.raises(ValueError, match="uncharged-wall system"):
        parse_key(u.key())
    with pytest.raises(ValueError, match="not an uncharged-wall key"):
        parse_uncharged_key(c.key())
    assert system_key(u.inputs(), authors_spelling=True) == "Z_4_p_1_n_-1_d_0.5_a_0.5_c_0.5_i_0.0_uncharged"


def _uncharged_dataset(n: int = 3) -> xr.Dataset:
    from mdsurrogate.dataset.core import from_profiles
    from mdsurrogate.simulation.system import uncharged_grid

    records = []
    for p in uncharged_grid_points()[:n]:
        z = uncharged_grid(p["h"])
        n_minus = np.full(len(z), p["c"])
        records.append({"inputs": p, "z": z, "n_plus": n_minus * abs(p["z_n"]) / p["z_p"], "n_minus": n_minus,
                        "n_plus_err": np.full(len(z), 0.01), "n_minus_err": np.full(len(z), 0.01)})
    return from_profiles(records)


def test_surrogate_path_takes_uncharged_datasets_and_the_pickle_refuses_them(tmp_path):
    from mdsurrogate.dataset import to_arrays, to_authors_pickle

    ds = _uncharged_dataset()
    arrays = to_arrays(ds)  # the surrogate path (tests/test_surrogate_uncharged.py trains on a real campaign)
    assert arrays.X.shape == (3, 5) and arrays.Y.shape == (3, 2 * N_GRID_UNCHARGED)
    np.testing.assert_array_equal(arrays.X[:, 2:4], np.stack([ds.z_p.values, ds.z_n.values], axis=1))
    with pytest.raises(ValueError, match=r"^uncharged-wall datasets .* have no authors' pickle format yet"):
        to_authors_pickle(ds, tmp_path / "x.pk")
    assert not (tmp_path / "x.pk").exists()


def test_reuse_never_counts_a_charged_run_as_an_uncharged_one(tmp_path, monkeypatch):
    from mdsurrogate.campaign.execute import run_campaign
    from mdsurrogate.campaign.reuse import reused_runs
    from mdsurrogate.campaign.spec import SpecError, parse_spec
    from mdsurrogate.dataset import consolidate, load_dataset, save

    monkeypatch.chdir(tmp_path)
    controls = {"steps": 1000, "n_blocks": 4, "overrides": {"block_steps": 100}, "seeds": [1]}
    charged = parse_spec({"campaign": {"name": "c", "allow_outside_design": True},
                          "design": [{"type": "grid", "h": [4.0], "c": [0.5], "d_plus": 0.5, "d_minus": 0.5,
                                      "sigma_s": 0.0}], "controls": controls})
    run_campaign(charged, "s1", run_fn="mdsurrogate.campaign.synthetic:simulate")
    consolidate("s1", "charged.nc")

    def uncharged(reuse):
        return parse_spec({"campaign": {"name": "u", "system": "uncharged", "reuse": [reuse]},
                           "design": [{"type": "grid", "h": [4.0], "c": [0.5], "z_p": [1], "z_n": [-1], "d": [0.5]}],
                           "controls": controls})

    spec = uncharged("charged.nc")
    assert charged.runs[0].run_id != spec.runs[0].run_id
    assert reused_runs(spec) == {}
    # a dataset whose run ids were made to look like the uncharged ones is still refused by its system kind
    forged = load_dataset("charged.nc").assign_coords(run_id=("system", [spec.runs[0].run_id]))
    save(forged, "forged.nc")
    with pytest.raises(SpecError, match="campaign.reuse.*charged-wall system.*uncharged"):
        reused_runs(uncharged("forged.nc"))


# ---------------------------------------------------------------------------------------------- decks

#: sha256 of (in.lammps, system.data) of charged-wall systems, taken from the code before the uncharged system was
#: added (commit 9caf598): the charged decks must stay byte-identical. The authors' (mesh) decks changed once since,
#: on purpose (2026-12-07): their blow-up guard reads the ions' temperature (`compute tion ions temp`), not the
#: average over the frozen mesh atoms too.
CHARGED_DECK_HASHES = {
    ((4.4, 0.5, 0.415, 0.415, -0.015), "production"):
        ("f7a313ea9fb7d13a26692fec8dcd44016daa1febb11a198c90e89c0d3711b0f5",
         "bef3f91078800fcfcc50d0b817b4492a4d96fbc84a386a881e9f78326f37b7f8"),
    ((4.4, 0.5, 0.415, 0.415, -0.015), "authors"):
        ("64490ebbd4b0b1e566a7334ffdb5bddf92c0c7f26ec38edd6536ea03306f5174",
         "a3dcb2f7ea53745509b67c0eed077281a68f76e54333a8536d53f9d885a213b7"),
    ((4.0, 1.75, 0.2, 0.63, -0.02), "production"):
        ("3d689e0e8ed0ba8cced9d476bb9d12bb527d78a50a910f78dec313f28fc52ace",
         "392cd25728c9bd686aa93ddb7ac3931b163ac95681a51c0e5dab7d1e0016ab86"),
    ((4.0, 1.75, 0.2, 0.63, -0.02), "authors"):
        ("caa6a33b7e46a8b8d6c0b796051a34e901a0c8938b55e54ecddec60c32e3c954",
         "e4e8cf059183b141f93e60f802764701787bc9988ceeba922cf1c052cc812520"),
}


@pytest.mark.parametrize("inputs, preset", list(CHARGED_DECK_HASHES))
def test_charged_wall_decks_are_byte_identical_to_before(tmp_path, inputs, preset):
    text = lammps_input(ConfinedElectrolyte(*inputs), RunControls(preset=preset, seed=3), tmp_path)
    data = (tmp_path / "system.data").read_bytes()
    assert (hashlib.sha256(text.encode()).hexdigest(), hashlib.sha256(data).hexdigest()) == \
        CHARGED_DECK_HASHES[(inputs, preset)]


@pytest.mark.parametrize("preset", ["production", "authors"])
def test_both_presets_build_the_authors_uncharged_deck(tmp_path, preset):
    """No wall charges; WCA walls at -+h/2 with sigma = d/2 (the template's fix wall/lj126 at EDGE); charges
    z sqrt(l_B/d); the template's bins: 0.05 sigma made a whole number across the slit."""
    s = UnchargedElectrolyte(3.6, 0.7, 3, -2, 0.6)
    text = lammps_input(s, RunControls(preset=preset), tmp_path)
    data = (tmp_path / "system.data").read_text()
    assert "0 atoms" in data and "Atoms" not in data
    h2 = 3.6 / 2 / 0.6
    q = math.sqrt(BJERRUM_LENGTH_NM / 0.6)
    assert f"set type 1 charge {3 * q:.12g}" in text and f"set type 2 charge {-2 * q:.12g}" in text
    wall = f"zlo {-h2:.12g} 1.0 0.5 {2 ** (1 / 6) / 2:.12g} zhi {h2:.12g} 1.0 0.5 {2 ** (1 / 6) / 2:.12g}"
    assert text.count(wall) == 2
    counts = particle_counts(s)
    assert f"create_atoms 1 random {counts.n_cations} " in text and f"create_atoms 2 random {counts.n_anions} " in text
    m = re.search(r"bin/1d z (\S+) (\S+) bound z (\S+) (\S+) units box", text)
    lo, width = float(m[1]), float(m[2])
    assert lo == pytest.approx(-h2) and float(m[4]) == pytest.approx(h2)
    n_bins = 2 * h2 / width
    assert n_bins == pytest.approx(round(2 * h2 / 0.05)) == 120
    assert ("timestep 0.001" in text) == (preset == "authors")
    assert "wall_forces.txt" in text


@pytest.mark.parametrize("preset", ["production", "authors"])
def test_the_system_lammps_simulates_is_electroneutral(tmp_path, preset):
    """LAMMPS' own data file after minimisation and a few steps: counts, charges z_i sqrt(l_B/d), total charge 0."""
    s = UnchargedElectrolyte(3.0, 0.3, 3, -1, 0.5)
    controls = RunControls(preset=preset, steps=1000, n_blocks=4, overrides={"block_steps": 200})
    script = lammps_input(s, controls, tmp_path, production=False) + "write_data final.data\n"
    (tmp_path / "in.lammps").write_text(script)
    subprocess.run([*runtime.lmp_command(1), "-in", "in.lammps", "-log", "log.lammps", "-screen", "none", "-nocite"],
                   cwd=tmp_path, env=runtime.engine_env(1), check=True, timeout=300)
    text = (tmp_path / "final.data").read_text()
    atoms = text.split("Atoms # charge")[1].split("Velocities")[0]
    rows = np.array([ln.split()[:6] for ln in atoms.strip().splitlines()], dtype=float)
    types, charges, z = rows[:, 1].astype(int), rows[:, 2], rows[:, 5]
    counts = particle_counts(s)
    q = math.sqrt(BJERRUM_LENGTH_NM / 0.5)
    assert (types == 1).sum() == counts.n_cations == 41 and (types == 2).sum() == counts.n_anions == 123
    assert np.allclose(charges[types == 1], 3 * q) and np.allclose(charges[types == 2], -q)
    assert abs(charges.sum()) < 1e-9 * np.abs(charges).sum()
    assert np.all(np.abs(z) < 3.0)  # every ion between the walls (sigma units: h/2 = 3)


# ---------------------------------------------------------------------------------------------- real runs

RUN_CONTROLS = RunControls(steps=22_000, seed=11, overrides={"bin_width": 0.01})  # 0.01 sigma bins near the walls


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for zp in (1, 3):
        path = tmp_path_factory.mktemp("unc") / f"zp{zp}.nc"
        simulate(UnchargedElectrolyte(h=3.0, c=0.3, z_p=zp, z_n=-1, d=0.5), RUN_CONTROLS, out=path)
        out[zp] = xr.load_dataset(path, engine="h5netcdf")
    return out


def test_run_dataset_carries_the_valencies(runs):
    for zp, ds in runs.items():
        assert ds["n_plus"].sizes["z"] == N_GRID_UNCHARGED
        assert ds["z"].values[0] == pytest.approx(-1.5) and ds["z"].values[-1] == pytest.approx(1.5)
        for var in ("n_plus", "n_minus", "n_plus_err", "n_minus_err", "charge_density", "integrated_charge"):
            assert np.all(np.isfinite(ds[var].values))
        a = ds.attrs
        assert (a["z_p"], a["z_n"], a["d"], a["system_kind"]) == (zp, -1, 0.5, "uncharged")
        assert a["system_key"] == f"Z_3_p_{zp}_n_-1_d_0.5_a_0.5_c_0.3_i_0_uncharged"
        assert "d_plus" not in a and "sigma_s" not in a  # not mistaken for a charged-wall run


def test_profiles_hold_every_ion_and_no_net_charge(runs):
    """Integrals of n(z) give N+ and N-, and z_p N+ + z_n N- = 0 (units, binning, valencies)."""
    for zp, ds in runs.items():
        counts = particle_counts(UnchargedElectrolyte(3.0, 0.3, zp, -1, 0.5))
        area = counts.box_length_nm**2
        dz = np.diff(ds["z_bin"].values).mean()
        n_plus = ds["n_plus_native"].values.sum() * dz * AVOGADRO_PER_NM3_PER_MOLAR * area
        n_minus = ds["n_minus_native"].values.sum() * dz * AVOGADRO_PER_NM3_PER_MOLAR * area
        assert n_plus == pytest.approx(counts.n_cations, rel=2e-3)
        assert n_minus == pytest.approx(counts.n_anions, rel=2e-3)
        assert abs(zp * n_plus - n_minus) < 2e-3 * n_minus
        # S(z) on the 150-point grid (a subsample of the 0.01 sigma bins here) returns to ~0 at the far wall:
        # < 1 % of the anions' charge per area
        anion_charge_per_area = ELEMENTARY_CHARGE * MOLAR_TO_PER_M3 * 0.3 * 3.0e-9  # C/m^2
        assert abs(ds["integrated_charge"].values[-1]) < 1e-2 * anion_charge_per_area


def _halves(blocks: np.ndarray, rebin: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(block, bin) profiles on bins `rebin` times wider; left half and mirrored right half."""
    b = blocks.reshape(blocks.shape[0], -1, rebin).mean(axis=-1)
    n = b.shape[1] // 2
    return b[:, :n], b[:, n:][:, ::-1]


def test_profiles_are_mirror_symmetric(runs):
    """Two uncharged walls: n(z) = n(-z). On 0.05 sigma bins, the block-wise difference of each half's normalised
    shape has mean chi^2 per bin ~1 (< 2.5 passes), and the ion numbers of the two halves differ by less than 4
    standard errors. A profile shifted by one such bin (0.025 nm) fails the shape test by far."""
    for zp, ds in runs.items():
        for var in ("n_plus_blocks", "n_minus_blocks"):
            left, right = _halves(ds[var].values)
            occupied = (left.mean(0) > 0) | (right.mean(0) > 0)

            def shape_chi2(a, b):
                mean, err = block_average(a / a.sum(1, keepdims=True) - b / b.sum(1, keepdims=True), 20)
                return float((mean**2 / (err**2 + 1e-30))[occupied].mean())

            assert shape_chi2(left, right) < 2.5, (zp, var)
            mean, err = block_average((left.sum(1) - right.sum(1))[:, None], 20)
            assert abs(mean[0]) < 4 * err[0], (zp, var)
            shifted = np.roll(ds[var].values.reshape(20, -1, 5).mean(-1), 1, axis=1)
            assert shape_chi2(left, shifted[:, shifted.shape[1] // 2:][:, ::-1]) > 5.0, (zp, var)


def _wall_force_density(z_nm: np.ndarray, h: float, d: float) -> np.ndarray:
    """-dU/dr of the WCA wall (epsilon = kT, sigma = d/2, cut at 2^(1/6) sigma) at distance r = z + h/2 (kT/nm)."""
    s = d / 2
    r = z_nm + h / 2
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        sr6 = (s / r) ** 6
        f = np.where((r > 0) & (r < 2 ** (1 / 6) * s), 24 * (2 * sr6 * sr6 - sr6) / r, 0.0)
    return f


def test_contact_theorem_wall_force_balances_the_ion_pressure(runs):
    """For walls in mechanical equilibrium with the ions (uncharged walls, no images), three forms:
    (1) virial theorem of the confined slab: P_wall = (|F_lo| + |F_hi|)/2A equals the ions' normal pressure
        (N kT + W_pair,zz + W_kspace,zz + W_wall,zz)/(A h) from LAMMPS' virial: within 3 combined standard errors
        and 3 % (measured: ratio 1.006 and 1.007);
    (2) soft-wall contact theorem: each wall's force per area equals sum_i int n_i(z) (-dU_i/dz) dz of the measured
        profile (0.01 sigma bins): within 3 % (measured 0.2-0.8 %); the two walls agree within 4 errors;
    (3) hard-wall form P = kT sum_i n_i(contact), contact = the edge of the WCA range: within 10 % (the steep
        depletion of trivalent ions near the wall makes it 8 % high at z_p = 3; 1 % at z_p = 1)."""
    for zp, ds in runs.items():
        a = ds.attrs
        pw, pw_err = a["wall_pressure_kT_per_nm3"], a["wall_pressure_err_kT_per_nm3"]
        pv, pv_err = a["virial_pressure_kT_per_nm3"], a["virial_pressure_err_kT_per_nm3"]
        assert abs(pv - pw) < 3 * math.hypot(pw_err, pv_err) and abs(pv / pw - 1) < 0.03, (zp, pv, pw)
        lo, hi = a["wall_pressure_lo_kT_per_nm3"], a["wall_pressure_hi_kT_per_nm3"]
        assert abs(lo - hi) < 4 * math.hypot(a["wall_pressure_lo_err_kT_per_nm3"], a["wall_pressure_hi_err_kT_per_nm3"])
        z = ds["z_bin"].values
        n = (ds["n_plus_native"].values + ds["n_minus_native"].values) * AVOGADRO_PER_NM3_PER_MOLAR  # 1/nm^3
        dz = np.diff(z).mean()
        f_lo = _wall_force_density(z, 3.0, 0.5)
        f_hi = _wall_force_density(-z, 3.0, 0.5)
        assert (n * f_lo).sum() * dz == pytest.approx(lo, rel=0.03), zp
        assert (n * f_hi).sum() * dz == pytest.approx(hi, rel=0.03), zp
        contact = 2 ** (1 / 6) * 0.5 / 2 - 1.5
        n_contact = 0.5 * (np.interp(contact, z, n) + np.interp(-contact, z, n))
        assert n_contact == pytest.approx(pw, rel=0.10), zp  # kT = 1


def test_valency_dependence_against_poisson_boltzmann_and_the_primitive_model(runs):
    """PB (mean field, point ions) for uncharged walls and equal diameters: psi = 0, so each density is N_i/A times
    the wall's Boltzmann factor, and the wall pressure is the ideal kT sum_i n_i (osmotic coefficient 1), for any
    valency. It holds for the monovalent system: MD/PB within 6 % at the midplane and at contact (measured 1.00 and
    1.02). It fails for z_p = 3 (ion correlations deplete the trivalent ions at the walls: contact MD/PB < 0.8,
    measured 0.60). The primitive model's bulk osmotic coefficient (MSA + Carnahan-Starling at the midplane
    densities; -> PB's 1 as c -> 0) follows MD at both valencies within 0.06 (measured 1.048 vs 1.029 and 0.795 vs
    0.750), and MD's drop from z_p = 1 to 3 exceeds 0.15 (MSA: 0.28), where PB predicts none."""
    phi = {}
    for zp, ds in runs.items():
        pb = solve_system(UnchargedElectrolyte(3.0, 0.3, zp, -1, 0.5))
        z = ds["z_bin"].values
        mid = np.abs(z) < 0.5
        contact = 2 ** (1 / 6) * 0.5 / 2 - 1.5
        n_plus = ds["n_plus_native"].values
        mid_ratio = n_plus[mid].mean() / np.interp(0.0, pb.z, pb.n_plus)
        contact_ratio = np.interp(contact, z, n_plus) / np.interp(contact, pb.z, pb.n_plus)
        if zp == 1:
            assert mid_ratio == pytest.approx(1.0, abs=0.06) and contact_ratio == pytest.approx(1.0, abs=0.06)
        else:
            assert contact_ratio < 0.8 and mid_ratio > 1.08
        n_mid = {zp: n_plus[mid].mean() * AVOGADRO_PER_NM3_PER_MOLAR,
                 -1: ds["n_minus_native"].values[mid].mean() * AVOGADRO_PER_NM3_PER_MOLAR}
        phi[zp] = ds.attrs["wall_pressure_kT_per_nm3"] / sum(n_mid.values())
        assert phi[zp] == pytest.approx(msa_osmotic_coefficient(n_mid, 0.5), abs=0.06), zp
    assert phi[1] - phi[3] > 0.15


def test_cli_simulates_the_uncharged_system_and_names_bad_options(tmp_path):
    runner = CliRunner()
    for args, message in ((["--system", "uncharged", "--zp", "4"], "--zp: z_p (cation valency) = 4"),
                          (["--system", "uncharged", "--d", "0.9"], "--d: d (ion diameter) = 0.9 nm"),
                          (["--system", "uncharged", "--sigma-s", "-0.01"], "--sigma-s: only for --system charged"),
                          (["--zn", "-2"], "--zn: only for --system uncharged"),
                          (["--system", "neutral"], "--system: must be 'charged' or 'uncharged'")):
        res = runner.invoke(app, ["simulate", *args, "--out", str(tmp_path / "x")])
        assert res.exit_code != 0 and message in res.output, (args, res.output)
    out = tmp_path / "run"
    res = runner.invoke(app, ["simulate", "--system", "uncharged", "--zp", "2", "--zn", "-1", "--h", "3.0", "--c",
                              "0.3", "--d", "0.7", "--steps", "21700", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.load_dataset(out / "profiles.nc", engine="h5netcdf")
    assert ds.attrs["system_key"] == "Z_3_p_2_n_-1_d_0.7_a_0.7_c_0.3_i_0_uncharged" and ds.attrs["z_p"] == 2
    assert Path(out / "summary.json").exists() and (out / "density_profile_cations.dat").exists()


def test_campaign_spec_and_dataset_carry_the_uncharged_system(runs):
    from mdsurrogate.campaign.spec import SpecError, load_spec, parse_spec
    from mdsurrogate.dataset.core import from_runs, summary

    spec = load_spec(Path(__file__).parents[1] / "campaigns" / "uncharged_multivalent.toml")
    assert len(spec.runs) == 1000 and {r.inputs["z_p"] for r in spec.runs} == {1, 2, 3}
    assert spec.runs[0].run_id == f"{system_key(spec.runs[0].inputs)}_s1"
    with pytest.raises(SpecError, match=r"design\[0\].sigma_s"):
        parse_spec({"campaign": {"system": "uncharged"}, "design": [{"type": "grid", "sigma_s": [0.0]}]})
    ds = from_runs(list(runs.values()))
    assert list(ds["z_p"].values) == [1, 3] and list(ds["z_n"].values) == [-1, -1]
    assert ds.attrs["system_kind"] == "uncharged" and ds.sizes["point"] == N_GRID_UNCHARGED
    assert summary(ds)["runs_per_value"]["z_p"] == {"1": 1, "3": 1}


def test_summary_figures_of_an_uncharged_dataset(tmp_path):
    """The dataset's summary figures take the uncharged system's inputs and grid (z_n never varies: left out)."""
    from mdsurrogate.dataset import load_dataset
    from mdsurrogate.dataset.figures import summary_figures

    paths = summary_figures(load_dataset(Path(__file__).parent / "data" / "uncharged_small.nc"), tmp_path)
    assert [p.name for p in paths] == ["errors.png", "coverage.png"] and all(p.stat().st_size > 1000 for p in paths)
