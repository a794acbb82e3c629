"""Active learning, pool-based and retrospective (beyond the papers; their future work).

The dataset plays the role of an MD oracle: a fixed random test set, the rest is the pool. Every chain starts from
the same random `start` systems (per seed) and adds `batch` systems per round, chosen by
  - `spread`: the largest ensemble spread (mean over the 1004 outputs of the members' standard deviation),
  - `coverage`: farthest-point sampling in the scaled input space (the system farthest from every labelled one;
    a design-of-experiments rule that needs no model),
  - `random`: uniformly at random (the papers' way of drawing a training set).
After each round the ensemble is trained on the labelled systems and scored on the test set. The result: E vs
the number of simulations for each rule (mean over seeds), and how many simulations each rule needs to reach the
E that random sampling reaches with the largest set. Each round is cached as it finishes (resumable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mdsurrogate.dataset import inputs_array, system_groups, to_arrays
from mdsurrogate.evaluation.metrics import evaluate_predictions
from mdsurrogate.io import write_json_atomic
from mdsurrogate.simulation.system import design_minmax
from mdsurrogate.studies.ntrain import default_test_size
from mdsurrogate.studies.runner import DataSource, StudyRun, cached_dataset, md_table, task_key
from mdsurrogate.studies.tasks import recipe

RULES = ("spread", "coverage", "random")


def _select(rule: str, sur, X: np.ndarray, labelled: list[int], candidates: list[int], batch: int,
            rng: np.random.Generator) -> list[int]:
    """The next `batch` systems (rows of X) out of `candidates` by `rule`."""
    cand = np.asarray(candidates)
    if len(cand) <= batch:
        return cand.tolist()
    if rule == "random":
        return rng.choice(cand, size=batch, replace=False).tolist()
    if rule == "spread":
        _, std = sur.predict_mean_std(X[cand])
        score = std.mean(axis=1)
        return cand[np.argsort(-score, kind="stable")[:batch]].tolist()
    if rule == "coverage":
        lo, hi = design_minmax()
        S = (X - lo) / (hi - lo)
        d = np.min(np.linalg.norm(S[cand][:, None, :] - S[np.asarray(labelled)][None, :, :], axis=2), axis=1)
        chosen = []
        for _ in range(batch):
            j = int(np.argmax(d))
            chosen.append(int(cand[j]))
            d = np.minimum(d, np.linalg.norm(S[cand] - S[cand[j]], axis=1))
            d[j] = -1.0
        return chosen
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def al_chain(data: DataSource, test_rows: list[int], pool_rows: list[int], rule: str, seed: int, start: int,
             batch: int, rounds: int, config: dict, members: int, cache_dir: str, chain: str) -> dict:
    """One acquisition chain (pool-worker task). Round k trains on start + k batch systems; every round's result
    (its labelled rows, test metrics and the next batch) is written to cache_dir as it finishes and reused."""
    from mdsurrogate.surrogate.fit import fit_surrogate  # noqa: PLC0415 - torch
    from mdsurrogate.surrogate.training import TrainConfig  # noqa: PLC0415 - torch

    ds = cached_dataset(data)
    arrays = to_arrays(ds)
    X = arrays.X
    test = arrays.take(np.asarray(test_rows))
    rng = np.random.default_rng([seed, 11])
    labelled = np.random.default_rng([seed, 5]).choice(np.asarray(pool_rows), size=start, replace=False).tolist()
    history = []
    for k in range(rounds + 1):
        path = Path(cache_dir) / f"{chain}-round{k}.json"
        try:
            rec = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            rec = None  # unreadable (a crash mid-write on a file system without atomic rename): recompute it
        if rec is not None and k < rounds and not rec["next"] and len(rec["labelled"]) < len(pool_rows):
            rec = None  # cached as the last round of a shorter chain: its model must choose a next batch now
        if rec is None:
            cfg = TrainConfig.from_dict({**config, "seed": int(seed * 100 + k)})
            sur, rep = fit_surrogate(ds.isel(system=np.asarray(labelled)), cfg, n_members=members, n_test=0,
                                     seed=seed * 100 + k, name="al")
            m = {key: float(v) for key, v in evaluate_predictions(
                test.Y, sur.predict_array(test.X).mean(axis=0), test.EPS).items()}
            taken = set(labelled)
            candidates = [r for r in pool_rows if r not in taken]
            nxt = _select(rule, sur, X, labelled, candidates, batch, rng)  # also after the last round: a longer
            # chain resumed from this one continues with it
            rec = {"round": k, "n": len(labelled), "labelled": labelled, "test": m, "next": nxt,
                   "train_time_s": float(sum(x["train_time_s"] for x in rep["members"]))}
            write_json_atomic(path, rec)
        history.append({k_: v for k_, v in rec.items() if k_ not in ("labelled", "next")})
        labelled = rec["labelled"] + rec["next"]
        rng = np.random.default_rng([seed, 11, k + 1])  # the random rule's draw of round k+1 never depends on replay
    return {"rule": rule, "seed": seed, "rounds": history}


def simulations_to_reach(n: np.ndarray, e: np.ndarray, target: float) -> float:
    """The first n at which E <= target (linear interpolation between rounds; inf if never)."""
    for i in range(len(n)):
        if e[i] <= target:
            if i == 0:
                return float(n[0])
            f = (e[i - 1] - target) / (e[i - 1] - e[i])
            return float(n[i - 1] + f * (n[i] - n[i - 1]))
    return float("inf")


def reach_bootstrap(curves: dict, n_boot: int = 4000, seed: int = 0) -> dict[str, dict]:
    """Uncertainty of 'fewer than random (x)' = n_max / n_rule, by a paired bootstrap over the seeds.

    Chains of the same seed share their start set and test set, so one resample of seed indices is applied to every
    rule; each resample recomputes the mean curves, the target (random's E at n_max) and each rule's crossing.
    Returns per rule the 16th/50th/84th percentiles of the ratio (a crossing beyond the last round counts as ratio
    0) and the fraction of resamples with a ratio >= 2 (the issue's goal)."""
    E = {rule: np.asarray(c["E_per_seed"], dtype=float) for rule, c in curves.items()}
    n_seeds = len(E["random"])
    seed_lists = [c.get("seeds") for c in curves.values()]
    if any(len(e) != n_seeds for e in E.values()) or (None not in seed_lists and
                                                      any(sl != seed_lists[0] for sl in seed_lists)):
        raise ValueError("the rules must have the same seeds for a paired bootstrap")
    n_max = float(curves["random"]["n"][-1])
    rng = np.random.default_rng(seed)
    ratios = {rule: np.empty(n_boot) for rule in E}
    for b in range(n_boot):
        idx = rng.integers(0, n_seeds, n_seeds)
        means = {rule: e[idx].mean(axis=0) for rule, e in E.items()}
        target = means["random"][-1]  # the same sum as random's own curve: it reaches its target exactly
        for rule, mean in means.items():
            n_r = simulations_to_reach(np.asarray(curves[rule]["n"]), mean, target)
            ratios[rule][b] = n_max / n_r if np.isfinite(n_r) else 0.0
    return {rule: {"p16": float(np.percentile(r, 16)), "p50": float(np.percentile(r, 50)),
                   "p84": float(np.percentile(r, 84)), "fraction_ge_2": float(np.mean(r >= 2.0))}
            for rule, r in ratios.items()}


def run(study: StudyRun, rules: tuple[str, ...] = RULES, seeds: int = 5, start: int = 50, batch: int = 25,
        rounds: int = 10, n_test: int | None = None, members: int = 3, epochs: int | None = 1500) -> dict:
    ds = study.data.load()
    groups = system_groups(inputs_array(ds))
    if np.unique(groups).size != len(groups):
        raise ValueError("active learning needs one run per system (the dataset has replicas)")
    n_sys = len(groups)
    n_test = default_test_size(n_sys) if n_test is None else n_test
    for r in rules:
        if r not in RULES:
            raise ValueError(f"rules must be among {RULES}, got {r!r}")
    if "random" not in rules:
        raise ValueError("rules must include 'random' (the reference)")
    if not 1 <= n_test < n_sys:
        raise ValueError(f"n_test must be in [1, {n_sys - 1}] for {n_sys} systems, got {n_test}")
    if start < 2 or batch < 1 or rounds < 1 or seeds < 1:
        raise ValueError(f"start must be >= 2, batch, rounds and seeds >= 1; got {start}, {batch}, {rounds}, {seeds}")
    if start + batch * rounds > n_sys - n_test:
        raise ValueError(f"start + batch x rounds = {start + batch * rounds} exceeds the pool of {n_sys - n_test}")
    if members < 2:
        raise ValueError("members must be >= 2 (the spread rule needs an ensemble)")
    perm = np.random.default_rng(study.seed).permutation(n_sys)
    test_rows, pool_rows = sorted(perm[:n_test].tolist()), sorted(perm[n_test:].tolist())
    cfg = recipe("default", "mse", seed=0, epochs=epochs)
    tasks = []
    for s in range(seeds):
        for rule in rules:
            chain = task_key("al", study.data.sha256, study.data.error_scale, test_rows, rule, s, start, batch, cfg,
                             members)
            tasks.append((f"{chain}-rounds{rounds}", al_chain, dict(
                data=study.data, test_rows=test_rows, pool_rows=pool_rows, rule=rule, seed=s, start=start,
                batch=batch, rounds=rounds, config=cfg, members=members, cache_dir=str(study.out / "cache"),
                chain=chain)))
    done = study.run_tasks("acquisition chains", tasks)
    full = {s_ for s_ in range(seeds) if all(any(d["rule"] == r and d["seed"] == s_ for d in done.values())
                                             for r in rules)}
    done = {k: d for k, d in done.items() if d["seed"] in full}  # compare the rules on the same seeds only
    curves = {}
    for rule in rules:
        runs = sorted((d for d in done.values() if d["rule"] == rule), key=lambda d: d["seed"])  # paired by seed
        if not runs:
            continue
        n = np.array([r["n"] for r in runs[0]["rounds"]])
        E = np.array([[r["test"]["E"] for r in d["rounds"]] for d in runs])
        curves[rule] = {"n": n.tolist(), "E_mean": E.mean(axis=0).tolist(),
                        "E_sem": (E.std(axis=0, ddof=1) / np.sqrt(len(E))).tolist() if len(E) > 1 else [0.0] * len(n),
                        "E_per_seed": E.tolist(), "seeds": [d["seed"] for d in runs]}
    if "random" not in curves:
        raise ValueError("no finished random-acquisition chain to compare with (run without --from-cache first)")
    seeds_done = {rule: sum(d["rule"] == rule for d in done.values()) for rule in curves}
    target = curves["random"]["E_mean"][-1]
    n_max = curves["random"]["n"][-1]
    reach = []
    for rule in curves:
        n_r = simulations_to_reach(np.array(curves[rule]["n"]), np.array(curves[rule]["E_mean"]), target)
        reach.append({"rule": rule, "simulations to reach E_random(n_max)": n_r if np.isfinite(n_r) else
                      f"not within {curves[rule]['n'][-1]}",
                      "fewer than random (x)": n_max / n_r if np.isfinite(n_r) else 0.0,
                      f"E at n = {n_max}": curves[rule]["E_mean"][-1]})
    if len(curves["random"]["E_per_seed"]) > 1:  # every rule holds the same seeds (`full` above)
        boot = reach_bootstrap(curves, seed=study.seed)
        for row in reach:
            b = boot[row["rule"]]
            row["68 % interval (bootstrap over seeds)"] = f"{b['p16']:.2f}-{b['p84']:.2f}"
            row["resamples >= 2x"] = b["fraction_ge_2"]
    _figure(study, curves, target)
    results = {"n_systems": n_sys, "n_test": n_test, "pool": len(pool_rows), "start": start, "batch": batch,
               "rounds": rounds, "seeds": seeds, "seeds_done": seeds_done, "members": members, "epochs": epochs,
               "target_E": target,
               "n_max": n_max, "curves": curves, "reach": reach, "goal": "at least 2x fewer simulations"}
    return study.finish(results, _markdown(results), n_systems=n_sys)


def _markdown(r: dict) -> str:
    rules = list(r["curves"])
    rows = []
    for i, n in enumerate(r["curves"]["random"]["n"]):
        rows.append({"simulations": n, **{f"E {rule}": r["curves"][rule]["E_mean"][i] for rule in rules}})
    out = [f"Pool of {r['pool']} systems, fixed test set of {r['n_test']}; start {r['start']}, batches of "
           f"{r['batch']}, {r['rounds']} rounds; ensembles of {r['members']} (our recipe, at most {r['epochs']} "
           f"epochs); mean over the seeds done {r['seeds_done']}. E in M on the test set.", "",
           md_table(rows, ["simulations", *[f"E {rule}" for rule in rules]], {"simulations": "d"}),
           f"Target: E of random sampling with {r['n_max']} simulations = {r['target_E']:.4f} M.", "",
           md_table(r["reach"], list(r["reach"][0]), {"simulations to reach E_random(n_max)": ".0f",
                                                      "fewer than random (x)": ".2f",
                                                      "resamples >= 2x": ".2f"}),
           f"Goal of the issue: {r['goal']}."]
    if "68 % interval (bootstrap over seeds)" in r["reach"][0]:
        out += ["", "Interval and 'resamples >= 2x': a paired bootstrap over the seeds (one resample of seed indices "
                "for every rule, since a seed fixes the start set; the target is recomputed in each resample)."]
    return "\n".join(out) + "\n"


def _figure(study, curves: dict, target: float) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for rule, c in curves.items():
        ax.errorbar(c["n"], c["E_mean"], yerr=c["E_sem"], fmt="o-", ms=3, capsize=2, label=rule)
    ax.axhline(target, color="gray", ls=":", lw=1, label="E of random at the largest set")
    ax.set(xlabel="simulations (labelled systems)", ylabel="E on the test set (M)", yscale="log",
           title="active learning, retrospective on the project's dataset")
    ax.legend(fontsize=8)
    study.save_figure(fig, "figure_active_learning")
