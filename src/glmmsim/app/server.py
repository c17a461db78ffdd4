"""The planner's server: the form checked as it changes, runs in the background, results and exports.

Each browser tab is a Shiny session with its own worker process, so two tabs run at
once; a run is a Shiny extended task (the page keeps answering while it runs) that
reports every batch of replicates to a :class:`~glmmsim.app.runner.RunState`, which the
page polls four times a second. Nothing the user types reaches a traceback: glmmsim's
errors become messages under their fields, anything else a one-line message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from typing import Any

import pandas as pd
from shiny import Inputs, Outputs, Session, reactive, render, ui

from ..errors import GlmmsimError
from ..study.safe_yaml import MAX_SPEC_BYTES, read_text_file
from ..study.trials import read_trials
from .exports import curve_figure, figure_bytes, python_script, spec_yaml, table_csv
from .layout import field_messages
from .parameters import Slot, family_links
from .runner import RunOutcome, RunState, curve_points, eta, run_power, start_pool
from .study_form import (
    ANALYSIS_FIELDS,
    DESIGN_FIELDS,
    Checked,
    FieldError,
    along_choices,
    check_form,
    example_form,
    is_label_column,
    param_text,
    spec_to_form,
)

__all__ = ["server", "MAX_UPLOAD_BYTES"]

log = logging.getLogger("glmmsim.app")

#: Largest trial list the page accepts (bytes); ``GLMMSIM_APP_MAX_UPLOAD`` changes it.
MAX_UPLOAD_BYTES = int(os.environ.get("GLMMSIM_APP_MAX_UPLOAD", 20 * 2**20))

_TEXT_FIELDS = ("formula", "total_sd", "subjects", "items", "subject_name", "item_name", "within", "between_subjects",
                "between_items", "repetitions", "units", "unit_between", "covariates", "alpha", "nsim", "target",
                "seed", "values1", "values2")
_SELECT_FIELDS = ("family", "method", "engine", "failures")


def _value(input: Inputs, name: str, default: Any = "") -> Any:
    try:
        return input[name]() if name in input else default
    except Exception:  # noqa: BLE001 - an input not yet sent by the browser
        return default


def server(input: Inputs, output: Outputs, session: Session) -> None:
    """The Shiny server function of the planner."""
    workdir = tempfile.mkdtemp(prefix="glmmsim-app-")
    pool_holder: dict[str, Any] = {}
    store: dict[str, str] = dict(example_form()["params"])  # slot key -> text, what the parameter boxes hold
    rendered: dict[str, str] = {}  # slot key -> text the box was last drawn with
    slots_v: reactive.Value[list[Slot]] = reactive.value([])
    params_version = reactive.value(0)
    trials_v: reactive.Value[pd.DataFrame | None] = reactive.value(None)
    trials_error = reactive.value(None)
    trials_name = reactive.value("trials.csv")
    import_error = reactive.value(None)
    state_v: reactive.Value[RunState | None] = reactive.value(None)
    snap_v: reactive.Value[dict | None] = reactive.value(None)
    rows_v: reactive.Value[list] = reactive.value([])  # finished points: the curve redraws once a point
    outcome_v: reactive.Value[RunOutcome | None] = reactive.value(None)
    run_error = reactive.value(None)
    ran_spec_v: reactive.Value[dict | None] = reactive.value(None)

    def pool():
        if "pool" not in pool_holder:
            pool_holder["pool"] = start_pool(1)
        return pool_holder["pool"]

    def ended() -> None:
        for state in pool_holder.get("states", []):
            state.cancel()
        if "pool" in pool_holder:
            pool_holder["pool"].shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(workdir, ignore_errors=True)

    session.on_ended(ended)

    # ------------------------------------------------------------------ the form
    @reactive.calc
    def form() -> dict[str, Any]:
        params_version()
        out: dict[str, Any] = {name: _value(input, name) for name in (*_TEXT_FIELDS, *_SELECT_FIELDS)}
        out.update(link=_value(input, "link"), design_type=_value(input, "design_type", "crossed"),
                   test=list(_value(input, "test", ()) or ()), along1=_value(input, "along1"),
                   along2=_value(input, "along2"), trials_file=trials_v() is not None, trials_name=trials_name(),
                   seeds={"population": 1, "noise": 2, "design": 3})
        for slot in slots_v():
            if slot.input_id in input:
                text = _value(input, slot.input_id)
                if text != rendered.get(slot.key):
                    store[slot.key] = text
                    rendered[slot.key] = text
        out["params"] = dict(store)
        return out

    @reactive.calc
    def checked() -> Checked:
        try:
            return check_form(form(), trials_v())
        except GlmmsimError as exc:
            return Checked(None, slots_v(), {"params": FieldError.of("params", exc)})
        except Exception as exc:  # noqa: BLE001 - never a traceback on the page
            log.exception("checking the form")
            return Checked(None, slots_v(), {"formula": FieldError("formula", f"{type(exc).__name__}: {exc}")})

    @reactive.effect
    def _slots() -> None:
        new = checked().slots
        if "formula" in checked().errors and not new:
            return  # keep the boxes while the formula is being typed
        if [s.key for s in new] != [s.key for s in slots_v.get()]:
            slots_v.set(new)

    @reactive.effect
    async def _send_fields() -> None:
        c = checked()
        errors = {k: {"message": e.message, "path": [str(p) for p in e.path]} for k, e in c.errors.items()}
        if trials_error() is not None:
            errors["trials_file"] = trials_error()
        if import_error() is not None:
            errors["spec_upload"] = import_error()
        if run_error() is not None:
            field, payload = run_error()
            errors.setdefault(field, payload)
        notes = {}
        params = form()["params"]
        for slot in c.slots:
            text = str(params.get(slot.key, "")).strip().lower()
            if c.converted and slot.key in c.converted and text and text[0].isalpha():
                notes[slot.input_id] = f"= {c.converted[slot.key]:.4g} in the model's units"
        await session.send_custom_message("glmmsim-fields", {"errors": errors, "notes": notes})

    @render.ui
    def param_inputs():
        slots = slots_v()
        params_version()
        groups: list[Any] = []
        heads = {"fixed": "Fixed effects", "family": "Family parameters"}
        last = None
        for slot in slots:
            head = heads.get(slot.kind, f"Random effects of {slot.factor}")
            if head != last:
                groups.append(ui.h6(head))
                last = head
            with reactive.isolate():
                value = param_text(slot, store)
            rendered[slot.key] = value
            store[slot.key] = value
            label = slot.label + (f" ({slot.meaning})" if slot.meaning else "")
            hint = "0 when empty (uncorrelated)" if slot.kind == "corr" else None
            groups.append(ui.div(ui.input_text(slot.input_id, label, value, width="100%", placeholder=hint),
                                 *field_messages(slot.input_id)))
        return ui.div(*groups, class_="param-group")

    @reactive.effect
    @reactive.event(input.family)
    def _links() -> None:
        try:
            links = family_links(input.family())
        except GlmmsimError:
            return
        choices = {"": f"default ({links[0]})", **{link: link for link in links}}
        ui.update_select("link", choices=choices, selected="")

    @reactive.effect
    def _choices() -> None:
        slots = slots_v()
        kind = input.design_type()
        with reactive.isolate():
            current_tests = list(_value(input, "test", ()) or ())
            a1, a2 = _value(input, "along1"), _value(input, "along2")
        coefs = [s.names[0] for s in slots if s.kind == "fixed" and s.names[0] != "(Intercept)"]
        if not slots:
            return
        keep = [t for t in current_tests if t in coefs]
        ui.update_selectize("test", choices=coefs, selected=keep or coefs[:1])
        with reactive.isolate():
            units = _value(input, "units")
        along = along_choices(slots, kind, units)
        ui.update_select("along1", choices={"": "nothing (one design)", **along}, selected=a1 if a1 in along else "")
        ui.update_select("along2", choices={"": "nothing", **along}, selected=a2 if a2 in along else "")

    @render.ui
    def design_summary():
        c = checked()
        data = c.conditions
        if data is None or any(f in c.errors for f in DESIGN_FIELDS):
            return ui.p("Design: fix the fields marked in red.", class_="small text-muted")
        units = [c for s in c.slots if s.kind == "sd" for c in s.factor.split(":")]
        units += [str(form().get(f) or "") for f in ("subject_name", "item_name")]
        return ui.div(ui.tags.b("Design: "), describe_design(data, [u for u in dict.fromkeys(units) if u in data]),
                      class_="small", id="design_summary_text")

    # ------------------------------------------------------------------ uploads
    @reactive.effect
    @reactive.event(input.trials_upload)
    def _trials() -> None:
        files = input.trials_upload() or []
        trials_v.set(None)
        trials_error.set(None)
        if not files:
            return
        info = files[0]
        size = int(info.get("size") or os.path.getsize(info["datapath"]))
        if size > MAX_UPLOAD_BYTES:
            trials_error.set({"message": f"trial list {info['name']!r} has {size:,} bytes; the planner reads at most "
                                         f"{MAX_UPLOAD_BYTES:,} (GLMMSIM_APP_MAX_UPLOAD)", "path": ["design", "path"]})
            _drop(info["datapath"])
            return
        name = os.path.basename(info["name"]) or "trials.csv"
        target = os.path.join(workdir, name)
        shutil.copyfile(info["datapath"], target)
        try:
            frame = read_trials(target)
        except GlmmsimError as exc:
            trials_error.set({"message": " ".join(str(exc).split()), "path": ["design", *map(str, exc.path or ())]})
            return
        trials_name.set(name)
        trials_v.set(frame)

    @reactive.effect
    @reactive.event(input.spec_upload)
    def _import() -> None:
        files = input.spec_upload() or []
        import_error.set(None)
        if not files:
            return
        try:
            text = read_text_file(files[0]["datapath"], "spec", MAX_SPEC_BYTES)
            new = spec_to_form(text)
        except GlmmsimError as exc:
            import_error.set({"message": " ".join(str(exc).split()), "path": [str(p) for p in exc.path or ()]})
            return
        except Exception as exc:  # noqa: BLE001 - a YAML file glmmsim could not read at all
            import_error.set({"message": f"cannot read {files[0]['name']!r}: {' '.join(str(exc).split())[:300]}",
                              "path": []})
            return
        _apply_form(new)

    def _apply_form(new: dict[str, Any]) -> None:
        for name in _TEXT_FIELDS:
            if name in new:
                ui.update_text(name, value=str(new[name] or ""))
        for name in _SELECT_FIELDS:
            if name in new:
                ui.update_select(name, selected=new[name])
        ui.update_select("link", selected=new.get("link", ""))
        ui.update_radio_buttons("design_type", selected=new["design_type"])
        tests = new["test"] if isinstance(new["test"], list) else [new["test"]]
        ui.update_selectize("test", choices=tests, selected=tests)
        for n in ("1", "2"):
            path = new.get(f"along{n}") or ""
            ui.update_select(f"along{n}", choices={"": "nothing", **({path: path} if path else {})}, selected=path)
        store.clear()
        store.update(new["params"])
        rendered.clear()
        params_version.set(params_version.get() + 1)

    # ------------------------------------------------------------------ running
    @ui.bind_task_button(button_id="run")
    @reactive.extended_task
    async def run_task(spec_path: str, settings: dict, state: RunState) -> RunOutcome | None:
        def work() -> RunOutcome | None:
            try:
                out = run_power(spec_path, settings, state, pool=pool())
            except GlmmsimError as exc:
                state.update(status="error", error=exc, message=" ".join(str(exc).split()))
                return None
            except Exception as exc:  # noqa: BLE001 - a broken worker, a full disk: a message, not a crash
                log.exception("power run")
                pool_holder.pop("pool", None)
                state.update(status="error", message=f"the run stopped: {type(exc).__name__}: {exc}")
                return None
            state.update(status="cancelled" if out.cancelled else "done", outcome=out, finished=time.monotonic())
            return out

        return await asyncio.to_thread(work)

    @reactive.effect
    @reactive.event(input.run)
    def _start() -> None:
        run_error.set(None)
        c = checked()
        if c.spec is None:
            snap_v.set({"status": "invalid", "message": f"{len(c.errors)} field(s) need fixing (marked in red)",
                        "done": 0, "total": 1, "estimate": "", "rows": [], "elapsed": 0.0, "version": -1})
            return
        spec = c.spec
        run_dir = tempfile.mkdtemp(dir=workdir)
        path = os.path.join(run_dir, "study.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(spec_yaml(spec))
        if spec["design"]["type"] == "file":
            shutil.copyfile(os.path.join(workdir, trials_name()), os.path.join(run_dir, spec["design"]["path"]))
        settings = spec["power"]
        points = len(curve_points(settings.get("along") or {}))
        state = RunState(total=int(settings["nsim"]) * points)
        pool_holder.setdefault("states", []).append(state)  # cancelled when the tab closes
        old = state_v.get()
        if old is not None:
            old.cancel()
        state_v.set(state)
        outcome_v.set(None)
        rows_v.set([])
        ran_spec_v.set(spec)
        snap_v.set(state.snapshot())
        run_task(path, settings, state)

    @reactive.effect
    @reactive.event(input.cancel)
    def _cancel() -> None:
        state = state_v.get()
        if state is not None:
            state.cancel()

    @reactive.effect
    def _poll() -> None:
        state = state_v()
        if state is None:
            return
        snap = state.snapshot()
        with reactive.isolate():
            old = snap_v.get()
        if old is None or old.get("version") != snap["version"] or old.get("status") != snap["status"]:
            snap_v.set(snap)
        with reactive.isolate():
            if len(rows_v.get()) != len(snap["rows"]):
                rows_v.set(snap["rows"])
        if snap["status"] in ("starting", "running"):
            reactive.invalidate_later(0.25)
        elif snap["outcome"] is not None:
            with reactive.isolate():
                if outcome_v.get() is not snap["outcome"]:
                    outcome_v.set(snap["outcome"])
        elif snap["status"] == "error" and snap["error"] is not None:
            exc = snap["error"]
            head = str(exc.parameter or "")
            field = head if head in ANALYSIS_FIELDS else "test" if head in ("test", "method") else "params"
            with reactive.isolate():
                if run_error.get() is None:
                    run_error.set((field, {"message": " ".join(str(exc).split()), "path": list(map(str, exc.path or ()))}))

    @render.ui
    def run_status():
        snap = snap_v()
        if snap is None:
            return ui.p("Press Run: the curve fills in point by point.", class_="small text-muted")
        done, total = snap["done"], max(1, snap["total"])
        words = {"starting": "starting the worker", "running": "running", "done": "done", "cancelled": "cancelled",
                 "error": "stopped", "invalid": "not started"}
        text = f"{words.get(snap['status'], snap['status'])}: {done:,} of {total:,} replicates, {snap['elapsed']:.1f} s"
        if snap["status"] == "running":
            text += f" ({eta(snap)})" if eta(snap) else ""
        parts = [ui.tags.progress(value=str(done), max=str(total), id="run_bar"),
                 ui.div(text, id="run_text", **{"data-status": snap["status"]})]
        if snap.get("estimate"):
            parts.append(ui.div(snap["estimate"], id="run_estimate", class_="small"))
        if snap.get("message"):
            parts.append(ui.div(snap["message"], id="run_message", class_="run-message"))
        return ui.div(*parts)

    def _current_table() -> tuple[pd.DataFrame, list[str], list[str], float, float] | None:
        outcome = outcome_v()
        spec = ran_spec_v()
        if spec is None:
            return None
        settings = spec["power"]
        along = list((settings.get("along") or {}))
        from .runner import along_columns

        columns = list(along_columns(along).values())
        if outcome is not None:
            return outcome.table, outcome.along, outcome.tests, outcome.target, float(settings["alpha"])
        rows = rows_v()
        if not rows:
            return None
        tests = settings["test"] if isinstance(settings["test"], list) else [settings["test"]]
        return pd.DataFrame(rows), columns, tests, float(settings["target"]), float(settings["alpha"])

    @render.plot(alt="power curve with its 95% band and the target line")
    def curve_plot():
        current = _current_table()
        if current is None:
            return None
        table, along, tests, target, alpha = current
        return curve_figure(table, along, tests, target, alpha, layout="tight")

    @render.table
    def curve_table():
        current = _current_table()
        if current is None:
            return None
        shown = current[0].copy()
        for c in ("power", "ci_low", "ci_high"):
            if c in shown:
                shown[c] = shown[c].map(lambda v: f"{v:.3f}")
        for c in ("failed", "singular", "warned", "power_failures_as_misses", "power_nonsingular"):
            if c in shown:
                shown[c] = shown[c].map(lambda v: "n/a" if pd.isna(v) else f"{100 * v:.1f}%")
        return shown

    @render.ui
    def answer():
        outcome = outcome_v()
        if outcome is None:
            return None
        if outcome.cancelled:
            head = ui.p(f"Cancelled after {len(outcome.results)} point(s).", id="answer_text")
            return head
        if not outcome.along:
            r = outcome.results[0]
            ci = r.ci if len(r.tests) == 1 else (float("nan"), float("nan"))
            return ui.p(f"Power {float(r.table['power'].iloc[0]):.3f} (95% CI {ci[0]:.3f} to {ci[1]:.3f}).",
                        id="answer_text")
        best = outcome.smallest()
        if best is None:
            return ui.p(f"No point reaches power {outcome.target:g}: extend the values.", id="answer_text")
        where = ", ".join(f"{n} = {best[n]}" for n in outcome.along)
        return ui.p(ui.tags.b(f"Smallest design reaching power {outcome.target:g}: {where}"),
                    f" (power {best['power']:.3f}, 95% CI {best['ci_low']:.3f} to {best['ci_high']:.3f}).",
                    id="answer_text")

    @render.ui
    def rates():
        outcome = outcome_v()
        if outcome is None or outcome.simulations.empty:
            return None
        sims = outcome.simulations
        failed = float((~sims["converged"].astype(bool) | (sims["error"] != "")).mean())
        singular = float(sims["singular"].astype(float).mean())
        warned = float(sims["warned"].astype(bool).mean())
        return ui.p(f"Over all {len(sims):,} fits: failed {100 * failed:.1f}%, singular {100 * singular:.1f}%, "
                    f"kept with convergence warnings {100 * warned:.1f}%.", class_="small", id="rates_text")

    @reactive.effect
    def _prereg_choices() -> None:
        outcome = outcome_v()
        if outcome is None or not outcome.results:
            return
        labels = _point_labels(outcome)
        best = outcome.smallest()
        chosen = 0
        if best is not None:
            rows = outcome.table.drop_duplicates(subset=outcome.along) if outcome.along else outcome.table
            for i, (_, row) in enumerate(rows.iterrows()):
                if all(row[n] == best[n] for n in outcome.along):
                    chosen = i
                    break
        ui.update_select("prereg_point", choices={str(i): lab for i, lab in enumerate(labels)},
                         selected=str(chosen if best is not None else len(labels) - 1))

    @render.ui
    def prereg():
        outcome = outcome_v()
        if outcome is None or not outcome.results:
            return None
        try:
            i = int(input.prereg_point() or 0)
        except ValueError:
            i = 0
        i = min(max(i, 0), len(outcome.results) - 1)
        return ui.tags.pre(outcome.results[i].summary(), class_="prereg", id="prereg_text")

    # ------------------------------------------------------------------ exports
    def _spec_or_message() -> dict:
        spec = checked().spec
        if spec is None:
            raise _DownloadRefused("the form has errors (marked in red)")
        return spec

    @render.download(filename="study.yaml")
    def dl_spec():
        yield spec_yaml(ran_spec_v() if outcome_v() is not None else _spec_or_message())

    @render.download(filename="power_study.py")
    def dl_script():
        yield python_script(ran_spec_v() if outcome_v() is not None else _spec_or_message())

    @render.download(filename="power.csv")
    def dl_table():
        outcome = outcome_v()
        yield table_csv(outcome.table) if outcome is not None else "no run yet\n"

    @render.download(filename="simulations.csv")
    def dl_sims():
        outcome = outcome_v()
        yield table_csv(outcome.simulations) if outcome is not None else "no run yet\n"

    def _figure(fmt: str) -> bytes:
        current = _current_table()
        if current is None:
            raise _DownloadRefused("no run yet")
        return figure_bytes(curve_figure(*current), fmt)

    @render.download(filename="power_curve.png")
    def dl_png():
        yield _figure("png")

    @render.download(filename="power_curve.svg")
    def dl_svg():
        yield _figure("svg")


class _DownloadRefused(Exception):
    """A download asked for before there is anything to download."""


def _drop(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _point_labels(outcome: RunOutcome) -> list[str]:
    if not outcome.along:
        return ["the design"]
    rows = outcome.table.drop_duplicates(subset=outcome.along).astype(object)  # whole numbers stay ints
    return [", ".join(f"{n} = {row[n]}" for n in outcome.along) for _, row in rows.iterrows()][: len(outcome.results)]


def describe_design(data: pd.DataFrame, units: list[str]) -> str:
    """One line about a design: rows, the units' counts, factor levels, balance.

    Examples
    --------
    >>> from glmmsim.design import crossed
    >>> describe_design(crossed(4, 3, within={"cond": ["a", "b"]}), ["subject", "item"])
    '24 rows; subject: 4, item: 3; cond: a, b; balanced (6 rows per subject)'
    """
    factors = [c for c in data.columns if c not in units and is_label_column(data[c]) and data[c].nunique() <= 12]
    parts = [f"{len(data):,} rows"]
    if units:
        parts.append(", ".join(f"{u}: {data[u].nunique():,}" for u in units))
    if factors:
        parts.append("; ".join(f"{f}: {', '.join(map(str, pd.unique(data[f])))}" for f in factors))
    if units:
        counts = data.groupby(units[0], observed=True).size()
        parts.append(f"balanced ({counts.iloc[0]} rows per {units[0]})" if counts.nunique() == 1 else
                     f"unbalanced ({counts.min()}-{counts.max()} rows per {units[0]})")
    return "; ".join(parts)
