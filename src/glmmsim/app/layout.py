"""The planner's page: the form on the left (model, parameters, design, analysis), results on the right.

Every field has a place for its error right below it (``div.field-error[data-for=ID]``),
filled by the server with glmmsim's message and the error's ``path``; a note
(``div.field-note``) shows what an effect size was converted to.
"""

from __future__ import annotations

from typing import Any

from shiny import ui

from ..model.families import FAMILY_NAMES
from .study_form import example_form

__all__ = ["page", "field_messages"]

_SCRIPT = """
(function () {
  let last = {errors: {}, notes: {}};
  function apply() {
    document.querySelectorAll('.field-error[data-for]').forEach(function (el) {
      const e = last.errors[el.dataset.for];
      el.textContent = e ? e.message : '';
      const path = el.nextElementSibling && el.nextElementSibling.classList.contains('field-path') ? el.nextElementSibling : null;
      if (path) { path.textContent = e && e.path.length ? 'path: ' + e.path.join(' \u2192 ') : ''; }
      const input = document.getElementById(el.dataset.for);
      if (input) { input.classList.toggle('is-invalid', !!e); }
    });
    document.querySelectorAll('.field-note[data-for]').forEach(function (el) {
      el.textContent = last.notes[el.dataset.for] || '';
    });
  }
  $(document).on('shiny:connected', function () {
    Shiny.addCustomMessageHandler('glmmsim-fields', function (msg) { last = msg; apply(); });
  });
  $(document).on('shiny:value', function () { setTimeout(apply, 0); });
})();
"""

_STYLE = """
.field-error { color: #b00020; font-size: 0.85em; white-space: pre-wrap; }
.field-path { color: #666; font-size: 0.75em; font-family: monospace; }
.field-note { color: #1b5e20; font-size: 0.8em; }
.run-message { color: #b00020; }
.param-group h6 { margin-top: 0.6em; }
.run-progress progress { width: 100%; height: 1.2em; }
pre.prereg { font-size: 0.78em; white-space: pre-wrap; }
.results-card { min-height: 10em; }
"""


def field_messages(field_id: str) -> list[Any]:
    """The error, its path and a note, shown under a field."""
    return [
        ui.div(class_="field-error", **{"data-for": field_id}),
        ui.div(class_="field-path"),
        ui.div(class_="field-note", **{"data-for": field_id}),
    ]


def _text(field_id: str, label: str, value: str, **kwargs: Any) -> ui.Tag:
    return ui.div(ui.input_text(field_id, label, value, width="100%", **kwargs), *field_messages(field_id))


def _model_panel(form: dict) -> ui.Tag:
    return ui.accordion_panel(
        "1. Model",
        _text("formula", "lme4 formula", form["formula"], placeholder="rt ~ cond + (1 + cond | subject) + (1 | item)"),
        ui.layout_columns(
            ui.div(ui.input_select("family", "Family", list(FAMILY_NAMES), selected=form["family"]),
                   *field_messages("family")),
            ui.div(ui.input_select("link", "Link", {"": "default"}, selected=""), *field_messages("link")),
        ),
        ui.p("One box per parameter, named as lme4 names it. Type a number in the model's units, or an effect "
             "size: d=0.2 (Cohen's d), OR=1.5 (odds ratio), share=0.15 (share of the variance, for SDs and sigma), "
             "icc=0.2 (random intercepts).", class_="small text-muted"),
        _text("total_sd", "Total SD of one observation (for d= and share=)", form["total_sd"], placeholder="e.g. 150"),
        ui.output_ui("param_inputs"),
        *field_messages("params"),
    )


def _design_panel(form: dict) -> ui.Tag:
    return ui.accordion_panel(
        "2. Design",
        ui.input_radio_buttons("design_type", None, {"crossed": "crossed (subjects x items)", "nested": "nested",
                                                      "file": "trial list (CSV)"}, selected=form["design_type"],
                               inline=True),
        ui.panel_conditional(
            "input.design_type === 'crossed'",
            ui.layout_columns(_text("subjects", "Subjects", form["subjects"]),
                              _text("items", "Items (0: none)", form["items"])),
            ui.layout_columns(_text("subject_name", "Subject column", form["subject_name"]),
                              _text("item_name", "Item column", form["item_name"])),
            _text("between_subjects", "Between subjects (factor: levels)", form["between_subjects"],
                  placeholder="group: control, training"),
            _text("between_items", "Between items (factor: levels)", form["between_items"],
                  placeholder="frequency: high, low"),
        ),
        ui.panel_conditional(
            "input.design_type === 'nested'",
            _text("units", "Units, outermost first (name: count or low-high)", form["units"]),
            _text("unit_between", "Between factors of a unit (unit: factor = levels)", form["unit_between"],
                  placeholder="school: treatment = control, program"),
        ),
        ui.panel_conditional(
            "input.design_type !== 'file'",
            _text("within", "Within factors (factor: levels; reference level first)", form["within"],
                  placeholder="cond: a, b"),
            ui.layout_columns(_text("repetitions", "Repetitions of every cell", form["repetitions"]),
                              _text("covariates", "Covariates (name: per dist a b)", form["covariates"],
                                    placeholder="age: subject normal 35 10")),
        ),
        ui.panel_conditional(
            "input.design_type === 'file'",
            ui.input_file("trials_upload", "Trial list (CSV, one row per observation)", accept=[".csv", ".tsv"]),
            *field_messages("trials_file"),
        ),
        ui.output_ui("design_summary"),
    )


def _analysis_panel(form: dict) -> ui.Tag:
    return ui.accordion_panel(
        "3. Analysis",
        ui.div(ui.input_selectize("test", "Test(s)", {form["test"]: form["test"]}, selected=form["test"],
                                  multiple=True), *field_messages("test")),
        ui.layout_columns(
            ui.div(ui.input_select("method", "Method", {"auto": "auto", "satterthwaite": "Satterthwaite t", "kr":
                                                        "Kenward-Roger t (lmm or lme4)", "z": "Wald z", "lrt": "likelihood ratio"},
                                   selected=form["method"]), *field_messages("method")),
            ui.input_select("engine", "Engine", {"auto": "auto (lmm for linear models, glmm otherwise)",
                                                        "lmm": "lmm (exact linear mixed models)", "glmm": "glmm (GLMMs)",
                                                        "lme4": "lme4 (R)"}, selected=form["engine"]),
        ),
        ui.layout_columns(_text("alpha", "Alpha", form["alpha"]), _text("nsim", "Replicates per point", form["nsim"]),
                          _text("target", "Target power", form["target"])),
        ui.layout_columns(
            ui.div(ui.input_select("along1", "Vary", {"": "nothing (one design)", form["along1"]: form["along1"]},
                                   selected=form["along1"]), *field_messages("along1")),
            _text("values1", "Values", form["values1"]),
        ),
        ui.layout_columns(
            ui.div(ui.input_select("along2", "and (a grid)", {"": "nothing"}, selected=""), *field_messages("along2")),
            _text("values2", "Values", form["values2"]),
        ),
        ui.layout_columns(
            ui.input_select("failures", "Failed fits", {"exclude": "excluded (rate shown)",
                                                        "nonsignificant": "count as non-significant"},
                            selected=form["failures"]),
            _text("seed", "Seed", form["seed"]),
        ),
    )


def _files_panel() -> ui.Tag:
    return ui.accordion_panel(
        "4. Import and export",
        ui.input_file("spec_upload", "Load a spec (YAML) into the form", accept=[".yaml", ".yml"]),
        *field_messages("spec_upload"),
        ui.div(
            ui.download_button("dl_spec", "Spec (YAML)", class_="btn-sm"),
            ui.download_button("dl_script", "Python script", class_="btn-sm"),
            ui.download_button("dl_table", "Table (CSV)", class_="btn-sm"),
            ui.download_button("dl_sims", "Simulations (CSV)", class_="btn-sm"),
            ui.download_button("dl_png", "Figure (PNG)", class_="btn-sm"),
            ui.download_button("dl_svg", "Figure (SVG)", class_="btn-sm"),
            class_="d-flex flex-wrap gap-1",
        ),
        ui.p("The spec reproduces the page's numbers: glmmsim power study.yaml (same seed, same table).",
             class_="small text-muted"),
    )


def page() -> ui.Tag:
    """The whole page."""
    form = example_form()
    return ui.page_fluid(
        ui.head_content(ui.tags.style(_STYLE), ui.tags.script(_SCRIPT), ui.tags.title("glmmsim power planner")),
        ui.h3("glmmsim power planner", class_="mt-2"),
        ui.p("Power by simulation for mixed models in lme4's formula language: write the model, give its "
             "values, describe the design, and run a power curve.", class_="text-muted"),
        ui.layout_columns(
            ui.div(ui.accordion(_model_panel(form), _design_panel(form), _analysis_panel(form), _files_panel(),
                                id="form_panels", open=True, multiple=True)),
            ui.div(
                ui.card(
                    ui.card_header("Run"),
                    ui.div(
                        ui.input_task_button("run", "Run power analysis", label_busy="Running..."),
                        ui.input_action_button("cancel", "Cancel", class_="btn-outline-danger"),
                        class_="d-flex gap-2",
                    ),
                    ui.div(ui.output_ui("run_status"), class_="run-progress", id="run_status_box"),
                ),
                ui.card(ui.card_header("Power curve"), ui.output_plot("curve_plot", height="340px"),
                        class_="results-card"),
                ui.card(ui.card_header("Table"), ui.output_ui("answer"), ui.output_table("curve_table"),
                        ui.output_ui("rates")),
                ui.card(ui.card_header("For the preregistration"),
                        ui.input_select("prereg_point", "Design point", {"": "(after a run)"}),
                        ui.output_ui("prereg")),
            ),
            col_widths=(5, 7),
        ),
    )
