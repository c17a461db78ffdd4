"""The power planner driven in Chromium: a curve equal to `glmmsim power` on the exported spec,
spec export and import, cancel, two tabs at once, and bad inputs beside their fields."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.usefixtures("browser_ready")

FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"
# the README's power question: 600 ms, a 20 ms effect, subject and item variation
VALUES = {"(Intercept)": "600", "condb": "20", "SD subject (Intercept)": "60", "SD subject condb": "30",
          "corr subject (Intercept), condb": "0.2", "SD item (Intercept)": "30",
          "sigma": "120"}


def settle(page, pause: float = 0.6) -> None:
    """Let Shiny send the last input (it waits 250 ms for typing to stop) and answer it."""
    time.sleep(pause)
    page.wait_for_function("() => !document.documentElement.classList.contains('shiny-busy')")


def set_text(page, field: str, value: str) -> None:
    page.fill(f"#{field}", value)
    settle(page)


def field_error(page, field: str) -> str:
    return page.locator(f'.field-error[data-for="{field}"]').first.inner_text().strip()


def field_path(page, field: str) -> str:
    return page.locator(f'.field-error[data-for="{field}"] + .field-path').first.inner_text().strip()


def param_box(page, label: str):
    return page.locator("#param_inputs").get_by_label(label, exact=True)


def fill_model(page) -> None:
    page.fill("#formula", "")
    page.locator("#formula").press_sequentially(FORMULA, delay=5)
    settle(page, 1.0)
    for label, value in VALUES.items():
        param_box(page, label).fill(value)
    settle(page)


def run_and_wait(page, timeout: float = 240_000) -> None:
    page.click("#run")
    page.wait_for_selector("#run_text[data-status=done]", timeout=timeout)
    page.wait_for_selector("#answer_text")
    settle(page)


def download(page, button: str, path) -> str:
    with page.expect_download() as info:
        page.click(f"#{button}")
    info.value.save_as(path)
    return path


def test_curve_equals_the_command_on_the_exported_spec_and_the_spec_reimports(planner, tmp_path, shots):
    page = planner
    fill_model(page)
    # the boxes are the model's own parameters, named as lme4 names them
    labels = page.locator("#param_inputs label").all_inner_texts()
    assert labels == list(VALUES)
    set_text(page, "nsim", "40")
    set_text(page, "values1", "10, 20, 30")
    set_text(page, "seed", "7")
    run_and_wait(page)
    page.wait_for_selector("#curve_plot img")
    rows = page.locator("#curve_table tbody tr")
    assert rows.count() == 3
    page.screenshot(path=str(shots / "planner.png"), full_page=True)

    spec_file = download(page, "dl_spec", tmp_path / "study.yaml")
    table_file = download(page, "dl_table", tmp_path / "app.csv")
    sims_file = download(page, "dl_sims", tmp_path / "sims.csv")
    png = download(page, "dl_png", tmp_path / "curve.png")
    svg = download(page, "dl_svg", tmp_path / "curve.svg")
    script = download(page, "dl_script", tmp_path / "power_study.py")
    spec = yaml.safe_load(open(spec_file))
    assert spec["power"]["seed"] == 7 and spec["power"]["along"] == {"design.subjects": [10, 20, 30]}
    cli = subprocess.run([sys.executable, "-m", "glmmsim.cli", "power", str(spec_file), "--out",
                          str(tmp_path / "cli.csv"), "-q"], capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr
    # the same numbers, digit for digit
    assert open(table_file).read() == open(tmp_path / "cli.csv").read()
    app_table = pd.read_csv(table_file)
    assert app_table["subjects"].tolist() == [10, 20, 30] and (app_table["nsim"] == 40).all()
    assert len(pd.read_csv(sims_file)) == 3 * 40
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in open(svg, "rb").read(2000)
    # the exported script runs the same analysis through the Python API
    os.replace(spec_file, tmp_path / "study.yaml")
    ran = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert pd.read_csv(tmp_path / "curve.csv").equals(app_table)
    # the page's answer and preregistration text are the run's
    best = app_table[app_table["power"] >= 0.8]
    answer = page.inner_text("#answer_text")
    assert ("Smallest design" in answer) == (not best.empty)
    assert "Power analysis by simulation" in page.inner_text("#prereg_text")
    assert "failed" in page.inner_text("#rates_text")

    # import: change the form, load the spec, the form comes back
    set_text(page, "nsim", "999")
    param_box(page, "condb").fill("5")
    settle(page)
    page.set_input_files("#spec_upload", str(tmp_path / "study.yaml"))
    settle(page, 1.5)
    assert page.input_value("#nsim") == "40"
    assert page.input_value("#seed") == "7"
    assert param_box(page, "condb").input_value() == "20"
    assert page.input_value("#formula") == FORMULA


def test_bad_inputs_are_shown_beside_their_fields(planner, tmp_path, shots):
    page = planner
    # a bad formula: glmmsim's own message, as you type, with its path
    page.fill("#formula", "rt ~ cond + (1 + cond | subject")
    settle(page)
    assert "never closed" in field_error(page, "formula")
    assert field_path(page, "formula") == "path: formula"
    page.locator(".accordion-item").first.screenshot(path=str(shots / "formula_error.png"))
    page.fill("#formula", FORMULA)
    settle(page)
    assert field_error(page, "formula") == ""

    # a missing parameter
    box = param_box(page, "condb")
    box.fill("")
    settle(page)
    box_id = box.get_attribute("id")
    assert "no value for coefficient" in field_error(page, box_id)
    assert "fixed" in field_path(page, box_id)
    page.click("#run")
    settle(page)
    assert "need fixing" in page.inner_text("#run_message")
    box.fill("20")
    settle(page)
    assert field_error(page, box_id) == ""

    # an SD below zero names its factor and coefficient
    sd = param_box(page, "SD subject condb")
    sd.fill("-1")
    settle(page)
    assert "must be >= 0" in field_error(page, sd.get_attribute("id"))
    assert "subject" in field_path(page, sd.get_attribute("id"))
    sd.fill("30")

    # a design beyond glmmsim's row limit is refused before anything is built
    set_text(page, "subjects", "100000")
    set_text(page, "items", "10000")
    assert "the limit is 20,000,000 rows" in field_error(page, "subjects")
    page.locator(".accordion-item").nth(1).screenshot(path=str(shots / "errors.png"))
    set_text(page, "subjects", "30")
    set_text(page, "items", "20")
    assert field_error(page, "subjects") == ""

    # too many replicates for the row budget
    set_text(page, "nsim", "1000000")
    assert "nsim" in field_error(page, "nsim")
    set_text(page, "nsim", "100")

    # a 50 MB trial list is refused (the page's upload limit), and the server keeps answering
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.write(b"subject,item,cond\n")
        fh.write(b"s001,i001,a\n" * (50 * 2**20 // 12))
    page.check("input[name=design_type][value=file]")
    settle(page)
    page.set_input_files("#trials_upload", str(big))
    page.wait_for_function(
        "() => document.querySelector('.field-error[data-for=trials_file]').textContent.includes('at most')",
        timeout=120_000)
    assert "bytes" in field_error(page, "trials_file")
    # a small trial list is read and used
    small = tmp_path / "trials.csv"
    pd.DataFrame({"subject": [f"s{i}" for i in range(12) for _ in range(8)],
                  "item": [f"i{j}" for _ in range(12) for j in range(8)],
                  "cond": ["a", "b"] * 48}).to_csv(small, index=False)
    page.set_input_files("#trials_upload", str(small))
    settle(page, 1.5)
    assert field_error(page, "trials_file") == ""
    assert "96 rows" in page.inner_text("#design_summary")


def test_cancel_stops_the_run_and_two_tabs_run_at_once(planner, chromium_browser, app_url):
    page = planner
    set_text(page, "nsim", "3000")
    set_text(page, "values1", "20, 30, 40, 50, 60")
    page.click("#run")
    page.wait_for_function("() => Number((document.querySelector('#run_bar') || {}).value || 0) > 0",
                           timeout=120_000)

    # a second tab runs a small study to the end while the first is still running
    other = chromium_browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    other.set_default_timeout(120_000)
    other.goto(app_url[0])
    other.wait_for_selector("#param_inputs input")
    set_text(other, "nsim", "20")
    set_text(other, "values1", "10, 20")
    run_and_wait(other)
    assert other.locator("#curve_table tbody tr").count() == 2
    assert page.get_attribute("#run_text", "data-status") == "running"
    other.context.close()

    page.click("#cancel")
    page.wait_for_selector("#run_text[data-status=cancelled]", timeout=30_000)
    done = int(page.get_attribute("#run_bar", "value"))
    assert 0 < done < 15_000
    time.sleep(2)
    assert int(page.get_attribute("#run_bar", "value")) == done  # no more replicates counted
    assert "Cancelled" in page.inner_text("#answer_text")
    # the page still works after a cancel
    set_text(page, "nsim", "10")
    set_text(page, "values1", "10")
    run_and_wait(page)
    assert page.get_attribute("#run_text", "data-status") == "done"
