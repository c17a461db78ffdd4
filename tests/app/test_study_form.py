"""The planner without a browser: parameter boxes from the model, the form <-> spec translation,
errors placed by their attributes, exports, and runs equal to glmmsim.power_curve."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

import glmmsim
from glmmsim.app.exports import curve_figure, figure_bytes, python_script, spec_yaml
from glmmsim.app.parameters import model_slots
from glmmsim.app.runner import RunState, along_columns, curve_points, run_power, start_pool
from glmmsim.app.study_form import along_choices, check_form, example_form, spec_to_form
from glmmsim.cli import main
from glmmsim.study import parse_spec


def slot_id(form, label):
    return next(s.input_id for s in check_form(form).slots if s.label == label)


def test_boxes_follow_the_formula_and_family():
    three = model_slots("y ~ x * cond + (1 + x || subject) + (1 | school/class)", "negative_binomial", None,
                        {"cond": ["a", "b", "c"]})
    assert [s.label for s in three] == [
        "(Intercept)", "x", "condb", "condc", "x:condb", "x:condc",
        "SD subject (Intercept)", "SD subject x",  # || : no correlation box
        "SD school (Intercept)", "SD school:class (Intercept)", "theta"]
    assert [s.label for s in model_slots("acc ~ cond + (1 | s)", "binomial", None, {"cond": ["a", "b"]})] == [
        "(Intercept)", "condb", "SD s (Intercept)"]  # no sigma for a binomial model


def test_example_form_is_the_readme_study():
    spec = check_form(example_form()).spec
    readme = parse_spec((Path(__file__).resolve().parents[2] / "examples" / "power.yaml").read_text())
    ours = parse_spec(spec_yaml(spec))
    data = ours.conditions()
    assert data.equals(readme.conditions())
    assert ours.model.predict(data).equals(readme.model.predict(data))


def test_spec_round_trip_through_yaml():
    form = {**example_form(), "between_subjects": "group: control, training", "repetitions": "2",
            "covariates": "age: subject normal 35 10", "along2": "fixed.condb", "values2": "10, 20",
            "formula": "rt ~ cond + group + age + (1 + cond | subject) + (1 | item)",
            "params": {**example_form()["params"], "fixed||grouptraining": "5", "fixed||age": "1.5"}}
    checked = check_form(form)
    assert checked.errors == {}
    again = check_form(spec_to_form(spec_yaml(checked.spec)))
    assert again.errors == {}
    assert again.spec == checked.spec


def test_effect_sizes_use_glmmsims_helpers():
    form = {**example_form(), "total_sd": "150",
            "params": {**example_form()["params"], "fixed||condb": "d=0.15", "sd|item|(Intercept)": "icc=0.1"}}
    checked = check_form(form)
    assert checked.errors == {}
    assert checked.spec["model"]["fixed"]["condb"] == glmmsim.analysis.coefficient_from_d(0.15, 150)
    expected = glmmsim.analysis.sds_from_icc({"item": 0.1}, sigma=120)["random"]["item"]
    assert checked.spec["model"]["random"]["item"] == pytest.approx(expected)
    binom = {**example_form(), "formula": "acc ~ cond + (1 | subject) + (1 | item)", "family": "binomial",
             "params": {"fixed||(Intercept)": "1", "fixed||condb": "OR=1.5", "sd|subject|(Intercept)": "0.5",
                        "sd|item|(Intercept)": "0.3"}}
    checked = check_form(binom)
    assert checked.errors == {}
    assert checked.spec["model"]["fixed"]["condb"] == pytest.approx(0.405465, abs=1e-6)


def test_errors_sit_on_their_fields_with_paths():
    form = example_form()
    missing = check_form({**form, "params": {**form["params"], "fixed||condb": ""}}).errors
    assert list(missing) == [slot_id(form, "condb")]
    assert missing[slot_id(form, "condb")].path == ("fixed",)
    negative = check_form({**form, "params": {**form["params"], "sd|subject|condb": "-2"}}).errors
    assert negative[slot_id(form, "SD subject condb")].path == ("random", "subject", "condb")
    assert check_form({**form, "formula": "rt ~ cond + (1 | subject"}).errors["formula"].path == ("formula",)
    huge = check_form({**form, "subjects": "100000", "items": "10000"}).errors
    assert "20,000,000 rows" in huge["subjects"].message
    assert "50 per run" in check_form({**form, "values1": ", ".join(map(str, range(10, 70)))}).errors[
        "values1"].message.replace("at most ", "")
    letters = check_form({**form, "params": {**form["params"], "fixed||condb": "twenty"}}).errors
    assert "expected a number" in letters[slot_id(form, "condb")].message
    unknown_column = check_form({**form, "formula": "rt ~ cond + age + (1 | subject)"}).errors
    assert "'age'" in unknown_column["within"].message


def test_bad_spec_is_refused_with_the_spec_error():
    text = spec_yaml(check_form(example_form()).spec).replace("sigma:", "sigmaa:")
    with pytest.raises(glmmsim.errors.ParameterError, match="sigmaa"):
        spec_to_form(text)


def test_run_equals_power_curve_and_script(tmp_path):
    form = {**example_form(), "nsim": "12", "values1": "8, 12", "along2": "fixed.condb", "values2": "10, 40"}
    spec = check_form(form).spec
    path = tmp_path / "study.yaml"
    path.write_text(spec_yaml(spec))
    state = RunState(total=48)
    pool = start_pool(1)
    try:
        out = run_power(str(path), spec["power"], state, pool=pool)
    finally:
        pool.shutdown()
    assert state.snapshot()["done"] == 48 and len(state.snapshot()["rows"]) == 4
    study = lambda **v: glmmsim.study.load_spec(  # noqa: E731
        str(path), overrides=[("--along", f"design.subjects={v['subjects']}"), ("--along", f"fixed.condb={v['condb']}")])
    curve = glmmsim.power_curve(lambda **v: study(**v).model, lambda **v: study(**v).conditions(),
                                along={"subjects": [8, 12], "condb": [10, 40]}, test="condb", nsim=12, seed=1,
                                progress=False)
    pd.testing.assert_frame_equal(out.table, curve.table)
    pd.testing.assert_frame_equal(out.simulations, curve.simulations)
    assert curve_points(spec["power"]["along"])[1] == {"design.subjects": 8, "fixed.condb": 40}
    assert along_columns(["design.subjects", "fixed.condb"]) == {"design.subjects": "subjects", "fixed.condb": "condb"}
    fig = curve_figure(out.table, out.along, out.tests, 0.8, 0.05)
    assert figure_bytes(fig, "png")[:4] == b"\x89PNG"
    assert "design.subjects" in python_script(spec)


def test_cancel_keeps_finished_points(tmp_path):
    spec = check_form({**example_form(), "nsim": "200", "values1": "8, 10, 12"}).spec
    path = tmp_path / "study.yaml"
    path.write_text(spec_yaml(spec))
    state = RunState(total=600)

    def cancel_after_first_point():
        while len(state.snapshot()["rows"]) < 1:
            threading.Event().wait(0.05)
        state.cancel()

    threading.Thread(target=cancel_after_first_point, daemon=True).start()
    out = run_power(str(path), spec["power"], state)
    assert out.cancelled
    assert 1 <= len(out.table) < 3
    assert state.snapshot()["done"] < 600


def test_cli_app_command_help(capsys):
    assert main(["app", "--help"]) == 0
    assert "--no-browser" in capsys.readouterr().out
    assert main(["app", "--port", "0"]) == 2


def test_nested_design_and_trial_list_run_like_the_command(tmp_path):
    nested_form = {**example_form(), "design_type": "nested", "units": "school: 6; class: 2; pupil: 5",
                   "unit_between": "school: treatment = control, program", "within": "",
                   "formula": "y ~ treatment + (1 | school/class)", "test": "treatmentprogram",
                   "along1": "design.repetitions", "values1": "1, 2", "nsim": "8",
                   "params": {"fixed||Intercept": "0", "fixed||treatmentprogram": "0.3",
                              "sd|school|(Intercept)": "0.5", "sd|school:class|(Intercept)": "0.3",
                              "family||sigma": "1"}}
    checked = check_form(nested_form)
    assert checked.errors == {}
    assert list(checked.spec["design"]["levels"]) == ["school", "class", "pupil"]  # outermost first
    assert len(checked.conditions) == 60
    # a curve along the count of schools, and the spec back into the form
    along_schools = {**nested_form, "along1": "design.levels.school", "values1": "6, 12"}
    checked = check_form(along_schools)
    assert "design.levels.school" in along_choices(checked.slots, "nested", along_schools["units"])
    assert check_form(spec_to_form(spec_yaml(checked.spec))).spec == checked.spec
    # a trial list: the spec names it, the run reads it beside the spec, as the command does
    trials = pd.DataFrame({"subject": [f"s{i}" for i in range(10) for _ in range(6)],
                           "item": [f"i{j}" for _ in range(10) for j in range(6)], "cond": ["a", "b"] * 30})
    trials.to_csv(tmp_path / "trials.csv", index=False)
    file_form = {**example_form(), "design_type": "file", "trials_file": True, "trials_name": "trials.csv",
                 "along1": "", "nsim": "6"}
    spec = check_form(file_form, trials).spec
    assert spec["design"] == {"type": "file", "path": "trials.csv"}
    (tmp_path / "study.yaml").write_text(spec_yaml(spec))
    out = run_power(str(tmp_path / "study.yaml"), spec["power"], RunState(total=6))
    direct = glmmsim.power(glmmsim.study.load_spec(str(tmp_path / "study.yaml")).model, trials, test="condb",
                           nsim=6, seed=1, progress=False)
    pd.testing.assert_frame_equal(out.table, direct.table.reset_index())


def test_app_command_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "shiny", None)  # import shiny raises ImportError
    assert main(["app", "--no-browser"]) == 1
    assert "pip install 'glmmsim[app]'" in capsys.readouterr().err
