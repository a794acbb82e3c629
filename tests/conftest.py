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
