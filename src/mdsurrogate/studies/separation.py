"""Generalisation to unseen input values by deterministic separation (sun2023 section 3.3, Figs. 9-10).

Three hold-outs: every system with c = 1.0 M; every system with d+ = 0.415 nm; c in {0.25, 0.75, 1.25, 1.75} M
(where a value is not in the dataset, the nearest value that is; stated). A fraction f of the held-out systems
goes back into training (f = 0, 1, 10, 50 %); one model per (hold-out, f) is scored on the held-out systems left.
Speedups use S_HPC = t_seq / t_train from the dataset's own run times: t_seq = the median wall time of one run
(one core), t_train = t_seq / `parallel_runs` (the runs the campaign ran at once). S_B = S_HPC N_total / N_0
(eq. 8, N_0 = the training set without any held-out system: the speedup if the f = 0 model's predictions of
the held-out systems are accepted); "S' this split" = S_HPC N_total / N_train: every system predicted for the cost
of the N_0 runs plus the held-out runs actually shown (round(f N_held)); "S' eq. 10" is the paper's formula
2 / (1/S_B' + f/S_HPC) on the coarse grid it assumes: the kept N_0 systems are the grid before interpolation, all
of them trained on (S_B' = S_HPC N_0 / N_0 = S_HPC), and the held-out values double it, so S' = 2 S_HPC / (1 + f)
(feeding it the S_B above, whose N_total already holds the held-out systems, would count them twice).
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.dataset import inputs_array, separation_indices
from mdsurrogate.dataset.arrays import input_names
from mdsurrogate.evaluation.speedup import baseline_speedup, net_speedup_from_baseline, s_hpc
from mdsurrogate.studies.runner import DataSource, StudyRun, md_table, task_key
from mdsurrogate.studies.tasks import recipe, train_and_score

HOLDOUTS = {"c=1.0": {"c": [1.0]}, "d_plus=0.415": {"d_plus": [0.415]}, "c=0.25,0.75,1.25,1.75":
            {"c": [0.25, 0.75, 1.25, 1.75]}}
FRACTIONS = (0.0, 0.01, 0.1, 0.5)
#: the systems of sun2023 Figs. 9b/9d and 10b (h, c, d+, d-, sigma_s)
REPRESENTATIVE = {"c=1.0": (4.2, 1.0, 0.415, 0.415, -0.01), "d_plus=0.415": (4.2, 1.0, 0.415, 0.415, -0.01),
                  "c=0.25,0.75,1.25,1.75": (4.0, 0.25, 0.3075, 0.415, -0.015)}
#: sun2023's numbers (section 3.3): (N_train, N_test) per f and the errors it reports
PAPER = {
    "c=1.0": {"sizes": [(3600, 450), (3604, 446), (3645, 405), (3825, 225)],
              "reported": "f=0: E_I+ ~ 0.125, E_I- ~ 0.1, E_B+/- ~ 0.175; f=1%: 3x smaller, E_B ~ 0.05; "
                          "f=10%: E_I ~ E_B ~ 0.025; f=50%: below the reference errors (E 0.017, E_I+ 0.04)"},
    "d_plus=0.415": {"sizes": [(3240, 810), (3248, 802), (3321, 729), (3645, 405)],
                     "reported": "E_B+/- < 0.02 for all f; E_I- ~ 0.04 at f=0, halved at 10%; E_I+ 5x E_I- at "
                                 "f=0, ~0.07 at f=50%"},
    "c=0.25,0.75,1.25,1.75": {"sizes": [(2250, 1800), (2268, 1782), (2430, 1620), (3150, 900)],
                              "reported": "f=0: large errors; f=1%: better but poor; f=10%: at or below the "
                                          "reference errors; f=50%: well below"},
}
METRICS = ("E", "E_I+", "E_B+", "E_I-", "E_B-", "A", "A_eps>0", "E_MD")


def resolve_holdout(ds, holdout: dict) -> tuple[dict, list[str]]:
    """The hold-out with every value replaced by the nearest value present in the dataset; notes on changes."""
    out, notes = {}, []
    for name, values in holdout.items():
        if name not in input_names(ds):
            raise ValueError(f"holdouts: {name!r} is not an input of this dataset ({', '.join(input_names(ds))})")
        if not values or not all(np.isfinite(float(v)) for v in values):
            raise ValueError(f"holdouts: {name} needs finite values, got {list(values)}")
        have = np.unique(np.round(ds[name].values, 6))
        got = []
        for v in values:
            near = float(have[np.argmin(np.abs(have - v))])
            if abs(near - v) > 1e-6:
                notes.append(f"{name} = {v:g} is not in the dataset: held out the nearest value {near:g}")
            got.append(near)
        out[name] = sorted(set(got))
    return out, notes


def run(study: StudyRun, holdouts: dict[str, dict] | None = None, fractions=FRACTIONS, recipe_name: str = "default",
        epochs: int | None = None, members: int = 1, parallel_runs: int = 2, reference: DataSource | None = None
        ) -> dict:
    """The study; `reference` (the authors' MD) supplies the MD profile of a representative system that the
    dataset lacks (sun2023's is on the d+ = d- = 0.415 nm slice)."""
    ds = study.data.load()
    holdouts = HOLDOUTS if holdouts is None else holdouts
    if not 1 <= parallel_runs <= 1_000_000:
        raise ValueError(f"parallel_runs must be >= 1, got {parallel_runs}")
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fractions must be in [0, 1], got {f}")
    tasks, meta = [], {}
    for name, hold in holdouts.items():
        resolved, notes = resolve_holdout(ds, hold)
        for f in fractions:
            tr, te = separation_indices(ds, resolved, f, seed=study.seed)
            cfg = recipe(recipe_name, "mse", seed=study.seed, epochs=epochs)
            rep = [list(REPRESENTATIVE[name])] if name in REPRESENTATIVE else None
            key = task_key("separation", study.data.sha256, study.data.error_scale, tr, te, cfg, members, rep)
            kw = dict(data=study.data, train_rows=tr.tolist(), test_sets={"held_out": te.tolist()}, config=cfg,
                      n_members=members, seed=study.seed, predict=rep)
            if key not in meta:  # two fractions that move the same systems (round(f N_held) equal) train once
                tasks.append((key, train_and_score, kw))
            meta.setdefault(key, []).append({"holdout": name, "values": resolved, "notes": notes, "f": f,
                                             "N_train": int(tr.size), "N_test": int(te.size)})
    done = study.run_tasks("training", tasks)
    wall = ds["wall_time_s"].values if "wall_time_s" in ds else None
    t_seq = float(np.median(wall)) if wall is not None else float("nan")
    t_train = t_seq / parallel_runs
    shpc = s_hpc(t_seq, t_train) if np.isfinite(t_seq) else float("nan")
    n_total = ds.sizes["system"]
    n_held = {name: int(separation_indices(ds, resolve_holdout(ds, hold)[0], 0.0)[1].size)
              for name, hold in holdouts.items()}
    rows = []
    ok = np.isfinite(shpc)
    for key, _, _ in tasks:
        if key not in done:
            continue
        res = done[key]
        for m in meta[key]:
            n_h = n_held[m["holdout"]]
            n0 = int(n_total) - n_h
            row = {"holdout": m["holdout"], "f": m["f"], "f moved": (m["N_train"] - n0) / n_h,
                   "N_train": m["N_train"], "N_test": m["N_test"],
                   **{k: res["test"]["held_out"][k] for k in METRICS if "held_out" in res["test"]},
                   "S_B": baseline_speedup(shpc, n_total, n0) if ok else float("nan"),
                   "S' this split": shpc * n_total / m["N_train"] if ok else float("nan"),
                   "S' eq. 10": net_speedup_from_baseline(baseline_speedup(shpc, n0, n0), shpc, m["f"])
                   if ok else float("nan"),
                   "train_time_s": res["train_time_s"]}
            rows.append(row)
    notes = sorted({n for ms in meta.values() for m in ms for n in m["notes"]})
    speed = {"t_seq_s": t_seq, "t_train_s": t_train, "parallel_runs": parallel_runs, "S_HPC": shpc,
             "N_total": int(n_total),
             "rule": "t_seq = median run wall time (1 core); t_train = t_seq / parallel_runs, so S_HPC = "
                     "parallel_runs: ideal scaling, assumed, not measured (the speedup study measures t_par)"}
    _figures(study, rows)
    _profile_figure(study, ds, reference, tasks, meta, done)
    results = {"rows": rows, "holdouts": {n: resolve_holdout(ds, h)[0] for n, h in holdouts.items()},
               "notes": notes, "speedup": speed, "recipe": recipe_name, "epochs": epochs, "members": members,
               "paper": PAPER}
    return study.finish(results, _markdown(results), n_systems=int(n_total))


def _markdown(res: dict) -> str:
    sp = res["speedup"]
    out = [f"One model per (hold-out, f), recipe '{res['recipe']}'"
           f"{', ' + str(res['epochs']) + ' epochs' if res['epochs'] else ''}, {res['members']} member(s); scored on "
           "the held-out systems left after moving the fraction f back into training. Errors in M.", ""]
    out += [f"- {n}" for n in res["notes"]]
    out += ["", md_table(res["rows"], ["holdout", "f", "f moved", "N_train", "N_test", "E", "E_I+", "E_B+", "E_I-",
                                       "E_B-", "A", "A_eps>0", "E_MD", "S_B", "S' this split", "S' eq. 10"],
                         {"f": ".2f", "f moved": ".3f", "S_B": ".2f", "S' this split": ".2f", "S' eq. 10": ".2f"})]
    out += [f"S_HPC = t_seq / t_train = {sp['t_seq_s']:.1f} s / {sp['t_train_s']:.1f} s = {sp['S_HPC']:.2f} "
            f"({sp['rule']}); S_B = S_HPC N_total / N_0 (eq. 8, N_0 = N_train at f = 0: the f = 0 model's "
            "predictions of the held-out systems accepted); S' this split = S_HPC N_total / N_train (f moved = the "
            "fraction of the held-out systems actually moved, round(f N_held) / N_held); S' eq. 10 = 2 / (1/S_B' + "
            "f/S_HPC) with the kept systems as the grid before interpolation (S_B' = S_HPC: all of them trained on) "
            "and the held-out "
            "values doubling it, i.e. 2 S_HPC / (1 + f); "
            f"N_total = {sp['N_total']}.", "", "## Beside the paper (sun2023, N_total = 4050, 20000 epochs)", ""]
    for name, p in res["paper"].items():
        out.append(f"- {name}: (N_train, N_test) for f = 0/1/10/50 %: {p['sizes']}; reported: {p['reported']}")
    return "\n".join(out) + "\n"


def _md_profile(ds, x) -> tuple | None:
    """(z, n+, n+ err) of the system with inputs x in ds, or None."""
    hit = np.flatnonzero(np.all(np.abs(inputs_array(ds) - np.asarray(x)) < 1e-6, axis=1))
    if not hit.size:
        return None
    one = ds.isel(system=int(hit[0]))
    return one["z"].values, one["n_plus"].values, one["n_plus_err"].values


def _profile_figure(study: StudyRun, ds, reference, tasks, meta, done) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    names = [n for n in dict.fromkeys(m["holdout"] for k, _, _ in tasks for m in meta[k]) if n in REPRESENTATIVE]
    if not names:
        return
    ref = reference.load() if reference is not None else None
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        x = REPRESENTATIVE[name]
        md = _md_profile(ds, x) or (_md_profile(ref, x) if ref is not None else None)
        if md is not None:
            ax.errorbar(md[0], md[1], yerr=md[2], fmt="s", ms=2, color="tab:blue", alpha=0.6, label="MD")
        else:
            ax.text(0.5, 0.5, "no MD of this system in the data", transform=ax.transAxes, ha="center", fontsize=8)
        for k, _, _ in tasks:
            fs = [m["f"] for m in meta[k] if m["holdout"] == name and m["f"] < 0.5]
            if fs and "predictions" in done.get(k, {}):
                p = done[k]["predictions"]
                y = np.asarray(p["Y"][0])
                label = ", ".join(f"{100 * f:g}" for f in fs)
                ax.plot(np.asarray(p["z"][0]), y[: y.size // 2], lw=1.2, label=f"ANN, f = {label} %")
        ax.set_title(f"held out {name}\nsystem {x}", fontsize=8)
        ax.set(xlabel="z (nm)", ylabel="n+ (M)")
        ax.legend(fontsize=7)
    fig.suptitle("cation density of a held-out system (sun2023 Figs. 9b, 9d, 10b)")
    study.save_figure(fig, "figure_separation_profiles")


def _figures(study: StudyRun, rows: list[dict]) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    names = list(dict.fromkeys(r["holdout"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = [r for r in rows if r["holdout"] == name]
        x = np.arange(len(sub))
        for i, m in enumerate(("E_I+", "E_B+", "E_I-", "E_B-")):
            ax.bar(x + (i - 1.5) * 0.2, [r.get(m, np.nan) for r in sub], 0.2, label=m)
        ax.set_xticks(x, [f"{100 * r['f']:g} %" for r in sub])
        ax.set(title=f"held out: {name}", xlabel="f (held-out systems shown in training)", ylabel="RMSE (M)")
        ax.legend(fontsize=7)
    fig.suptitle("deterministic separation (sun2023 Figs. 9a, 9c, 10a)")
    study.save_figure(fig, "figure_separation")
