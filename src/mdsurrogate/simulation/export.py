"""Exports of one run: nanoHUB-style tab-separated profile files, a PNG plot, a JSON summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdsurrogate.io import atomic_path, write_json_atomic
from mdsurrogate.simulation.derived import integrated_charge_error

TSV_FILES = {
    "density_profile_cations.dat": ("n_plus", "n_plus_err"),
    "density_profile_anions.dat": ("n_minus", "n_minus_err"),
}


def write_tsv(ds, directory: str | Path) -> list[Path]:
    """The nanoHUB tool's downloads: one tab-separated file per ion with columns z (nm), n (M), err (M)."""
    directory = Path(directory)
    out = []
    for name, (var, err) in TSV_FILES.items():
        path = directory / name
        with atomic_path(path) as tmp:
            np.savetxt(tmp, np.column_stack([ds["z"].values, ds[var].values, ds[err].values]), delimiter="\t",
                       fmt="%.8g", header=f"{ds.attrs.get('system_key', '')}\nz_nm\tdensity_M\terror_M")
        out.append(path)
    return out


def plot_profiles(ds, path: str | Path, title: str | None = None, reference=None) -> Path:
    """Cation/anion densities with error bands, net charge density and integrated charge. `reference` may be
    a second Dataset (same variables) drawn as dashed lines."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    z = ds["z"].values
    for var, colour, label in (("n_plus", "tab:red", "cations"), ("n_minus", "tab:blue", "anions")):
        y, e = ds[var].values, ds[f"{var}_err"].values
        axes[0].plot(z, y, color=colour, label=label)
        axes[0].fill_between(z, y - e, y + e, color=colour, alpha=0.3)
        if reference is not None:
            axes[0].plot(reference["z"].values, reference[var].values, "--", color=colour, lw=1,
                         label=f"{label} (reference)")
    axes[0].set(xlabel="z (nm)", ylabel="density (M)")
    axes[0].legend(fontsize=8)
    axes[1].plot(z, ds["charge_density"].values, color="k")
    axes[1].set(xlabel="z (nm)", ylabel="net charge density (C/m$^3$)")
    axes[2].plot(z, ds["integrated_charge"].values, color="k")
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set(xlabel="z (nm)", ylabel="integrated charge S(z) (C/m$^2$)", xlim=(z[0], 0))
    fig.suptitle(title or ds.attrs.get("system_key", ""))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def summary(ds) -> dict:
    """Headline numbers of a run."""

    a = ds.attrs
    S0 = float(np.interp(0.0, ds["z"].values, ds["integrated_charge"].values))
    S0_err = integrated_charge_error(ds["z_bin"].values, ds["n_plus_native_err"].values,
                                     ds["n_minus_native_err"].values)
    keys = ("system_key", "h", "c", "d_plus", "d_minus", "sigma_s", "sigma_s_effective", "count_n_cations",
            "count_n_anions", "count_counterions", "preset", "seed", "engine_dt", "production_time_tau",
            "rel_error", "wall_time_s", "lammps_version", "git_commit",
            # uncharged-wall runs only
            "system_kind", "z_p", "z_n", "d", "wall_pressure_kT_per_nm3", "wall_pressure_err_kT_per_nm3",
            "virial_pressure_kT_per_nm3", "virial_pressure_err_kT_per_nm3")
    out = {k: (a[k].item() if hasattr(a[k], "item") else a[k]) for k in keys if k in a}
    out.update({"S_midplane_C_per_m2": S0, "S_midplane_err_C_per_m2": S0_err,
                "n_plus_midplane_M": float(ds["n_plus"].sel(z=0.0, method="nearest")),
                "n_minus_midplane_M": float(ds["n_minus"].sel(z=0.0, method="nearest"))})
    return out


def write_summary(ds, path: str | Path) -> Path:
    return write_json_atomic(path, summary(ds))
