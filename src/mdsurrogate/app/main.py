"""The file `panel serve` runs: `panel serve src/mdsurrogate/app/main.py` (or `mdsurrogate app`)."""

from mdsurrogate.app.ui import create_app

create_app().servable(title="Ions in nanoconfinement")
