"""Campaign specs: designs, exclusions, controls, and errors that name the offending key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from mdsurrogate.campaign.spec import SpecError, load_spec, parse_spec, system_key
from mdsurrogate.simulation.system import DESIGN_RANGES, INPUT_NAMES, PAPER_GRID

ROOT = Path(__file__).resolve().parents[1]


def spec(*designs, exclude=None, controls=None, execution=None):
    raw = {"campaign": {"name": "t"}, "design": list(designs)}
    if exclude is not None:
        raw["exclude"] = exclude
    if controls is not None:
        raw["controls"] = controls
    if execution is not None:
        raw["execution"] = execution
    return parse_spec(raw)


def test_full_paper_grid_and_exclusion_of_the_reference_slice():
    s = spec({"type": "grid"})
    assert len(s.runs) == 4050
    s = spec({"type": "grid"}, exclude=[{"d_plus": 0.415, "d_minus": 0.415}])
    assert len(s.runs) == 4050 - 6 * 9 * 3
    assert not any(r.inputs["d_plus"] == 0.415 and r.inputs["d_minus"] == 0.415 for r in s.runs)


def test_sub_grid_seeds_and_run_ids():
    s = spec({"type": "grid", "h": [4.0, 5.0], "c": 0.5, "sigma_s": [-0.01]}, controls={"seeds": [1, 2]})
    assert len(s.systems) == 2 * 1 * 5 * 5 * 1
    assert len(s.runs) == 2 * len(s.systems)
    assert len({r.run_id for r in s.runs}) == len(s.runs)
    r = s.runs[0]
    assert r.run_id == f"{system_key(r.inputs)}_s{r.seed}"


def test_random_subset_is_seeded_unique_and_on_the_grid():
    a = spec({"type": "random_subset", "n": 50, "seed": 3})
    b = spec({"type": "random_subset", "n": 50, "seed": 3})
    c = spec({"type": "random_subset", "n": 50, "seed": 4})
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert [r.run_id for r in a.runs] != [r.run_id for r in c.runs]
    assert len(a.systems) == 50
    for r in a.runs:
        for k in INPUT_NAMES:
            assert r.inputs[k] in PAPER_GRID[k]


@pytest.mark.parametrize("kind,n", [("sobol", 32), ("lhs", 20)])
def test_space_filling_designs_stay_in_ranges_and_fill_them(kind, n):
    s = spec({"type": kind, "n": n, "seed": 5, "ranges": {"c": [0.1, 1.0]}, "fixed": {"h": 4.4}})
    assert len(s.runs) == n
    x = np.array([[r.inputs[k] for k in INPUT_NAMES] for r in s.runs])
    assert np.all(x[:, 0] == 4.4)
    assert x[:, 1].min() >= 0.1 and x[:, 1].max() <= 1.0
    for j, k in enumerate(INPUT_NAMES[2:], start=2):
        lo, hi = DESIGN_RANGES[k]
        assert lo <= x[:, j].min() and x[:, j].max() <= hi
        # space filling: every quarter of each free range is visited
        quarters = np.floor((x[:, j] - lo) / (hi - lo) * 4).clip(0, 3)
        assert set(quarters) == {0, 1, 2, 3}
    again = spec({"type": kind, "n": n, "seed": 5, "ranges": {"c": [0.1, 1.0]}, "fixed": {"h": 4.4}})
    assert [r.run_id for r in again.runs] == [r.run_id for r in s.runs]


def test_explicit_list_union_and_deduplication():
    p = {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}
    s = spec({"type": "list", "points": [p, p]}, {"type": "grid", "h": 4.4, "c": 0.5, "d_plus": 0.415,
                                                  "d_minus": 0.415, "sigma_s": [-0.015, -0.01]})
    assert len(s.runs) == 2


@pytest.mark.parametrize("raw,key", [
    ({"design": [{"type": "grdi"}]}, "design[0].type"),
    ({"design": [{"type": "grid", "c": [0.1, 3.0]}]}, "design[0]"),
    ({"design": [{"type": "grid", "cc": 1}]}, "design[0].cc"),
    ({"design": [{"type": "random_subset", "n": 5000, "seed": 1}]}, "design[0].n"),
    ({"design": [{"type": "random_subset", "n": 5}]}, "design[0].seed"),
    ({"design": [{"type": "sobol", "n": 30, "seed": 1}]}, "design[0].n"),
    ({"design": [{"type": "lhs", "n": 8, "seed": 1, "ranges": {"h": [3.0, 4.5]}}]}, "design[0].ranges.h"),
    ({"design": [{"type": "list", "points": [{"h": 4.4}]}]}, "design[0].points[0]"),
    ({"design": [{"type": "list", "points": [{"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415,
                                              "sigma_s": 0.01}]}]}, "design[0].points[0]"),
    ({"design": [{"type": "grid"}], "controls": {"preset": "fast"}}, "controls.preset"),
    ({"design": [{"type": "grid"}], "controls": {"steps": 10, "time_tau": 5.0}}, "controls.steps"),
    ({"design": [{"type": "grid"}], "controls": {"steps": -1}}, "controls.steps"),
    ({"design": [{"type": "grid"}], "controls": {"seeds": [1, 1]}}, "controls.seeds"),
    ({"design": [{"type": "grid"}], "controls": {"lenght": 3}}, "controls.lenght"),
    ({"design": [{"type": "grid"}], "execution": {"workers": 0}}, "execution.workers"),
    ({"design": [{"type": "grid"}], "execution": {"max_attempts": 12}}, "execution.max_attempts"),  # seed range
    ({"design": [{"type": "grid"}], "execution": {"max_attempts": 0}}, "execution.max_attempts"),
    ({"design": [{"type": "grid"}], "execution": {"backend": "dask"}}, "execution.backend"),
    ({"design": [{"type": "grid"}], "execution": {"order": "random"}}, "execution.order"),
    ({"design": [{"type": "grid"}], "execution": {"order_seed": -1}}, "execution.order_seed"),
    ({"design": [{"type": "grid"}], "exclude": [{"d_plus": "big"}]}, "exclude[0].d_plus"),
    ({"design": [{"type": "grid", "h": 4.0}], "exclude": [{"h": 4.0}]}, "exclude"),
    ({"campaign": {"name": "a b"}, "design": [{"type": "grid"}]}, "campaign.name"),
    ({}, "design"),
    ({"design": [{"type": "grid"}], "extra": 1}, "extra"),
])
def test_invalid_specs_fail_naming_the_key(raw, key):
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    assert err.value.key == key
    assert str(err.value).startswith(key + ":")


def test_out_of_range_error_names_the_input_and_range():
    with pytest.raises(SpecError, match=r"c \(salt concentration\) = 3.0 M is outside the design range \[0.1, 2.0\]"):
        parse_spec({"design": [{"type": "grid", "c": [3.0]}]})


def test_engine_validates_controls_too():
    pytest.importorskip("mdsurrogate.simulation.engine")
    with pytest.raises(SpecError) as err:
        parse_spec({"design": [{"type": "grid"}], "controls": {"n_blocks": 2}})
    assert err.value.key == "controls.n_blocks"
    with pytest.raises(SpecError, match="overrides"):
        parse_spec({"design": [{"type": "grid"}], "controls": {"overrides": {"no_such_setting": 1}}})
    # override values are range-checked before anything runs, the key named
    for bad, key in (({"dt": -0.01}, "controls.overrides.dt"), ({"wall_model": "x"}, "controls.overrides.wall_model"),
                     ({"kspace_order": 9}, "controls.overrides.kspace_order"),
                     ({"sample_every": 7}, "controls.overrides.block_steps")):
        with pytest.raises(SpecError) as err:
            parse_spec({"design": [{"type": "grid"}], "controls": {"overrides": bad}})
        assert err.value.key == key, (bad, err.value.key)
    ok = parse_spec({"design": [{"type": "grid"}], "controls": {"overrides": {"dt": 0.005, "kspace_order": 4}}})
    assert ok.controls["overrides"] == {"dt": 0.005, "kspace_order": 4}


def test_subset_grid_keys_and_parsl_config_are_checked(tmp_path):
    with pytest.raises(SpecError) as err:
        parse_spec({"design": [{"type": "random_subset", "n": 3, "seed": 1, "grid": {"cc": [0.5]}}]})
    assert err.value.key == "design[0].grid.cc"
    for cfg in ("slurm", 3):
        with pytest.raises(SpecError) as err:
            parse_spec({"design": [{"type": "grid"}], "execution": {"backend": "parsl", "parsl_config": cfg}})
        assert err.value.key == "execution.parsl_config"
    # a .py file is checked when the campaign runs (relative to where it runs), not when the spec is read
    spec = parse_spec({"design": [{"type": "grid"}],
                       "execution": {"backend": "parsl", "parsl_config": str(tmp_path / "site.py")}})
    assert spec.execution.parsl_config.endswith("site.py")


def test_toml_and_yaml_files_agree(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(textwrap.dedent("""
        [campaign]
        name = "small"
        [[design]]
        type = "random_subset"
        n = 12
        seed = 9
        [[exclude]]
        d_plus = 0.415
        d_minus = [0.415, 0.2]
        [controls]
        preset = "production"
        time_tau = 50.0
        n_blocks = 4
        overrides = { block_steps = 100 }
        seeds = [1, 2]
        [execution]
        workers = 2
        cores_per_run = 1
        """))
    yaml = tmp_path / "c.yaml"
    yaml.write_text(textwrap.dedent("""
        campaign: {name: small}
        design:
          - {type: random_subset, n: 12, seed: 9}
        exclude:
          - {d_plus: 0.415, d_minus: [0.415, 0.2]}
        controls: {preset: production, time_tau: 50.0, n_blocks: 4, overrides: {block_steps: 100}, seeds: [1, 2]}
        execution: {workers: 2, cores_per_run: 1}
        """))
    a, b = load_spec(toml), load_spec(yaml)
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert a.controls == b.controls == {"preset": "production", "time_tau": 50.0, "n_blocks": 4,
                                        "overrides": {"block_steps": 100}}
    assert a.execution.workers == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[[design]]\ntype = 'grid'\n[controls]\nseeds = 'one'\n")
    with pytest.raises(SpecError, match=r"^controls.seeds"):
        load_spec(bad)


def test_shipped_campaign_specs():
    main = load_spec(ROOT / "campaigns" / "paper_subset_1000.toml")
    assert len(main.systems) >= 1000
    assert all(r.inputs["d_plus"] != 0.415 or r.inputs["d_minus"] != 0.415 for r in main.runs)
    assert all(all(r.inputs[k] in PAPER_GRID[k] for k in INPUT_NAMES) for r in main.runs)
    assert main.controls["preset"] == "production"
    precise = load_spec(ROOT / "campaigns" / "precise_test_set.toml")
    assert 24 <= len(precise.systems) <= 60
    assert precise.controls["steps"] >= 3 * main.controls["steps"]
    check = load_spec(ROOT / "campaigns" / "reference_check.toml")  # the MD-vs-MD floor needs the same controls
    assert check.controls == main.controls and check.seeds == main.seeds
    assert all(r.inputs["d_plus"] == r.inputs["d_minus"] == 0.415 for r in check.runs)
    for path in sorted((ROOT / "campaigns").glob("*.toml")):
        load_spec(path)
