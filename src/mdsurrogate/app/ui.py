"""The page: the nanoHUB "Ions in nanoconfinement" tool rebuilt with Panel. `create_app()` builds one browser
session's page (its own `core.Session`); `mdsurrogate app` serves it.

Plotted data live in named Bokeh ColumnDataSources ("ml_source", "md_source", "md_bars") so that the browser
tests read exactly what is drawn.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, Span, Whisker
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from mdsurrogate.app import core
from mdsurrogate.simulation.system import DESIGN_RANGES, INPUT_LONG_NAMES, INPUT_NAMES, INPUT_UNITS, InvalidInput

ML_COLOUR, MD_COLOUR = "#e6550d", "#3182bd"
QUANTITIES = {  # variable -> (tab title, y label)
    "n_plus": ("Cation density", "n+ (M)"),
    "n_minus": ("Anion density", "n- (M)"),
    "charge_density": ("Charge density", "rho(z) (C/m^3)"),
    "integrated_charge": ("Integrated charge", "S(z) (C/m^2)"),
}
SYMBOLS = {"h": "h", "c": "c", "d_plus": "d+", "d_minus": "d-", "sigma_s": "sigma_s"}

ABOUT = """
### About
This is the nanoHUB tool *Ions in nanoconfinement* rebuilt on this project's engine and surrogate.

**Model.** A monovalent electrolyte in implicit water (epsilon_r = 80, T = 298 K) between two planar walls at
z = -h/2 and z = +h/2, each carrying surface charge density sigma_s; periodic in x and y. Ions are soft spheres
of diameters d+ and d-. **Run MD** simulates it with LAMMPS (production preset, see docs/engine.md);
**Predict using ML** answers from the surrogate shipped with the package: an ensemble of 5 neural networks trained
on the project's MD dataset; the band is the ensemble spread. **Auto** answers from the surrogate when the inputs
are inside its training ranges and its spread is below your bound, from the project's dataset when that exact
system was already simulated, and otherwise runs MD.

**Units.** h, d+, d-, z: nm; c and the densities n+(z), n-(z): mol/L (M); sigma_s and the integrated charge
S(z) = sigma_s + int rho dz: C/m^2; net charge density rho(z) = e (n+ - n-): C/m^3; simulation length: tau (the
LJ time unit; one step is 0.01 tau). The decay length is the distance from the wall where |S| falls below
|sigma_s|/e. MD error bars are standard errors from block averages.
"""


def _empty_profile() -> dict:
    cols = ["z", "n_plus", "n_minus", "charge_density", "integrated_charge"]
    cols += [f"{v}_{s}" for v in ("n_plus", "n_minus") for s in ("lo", "hi", "sd")]
    return {c: [] for c in cols}


def _profile_columns(ds, spread: str) -> dict:
    out = {"z": ds["z"].values}
    for v in ("n_plus", "n_minus", "charge_density", "integrated_charge"):
        out[v] = ds[v].values
    for v in ("n_plus", "n_minus"):
        s = ds[f"{v}_{spread}"].values
        out[f"{v}_sd"] = s
        out[f"{v}_lo"] = ds[v].values - s
        out[f"{v}_hi"] = ds[v].values + s
    return out


def _fig(title: str, ylabel: str, **kw):
    f = figure(height=380, sizing_mode="stretch_width", title=title, x_axis_label="z (nm)", y_axis_label=ylabel,
               tools="pan,wheel_zoom,box_zoom,reset,save,hover", **kw)
    f.toolbar.logo = None
    return f


class AppPage:
    """One session's page."""

    def __init__(self, session: core.Session | None = None):
        self.session = session or core.Session()
        self.sur = core.shipped_surrogate()
        self.dataset = core.project_dataset()
        self._periodic = None
        self._build_inputs()
        self._build_plots()
        self._build_downloads()
        self._build_tabs()

    # ------------------------------------------------------------ inputs

    def _build_inputs(self) -> None:
        steps = {"h": 0.1, "c": 0.05, "d_plus": 0.01, "d_minus": 0.01, "sigma_s": 0.001}
        self.inputs = {}
        for name in INPUT_NAMES:
            lo, hi = DESIGN_RANGES[name]
            self.inputs[name] = pn.widgets.FloatInput(
                name=f"{SYMBOLS[name]}: {INPUT_LONG_NAMES[name]} ({INPUT_UNITS[name]}), range {lo:g} to {hi:g}",
                value=core.DEFAULT_INPUTS[name], step=steps[name], format="0[.]0000",
                description=core.input_help(name), css_classes=[f"inp-{name}"], sizing_mode="stretch_width")
        self.asym = pn.widgets.Checkbox(name="size asymmetry (d- set separately)", value=False,
                                        css_classes=["inp-asym"])
        self.inputs["d_minus"].disabled = True
        self.inputs["d_plus"].param.watch(self._couple, "value")
        self.asym.param.watch(self._toggle_asym, "value")
        self.length = pn.widgets.FloatInput(
            name="simulation length (tau), at least 2.5", value=400.0, step=10.0, css_classes=["inp-length"],
            description="total simulated time including 10 % equilibration; 1 tau = 100 steps; 400 tau takes "
                        "about a minute on 2 cores", sizing_mode="stretch_width")
        self.seed = pn.widgets.IntInput(name="seed", value=1, css_classes=["inp-seed"],
                                        description="random seed of the initial positions and velocities",
                                        sizing_mode="stretch_width")
        self.ranks = pn.widgets.IntInput(name="MPI ranks", value=1, css_classes=["inp-ranks"],
                                         description="LAMMPS processes for this run (at most the machine's cores)",
                                         sizing_mode="stretch_width")
        self.target = pn.widgets.FloatInput(
            name="target error (optional)", value=None, placeholder="none", css_classes=["inp-target"],
            description="stop the production run early once the median relative standard error of both profiles "
                        "is below this (e.g. 0.05)", sizing_mode="stretch_width")
        self.bound = pn.widgets.FloatInput(
            name="Auto: ML spread bound (M)", value=0.1, step=0.01, css_classes=["inp-bound"],
            description="Auto answers from the surrogate only when the largest ensemble spread of its profile is at "
                        "most this (in M)", sizing_mode="stretch_width")
        self.predict_btn = pn.widgets.Button(name="Predict using ML", button_type="primary",
                                             css_classes=["btn-predict"], sizing_mode="stretch_width")
        self.run_btn = pn.widgets.Button(name="Run MD", button_type="success", css_classes=["btn-run"],
                                         sizing_mode="stretch_width")
        self.auto_btn = pn.widgets.Button(name="Auto (ML or MD)", button_type="default", css_classes=["btn-auto"],
                                          sizing_mode="stretch_width")
        self.cancel_btn = pn.widgets.Button(name="Cancel", button_type="danger", disabled=True,
                                            css_classes=["btn-cancel"], sizing_mode="stretch_width")
        self.predict_btn.on_click(lambda e: self.predict())
        self.run_btn.on_click(lambda e: self.run_md())
        self.auto_btn.on_click(self.auto)
        self.cancel_btn.on_click(lambda e: self.cancel())
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["msg"],
                                     sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("Ready.", css_classes=["status-line"], sizing_mode="stretch_width")
        self.progress = pn.indicators.Progress(value=0, max=100, css_classes=["md-progress"], bar_color="success",
                                               sizing_mode="stretch_width", visible=False)
        self.decision = pn.pane.Markdown("", css_classes=["decision"], sizing_mode="stretch_width")
        self.log = pn.pane.Str("", css_classes=["run-log"], sizing_mode="stretch_width", height=220,
                               styles={"overflow-y": "auto", "font-size": "11px", "background": "#f7f7f7"})
        self.locked = [*self.inputs.values(), self.asym, self.length, self.seed, self.ranks, self.target, self.bound,
                       self.predict_btn, self.run_btn, self.auto_btn]

    def _couple(self, event) -> None:
        if not self.asym.value:
            self.inputs["d_minus"].value = event.new

    def _toggle_asym(self, event) -> None:
        self.inputs["d_minus"].disabled = not event.new
        if not event.new:
            self.inputs["d_minus"].value = self.inputs["d_plus"].value

    def values(self) -> dict:
        vals = {k: w.value for k, w in self.inputs.items()}
        if not self.asym.value:
            vals["d_minus"] = vals["d_plus"]
        return vals

    def _system(self):
        """The inputs as a system, or None after showing the error."""
        vals = self.values()
        missing = [SYMBOLS[k] for k, v in vals.items() if v is None]
        if missing:
            return self.error(f"give a value for {', '.join(missing)}")
        try:
            return core.check_system(vals)
        except InvalidInput as exc:
            return self.error(f"{exc}")

    def error(self, text: str) -> None:
        self.message.object = text
        self.message.alert_type = "danger"
        self.message.visible = True
        self.status.object = "Not run: the inputs need fixing."
        return None

    def clear_error(self) -> None:
        self.message.visible = False
        self.message.object = ""

    # ------------------------------------------------------------ plots

    def _build_plots(self) -> None:
        self.ml_source = ColumnDataSource(_empty_profile(), name="ml_source")
        self.md_source = ColumnDataSource(_empty_profile(), name="md_source")
        self.md_bars = ColumnDataSource(_empty_profile(), name="md_bars")
        self.figs = {}
        for var, (title, ylabel) in QUANTITIES.items():
            f = _fig(title, ylabel)
            if var in ("n_plus", "n_minus"):
                f.varea("z", f"{var}_lo", f"{var}_hi", source=self.ml_source, color=ML_COLOUR, alpha=0.25,
                        legend_label="ML ensemble spread")
                f.varea("z", f"{var}_lo", f"{var}_hi", source=self.md_source, color=MD_COLOUR, alpha=0.25,
                        legend_label="MD standard error")
            f.line("z", var, source=self.md_source, color=MD_COLOUR, line_width=2, legend_label="MD")
            f.line("z", var, source=self.ml_source, color=ML_COLOUR, line_width=2, legend_label="ML")
            f.legend.location = "top_center"
            self.figs[var] = f
        # S(z) up to the midplane, with the decay lengths marked
        self.figs["integrated_charge"].title.text = "Integrated charge S(z) (left half; dashed: decay length)"
        self.span_ml = Span(location=0, dimension="height", line_color=ML_COLOUR, line_dash="dashed", visible=False,
                            name="span_ml")
        self.span_md = Span(location=0, dimension="height", line_color=MD_COLOUR, line_dash="dashed", visible=False,
                            name="span_md")
        self.figs["integrated_charge"].add_layout(self.span_ml)
        self.figs["integrated_charge"].add_layout(self.span_md)
        self.decay_text = pn.pane.Markdown("", css_classes=["decay"])
        # ML vs MD overlay with error bars
        f = _fig("ML (lines, band: ensemble spread) vs MD (points, bars: standard error)", "density (M)")
        for var, dash, label in (("n_plus", "solid", "cations"), ("n_minus", "dashed", "anions")):
            f.varea("z", f"{var}_lo", f"{var}_hi", source=self.ml_source, color=ML_COLOUR, alpha=0.2)
            f.line("z", var, source=self.ml_source, color=ML_COLOUR, line_width=2, line_dash=dash,
                   legend_label=f"ML {label}")
            f.scatter("z", var, source=self.md_bars, color=MD_COLOUR, size=4,
                      marker="circle" if var == "n_plus" else "square", legend_label=f"MD {label}")
            f.add_layout(Whisker(source=self.md_bars, base="z", lower=f"{var}_lo", upper=f"{var}_hi",
                                 line_color=MD_COLOUR, name=f"whisker_{var}"))
        f.legend.location = "top_center"
        self.overlay = f
        self.overlay_note = pn.pane.Markdown("Predict and run MD for the same inputs to compare them here.",
                                             css_classes=["overlay-note"])

    def show(self, result: core.Result) -> None:
        ml, md = result.ml, result.md
        self.ml_source.data = _profile_columns(ml, "std") if ml is not None else _empty_profile()
        if md is not None:
            cols = _profile_columns(md, "err")
            self.md_source.data = cols
            self.md_bars.data = {k: np.asarray(v)[::5] for k, v in cols.items()}
        else:
            self.md_source.data = _empty_profile()
            self.md_bars.data = _empty_profile()
        h = result.system.h
        self.figs["integrated_charge"].x_range.start = -h / 2
        self.figs["integrated_charge"].x_range.end = 0.0
        texts = []
        for span, ds, name in ((self.span_ml, ml, "ML"), (self.span_md, md, "MD")):
            zstar = float(ds.attrs["decay_length_nm"]) if ds is not None else math.nan
            span.visible = bool(np.isfinite(zstar))
            if span.visible:
                span.location = -h / 2 + zstar
                texts.append(f"{name} decay length {zstar:.3f} nm from the wall")
        self.decay_text.object = "; ".join(texts)
        if ml is not None and md is not None:
            self.overlay_note.object = f"ML vs {'MD' if result.md_dir else 'dataset MD'} for {result.system.key()}"
        else:
            self.overlay_note.object = "Only one of ML and MD is available for these inputs."
        self._refresh_history()
        self._refresh_downloads()

    # ------------------------------------------------------------ ML

    def predict(self) -> None:
        self.clear_error()
        system = self._system()
        if system is None:
            return
        from mdsurrogate.surrogate.ensemble import ExtrapolationError

        t0 = time.perf_counter()
        try:
            ml = core.ml_profile(self.sur, system)
        except ExtrapolationError as exc:
            self.error(f"Outside the surrogate's training ranges: {exc}. Run MD for these inputs instead.")
            return
        dt = time.perf_counter() - t0
        self.session.add(core.Result(system, ml=ml, how="ML"))
        self.show(self.session.current)
        self.status.object = f"ML prediction in {dt * 1e3:.0f} ms (ensemble of {ml.attrs['n_members']} networks)."
        self.decision.object = ""

    # ------------------------------------------------------------ MD

    def _controls(self):
        try:
            return core.run_controls(self.length.value, self.seed.value, self.ranks.value, self.target.value)
        except ValueError as exc:
            self.error(str(exc))
            return None

    def run_md(self, why: str = "") -> None:
        self.clear_error()
        system = self._system()
        if system is None:
            return
        controls = self._controls()
        if controls is None:
            return
        try:
            job = self.session.start_md(system, controls)
        except RuntimeError as exc:
            self.error(str(exc))
            return
        self._job_why = why
        for w in self.locked:
            w.disabled = True
        self.cancel_btn.disabled = False
        self.progress.value = 0
        self.progress.visible = True
        self.status.object = f"MD starting ({controls.steps} steps, {controls.mpi_ranks} rank(s))..."
        self.log.object = ""
        self._block_steps = controls.settings().block_steps
        self._periodic = pn.state.add_periodic_callback(self._poll, period=300)
        self._job = job

    def _poll(self) -> None:
        job = self._job
        st = job.state()
        planned = st.get("planned") or 0
        blocks = st.get("blocks") or 0
        if planned:
            pct = int(round(100 * min(blocks, planned) / planned))
            self.progress.value = pct
            err = st.get("rel_error")
            err_txt = f", relative error {err:.3f}" if isinstance(err, float) and math.isfinite(err) else ""
            self.status.object = (f"MD running: step {blocks * self._block_steps} of {planned * self._block_steps} "
                                  f"of production ({pct} %){err_txt}, {st.get('elapsed_s', 0):.1f} s")
        log = job.lammps_log() or job.worker_log()
        live = job.directory / "lammps" / "log.lammps"
        if live.exists():
            log = live.read_text(errors="replace")
        self.log.object = "\n".join(log.splitlines()[-60:])
        if st["status"] == "running":
            return
        self._finish(job, st)

    def _finish(self, job: core.MDJob, st: dict) -> None:
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None
        for w in self.locked:
            w.disabled = False
        self.inputs["d_minus"].disabled = not self.asym.value
        self.cancel_btn.disabled = True
        self.log.object = "\n".join((job.lammps_log() or job.worker_log()).splitlines()[-60:])
        if st["status"] == "done":
            self.progress.value = 100
            try:
                md = core.md_profile(job.result(), job.system)
            except Exception as exc:  # noqa: BLE001 - an unreadable result must not leave the page at "running"
                self.error(f"MD finished but its profiles could not be read from {job.directory}: {exc}")
                self.status.object = "MD done, but its result could not be read (see the message)."
                return
            ml = None
            try:
                ml = core.ml_profile(self.sur, job.system)
            except ValueError:
                pass
            self.session.add(core.Result(job.system, ml=ml, md=md, md_dir=job.directory, how="MD"))
            self.show(self.session.current)
            self.status.object = f"MD done (100 %): {st.get('detail', '')}."
            if self._job_why:
                self.decision.object = f"**Auto answered with MD.** {self._job_why}"
        elif st["status"] == "cancelled":
            self.status.object = "MD cancelled: every LAMMPS process of the run was stopped."
        else:
            self.message.object = f"MD failed: {st.get('detail', 'unknown reason')}"
            self.message.alert_type = "danger"
            self.message.visible = True
            self.status.object = "MD failed (see the message and the run log)."

    def cancel(self) -> None:
        job = self.session.job
        if job is None or not job.running():
            return
        left = job.cancel()
        st = job.state()
        self._finish(job, st)
        if left:
            self.error(f"{left} process(es) of the run could not be stopped")

    # ------------------------------------------------------------ Auto

    async def auto(self, event=None) -> None:
        self.clear_error()
        system = self._system()
        if system is None:
            return
        bound = self.bound.value
        if bound is None or not bound > 0:
            self.error(f"the Auto spread bound must be a positive number of M, got {bound}")
            return
        self.status.object = "Auto: deciding (the first lookup reads the project's dataset) ..."
        # off the event loop: the first dataset lookup reads every part of the dataset (tens of MB), which would
        # freeze every session of the server meanwhile
        doc = pn.state.curdoc
        d = await asyncio.to_thread(core.auto_decide, self.sur, system, float(bound), self.dataset)
        if doc is not None:  # back under the document's lock: the answer changes Bokeh models directly
            doc.add_next_tick_callback(lambda: self._answer_auto(system, d))
        else:
            self._answer_auto(system, d)

    def _answer_auto(self, system, d) -> None:
        if d.kind == "md":
            if self._controls() is None:
                return
            self.decision.object = f"**Auto runs MD.** {d.reason}"
            self.run_md(why=d.reason)
            return
        if d.kind == "ml":
            self.session.add(core.Result(system, ml=d.result, how="Auto: ML"))
            self.decision.object = f"**Auto answered with ML.** {d.reason}"
        else:
            self.session.add(core.Result(system, ml=d.ml, md=d.result, how="Auto: dataset"))
            self.decision.object = f"**Auto answered from the project's dataset.** {d.reason}"
        self.show(self.session.current)
        self.status.object = "Auto: answered without running MD."

    # ------------------------------------------------------------ history

    def _refresh_history(self) -> None:
        var = self.history_var.value
        f = _fig(f"Previous results of this session: {QUANTITIES[var][0].lower()}", QUANTITIES[var][1])
        for i, res in enumerate(self.session.history):
            colour = Category10_10[i % 10]
            for ds, dash, kind in ((res.ml, "solid", "ML"), (res.md, "dashed", "MD" if res.md_dir else "dataset")):
                if ds is not None:
                    f.line(ds["z"].values, ds[var].values, color=colour, line_dash=dash, line_width=2,
                           legend_label=f"#{i + 1} {kind} {res.label.split(': ', 1)[1]}")
        if self.session.history:
            f.legend.location = "top_center"
            f.legend.label_text_font_size = "9px"
        self.history_pane.object = f
        rows = [f"{i + 1}. {r.how}: {r.label}" for i, r in enumerate(self.session.history)]
        self.history_list.object = "\n".join(rows) if rows else "No results yet in this session."

    # ------------------------------------------------------------ sweep and sensitivity

    def _build_sweep(self):
        self.sweep_input = pn.widgets.Select(name="input varied", options={INPUT_LONG_NAMES[k]: k for k in INPUT_NAMES},
                                             value="c", css_classes=["sweep-input"])
        self.sweep_from = pn.widgets.FloatInput(name="from", value=0.1, css_classes=["sweep-from"])
        self.sweep_to = pn.widgets.FloatInput(name="to", value=2.0, css_classes=["sweep-to"])
        self.sweep_n = pn.widgets.IntInput(name="values", value=6, start=2, end=50, css_classes=["sweep-n"])
        self.sweep_var = pn.widgets.Select(name="quantity", options={v[0]: k for k, v in QUANTITIES.items()},
                                           value="n_plus")
        self.sweep_btn = pn.widgets.Button(name="Sweep (ML)", button_type="primary", css_classes=["btn-sweep"])
        self.sweep_plot = pn.pane.Bokeh(_fig("Trendlines from the surrogate", "n+ (M)"), sizing_mode="stretch_width")
        self.sweep_decay = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.sweep_msg = pn.pane.Markdown("One input varied over a range, the others fixed at the inputs on the left.",
                                          css_classes=["sweep-msg"])

        def range_default(event):
            lo, hi = DESIGN_RANGES[event.new]
            self.sweep_from.value, self.sweep_to.value = lo, hi

        self.sweep_input.param.watch(range_default, "value")
        self.sweep_btn.on_click(self.do_sweep)
        return pn.Column(pn.Row(self.sweep_input, self.sweep_from, self.sweep_to, self.sweep_n, self.sweep_var,
                                self.sweep_btn), self.sweep_msg, self.sweep_plot, self.sweep_decay,
                         sizing_mode="stretch_width")

    async def do_sweep(self, event=None) -> None:
        base = self._system()
        if base is None:
            return
        name, n = self.sweep_input.value, self.sweep_n.value
        lo, hi = self.sweep_from.value, self.sweep_to.value
        if lo is None or hi is None or not n or n < 2:
            self.sweep_msg.object = "Give a range and at least 2 values."
            return
        values = np.linspace(lo, hi, int(n))
        inputs = base.inputs()
        name_txt = INPUT_LONG_NAMES[name] + (" (d- fixed)" if name == "d_plus" else "")
        try:
            from mdsurrogate.analysis.sweeps import sweep

            ds = await asyncio.to_thread(sweep, self.sur, inputs, name, values)
        except ValueError as exc:
            self.sweep_msg.object = f"**Not swept:** {exc}"
            return
        var = self.sweep_var.value
        key = {"charge_density": "rho", "integrated_charge": "S"}.get(var, var)
        f = _fig(f"{QUANTITIES[var][0]} vs z for {len(values)} values of {name_txt}", QUANTITIES[var][1])
        for i, v in enumerate(ds["value"].values):
            colour = Viridis256[int(i * 255 / max(len(values) - 1, 1))]
            f.line(ds["z"].values[i], ds[key].values[i], color=colour, line_width=2,
                   legend_label=f"{SYMBOLS[name]} = {v:.4g}")
        f.legend.label_text_font_size = "9px"
        f.legend.location = "top_center"
        self.sweep_plot.object = f
        g = figure(height=260, sizing_mode="stretch_width", title="Decay length of S(z) vs the varied input",
                   x_axis_label=f"{SYMBOLS[name]} ({INPUT_UNITS[name]})", y_axis_label="decay length (nm)")
        src = ColumnDataSource({"value": ds["value"].values, "decay_length": ds["decay_length"].values},
                               name="sweep_decay")
        g.line("value", "decay_length", source=src, line_width=2)
        g.scatter("value", "decay_length", source=src, size=6)
        self.sweep_decay.object = g
        self.sweep_msg.object = f"Swept {name_txt} from {lo:g} to {hi:g} ({len(values)} values) with the surrogate."

    def _build_sensitivity(self):
        defaults = {"d_plus": "norm 0.4 0.01", "d_minus": "norm 0.6 0.015"}
        self.sobol_inputs = {
            k: pn.widgets.TextInput(name=f"{SYMBOLS[k]} ({INPUT_UNITS[k]})", value=defaults.get(k, ""),
                                    placeholder="fixed at the input on the left", css_classes=[f"sobol-{k}"],
                                    description="empty: fixed at the value on the left; a number: fixed there; "
                                                "'norm MEAN SD' or 'unif LOW HIGH': uncertain")
            for k in INPUT_NAMES}
        self.sobol_z = pn.widgets.FloatInput(name="z (nm)", value=-1.5, step=0.1, css_classes=["sobol-z"])
        self.sobol_n = pn.widgets.IntInput(name="base samples N", value=512, start=16, end=65536,
                                           css_classes=["sobol-n"],
                                           description="Saltelli base sample size (cost: N (k + 2) surrogate calls)")
        self.sobol_extrap = pn.widgets.Checkbox(
            name="allow extrapolation (the paper's D- ~ N(0.6, 0.015^2) draws past the 0.63 nm training range)",
            value=True, css_classes=["sobol-extrap"])
        self.sobol_btn = pn.widgets.Button(name="Compute Sobol indices", button_type="primary",
                                           css_classes=["btn-sobol"])
        self.sobol_plot = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.sobol_msg = pn.pane.Markdown("Variance-based indices of n+, n- and rho at one z, from the surrogate "
                                          "(defaults: the paper's D+ ~ N(0.4, 0.01^2), D- ~ N(0.6, 0.015^2)).",
                                          css_classes=["sobol-msg"])
        self.sobol_btn.on_click(self.do_sobol)
        return pn.Column(pn.Row(*self.sobol_inputs.values()), pn.Row(self.sobol_z, self.sobol_n, self.sobol_btn),
                         self.sobol_extrap,
                         self.sobol_msg, self.sobol_plot, sizing_mode="stretch_width")

    def _sobol_spec(self) -> dict:
        base = self.values()
        spec = {}
        for k, w in self.sobol_inputs.items():
            text = (w.value or "").strip()
            if not text:
                if base[k] is None:
                    raise ValueError(f"{SYMBOLS[k]} has no value")
                spec[k] = float(base[k])
                continue
            parts = text.split()
            try:
                if len(parts) == 1:
                    spec[k] = float(parts[0])
                elif len(parts) == 3 and parts[0] in ("norm", "unif"):
                    spec[k] = (parts[0], float(parts[1]), float(parts[2]))
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{SYMBOLS[k]}: write a number, 'norm MEAN SD' or 'unif LOW HIGH', got {text!r}"
                                 ) from None
        return spec

    async def do_sobol(self, event=None) -> None:
        try:
            spec = self._sobol_spec()
        except ValueError as exc:
            self.sobol_msg.object = f"**Not computed:** {exc}"
            return
        if not any(isinstance(v, tuple) for v in spec.values()):
            self.sobol_msg.object = "**Not computed:** make at least one input uncertain."
            return
        n = self.sobol_n.value or 0
        z0 = self.sobol_z.value
        self.sobol_msg.object = "Computing..."
        t0 = time.perf_counter()
        try:
            from mdsurrogate.analysis.sensitivity import sobol_indices

            ds = await asyncio.to_thread(sobol_indices, self.sur, spec, int(n), 0,
                                         allow_extrapolation=self.sobol_extrap.value)
        except ValueError as exc:
            self.sobol_msg.object = f"**Not computed:** {exc}"
            return
        z = ds["z"].values
        i = int(np.argmin(np.abs(z - (z0 if z0 is not None else 0.0))))
        names = [str(x) for x in ds["input"].values]
        labels = [f"{SYMBOLS.get(nm, nm)} {kind} {ion}" for ion in ("n+", "n-", "rho") for nm in names
                  for kind in ("S1", "ST")]
        vals, confs = [], []
        for ion in ("n_plus", "n_minus", "rho"):
            for nm in names:
                for kind in ("S1", "ST"):
                    vals.append(float(ds[f"{kind}_{ion}"].sel(input=nm).values[i]))
                    confs.append(float(ds[f"{kind}_{ion}_conf"].sel(input=nm).values[i]))
        src = ColumnDataSource({"label": labels, "value": vals, "lo": np.subtract(vals, confs),
                                "hi": np.add(vals, confs),
                                "colour": [Category10_10[(j // 2) % 10] for j in range(len(labels))]},
                               name="sobol_source")
        f = figure(x_range=labels, height=360, sizing_mode="stretch_width", y_axis_label="Sobol index",
                   title=f"Sobol indices at z = {z[i]:.3f} nm (bars: 95 % confidence)",
                   tools="save,hover,reset")
        f.vbar(x="label", top="value", width=0.8, source=src, color="colour")
        f.add_layout(Whisker(source=src, base="label", lower="lo", upper="hi"))
        f.xaxis.major_label_orientation = 0.9
        self.sobol_plot.object = f
        self.sobol_msg.object = (f"Sobol indices of n+, n- and the charge density rho at z = {z[i]:.3f} nm from "
                                 f"N = {n} base samples "
                                 f"({time.perf_counter() - t0:.1f} s).")

    # ------------------------------------------------------------ downloads

    def _build_downloads(self) -> None:
        def dl(label: str, filename: str, make, css: str):
            w = pn.widgets.FileDownload(callback=make, filename=filename, label=label, button_type="light",
                                        css_classes=[css], disabled=True, embed=False, width=150)
            return w

        def cur():
            return self.session.current

        self.downloads = {
            "ml_csv": dl("ML profile CSV", "ml_profile.csv", lambda: _bytes(core.to_text(cur().ml, ",")), "dl-ml-csv"),
            "ml_tsv": dl("ML profile TSV", "ml_profile.tsv", lambda: _bytes(core.to_text(cur().ml, "\t")),
                         "dl-ml-tsv"),
            "ml_nc": dl("ML NetCDF", "ml_profile.nc", lambda: _bytes(core.to_netcdf(cur().ml)), "dl-ml-nc"),
            "md_csv": dl("MD profile CSV", "md_profile.csv", lambda: _bytes(core.to_text(cur().md, ",")), "dl-md-csv"),
            "md_tsv": dl("MD profile TSV", "md_profile.tsv", lambda: _bytes(core.to_text(cur().md, "\t")),
                         "dl-md-tsv"),
            "md_nc": dl("MD NetCDF", "md_profile.nc", lambda: _bytes(self._md_netcdf()), "dl-md-nc"),
            "png": dl("Plots PNG", "profiles.png", lambda: _bytes(core.plots_png(cur())), "dl-png"),
            "summary": dl("summary.json", "summary.json",
                          lambda: _bytes((cur().md_dir / "summary.json").read_bytes()), "dl-summary"),
            "log": dl("LAMMPS log", "log.lammps", lambda: _bytes((cur().md_dir / "log.lammps").read_bytes()),
                      "dl-log"),
        }

    def _md_netcdf(self) -> bytes:
        res = self.session.current
        if res.md_dir is not None and (res.md_dir / "profiles.nc").exists():
            return (res.md_dir / "profiles.nc").read_bytes()  # the engine's own file, with full provenance
        return core.to_netcdf(res.md)

    def _refresh_downloads(self) -> None:
        res = self.session.current
        has_ml = res is not None and res.ml is not None
        has_md = res is not None and res.md is not None
        has_run = has_md and res.md_dir is not None
        for k, w in self.downloads.items():
            ok = {"ml": has_ml, "md": has_md, "pn": has_ml or has_md, "su": has_run, "lo": has_run}[k[:2]]
            w.disabled = not ok
        if res is not None:
            stem = res.system.key()
            for k, w in self.downloads.items():
                base = {"ml_csv": "ml_profile.csv", "ml_tsv": "ml_profile.tsv", "ml_nc": "ml_profile.nc",
                        "md_csv": "md_profile.csv", "md_tsv": "md_profile.tsv", "md_nc": "md_profile.nc",
                        "png": "profiles.png", "summary": "summary.json", "log": "log.lammps"}[k]
                w.filename = f"{stem}_{base}"

    # ------------------------------------------------------------ layout

    def _build_tabs(self) -> None:
        self.history_var = pn.widgets.Select(name="quantity", options={v[0]: k for k, v in QUANTITIES.items()},
                                             value="n_plus", width=220)
        self.history_pane = pn.pane.Bokeh(None, sizing_mode="stretch_width")
        self.history_list = pn.pane.Markdown("No results yet in this session.", css_classes=["history-list"])
        self.history_var.param.watch(lambda e: self._refresh_history(), "value")
        self._refresh_history()
        tab = {var: pn.pane.Bokeh(self.figs[var], sizing_mode="stretch_width") for var in QUANTITIES}
        self.tabs = pn.Tabs(
            ("Cation density", tab["n_plus"]),
            ("Anion density", tab["n_minus"]),
            ("Charge density", tab["charge_density"]),
            ("Integrated charge", pn.Column(tab["integrated_charge"], self.decay_text, sizing_mode="stretch_width")),
            ("ML vs MD", pn.Column(pn.pane.Bokeh(self.overlay, sizing_mode="stretch_width"), self.overlay_note,
                                   sizing_mode="stretch_width")),
            ("Previous runs", pn.Column(self.history_var, self.history_pane, self.history_list,
                                        sizing_mode="stretch_width")),
            ("Sweep", self._build_sweep()),
            ("Sensitivity", self._build_sensitivity()),
            ("About", pn.pane.Markdown(ABOUT, sizing_mode="stretch_width")),
            sizing_mode="stretch_width", css_classes=["main-tabs"],
        )

    def layout(self):
        side = pn.Column(
            pn.pane.Markdown("## Ions in nanoconfinement"),
            *[self.inputs[k] for k in ("c", "h", "d_plus")], self.asym, self.inputs["d_minus"],
            self.inputs["sigma_s"],
            pn.pane.Markdown("**MD run**"), self.length, self.seed, self.ranks, self.target,
            self.predict_btn, self.run_btn, self.auto_btn, self.bound, self.cancel_btn,
            width=340,
        )
        dl_row = pn.FlexBox(*self.downloads.values())
        main = pn.Column(self.message, self.status, self.progress, self.decision, self.tabs,
                         pn.pane.Markdown("**Downloads** (the result shown)"), dl_row,
                         pn.pane.Markdown("**Run log** (LAMMPS)"), self.log, sizing_mode="stretch_width")
        return pn.Row(side, main, sizing_mode="stretch_width")


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)


def create_app():
    """One browser session's page (served by `mdsurrogate app`)."""
    page = AppPage()
    if pn.state.curdoc is not None:
        pn.state.on_session_destroyed(lambda ctx: page.session.close())
    view = page.layout()
    view.page = page  # for tests and debugging
    return view
