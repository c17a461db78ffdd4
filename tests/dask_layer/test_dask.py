"""Dask scale-out: partitioned designs and simulations equal the pandas ones, bit for bit.

One ``LocalCluster(processes=True)`` with two single-threaded workers serves the whole
module, so the models, designs and tasks really travel to other processes (pickled).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from glmmsim import DataError, FormulaError, GlmmsimWarning, Model  # noqa: E402
from glmmsim.cli import main  # noqa: E402
from glmmsim.design import crossed, nested  # noqa: E402
from glmmsim.execution import resolve_executor
from glmmsim.dask import frames as dask_frames  # noqa: E402
from glmmsim.execution import worker_cache  # noqa: E402
from glmmsim.dask import DaskExecutor  # noqa: E402

from .._children import INTERRUPTIBLE_CLI  # noqa: E402



@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def as_pandas_dtypes(got: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """The partitioned design's categorical grouping columns in the pandas design's dtype."""
    out = got.copy()
    for col in out.columns:
        if out[col].dtype != like[col].dtype and isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(like[col].dtype)
    return out


# ------------------------------------------------------------------------------ designs

CROSSED = {
    "plain": dict(within={"cond": ["a", "b"]}),
    "missing, random order, covariates": dict(
        within={"cond": ["a", "b"]},
        missing=0.3,
        order="random",
        covariates={"x": {"per": "trial"}, "age": {"per": "subject", "dist": "integers", "low": 18, "high": 60}},
    ),
    "unbalanced, between, counterbalanced": dict(
        within={"cond": ["a", "b"]},
        between_subjects={"group": ["g1", "g2", "g3"]},
        counterbalance="cond",
        trials_per_subject=(3, 8),
        assign="random",
    ),
}


@pytest.mark.parametrize("case", list(CROSSED))
def test_crossed_partitions_are_the_pandas_design(client, case):
    kwargs = CROSSED[case]
    whole = crossed(13, 8, seed=5, **kwargs)
    lazies = [crossed(13, 8, npartitions=k, seed=5, **kwargs) for k in (1, 3, 7)]
    for k, lazy, got in zip((1, 3, 7), lazies, dask.compute(*lazies)):
        assert lazy.npartitions == k
        pd.testing.assert_frame_equal(as_pandas_dtypes(got, whole), whole)
        # a global row index, and divisions that say where each partition starts
        assert lazy.known_divisions and lazy.divisions[-1] == len(whole) - 1


NESTED = {
    "fixed sizes, within": dict(levels={"school": 7, "class": 3, "pupil": 4}, within={"time": ["pre", "post"]}),
    "random sizes, missing, local labels": dict(
        levels={"school": 7, "class": (1, 4), "pupil": {"poisson": 5}},
        missing=0.2,
        labels="local",
        between={"school": {"program": ["no", "yes"]}},
        covariates={"ses": {"per": "class"}},
    ),
}


@pytest.mark.parametrize("case", list(NESTED))
def test_nested_partitions_are_the_pandas_design(client, case):
    kwargs = dict(NESTED[case])
    levels = kwargs.pop("levels")
    whole = nested(levels, seed=9, **kwargs)
    lazies = [nested(levels, npartitions=k, seed=9, **kwargs) for k in (1, 2, 7)]
    for got in dask.compute(*lazies):
        pd.testing.assert_frame_equal(as_pandas_dtypes(got, whole), whole)


def test_partitioned_design_meta_matches_the_partitions(client):
    lazy = crossed(10, 6, within={"cond": ["a", "b"]}, npartitions=4, seed=1)
    meta = lazy._meta
    assert meta["subject"].cat.categories.tolist() == [f"s{i:03d}" for i in range(1, 11)]
    assert meta["item"].cat.categories.tolist() == [f"i{i:03d}" for i in range(1, 7)]
    for part in lazy.to_delayed():
        frame = part.compute()
        assert frame.dtypes.equals(meta.dtypes)
        assert isinstance(frame.index, pd.RangeIndex)
    # with random cluster sizes the lower units cannot be listed in advance: unknown categories
    random_sizes = nested({"school": 4, "class": (1, 3)}, npartitions=2, seed=1)
    assert random_sizes["school"].cat.known and not random_sizes["class"].cat.known


def test_a_billion_row_design_stays_lazy():
    # 1e5 subjects x 1e4 items: only unit ranges and the first subject are made on the client
    lazy = crossed(100_000, 10_000, npartitions=1000, seed=1)
    assert lazy.npartitions == 1000
    assert lazy.divisions[-1] == 10**9 - 1
    # simulating it is lazy too: the partition lengths are known, nothing is counted or generated
    m = Model("y ~ 1 + (1 | subject) + (1 | item)", fixed={"Intercept": 0}, random={"subject": 1, "item": 1}, sigma=1)
    simulated = m.simulate(lazy, seed=1)
    assert simulated.npartitions == 1000 and list(simulated.columns) == ["subject", "item", "trial", "y"]


def test_the_task_graph_holds_no_data_of_the_design():
    # unit labels, category lists and row offsets are made on the workers (or passed once):
    # the graph of a simulated design is as large for 500,000 subjects as for 5,000
    import cloudpickle

    m = Model("y ~ 1 + (1 | subject) + (1 | item)", fixed={"Intercept": 0}, random={"subject": 1, "item": 1}, sigma=1)
    sizes = []
    for subjects in (5_000, 500_000):
        lazy = m.simulate(crossed(subjects, 10, npartitions=10, seed=1), seed=2)
        sizes.append(len(cloudpickle.dumps(dict(lazy.__dask_graph__()))))
    assert sizes[1] < 1.1 * sizes[0] and sizes[1] < 50_000, sizes


def test_auto_partitions_are_about_a_million_rows():
    lazy = crossed(2_000, 1_000, npartitions="auto", seed=1)  # 2e6 rows
    assert lazy.npartitions == 2
    with pytest.raises(Exception, match="npartitions must be"):
        crossed(10, 10, npartitions=0)


# ------------------------------------------------------------------------------ models

FORMULA = "y ~ x + cond + (1 + x | subject) + (1 | item)"
FAMILIES = {
    "gaussian": dict(sigma=1.0),
    "binomial": dict(trials="n"),
    "poisson": dict(),
    "negative_binomial": dict(dispersion={"theta": 2.0}),
    "gamma": dict(link="log", dispersion={"shape": 3.0}),
    "inverse_gaussian": dict(link="log", dispersion={"dispersion": 0.3}),
    "lognormal": dict(sigma=0.4),
    "exgaussian": dict(sigma=0.2, dispersion={"tau": 0.3}),
    "shifted_lognormal": dict(sigma=0.3, dispersion={"shift": 100.0}),
}


def model(family: str = "gaussian", **changes) -> Model:
    kwargs = dict(
        fixed={"Intercept": 0.5, "x": 0.3, "cond[T.b]": 0.2},
        random={"subject": {"sd": {"Intercept": 0.3, "x": 0.1}}, "item": 0.2},
        family=family,
        seed=11,
    )
    kwargs.update(FAMILIES[family])
    kwargs.update(changes)
    return Model(FORMULA, **kwargs)


@pytest.fixture(scope="module")
def design() -> pd.DataFrame:
    d = crossed(
        12, 9, within={"cond": ["a", "b"]}, covariates={"x": {"per": "trial"}}, missing=0.1, seed=2
    )
    d["n"] = 1 + np.arange(len(d)) % 5
    return d


@pytest.mark.parametrize("k", [1, 4, 9])
def test_predict_on_partitions_equals_pandas(client, design, k):
    # the random effects are keyed by level: any partitioning gives the whole's linear predictor
    m = model("poisson")
    lazy = dask_frames.predict(m, dd.from_pandas(design, npartitions=k), type="link")
    pd.testing.assert_series_equal(lazy.compute(), m.predict(design, type="link"))


def assert_same_as_pandas(m: Model, frame, seed: int, key=None) -> pd.DataFrame:
    """Dask simulate of ``frame`` equals pandas simulate of the computed frame, bit for bit."""
    lazy = dask_frames.simulate(m, frame, seed, key=key)
    computed, got = dask.compute(frame, lazy)
    want = m.simulate(computed, seed=seed, key=key)
    assert lazy._meta[m.response].dtype == want[m.response].dtype
    pd.testing.assert_frame_equal(got, want)
    return got


@pytest.mark.parametrize("family", list(FAMILIES))
def test_simulate_on_partitions_equals_pandas(client, design, family):
    m = model(family)
    whole = m.simulate(design, seed=3)
    frames = [dd.from_pandas(design, npartitions=k) for k in (1, 3, 8)]
    lazies = [dask_frames.simulate(m, f, 3) for f in frames]
    assert all(lazy._meta[m.response].dtype == whole[m.response].dtype for lazy in lazies)
    # one round trip to the cluster for the three partitionings
    for got in dask.compute(*lazies):
        np.testing.assert_array_equal(got[m.response].to_numpy(), whole[m.response].to_numpy())
        pd.testing.assert_frame_equal(got.astype({c: design[c].dtype for c in design}), whole)


def test_simulate_keyed_by_index_or_columns_ignores_partitioning(client, design):
    m = model("binomial")
    shuffled = design.sample(frac=1.0, random_state=0)
    for key in ("index", ["subject", "item", "trial"]):
        whole = m.simulate(design, seed=4, key=key)
        got = assert_same_as_pandas(m, dd.from_pandas(shuffled, npartitions=5, sort=False), 4, key=key)
        np.testing.assert_array_equal(got.sort_index()["y"].to_numpy(), whole["y"].to_numpy())


def test_simulate_on_a_partitioned_design(client):
    lazy = crossed(20, 10, within={"cond": ["a", "b"]}, covariates={"x": {"per": "trial"}}, npartitions=6, seed=4)
    for family in ("gaussian", "poisson"):
        assert_same_as_pandas(model(family), lazy, 8)


def test_output_meta_is_typed_by_family_without_running_the_model(design):
    frame = dd.from_pandas(design, npartitions=2)
    counts = dask_frames.output_meta(model("poisson"), frame._meta)
    times = dask_frames.output_meta(model("gamma"), frame._meta)
    assert counts["y"].dtype == np.int64 and times["y"].dtype == np.float64
    assert list(counts.columns) == [*design.columns, "y"]


def test_stateful_transform_is_refused_with_how_to_precompute(design):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmsimWarning)  # the pandas-mode warning
        m = Model("y ~ center(x) + (1 | subject)", fixed={"Intercept": 0, "center(x)": 1}, random={"subject": 1}, sigma=1)
    with pytest.raises(FormulaError, match=r"center\(x\).*data\[\"x_c\"\] = data\[\"x\"\] - data\[\"x\"\]\.mean\(\)\.compute\(\)"):
        m.simulate(dd.from_pandas(design, npartitions=2), seed=1)


def test_undeclared_categorical_predictor_is_refused(design):
    text = dd.from_pandas(design.assign(cond=design["cond"].astype(str)), npartitions=2)
    with pytest.raises(DataError, match=r"column 'cond'.*levels=\{'cond'"):
        model().simulate(text, seed=1)
    # numbers made categorical by C() need declared levels too
    m = Model("y ~ C(n) + (1 | subject)", fixed={"Intercept": 0, "C(n)[T.2]": 1, "C(n)[T.3]": 1, "C(n)[T.4]": 1,
                                                  "C(n)[T.5]": 1}, random={"subject": 1}, sigma=1)
    with pytest.raises(DataError, match="column 'n'"):
        m.simulate(dd.from_pandas(design, npartitions=2), seed=1)


def test_a_partition_missing_a_level_keeps_the_coefficients(client, design):
    # sorted by condition, the first partitions hold only "a": declared levels keep cond[T.b] in every one
    ordered = design.assign(cond=design["cond"].astype(str)).sort_values("cond", kind="stable")
    frame = dd.from_pandas(ordered, npartitions=4, sort=False)
    assert set(frame.partitions[0].compute()["cond"]) == {"a"}
    m = model("gaussian", levels={"cond": ["a", "b"]})
    got = dask_frames.predict(m, frame, type="link").compute()
    pd.testing.assert_series_equal(got, m.predict(ordered, type="link"))
    assert_same_as_pandas(m, frame, 2)


# ------------------------------------------------------------------------------ executor


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task 3 failed")
    return x


def _worker_token(_: int) -> tuple[int, int]:
    # built once per worker process, whatever number of tasks that worker runs
    return os.getpid(), id(worker_cache("test-token", object))


def test_executor_yields_results_in_task_order(client):
    ex = resolve_executor(client)
    assert isinstance(ex, DaskExecutor)
    assert list(ex.map(_square, range(40))) == [x * x for x in range(40)]


def test_executor_raises_the_first_failure_in_order(client):
    results = DaskExecutor(client).map(_fail_on_three, range(10))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="task 3 failed"):
        next(results)


def test_worker_local_state_is_built_once_per_worker(client):
    tokens = list(DaskExecutor(client).map(_worker_token, range(30)))
    per_pid: dict[int, set[int]] = {}
    for pid, token in tokens:
        per_pid.setdefault(pid, set()).add(token)
    assert all(len(t) == 1 for t in per_pid.values())
    assert os.getpid() not in per_pid  # the tasks ran in the worker processes


# ------------------------------------------------------------------------------ command line

SPEC = """\
model:
  formula: "y ~ 1 + x + cond + (1 + x | subject) + (1 | item)"
  fixed: {Intercept: 1.0, x: 0.5, condb: 0.3}
  random: {subject: {sd: {Intercept: 0.4, x: 0.2}}, item: 0.3}
  sigma: 1.0
  levels: {cond: [a, b]}
design:
  type: crossed
  subjects: 30
  items: 8
  within: {cond: [a, b]}
  covariates: {x: {per: trial}}
  missing: 0.05
seeds: {population: 1, noise: 2, design: 3}
"""


def test_cli_writes_a_partitioned_parquet_dataset(client, tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "data.parquet"
    status = main(
        ["simulate", str(spec), "--out", str(out), "--partitions", "5", "--scheduler", client.scheduler.address, "-q"]
    )
    assert status == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"part.{i:05d}.parquet" for i in range(5)]
    got = pd.read_parquet(out)
    single = tmp_path / "single.parquet"
    assert main(["simulate", str(spec), "--out", str(single), "-q"]) == 0
    want = pd.read_parquet(single)
    design_cols = [c for c in want.columns if c != "y"]
    pd.testing.assert_frame_equal(as_pandas_dtypes(got, want)[design_cols], want[design_cols])
    np.testing.assert_array_equal(got["y"].to_numpy(), want["y"].to_numpy())


def test_cli_replaces_a_dataset_only_with_force_and_nothing_else(client, tmp_path, capsys):
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "data.parquet"
    run = ["simulate", str(spec), "--out", str(out), "--partitions", "2", "--scheduler", client.scheduler.address, "-q"]
    assert main(run) == 0
    assert main(run) == 1 and "--force" in capsys.readouterr().err
    assert main([*run, "--force"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main([*run, "--force"]) == 1 and "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").exists()


def test_written_dataset_reads_back_whole_with_one_categorical_per_unit(client, tmp_path):
    from glmmsim.dask import write_partitions

    # 1,500 subjects: each file stores only its own labels; random class sizes: unknown categories
    designs = {
        "crossed": crossed(1_500, 2, npartitions=3, seed=1),
        "nested": nested({"school": 6, "class": (1, 3), "pupil": 2}, npartitions=4, seed=1),
    }
    for name, lazy in designs.items():
        out = tmp_path / f"{name}.parquet"
        assert write_partitions(lazy, out, client=client, progress=False) == len(lazy)
        got, want = pd.read_parquet(out), lazy.compute()
        assert all(isinstance(got[u].dtype, pd.CategoricalDtype) for u in ("subject",) if u in got)
        pd.testing.assert_frame_equal(got.astype(str), want.astype(str).reset_index(drop=True))
    sizes = [p.stat().st_size for p in (tmp_path / "crossed.parquet").iterdir()]
    assert max(sizes) < 20_000  # not the 1,500 labels in every file


def test_writing_a_partition_leaves_the_partition_as_it_was(tmp_path):
    from glmmsim.dask.parquet import _FULL_DICTIONARY_MAX, _write_file

    # a partition with many unit labels, few of them used: the file drops the unused ones,
    # the frame (maybe a persisted partition the caller holds) keeps them
    labels = [f"s{i:05d}" for i in range(_FULL_DICTIONARY_MAX + 1)]
    part = pd.DataFrame({"subject": pd.Categorical(labels[:2], categories=labels), "y": [1.0, 2.0]})
    assert _write_file(part, str(tmp_path / "part.00000.parquet")) == 2
    assert len(part["subject"].cat.categories) == len(labels)
    assert pd.read_parquet(tmp_path / "part.00000.parquet")["subject"].tolist() == labels[:2]


def test_cli_refuses_replicates_with_partitions(tmp_path, capsys):
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC)
    status = main(["simulate", str(spec), "--out", str(tmp_path / "d.parquet"), "--partitions", "2", "--replicates", "3"])
    assert status == 1
    assert "--replicates" in capsys.readouterr().err


# ------------------------------------------------------------------------------ studies


def test_power_on_a_client_equals_serial(client):
    from glmmsim.analysis import power

    m = Model(
        "rt ~ cond + (1 + cond | subject) + (1 | item)",
        fixed={"Intercept": 600.0, "condb": 20.0},
        random={"subject": {"sd": {"Intercept": 50.0, "condb": 20.0}}, "item": 30.0},
        sigma=80.0,
        seed=1,
    )
    d = crossed(12, 8, within={"cond": ["a", "b"]})
    serial = power(m, d, test="cond", nsim=24, seed=5, progress=False)
    on_dask = power(m, d, test="cond", nsim=24, seed=5, progress=False, executor=client)
    pd.testing.assert_frame_equal(serial.simulations, on_dask.simulations)
    assert serial.power == on_dask.power


# ------------------------------------------------------------------------------ faults and memory

BIG_SPEC = SPEC.replace("subjects: 30", "subjects: 20000").replace("items: 8", "items: 25")  # ~9.5e5 rows


def _cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*INTERRUPTIBLE_CLI, *args], env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_a_part(folder, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(folder.glob(".data.parquet.partial-*/part.*.parquet")):
            return
        time.sleep(0.05)
    pytest.fail(f"no part was written before the run ended (status {proc.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_no_dataset_and_says_what_it_removed(client, tmp_path, sig):
    spec = tmp_path / "study.yaml"
    spec.write_text(BIG_SPEC)
    out = tmp_path / "data.parquet"
    proc = _cli(["simulate", str(spec), "--out", str(out), "--partitions", "40", "--scheduler", client.scheduler.address])
    _wait_for_a_part(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + signal.SIGTERM), err
    assert "interrupted: removed the incomplete dataset" in err and "was not created" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_a_killed_run_leaves_no_dataset_and_the_next_run_cleans_up(client, tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(BIG_SPEC)
    out = tmp_path / "data.parquet"
    proc = _cli(["simulate", str(spec), "--out", str(out), "--partitions", "40", "--scheduler", client.scheduler.address])
    _wait_for_a_part(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert not out.exists() and any(tmp_path.glob(".data.parquet.partial-*"))
    small = tmp_path / "small.yaml"
    small.write_text(SPEC)
    status = main(["simulate", str(small), "--out", str(out), "--partitions", "3", "--scheduler", client.scheduler.address, "-q"])
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == [f"part.{i:05d}.parquet" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet", "small.yaml", "study.yaml"]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only): writing more fills the disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_fails_the_run_and_removes_what_it_wrote(client, tmp_path, small_disk, capsys):
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC.replace("subjects: 30", "subjects: 10000"))  # 1.5e5 rows, ~3.2 MB of Parquet
    status = main(["simulate", str(spec), "--out", str(small_disk / "data.parquet"), "--partitions", "8",
                   "--scheduler", client.scheduler.address, "-q"])
    err = capsys.readouterr().err
    assert status == 1 and "No space left on device" in err
    assert "failed: removed the incomplete dataset" in err
    assert list(small_disk.iterdir()) == []


def test_client_memory_stays_below_one_partition_multiple_of_the_whole(client, tmp_path):
    """The command's own process never holds the design: its peak is a fraction of the data's size."""
    import tracemalloc

    spec = tmp_path / "study.yaml"
    spec.write_text(BIG_SPEC)
    out = tmp_path / "data.parquet"
    tracemalloc.start()
    try:
        status = main(["simulate", str(spec), "--out", str(out), "--partitions", "20",
                       "--scheduler", client.scheduler.address, "-q"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 0
    whole = pd.read_parquet(out)
    rows, whole_bytes = len(whole), int(whole.memory_usage(deep=True).sum())
    assert rows > 900_000 and whole_bytes > 20e6  # what a whole-design materialisation would hold at least
    # measured: 4.0 MB (the spec, one subject's design, 20 small tasks) against 27 MB of data; checking
    # the spec on the whole design, as before, peaked at 116 MB
    assert peak < whole_bytes / 4, (peak, whole_bytes)


def test_limits_apply_to_a_partition_and_the_total_to_the_whole(client, tmp_path, capsys):
    from glmmsim import ParameterError, limits

    whole = crossed(40, 8, within={"cond": ["a", "b"]}, missing=0.1, seed=1)
    with limits.override(max_rows=100):
        # 640 rows planned, none in memory at once: 8 partitions of at most 80 rows run
        lazy = crossed(40, 8, within={"cond": ["a", "b"]}, missing=0.1, npartitions=8, seed=1)
        pd.testing.assert_frame_equal(as_pandas_dtypes(lazy.compute(), whole), whole)
        # random trial counts are only known on the workers, which apply the client's limit
        # (their own default, 2e7 rows, would let a 160-row partition through)
        with pytest.raises(ParameterError, match="would make 160 rows; the limit is 100"):
            crossed(40, 8, within={"cond": ["a", "b"]}, trials_per_subject=(1, 16), npartitions=4, seed=1)
        with pytest.raises(ParameterError, match=r"in 4 partitions would make partitions of up to 160 rows.*"
                                                 r"at least 7 partitions") as err:
            crossed(40, 8, within={"cond": ["a", "b"]}, npartitions=4, seed=1)
        assert err.value.parameter == "npartitions"
        assert crossed(40, 8, within={"cond": ["a", "b"]}, npartitions="auto", seed=1).npartitions == 7
        spec = tmp_path / "study.yaml"
        spec.write_text(SPEC)  # 480 planned rows
        run = ["simulate", str(spec), "--scheduler", client.scheduler.address, "-q"]
        assert main([*run, "--out", str(tmp_path / "a.parquet"), "--partitions", "6"]) == 0
        assert main([*run, "--out", str(tmp_path / "b.parquet"), "--partitions", "2"]) == 1
        assert "at least 5 partitions" in capsys.readouterr().err
        assert not (tmp_path / "b.parquet").exists()
    with limits.override(max_total_rows=500):
        with pytest.raises(ParameterError, match="would make 640 rows in all; the limit is 500"):
            crossed(40, 8, within={"cond": ["a", "b"]}, npartitions=8, seed=1)


def test_a_partitioned_run_checks_the_spec_on_one_subject_and_still_locates_errors(tmp_path, capsys):
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC.replace("y ~ 1 + x + cond", "y ~ 1 + z + cond").replace("x: 0.5", "z: 0.5"))
    out = tmp_path / "d.parquet"
    assert main(["simulate", str(spec), "--out", str(out), "--partitions", "2"]) == 1
    err = capsys.readouterr().err
    assert "'z'" in err and "does not make" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # nothing claimed, no cluster
