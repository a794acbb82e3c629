"""Accuracy vs the size of the training set (sun2023 section 3.1-3.2, Figs. 5 and 8).

A fixed random test set (500 systems, or 20 % of a dataset under 1000 systems); for each N_train, `repeats`
training sets drawn at random from the remaining systems (one seed each, so the error bars are over training
sets, as in sun2023), one model each, scored on the test set and on the authors' MD of the reference slice.
E(N) is fitted with a power law E = a N^-b (log-log least squares, the paper's "power-law decrease") and with a
saturating law E = E_inf + a N^-b; N_conv is the N_train where the saturating fit comes within 5 % of E_inf
(the paper: "the onset of convergence for N_train >~ 1550").
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.dataset import inputs_array, system_groups
from mdsurrogate.studies.runner import DataSource, StudyRun, md_table, reference_key, task_key
from mdsurrogate.studies.tasks import recipe, train_and_score

#: sun2023's training-set sizes (section 2.2)
PAPER_SIZES = (150, 200, 250, 300, 350, 400, 450, 500, 550, 1050, 1550, 2050, 2550, 3050, 3550)
#: what the paper reports (sun2023 section 3.2 and Fig. 5)
PAPER = {"N_conv": 1550, "E_at_1550": 0.017, "E_I+_at_1550": 0.04, "S/S_HPC_at_150": 4.3, "S/S_HPC_at_3550": 1.14}
METRICS = ("E", "E_I+", "E_B+", "E_I-", "E_B-", "A", "A_eps>0", "E_MD")
CONVERGED_WITHIN = 0.05


def default_test_size(n_systems: int) -> int:
    """500 test systems (sun2023), or 20 % when the dataset has fewer than 1000 systems."""
    return 500 if n_systems >= 1000 else max(1, int(round(0.2 * n_systems)))


def default_sizes(n_available: int) -> list[int]:
    """The paper's sizes that fit, plus every available system."""
    sizes = [n for n in PAPER_SIZES if n < n_available]
    return sizes + [n_available]


def split_rows(groups: np.ndarray, n_test: int, sizes: list[int], repeats: int, seed: int
               ) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """(test rows, {(n, repeat): train rows}). The test set is drawn with `seed`; repeat r draws its training
    sets from the rest with seed (seed, r), nested in n (a larger set contains the smaller ones)."""
    labels = np.unique(groups)
    perm = np.random.default_rng(seed).permutation(labels)
    test_sys, rest = perm[:n_test], perm[n_test:]
    trains = {}
    for r in range(repeats):
        order = np.random.default_rng([seed, r]).permutation(rest)
        for n in sizes:
            trains[(n, r)] = np.flatnonzero(np.isin(groups, order[:n]))
    return np.flatnonzero(np.isin(groups, test_sys)), trains


def fit_power_laws(n: np.ndarray, e: np.ndarray, e_err: np.ndarray | None = None) -> dict:
    """E = a N^-b (log-log fit) and E = E_inf + a N^-b (weighted least squares); N_conv where the saturating
    fit is within 5 % of E_inf."""
    from scipy.optimize import curve_fit  # noqa: PLC0415 - scipy

    n, e = np.asarray(n, float), np.asarray(e, float)
    out: dict = {}
    if len(n) >= 2:
        slope, intercept = np.polyfit(np.log(n), np.log(e), 1)
        out["power_law"] = {"a": float(np.exp(intercept)), "b": float(-slope)}
    if len(n) >= 4:
        sigma = None if e_err is None or np.any(np.asarray(e_err) <= 0) else np.asarray(e_err, float)
        try:
            (e_inf, a, b), _ = curve_fit(lambda x, e0, a, b: e0 + a * x ** (-b), n, e,
                                         p0=(float(e.min()) * 0.9, float(e.max() - e.min()) * n[0] ** 0.5, 0.5),
                                         sigma=sigma, bounds=([0, 0, 0.01], [np.inf, np.inf, 5.0]), maxfev=20000)
            n_conv = (a / (CONVERGED_WITHIN * e_inf)) ** (1 / b) if e_inf > 0 else float("inf")
            out["saturating"] = {"E_inf": float(e_inf), "a": float(a), "b": float(b), "N_conv": float(n_conv),
                                 "N_conv_rule": f"E_fit(N) <= (1 + {CONVERGED_WITHIN}) E_inf"}
        except (RuntimeError, ValueError) as exc:
            out["saturating"] = {"error": str(exc)}
    return out


def n_conv_bootstrap(n: np.ndarray, per_size: list[np.ndarray], n_boot: int = 200, seed: int = 0) -> dict:
    """16th-84th percentile of N_conv over bootstrap resamples of the repeats at every size (each resample's means
    refitted with `fit_power_laws`, weighted by their standard errors as the study's own fit), and the share of
    resamples whose N_conv lies beyond the largest N fitted (an extrapolation)."""
    rng = np.random.default_rng(seed)
    n = np.asarray(n, float)
    got = []
    for _ in range(n_boot):
        draws = [v[rng.integers(0, len(v), len(v))] for v in per_size]
        means = np.array([d.mean() for d in draws])
        sems = np.array([d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0 for d in draws])
        sat = fit_power_laws(n, means, sems).get("saturating", {})
        if "N_conv" in sat and np.isfinite(sat["N_conv"]):
            got.append(sat["N_conv"])
    if not got:
        return {}
    got = np.array(got)
    return {"N_conv_p16": float(np.percentile(got, 16)), "N_conv_p84": float(np.percentile(got, 84)),
            "beyond_largest_N": float(np.mean(got > n.max())), "n_boot": len(got)}


def _pick(result: dict, key: str) -> dict:
    return result["test"]["test"] if key == "test" else result.get(key, {})


def summarize(runs: dict[tuple[int, int], dict], sizes: list[int], key: str = "test") -> list[dict]:
    """Mean, std and standard error over repeats of every metric, per N_train."""
    rows = []
    for n in sizes:
        got = [r for (m, _), r in runs.items() if m == n]
        row: dict = {"N_train": n, "repeats": len(got)}
        for metric in METRICS:
            vals = np.array([_pick(g, key).get(metric, np.nan) for g in got])
            if vals.size and np.all(np.isfinite(vals)):
                row[metric] = float(vals.mean())
                row[f"{metric}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
                row[f"{metric}_sem"] = row[f"{metric}_std"] / np.sqrt(vals.size)
        row["train_time_s"] = float(np.mean([g["train_time_s"] for g in got])) if got else np.nan
        rows.append(row)
    return rows


def run(study: StudyRun, sizes: list[int] | None = None, repeats: int = 10, n_test: int | None = None,
        recipe_name: str = "default", epochs: int | None = None, members: int = 1,
        reference: DataSource | None = None) -> dict:
    """The study; returns study.json's record."""
    ds = study.data.load()
    groups = system_groups(inputs_array(ds))
    n_sys = int(np.unique(groups).size)
    n_test = default_test_size(n_sys) if n_test is None else int(n_test)
    if not 1 <= n_test < n_sys:
        raise ValueError(f"n_test must be in [1, {n_sys - 1}] for {n_sys} systems, got {n_test}")
    n_avail = n_sys - n_test
    sizes = sorted(set(default_sizes(n_avail) if sizes is None else sizes))
    bad = [n for n in sizes if not 2 <= n <= n_avail]
    if bad:
        raise ValueError(f"sizes must be in [2, {n_avail}] (systems left after the {n_test}-system test set), got "
                         f"{bad}")
    if not 1 <= repeats <= 100:
        raise ValueError(f"repeats must be in [1, 100], got {repeats}")
    test_rows, trains = split_rows(groups, n_test, sizes, repeats, study.seed)
    study.progress.say(f"{n_sys} systems: test set {n_test}, N_train {sizes}, {repeats} repeats")
    tasks = []
    for (n, r), rows in trains.items():
        cfg = recipe(recipe_name, "mse", seed=study.seed * 1000 + r, epochs=epochs)
        kw = dict(data=study.data, train_rows=rows.tolist(), test_sets={"test": test_rows.tolist()}, config=cfg,
                  n_members=members, seed=study.seed * 1000 + r, reference=reference)
        key = task_key("ntrain", study.data.sha256, study.data.error_scale, rows, test_rows, cfg, members,
                       reference_key(reference))
        tasks.append((key, train_and_score, kw, (n, r)))
    done = study.run_tasks("training", [(k, f, kw) for k, f, kw, _ in tasks])
    runs = {nr: done[k] for k, _, _, nr in tasks if k in done}
    sizes = [n for n in sizes if any(m == n for m, _ in runs)]
    if not sizes:
        raise ValueError("no trained model to report (run the study without --from-cache first)")
    # training sets that differ between repeats: at N_train = every available system all repeats share one, so
    # its spread is the network seeds' only; such a size stays in the table but out of the fits
    distinct = {n: len({tuple(trains[(m, r)]) for (m, r) in runs if m == n}) for n in sizes}
    fitted = [n for n in sizes if distinct[n] > 1 or repeats == 1]
    table = summarize(runs, sizes)
    ref_table = summarize(runs, sizes, key="reference") if reference is not None else None
    for tab in (table, ref_table or []):
        for row in tab:
            row["distinct_sets"] = distinct[row["N_train"]]
    fits = _fits(runs, table, fitted, "test", study.seed)
    ref_fits = _fits(runs, ref_table, fitted, "reference", study.seed) if ref_table else None
    _figures(study, table, fits, ref_table)
    keys = ds["key"].values if "key" in ds.coords else np.array([str(g) for g in groups])
    results = {"n_systems": n_sys, "n_test": n_test, "sizes": sizes, "repeats": repeats, "recipe": recipe_name,
               "epochs": epochs, "members": members, "test": table, "fits": fits, "reference": ref_table,
               "reference_fits": ref_fits, "paper": PAPER, "fitted_sizes": fitted,
               "test_systems": sorted({str(k) for k in keys[test_rows]}),
               "runs": [{"N_train": n, "repeat": r, **{k: v for k, v in res.items() if k != "history"}}
                        for (n, r), res in sorted(runs.items())]}
    return study.finish(results, _markdown(results), n_systems=n_sys)


def _fits(runs: dict, table: list[dict], fitted: list[int], key: str, seed: int) -> dict:
    """Power-law and saturating fits of E over the `fitted` sizes, with N_conv's bootstrap interval."""
    rows = [r for r in table if r["N_train"] in fitted and "E" in r]
    n = np.array([r["N_train"] for r in rows])
    fits = fit_power_laws(n, np.array([r["E"] for r in rows]), np.array([r.get("E_sem", 0.0) for r in rows]))
    sat = fits.get("saturating", {})
    if "N_conv" in sat:
        sat["beyond_largest_N"] = bool(sat["N_conv"] > n.max())
        per_size = [np.array([_pick(g, key)["E"] for (m, _), g in runs.items() if m == size]) for size in n]
        sat.update(n_conv_bootstrap(n, per_size, seed=seed))
    return fits


def _markdown(res: dict) -> str:
    cols = ["N_train", "repeats", "distinct_sets", "E", "E_std", "E_I+", "E_B+", "E_I-", "E_B-", "A", "A_eps>0",
            "E_MD", "train_time_s"]
    out = [f"Test set: {res['n_test']} systems (fixed); {res['repeats']} training sets per N_train (column "
           "`repeats`: those trained so far) drawn from the "
           f"other {res['n_systems'] - res['n_test']}; one model each (recipe '{res['recipe']}'"
           f"{', ' + str(res['epochs']) + ' epochs' if res['epochs'] else ''}, {res['members']} member(s)). Errors "
           "in M; mean over repeats, E_std their spread; A = success rate with the MD's own errors, A_eps>0 the "
           "same over points with non-zero MD error; E_MD = the labels' noise floor; distinct_sets = how many "
           "of the repeats' training sets differ (1 at N_train = every available system: its E_std is the network "
           "seeds' spread only, and the fits leave it out).", "",
           "## Test split (our MD)", "", md_table(res["test"], cols, {"train_time_s": ".0f", "N_train": "d"})]
    fitted = res.get("fitted_sizes", res["sizes"])
    out += _fit_lines(res["fits"], fitted)
    if res["reference"]:
        out += ["", "## The authors' MD of the d+ = d- = 0.415 nm slice (never trained on)", "",
                md_table(res["reference"], ["N_train", "E", "E_std", "E_I+", "E_B+", "E_I-", "E_B-", "A", "A_eps>0"])]
        out += _fit_lines(res["reference_fits"], fitted)
    p = res["paper"]
    out += ["", "## Beside the paper (sun2023)", "",
            f"- sun2023: power-law decrease of E, convergence for N_train >~ {p['N_conv']}; E ~ {p['E_at_1550']} M "
            f"and E_I+ ~ {p['E_I+_at_1550']} M at N_train = 1550 (test labels: their own MD).",
            "- ours: see the fits above. Our test labels are single 222-tau runs whose noise floor E_MD is listed: "
            "E on our test split cannot fall below it, so the authors' long runs (reference table) are the "
            "comparison to the paper's E."]
    return "\n".join(out) + "\n"


def _fit_lines(fits: dict | None, fitted: list[int] | None = None) -> list[str]:
    if not fits:
        return []
    out = [""]
    if fitted:
        out.append(f"- fitted over N_train {', '.join(str(n) for n in fitted)}")
    if "power_law" in fits:
        out.append(f"- power law E = a N^-b: a = {fits['power_law']['a']:.3g}, b = {fits['power_law']['b']:.3f}")
    sat = fits.get("saturating", {})
    if "E_inf" in sat:
        line = (f"- saturating E = E_inf + a N^-b: E_inf = {sat['E_inf']:.4f} M, b = {sat['b']:.2f}; "
                f"N_conv (within 5 % of E_inf) = {sat['N_conv']:.0f}")
        if "N_conv_p16" in sat:
            line += (f" (bootstrap over repeats, 16-84 %: {sat['N_conv_p16']:.0f}-{sat['N_conv_p84']:.0f}; "
                     f"{100 * sat['beyond_largest_N']:.0f} % of resamples beyond the largest N fitted)")
        if sat.get("beyond_largest_N") is True:
            line += ": beyond the largest N_train fitted, an extrapolation"
        out.append(line)
    elif "error" in sat:
        out.append(f"- saturating fit failed: {sat['error']}")
    return out


def _plain_log_ticks(axis, n: np.ndarray) -> None:
    """Ticks 1-2-5 x 10^k within the data's range, written as plain numbers, no minor labels."""
    from matplotlib.ticker import NullFormatter  # noqa: PLC0415 - matplotlib

    ticks = [m * 10 ** k for k in range(1, 6) for m in (1, 2, 5) if n.min() <= m * 10 ** k <= n.max()]
    if ticks:
        axis.set_ticks(ticks, [str(t) for t in ticks])
        axis.set_minor_formatter(NullFormatter())


def _figures(study: StudyRun, table: list[dict], fits: dict, ref_table: list[dict] | None) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    n = np.array([r["N_train"] for r in table], float)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    ax[0].errorbar(n, [r["E"] for r in table], yerr=[r.get("E_std", 0) for r in table], fmt="o", capsize=3,
                   label="test split (our MD)")
    grid = np.geomspace(n.min(), n.max(), 100)
    if "power_law" in fits:
        pl = fits["power_law"]
        ax[0].plot(grid, pl["a"] * grid ** -pl["b"], "--", lw=1, label=f"a N^-{pl['b']:.2f}")
    sat = fits.get("saturating", {})
    if "E_inf" in sat:
        ax[0].plot(grid, sat["E_inf"] + sat["a"] * grid ** -sat["b"], "-", lw=1,
                   label=f"E_inf + a N^-b (E_inf {sat['E_inf']:.3f})")
    ax[0].plot(n, [r["E_MD"] for r in table], ":", color="gray", label="E_MD (label noise)")
    if ref_table:
        ax[0].errorbar(n, [r["E"] for r in ref_table], yerr=[r.get("E_std", 0) for r in ref_table], fmt="s",
                       capsize=3, label="authors' MD (d = 0.415 slice)")
    ax[0].set(xscale="log", yscale="log", xlabel="N_train", ylabel="E (M)", title="overall RMSE (sun2023 Fig. 5)")
    ax[0].legend(fontsize=7)
    _plain_log_ticks(ax[0].xaxis, n)  # matplotlib's minor labels overlap on a short log axis
    width = 0.2
    x = np.arange(len(table))
    for i, m in enumerate(("E_I+", "E_B+", "E_I-", "E_B-")):
        ax[1].bar(x + (i - 1.5) * width, [r[m] for r in table], width, yerr=[r.get(f"{m}_std", 0) for r in table],
                  capsize=2, label=m)
    ax[1].set_xticks(x, [str(int(v)) for v in n], rotation=45 if len(n) > 8 else 0, fontsize=8)
    ax[1].set(xlabel="N_train", ylabel="RMSE (M)", title="interface and bulk (sun2023 Fig. 8)")
    ax[1].legend(fontsize=7)
    study.save_figure(fig, "figure_error_vs_ntrain")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(n, [r["A"] for r in table], yerr=[r.get("A_std", 0) for r in table], fmt="o", capsize=3, label="A")
    ax.errorbar(n, [r["A_eps>0"] for r in table], yerr=[r.get("A_eps>0_std", 0) for r in table], fmt="s",
                capsize=3, label="A over eps > 0")
    if ref_table:
        ax.errorbar(n, [r["A"] for r in ref_table], fmt="^", label="A, authors' MD")
    ax.set(xscale="log", xlabel="N_train", ylabel="success rate", title="success rate vs N_train")
    _plain_log_ticks(ax.xaxis, n)
    ax.legend(fontsize=7)
    study.save_figure(fig, "figure_success_rate")
