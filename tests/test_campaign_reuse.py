"""A campaign committed in parts: runs stored in `reuse` datasets are not run again, and parts never overlap."""

from __future__ import annotations

import pytest

from mdsurrogate.campaign.execute import run_campaign
from mdsurrogate.campaign.reuse import reused_runs
from mdsurrogate.campaign.spec import SpecError, parse_spec
from mdsurrogate.dataset import consolidate, load_dataset, load_parts

SYNTH = "mdsurrogate.campaign.synthetic:simulate"


def spec(c_values, reuse=(), steps=1000, **controls):
    return parse_spec({
        "campaign": {"name": "parts", "reuse": list(reuse)},
        "design": [{"type": "grid", "h": [4.0], "c": list(c_values), "d_plus": 0.415, "d_minus": [0.2, 0.415],
                    "sigma_s": -0.01}],
        "controls": {"steps": steps, "n_blocks": 4, "overrides": {"block_steps": 100}, "seeds": [1], **controls},
        "execution": {"workers": 2},
    })


def test_second_session_runs_only_what_the_parts_lack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = spec([0.5])  # session 1: 2 systems, consolidated into part-01
    run_campaign(first, "s1", run_fn=SYNTH)
    consolidate("s1", "data/part-01.nc")
    full = spec([0.5, 1.0], reuse=["data/part-*.nc"])
    assert set(reused_runs(full)) == {r.run_id for r in first.runs}
    s = run_campaign(full, "s2", run_fn=SYNTH)  # session 2, a fresh campaign directory
    assert s.started == 2 and s.counts["done"] == 2
    consolidate("s2", "data/part-02.nc")
    ds = load_parts("data/part-*.nc")
    assert sorted(ds["run_id"].values) == sorted(r.run_id for r in full.runs)
    assert len(load_dataset("data/part-02.nc")["run_id"]) == 2
    # rerunning in the same directory (the machine was kept): nothing new, and consolidating again refuses to
    # write a part that would repeat the stored runs
    assert run_campaign(full, "s2", run_fn=SYNTH).started == 0
    with pytest.raises(RuntimeError, match="already in its reused datasets"):
        consolidate("s2", "data/part-03.nc")
    # ... but rewriting part-02 itself is allowed (it is not counted as a reused file)
    assert len(consolidate("s2", "data/part-02.nc")["run_id"]) == 2


def test_parts_made_under_other_controls_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_campaign(spec([0.5]), "s1", run_fn=SYNTH)
    consolidate("s1", "part.nc")
    longer = spec([0.5, 1.0], reuse=["part.nc"], steps=4000)
    with pytest.raises(SpecError, match="campaign.reuse.*equilibration_steps = 100, the spec.s controls give 400"):
        reused_runs(longer)
    # runs that may stop early at a target error are another kind of run than the stored full-length ones
    targeted = spec([0.5, 1.0], reuse=["part.nc"], target_rel_error=0.05)
    with pytest.raises(SpecError, match="campaign.reuse.*target_rel_error = -1.0, the spec.s controls give 0.05"):
        reused_runs(targeted)


def test_load_parts_refuses_a_run_in_two_parts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_campaign(spec([0.5]), "s1", run_fn=SYNTH)
    consolidate("s1", "a.nc")
    consolidate("s1", "b.nc")
    with pytest.raises(ValueError, match="more than one part"):
        load_parts("a.nc", "b.nc")


def test_reuse_must_be_a_list_of_paths():
    with pytest.raises(SpecError, match="campaign.reuse"):
        spec([0.5], reuse=[3])


def test_consolidate_never_replaces_a_file_of_another_campaign(tmp_path, monkeypatch):
    """Without `reuse` too: writing campaign B's runs over a file that holds campaign A's would lose A's runs."""
    monkeypatch.chdir(tmp_path)
    run_campaign(spec([0.5]), "a", run_fn=SYNTH)
    run_campaign(spec([1.0]), "b", run_fn=SYNTH)
    consolidate("a", "data.nc")
    with pytest.raises(RuntimeError, match="holds 2 runs this campaign directory does not"):
        consolidate("b", "data.nc")
    assert sorted(load_dataset("data.nc")["run_id"].values) == sorted(r.run_id for r in spec([0.5]).runs)
    assert len(consolidate("a", "data.nc")["run_id"]) == 2  # its own file: rewritten


def test_load_parts_checks_error_scales_grids_and_provenance(tmp_path, monkeypatch):
    import numpy as np

    from mdsurrogate.dataset import save

    monkeypatch.chdir(tmp_path)
    run_campaign(spec([0.5]), "a", run_fn=SYNTH)
    run_campaign(spec([1.0]), "b", run_fn=SYNTH)
    consolidate("a", "a.nc")
    consolidate("b", "b.nc")
    # a part saved with corrected error bars beside an uncorrected one: refused, naming both scales
    save(load_dataset("a.nc", error_scale=1 / 2.1), "a_scaled.nc")
    with pytest.raises(ValueError, match="scaled differently: error_scale 0.47619 in a_scaled.nc, 1 in b.nc"):
        load_parts("a_scaled.nc", "b.nc")
    # scaled on loading: the attribute is the product of the stored scale and the one asked for
    save(load_dataset("b.nc", error_scale=1 / 2.1), "b_scaled.nc")
    both = load_parts("a_scaled.nc", "b_scaled.nc", error_scale=0.5)
    assert both.attrs["error_scale"] == pytest.approx(0.5 / 2.1)
    raw = load_parts("a.nc", "b.nc")
    assert np.allclose(both["n_plus_err"].values, raw["n_plus_err"].values * 0.5 / 2.1)
    # a file saved from a loaded dataset names itself as its source (the other file as its parent)
    one = load_dataset("a_scaled.nc")
    assert one.attrs["source"] == "a_scaled.nc" and one.attrs["parent_source"] == "a.nc"
    # a text variable only one part has: empty text in the other, never the string 'nan'
    extra = load_dataset("a.nc")
    extra["note"] = ("system", np.array(["x"] * extra.sizes["system"], dtype=object))
    save(extra, "a_note.nc")
    got = load_parts("a_note.nc", "b.nc")["note"].values.astype(str).tolist()
    assert got == ["x", "x", "", ""]
    # parts with different profile lengths: refused naming the file
    short = load_dataset("b.nc").isel(point=slice(0, 100))
    save(short, "b_short.nc")
    with pytest.raises(ValueError, match="b_short.nc has 100 profile points per run"):
        load_parts("a.nc", "b_short.nc")
