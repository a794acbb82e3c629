"""The package's shape: imports run down the pipeline only, `import mdsurrogate` stays cheap, and the public
names a notebook uses resolve."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mdsurrogate"
#: Stages in pipeline order; a module may import its own stage and the ones before it. The shared base (io,
#: provenance, lazy) is below every stage; proxima is an island that uses only the base and the LAMMPS runtime.
ORDER = ["simulation", "campaign", "dataset", "surrogate", "evaluation", "analysis", "studies", "app", "cli"]
BASE = {"io", "provenance", "lazy", "__init__"}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return [m for m in out if m.startswith("mdsurrogate.")]


def test_no_import_runs_back_up_the_pipeline():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        stage = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if stage in BASE or stage == "data":
            continue
        for module in _imports(path):
            target = module.split(".")[1]
            if target in BASE:
                continue
            if stage == "proxima":
                ok = target == "proxima" or module == "mdsurrogate.simulation.runtime"
            elif target == "proxima":
                ok = stage == "cli"
            else:
                ok = ORDER.index(target) <= ORDER.index(stage)
            if not ok:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_import_mdsurrogate_loads_no_heavy_library():
    code = ("import sys, mdsurrogate, mdsurrogate.surrogate, mdsurrogate.evaluation, mdsurrogate.campaign, "
            "mdsurrogate.cli; print(sorted(m for m in ('torch', 'parsl', 'lammps', 'matplotlib', 'panel', "
            "'xarray', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", ["simulate", "RunControls", "ConfinedElectrolyte", "run_campaign", "load_spec",
                                  "load_dataset", "from_runs", "Surrogate", "load_surrogate", "SoftLabelLoss",
                                  "success_rate", "score_surrogate", "ProximaCalculator"])
def test_public_names_resolve(name):
    import mdsurrogate

    assert getattr(mdsurrogate, name) is not None
    assert name in dir(mdsurrogate)
    with pytest.raises(AttributeError):
        mdsurrogate.no_such_name  # noqa: B018
