"""The safe importer of the authors' pickles."""

import pickle

import numpy as np
import pytest

from mdsurrogate.dataset.authors_pickle import (
    UnsafePickle,
    dump_authors_pickle,
    load_authors_pickle,
    parse_key,
)


def test_reference_subset_loads_with_expected_structure(reference_path):
    data = load_authors_pickle(reference_path)
    assert len(data) == 81
    hs = set()
    for key, entry in data.items():
        p = parse_key(key)
        assert p["d_plus"] == p["d_minus"] == 0.415
        hs.add(p["h"])
        for ion in ("pos", "neg"):
            arr = entry[ion]
            assert arr.shape == (502, 3)
            assert np.all(arr[:, 1] >= 0) and np.all(arr[:, 2] >= 0)
            # the grid spans the slit symmetrically
            assert arr[0, 0] == pytest.approx(-arr[-1, 0])
            assert arr[-1, 0] == pytest.approx(p["h"] / 2, abs=0.02)
    assert hs == {4.0, 4.4, 4.8}


class Evil:
    def __reduce__(self):
        return (print, ("owned",))


def test_refuses_pickles_that_call_anything_but_numpy(tmp_path):
    path = tmp_path / "evil.pk"
    path.write_bytes(pickle.dumps({"Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_0.1_i_-0.01": Evil()}))
    with pytest.raises(UnsafePickle, match="builtins.print"):
        load_authors_pickle(path)


def test_round_trip_and_numpy1_style_files(tmp_path):
    rng = np.random.default_rng(0)
    prof = {"Z_4.2_p_1_n_-1_d_0.2_a_0.63_c_1.25_i_-0.015": {"pos": rng.random((502, 3)), "neg": rng.random((502, 3))}}
    path = dump_authors_pickle(prof, tmp_path / "x.pk")
    back = load_authors_pickle(path)
    np.testing.assert_array_equal(back[next(iter(prof))]["neg"], next(iter(prof.values()))["neg"])
    assert parse_key(next(iter(prof))) == {"h": 4.2, "c": 1.25, "d_plus": 0.2, "d_minus": 0.63, "sigma_s": -0.015}


def test_rejects_malformed_keys_and_entries(tmp_path):
    with pytest.raises(ValueError, match="monovalent"):
        parse_key("Z_4.4_p_2_n_-1_d_0.415_a_0.415_c_0.1_i_-0.01")
    path = tmp_path / "bad.pk"
    path.write_bytes(pickle.dumps({"Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_0.1_i_-0.01": {"pos": np.zeros((502, 2)),
                                                                                  "neg": np.zeros((502, 3))}}))
    with pytest.raises(ValueError, match="shape"):
        load_authors_pickle(path)


def test_rejects_an_entry_without_both_ions(tmp_path):
    key = "Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_0.1_i_-0.01"
    for entry in ({"pos": np.zeros((502, 3)), "x": np.zeros((502, 3))}, {"pos": np.zeros((502, 3))}, {}):
        path = tmp_path / "bad.pk"
        path.write_bytes(pickle.dumps({key: entry}))
        with pytest.raises(ValueError, match="must be a dict with 'pos' and 'neg'"):
            load_authors_pickle(path)
