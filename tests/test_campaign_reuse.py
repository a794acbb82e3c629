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
