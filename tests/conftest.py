import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "nanoconfinement_d0415_subset.pk"


@pytest.fixture(scope="session")
def reference_path() -> Path:
    if not REFERENCE.exists():
        pytest.skip("authors' reference data (../shared/reference) not present")
    return REFERENCE


def pytest_configure(config):
    """Hypothesis fuzz tests (marker `fuzz`): a few examples each in the default run, many with `pytest -m fuzz`."""
    from hypothesis import HealthCheck, settings

    common = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
    settings.register_profile("quick", max_examples=15, **common)
    settings.register_profile("long", max_examples=300, **common)
    settings.load_profile("long" if "fuzz" in (config.getoption("markexpr") or "") else "quick")
