"""The README's notebook example runs as written (simulate -> dataset -> train -> predict)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_notebook_example_runs():
    text = README.read_text()
    section = text.split("## From a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    ds, profile = namespace["ds"], namespace["profile"]
    assert ds.sizes["system"] == 4 and len(set(ds["run_id"].values)) == 4
    assert profile["n_plus"].shape == (1, 502)
    n_plus = profile["n_plus"].values
    assert np.all(np.isfinite(n_plus)) and np.all(n_plus >= 0)
    # between the training concentrations, the predicted midplane density lies between theirs
    mid = ds["n_plus"].values[:, 251]
    assert mid.min() * 0.5 < n_plus[0, 251] < mid.max() * 1.5
