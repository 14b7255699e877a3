"""Forecasting: reading and bad input, no look-ahead, baselines and metrics by hand, learning a
seasonal series, and the CLI end to end on small synthetic CSV files."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from rnnkit.architectures import ForecasterEnsemble
from rnnkit.cli.main import main
from rnnkit.series.baselines import blend_weights, naive, seasonal_naive
from rnnkit.series.calendar import infer_frequency, infer_season
from rnnkit.series.metrics import coverage, directional_accuracy, mase_scale, point_metrics
from rnnkit.series.table import SeriesError, read_series_csv
from rnnkit.series.windows import Scaler
from rnnkit.tasks.forecast.backtest import backtest_run
from rnnkit.tasks.forecast.run import (
    blended,
    evaluate_run,
    forecast_part,
    future_times,
    load_model,
    predict_run,
    read_blend,
    train_forecast,
)
from rnnkit.tasks.forecast.task import (
    ForecastDataConfig,
    ForecastModelConfig,
    Prepared,
    build_forecaster,
    forecast_raw,
    pinball_loss,
    resolve_season,
)
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.checkpoint import CheckpointError
from rnnkit.training.config import TrainConfig


def write_csv(path, rows, header="t,y"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def seasonal(n=240, seed=0):
    """Two cycles (12 and 5.3 steps) and a little noise: seasonal naive is imperfect."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (
        10 + np.sin(2 * np.pi * t / 12) + 0.5 * np.sin(2 * np.pi * t / 5.3)
        + 0.05 * rng.standard_normal(n)
    )  # fmt: skip


def data_cfg(path, **kw):
    base = dict(data=str(path), time_col="t", target="y", lookback=24, horizon=6, season=12)
    return ForecastDataConfig(**(base | kw))


# -- reading and bad input ---------------------------------------------------------------------
def test_reads_dates_features_and_several_series(tmp_path):
    path = write_csv(
        tmp_path / "s.csv",
        [("2020-01", "a", 1, 5), ("2020-02", "a", 2, 6), ("2020-01", "b", 3, 7),
         ("2020-02", "b", 4, 8)],
        header="month,id,y,x",
    )  # fmt: skip
    series = read_series_csv(path, time_col="month", target="y", features=["x"], series_col="id")
    assert [s.id for s in series] == ["a", "b"]
    np.testing.assert_array_equal(series[1].values, [[3, 7], [4, 8]])
    assert series[0].times.dtype == np.dtype("datetime64[M]")


def test_time_format_reads_compact_dates_that_would_read_as_numbers(tmp_path):
    path = write_csv(tmp_path / "w.csv", [(19580329, 1.0), (19580405, 2.0), (19580412, 3.0)])
    assert read_series_csv(path, time_col="t", target="y")[0].times[0] == 19580329.0
    s = read_series_csv(path, time_col="t", target="y", time_format="%Y%m%d")[0]
    assert s.times.dtype == np.dtype("datetime64[D]") and str(s.times[1]) == "1958-04-05"
    assert str(future_times(s.times, 2)[-1]) == "1958-04-26"  # a week on, not 19580426
    with pytest.raises(SeriesError, match=r"line 2: timestamp '19580329' does not match"):
        read_series_csv(path, time_col="t", target="y", time_format="%Y-%m-%d")


def test_iso8601_timestamps_with_zones_offsets_and_fractions(tmp_path):
    rows = [
        ("2024-03-05T10:00:00Z", 1),
        ("2024-03-05T12:00:00+01:00", 2),  # 11:00 UTC
        ("2024-03-05T07:00:00.250-05:00", 3),  # 12:00:00.25 UTC
        ("20240305T1300+0000", 4),  # basic format
    ]
    s = read_series_csv(write_csv(tmp_path / "z.csv", rows), time_col="t", target="y")[0]
    want = ["2024-03-05T10:00", "2024-03-05T11:00", "2024-03-05T12:00:00.25", "2024-03-05T13:00"]
    np.testing.assert_array_equal(s.times, np.array(want, dtype="datetime64[us]"))
    # the same instants written in two zones are one timestamp: refused as repeated
    same = write_csv(tmp_path / "d.csv", [("2024-01-01T00:00:00Z", 1), ("2024-01-01T01:00+01", 2)])
    with pytest.raises(SeriesError, match="appears twice"):
        read_series_csv(same, time_col="t", target="y")
    # week and ordinal dates; a first row strptime reads and a later one only ISO reads
    rows = [("2024-W10-1", 1), ("2024-066", 2), ("2024-03-07", 3)]
    s = read_series_csv(write_csv(tmp_path / "w.csv", rows), time_col="t", target="y")[0]
    assert [str(t) for t in s.times] == ["2024-03-04", "2024-03-06", "2024-03-07"]
    rows = [("2024-03-04", 1), ("2024-065", 2), ("2024-03-06T00:00:00.5", 3)]
    s = read_series_csv(write_csv(tmp_path / "o.csv", rows), time_col="t", target="y")[0]
    assert [str(t) for t in s.times] == [
        "2024-03-04T00:00:00.000000",
        "2024-03-05T00:00:00.000000",
        "2024-03-06T00:00:00.500000",
    ]
    # with and without a zone in one column: the naive ones have no known offset
    mixed = write_csv(tmp_path / "m.csv", [("2024-01-01T00:00:00Z", 1), ("2024-01-02T00:00", 2)])
    with pytest.raises(SeriesError, match=r"line 2 .* has a UTC offset but line 3 .* has none"):
        read_series_csv(mixed, time_col="t", target="y")
    bad = write_csv(tmp_path / "b.csv", [("2024-01-01T00:00Z", 1), ("2024-02-30T00:00Z", 2)])
    with pytest.raises(SeriesError, match=r"line 3: no such date: '2024-02-30T00:00Z'"):
        read_series_csv(bad, time_col="t", target="y")


@pytest.mark.parametrize(
    "times, frequency, season",
    [
        (np.arange("2024-01-01T00", "2024-01-03T00", dtype="datetime64[h]"), "hourly", 24),
        (np.arange("2024-01-01", "2024-02-01", dtype="datetime64[D]"), "daily", 7),
        (np.arange("2024-01-01", "2024-03-01", 7, dtype="datetime64[D]"), "weekly", 52),
        (np.arange("2020-01", "2024-01", dtype="datetime64[M]"), "monthly", 12),
        (np.arange("2020-01", "2024-01", 3, dtype="datetime64[M]"), "quarterly", 4),
        (np.arange("2000", "2020", dtype="datetime64[Y]").astype("datetime64[D]"), "yearly", 1),
        (np.arange(1749.0, 1800.0), None, 1),  # years as numbers say nothing of a season
        (np.arange("2024-01-01", "2024-02-01", 2, dtype="datetime64[D]"), None, 1),
    ],
)
def test_frequency_and_season_from_timestamps(times, frequency, season):
    assert infer_frequency(times) == frequency
    assert infer_season([times])[0] == season


def test_business_days_and_month_ends_are_recognised_and_continued():
    days = np.arange("2024-01-01", "2024-02-01", dtype="datetime64[D]")
    weekdays = days[np.isin((days.astype(np.int64) + 3) % 7, [0, 1, 2, 3, 4])]
    assert infer_frequency(weekdays) == "business daily" and infer_season([weekdays])[0] == 5
    assert [str(t) for t in future_times(weekdays, 3)] == ["2024-02-01", "2024-02-02", "2024-02-05"]
    # month ends stay month ends; a mid-month day keeps its day; the 31st clamps, then recovers
    ends = (np.arange("2023-01", "2024-01", dtype="datetime64[M]") + 1).astype("datetime64[D]") - 1
    assert [str(t) for t in future_times(ends, 3)] == ["2024-01-31", "2024-02-29", "2024-03-31"]
    fourth = np.arange("2023-01", "2025-03", dtype="datetime64[M]").astype("datetime64[D]") + 3
    got = [str(t) for t in future_times(fourth, 10)]
    assert got == [f"2025-{m:02d}-04" for m in range(3, 13)]  # not 31-day steps that drift
    jan31 = np.array(
        ["2023-10-31", "2023-11-30", "2023-12-31", "2024-01-15"], dtype="datetime64[D]"
    )
    assert [str(t) for t in future_times(jan31, 2)] == ["2024-02-15", "2024-03-15"]
    quarters = np.array(["2024-01-01T06:30", "2024-04-01T06:30"], dtype="datetime64[s]")
    assert [str(t) for t in future_times(quarters, 2)] == [
        "2024-07-01T06:30:00",
        "2024-10-01T06:30:00",
    ]
    hours = np.arange("2024-01-01T00", "2024-01-01T05", dtype="datetime64[h]")
    assert str(future_times(hours, 1)[0]) == "2024-01-01T05"


def test_season_is_inferred_printed_stored_and_an_explicit_one_wins(tmp_path, capsys):
    months = np.arange("2015-01", "2025-03", dtype="datetime64[M]").astype("datetime64[D]") + 3
    rows = [(f"{t}T00:00:00Z", round(v, 4)) for t, v in zip(months, seasonal(len(months)))]
    path = write_csv(tmp_path / "m.csv", rows)
    common = ["train", "forecast", "--data", str(path), "--time-col", "t", "--target", "y"]
    common += ["--lookback", "24", "--horizon", "6", "--max-steps", "3", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert "season 12 (monthly timestamps; choose with --season)" in capsys.readouterr().out
    stored = json.loads((tmp_path / "a" / "config.json").read_text())["task"]["data"]
    assert stored["season"] == 12
    m = evaluate_run(tmp_path / "a")
    assert m["season"] == 12 and m["seasonal_naive"]["mae"] != m["naive"]["mae"]
    rows = predict_run(tmp_path / "a")
    assert [r["time"][:10] for r in rows] == [f"2025-{m:02d}-04" for m in range(3, 9)]
    assert main([*common, "--out", str(tmp_path / "b"), "--season", "3"]) == 0
    assert "season 12" not in capsys.readouterr().out
    assert evaluate_run(tmp_path / "b")["season"] == 3
    # too short a training part for the inferred season: 1, and the note says why
    cfg = ForecastDataConfig(data=str(path), time_col="t", target="y", lookback=4, horizon=4)
    short = read_series_csv(path, time_col="t", target="y")[0].head(18)
    resolved, note = resolve_season(cfg, [short])
    assert resolved.season == 1 and "training part of 10 points is shorter than 12" in note


def test_missing_values_error_names_line_and_column_then_fill(tmp_path):
    path = write_csv(tmp_path / "m.csv", [(1, 1.0), (2, ""), (3, 3.0), (4, "NA"), (5, 9.0)])
    with pytest.raises(SeriesError, match=r"column 'y': 2 missing value\(s\), the first at line 3"):
        read_series_csv(path, time_col="t", target="y")
    linear = read_series_csv(path, time_col="t", target="y", fill="linear")[0].target
    np.testing.assert_allclose(linear, [1, 2, 3, 6, 9])
    previous = read_series_csv(path, time_col="t", target="y", fill="previous")[0].target
    np.testing.assert_allclose(previous, [1, 1, 3, 3, 9])


def test_unsorted_timestamps_error_then_sort(tmp_path):
    path = write_csv(tmp_path / "u.csv", [(1, 10), (3, 30), (2, 20)])
    with pytest.raises(SeriesError, match=r"not in order: line 4 \(2.0\) comes after line 3"):
        read_series_csv(path, time_col="t", target="y")
    fixed = read_series_csv(path, time_col="t", target="y", sort=True)[0]
    np.testing.assert_array_equal(fixed.target, [10, 20, 30])


def test_duplicate_timestamps_are_refused_even_with_sort(tmp_path):
    path = write_csv(tmp_path / "d.csv", [(1, 10), (2, 20), (2, 21)])
    for sort in (False, True):
        with pytest.raises(SeriesError, match=r"timestamp 2.0 appears twice \(lines 3 and 4\)"):
            read_series_csv(path, time_col="t", target="y", sort=sort)


def test_non_numeric_cell_and_missing_column(tmp_path):
    path = write_csv(tmp_path / "n.csv", [(1, 10), (2, "ten")])
    with pytest.raises(SeriesError, match=r"line 3, column 'y': 'ten' is not a number"):
        read_series_csv(path, time_col="t", target="y")
    with pytest.raises(SeriesError, match=r"no column 'price'; the header has: 't', 'y'"):
        read_series_csv(path, time_col="t", target="price")


def test_series_shorter_than_lookback_plus_horizon(tmp_path):
    path = write_csv(tmp_path / "s.csv", [(i, i) for i in range(20)])
    with pytest.raises(
        SeriesError, match=r"20 points is too short: lookback \+ horizon \(24 \+ 6\)"
    ):
        Prepared(read_series_csv(path, time_col="t", target="y"), data_cfg(path))


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    path = write_csv(tmp_path / "u.csv", [(i, i) for i in (1, 3, 2)])
    code = main(["train", "forecast", "--data", str(path), "--time-col", "t", "--target", "y",
                 "--out", str(tmp_path / "run"), "--max-steps", "1", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "pass --sort" in err and "Traceback" not in err


# -- no look-ahead -----------------------------------------------------------------------------
def test_future_values_never_change_the_scaler_windows_or_a_past_forecast(tmp_path):
    y = seasonal(120)
    path = write_csv(tmp_path / "s.csv", list(enumerate(y)))
    cfg = data_cfg(path, test_size=12, val_size=12, transform="log", quantiles="0.1,0.9")
    series = read_series_csv(path, time_col="t", target="y")
    changed = read_series_csv(path, time_col="t", target="y")
    origin = 100  # a forecast origin in the test tail
    changed[0].values[origin:, 0] *= 3.0  # the future after it: wildly different
    a, b = Prepared(series, cfg), Prepared(changed, cfg)
    assert a.scalers[0].to_json() == b.scalers[0].to_json()
    wa, wb = a.windows(a.picks("train")), b.windows(b.picks("train"))
    np.testing.assert_array_equal(wa.x, wb.x)
    np.testing.assert_array_equal(wa.y, wb.y)
    torch.manual_seed(0)
    model = build_forecaster(1, cfg, ForecastModelConfig(hidden_size=8))
    fa = forecast_raw(model, a, [(0, origin)], torch.device("cpu"))
    fb = forecast_raw(model, b, [(0, origin)], torch.device("cpu"))
    np.testing.assert_array_equal(fa, fb)
    # ...and a change before the origin does change it (the test can fail)
    changed[0].values[origin - 1, 0] *= 3.0
    fc = forecast_raw(model, Prepared(changed, cfg), [(0, origin)], torch.device("cpu"))
    assert not np.allclose(fa, fc)


def test_refit_scaler_and_windows_reach_the_validation_part_never_the_test_tail(tmp_path):
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, test_size=12, val_size=12, refit=True)
    series = read_series_csv(path, time_col="t", target="y")
    prep = Prepared(series, cfg)
    test_start = prep.bounds[0].test_start  # 108
    expected = Scaler.fit(series[0].values[:test_start])
    np.testing.assert_allclose(prep.scalers[0].mean, expected.mean)
    picks = prep.picks("train+val")
    assert picks[-1] == (0, test_start - cfg.horizon)  # the last window ends at the tail
    changed = read_series_csv(path, time_col="t", target="y")
    changed[0].values[test_start:, 0] *= 3.0
    other = Prepared(changed, cfg)
    assert other.scalers[0].to_json() == prep.scalers[0].to_json()
    np.testing.assert_array_equal(prep.windows(picks).y, other.windows(picks).y)
    changed[0].values[test_start - 1, 0] *= 3.0  # inside validation: a refit sees it
    assert Prepared(changed, cfg).scalers[0].to_json() != prep.scalers[0].to_json()


def test_refit_trains_twice_for_the_steps_validation_chose(tmp_path, capsys):
    torch.set_num_threads(1)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, test_size=12, val_size=12, refit=True)
    out = tmp_path / "run"
    train = TrainConfig(out=str(out), max_steps=40, lr=1e-2, eval_every=10, warmup_steps=5,
                        progress=False)  # fmt: skip
    result = train_forecast(ForecastModelConfig(hidden_size=8), cfg, train)
    first = json.loads((out / "select" / "config.json").read_text())
    final = json.loads((out / "config.json").read_text())
    assert first["task"]["data"]["refit"] is False and final["task"]["data"]["refit"] is True
    chosen = ckpt.load(out / "select" / "best.safetensors")[1]["step"]
    assert final["train"]["max_steps"] == chosen == result.counters.step
    # the first run saw 120 - 24 points for training, the refit 120 - 12
    assert final["task"]["scalers"] != first["task"]["scalers"]
    m = evaluate_run(out)
    assert m["model"]["mase"] > 0 and evaluate_run(out / "select")["model"]["mase"] > 0
    with pytest.raises(ValueError, match="refitted on its validation part"):
        evaluate_run(out, split="val")
    # resuming a finished refit run trains nothing more and keeps its weights
    before = (out / "best.safetensors").read_bytes()
    train_forecast(None, None, dataclasses.replace(train, resume=True))
    assert (out / "best.safetensors").read_bytes() == before


def test_scaler_statistics_and_round_trip():
    """The scaler itself; that only the training part reaches it is the leakage test above."""
    values = np.arange(1.0, 11.0)[:, None]
    s = Scaler.fit(values[:6])
    assert s.mean[0] == pytest.approx(3.5)
    assert s.std[0] == pytest.approx(np.std([1, 2, 3, 4, 5, 6]))
    np.testing.assert_allclose(s.unscale_target(s.scale(values)[:, 0]), values[:, 0])


def test_sqrt_transform_by_hand_round_trips_and_refuses_negative_values():
    values = np.array([0.0, 1.0, 4.0, 9.0, 16.0])[:, None]
    s = Scaler.fit(values, "sqrt")
    assert s.mean[0] == pytest.approx(2.0)  # the mean of the roots 0, 1, 2, 3, 4
    assert s.std[0] == pytest.approx(np.std([0, 1, 2, 3, 4]))
    np.testing.assert_allclose(s.scale(values)[:, 0], (np.arange(5) - 2.0) / s.std[0])
    np.testing.assert_allclose(s.unscale_target(s.scale(values)[:, 0]), values[:, 0])
    # a forecast root below zero is a count of zero, never a positive square
    assert s.unscale_target(np.array([-5.0]))[0] == 0.0
    assert Scaler.from_json(s.to_json()).transform == "sqrt"
    with pytest.raises(SeriesError, match="sqrt needs values >= 0"):
        Scaler.fit(np.array([[1.0], [-0.5]]), "sqrt")


def test_cli_accepts_transform_sqrt(tmp_path, capsys):
    y = seasonal(120) ** 2  # positive counts
    path = write_csv(tmp_path / "s.csv", list(enumerate(y)))
    out = tmp_path / "run"
    argv = ["train", "forecast", "--data", str(path), "--time-col", "t", "--target", "y",
            "--lookback", "24", "--horizon", "6", "--season", "12", "--transform", "sqrt",
            "--hidden-size", "8", "--max-steps", "20", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["task"]["data"]["transform"] == "sqrt"
    assert evaluate_run(out)["model"]["mase"] > 0


def test_cli_refit_says_what_it_retrained_and_refuses_its_validation_split(tmp_path, capsys):
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    out = tmp_path / "run"
    argv = ["train", "forecast", "--data", str(path), "--time-col", "t", "--target", "y",
            "--lookback", "24", "--horizon", "6", "--season", "12", "--refit",
            "--hidden-size", "8", "--max-steps", "20", "--eval-every", "10", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "on training + validation" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--split", "val"]) != 0
    assert "refitted on its validation part" in capsys.readouterr().err


# -- baselines and metrics by hand ---------------------------------------------------------------
def test_baselines_match_hand_computed_values():
    h = np.array([5.0, 1, 2, 3, 4, 6, 7, 8])
    np.testing.assert_array_equal(naive(h, 6, 3), [6, 6, 6])
    # season 4, origin 6: steps t=6,7,8 take h[2], h[3], h[4]; t=10 wraps to h[2] again
    np.testing.assert_array_equal(seasonal_naive(h, 6, 5, 4), [2, 3, 4, 6, 2])
    np.testing.assert_array_equal(seasonal_naive(h, 6, 2, 1), [6, 6])


def test_metrics_match_hand_computed_values():
    a, f = np.array([2.0, 4.0, 5.0]), np.array([1.0, 5.0, 5.0])
    m = point_metrics(a, f, scale=np.array([2.0, 2.0, 2.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert m["mape"] == pytest.approx(100 * (0.5 + 0.25) / 3)
    assert m["mase"] == pytest.approx(1 / 3)
    # seasonal naive in-sample errors with m=2: |3-1|, |4-2|, |9-3| -> 10/3
    assert mase_scale(np.array([1.0, 2, 3, 4, 9]), 2) == pytest.approx(10 / 3)
    assert coverage(a, a - 1, np.array([3.0, 3.0, 6.0])) == pytest.approx(2 / 3)
    # last 3: up/up/up actual; forecasts down/up/up -> 2 of 3
    assert directional_accuracy(np.array(3.0), a + 2, f + 1) == pytest.approx(2 / 3)


def test_blend_weights_and_blended_forecasts_by_hand():
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    net = np.array([[1.0, 0.0], [3.0, 0.0]])  # right at step 1, wrong at step 2
    base = np.array([[5.0, 2.0], [7.0, 4.0]])  # wrong at step 1, right at step 2
    np.testing.assert_array_equal(blend_weights(net, base, actual), [1.0, 0.0])
    # the actual halfway between them: weight 0.5 at every step
    np.testing.assert_allclose(blend_weights(actual - 1, actual + 1, actual), [0.5, 0.5])
    raw = np.stack([net - 1, net, net + 2], axis=-1)  # quantiles around the point (index 1)
    out = blended(raw, 1, base, np.array([0.25, 1.0]))
    np.testing.assert_allclose(out[:, 0, 1], 0.25 * net[:, 0] + 0.75 * base[:, 0])
    np.testing.assert_allclose(out[:, 1], raw[:, 1])  # weight 1: the network unchanged
    np.testing.assert_allclose(out[..., 2] - out[..., 0], raw[..., 2] - raw[..., 0])


def test_pinball_loss_by_hand():
    pred = torch.tensor([[1.0, 2.0]])
    q = torch.tensor([0.1, 0.9])
    # y=3: errors 2 and 1 above both: 0.1*2 and 0.9*1 -> mean 0.55
    assert pinball_loss(pred, torch.tensor([3.0]), q).item() == pytest.approx(0.55)


def test_ets_baseline_beats_naive_on_a_seasonal_series():
    pytest.importorskip("statsmodels")
    from rnnkit.series.baselines import ETSBaseline

    t = np.arange(144)
    y = (
        10
        + 0.02 * t
        + np.sin(2 * np.pi * t / 12)
        + 0.05 * np.random.default_rng(0).normal(size=144)
    )
    ets = ETSBaseline.fit(y, 108, 120, 12, 12)
    err = np.abs(ets.forecast(y, 120, 12) - y[120:132]).mean()
    assert err < 0.5 * np.abs(naive(y, 120, 12) - y[120:132]).mean()
    # the same fitted model run on to a later origin, only over data before it
    later = y.copy()
    later[125:] = 0
    np.testing.assert_array_equal(ets.forecast(y, 125, 6), ets.forecast(later, 125, 6))


# -- learning and the command line ---------------------------------------------------------------
def test_learns_a_seasonal_series_to_mase_well_under_one(tmp_path):
    torch.set_num_threads(1)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(240))))
    cfg = data_cfg(path, test_size=24, val_size=24, reference="none")
    train = TrainConfig(out=str(tmp_path / "run"), max_steps=400, lr=1e-2, eval_every=100,
                        warmup_steps=20, progress=False)  # fmt: skip
    train_forecast(ForecastModelConfig(cell="gru", hidden_size=32), cfg, train)
    m = evaluate_run(tmp_path / "run")
    assert m["origins"] == 19  # every origin whose 6 steps lie in the 24-step tail
    assert m["model"]["mase"] < 0.5
    assert m["model"]["mase"] < 0.6 * m["seasonal_naive"]["mase"]
    by_step = m["model"]["mase_by_step"]  # every step's own MASE; their mean is the whole's
    assert len(by_step) == 6 and np.mean(by_step) == pytest.approx(m["model"]["mase"], abs=1e-3)


def _stop_at(run_dir, step):
    """A trainer callback that presses Ctrl-C in ``run_dir`` at ``step``."""

    def callback(trainer, record):
        if trainer.run_dir == run_dir and record["step"] == step:
            raise KeyboardInterrupt

    return callback


@pytest.mark.parametrize("part", ["select", "final"])
def test_refit_run_interrupted_in_either_part_resumes_to_the_same_forecasts(tmp_path, part):
    torch.set_num_threads(1)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, test_size=12, val_size=12, refit=True, blend="seasonal")
    model = ForecastModelConfig(hidden_size=8)
    kw = dict(max_steps=40, lr=1e-2, eval_every=10, warmup_steps=5, progress=False)
    whole = tmp_path / "whole"
    train_forecast(model, cfg, TrainConfig(out=str(whole), **kw))
    out = tmp_path / "run"
    where = out / "select" if part == "select" else out
    stop = 20 if part == "select" else 1
    result = train_forecast(
        model, cfg, TrainConfig(out=str(out), **kw), callbacks=[_stop_at(where, stop)]
    )
    assert result.interrupted and result.run_dir == out  # resume the refit run, not its part
    train_forecast(None, None, TrainConfig(out=str(out), resume=True, **kw))
    assert json.loads((out / "config.json").read_text())["task"]["data"]["refit"] is True
    assert read_blend(out, cfg).tolist() == read_blend(whole, cfg).tolist()
    assert evaluate_run(out)["model"]["mae"] == pytest.approx(evaluate_run(whole)["model"]["mae"])


def test_refit_into_a_used_folder_is_refused_before_training(tmp_path):
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    out = tmp_path / "run"
    train = TrainConfig(out=str(out), max_steps=5, eval_every=5, progress=False)
    train_forecast(ForecastModelConfig(hidden_size=4), data_cfg(path), train)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_forecast(ForecastModelConfig(hidden_size=4), data_cfg(path, refit=True), train)
    assert not (out / "select").exists()


def test_backtest_of_a_refit_run_repeats_its_first_part(tmp_path):
    torch.set_num_threads(1)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, test_size=12, val_size=12, refit=True, blend="seasonal")
    out = tmp_path / "run"
    train = TrainConfig(out=str(out), max_steps=40, lr=1e-2, eval_every=10, progress=False)
    train_forecast(ForecastModelConfig(hidden_size=8), cfg, train)
    m = backtest_run(out, folds=2)
    assert m["origins"] == 2 and "network" in m
    for k in range(2):
        fold = out / "backtest" / f"fold{k}"
        first = json.loads((fold / "select" / "config.json").read_text())["train"]
        assert (first["max_steps"], first["eval_every"]) == (40, 10)
        assert (fold / "blend.json").exists()


def test_a_training_part_shorter_than_a_season_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs a full season"):
        seasonal_naive(np.arange(16.0), 11, 2, 12)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(60))))
    cfg = data_cfg(path, lookback=4, horizon=4, season=24, test_size=24, val_size=24)
    with pytest.raises(SeriesError, match="shorter than one season"):
        Prepared(read_series_csv(path, time_col="t", target="y"), cfg)


def test_blend_with_seasonal_naive_is_chosen_on_validation_and_used_everywhere(tmp_path):
    torch.set_num_threads(1)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, test_size=12, val_size=12, blend="seasonal", refit=True,
                   quantiles="0.1,0.9")  # fmt: skip
    out = tmp_path / "run"
    train = TrainConfig(out=str(out), max_steps=30, lr=1e-2, eval_every=10, progress=False)
    train_forecast(ForecastModelConfig(hidden_size=8), cfg, train)
    series = read_series_csv(path, time_col="t", target="y")
    # the weights were chosen on the first run's validation part, which it held out
    model, first_cfg, scalers = load_model(out / "select")
    val = forecast_part(model, Prepared(series, first_cfg, scalers), "val", stride=1)
    expected = blend_weights(val["model"], val["seasonal_naive"], val["actual"])
    weights = read_blend(out, cfg)
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_array_equal(weights, read_blend(out / "select", first_cfg))
    # evaluation scores the combination as the model, and the network alone beside it
    model, final_cfg, scalers = load_model(out)
    fc = forecast_part(model, Prepared(series, final_cfg, scalers), "test", stride=1, blend=weights)
    np.testing.assert_allclose(
        fc["model"], weights * fc["network"] + (1 - weights) * fc["seasonal_naive"]
    )
    m = evaluate_run(out)
    assert m["model"]["mae"] == pytest.approx(np.abs(fc["model"] - fc["actual"]).mean())
    assert "network" in m and m["network"]["mae"] != m["model"]["mae"]
    # predictions past the end blend too: all weight on seasonal naive gives its values
    (out / "blend.json").write_text(json.dumps({"weights": [0.0] * 6}))
    rows = predict_run(out)
    np.testing.assert_allclose([r["forecast"] for r in rows], series[0].target[108:114])
    (out / "blend.json").unlink()
    with pytest.raises(CheckpointError, match=r"no blend\.json"):
        evaluate_run(out)


def test_ensemble_trains_every_member_and_forecasts_their_mean(tmp_path):
    torch.set_num_threads(1)
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, test_size=12, val_size=12, quantiles="0.1,0.9")
    out = tmp_path / "run"
    train = TrainConfig(out=str(out), max_steps=30, lr=1e-2, eval_every=10, progress=False)
    train_forecast(ForecastModelConfig(hidden_size=8, members=3), cfg, train)
    model, data, scalers = load_model(out)
    assert isinstance(model, ForecasterEnsemble) and len(model.members) == 3
    # each member moved from its own initialisation, and they differ from each other
    a, b = (m.head.weight for m in model.members[:2])
    assert not torch.allclose(a, b)
    prep = Prepared(read_series_csv(path, time_col="t", target="y"), data, scalers)
    picks = prep.picks("test")
    both = forecast_raw(model, prep, picks, torch.device("cpu"))
    x = torch.tensor(prep.windows(picks).x, dtype=torch.float32)
    with torch.no_grad():
        mean = torch.stack([m(x)[0][:, -1] for m in model.members]).mean(0)
        np.testing.assert_allclose(model(x)[0][:, -1].numpy(), mean.numpy(), rtol=1e-6)
    assert both.shape == (len(picks), 6, 3)
    assert evaluate_run(out)["model"]["mase"] > 0
    with pytest.raises(ValueError, match="--members"):
        ForecastModelConfig(members=0)


def test_cli_train_evaluate_predict_several_series_with_quantiles(tmp_path, capsys):
    rows = [(t, name, v) for name, seed in (("a", 1), ("b", 2))
            for t, v in enumerate(seasonal(96, seed) * (1 if name == "a" else 3))]  # fmt: skip
    path = write_csv(tmp_path / "two.csv", rows, header="t,id,y")
    run = tmp_path / "run"
    assert main(["train", "forecast", "--data", str(path), "--time-col", "t", "--target", "y",
                 "--series-col", "id", "--lookback", "24", "--horizon", "6", "--season", "12",
                 "--quantiles", "0.1,0.9", "--out", str(run), "--max-steps", "30",
                 "--eval-every", "10", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--plot", str(tmp_path / "f.png")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["series"] == 2 and m["origins"] == 2  # one 6-step origin per series
    assert {"naive", "seasonal_naive", "model"} <= set(m)
    assert 0 <= m["model"]["coverage"] <= 1 and m["model"]["interval"] == [0.1, 0.9]
    assert (tmp_path / "f.png").stat().st_size > 0
    assert main(["predict", str(run), "--format", "json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert [(p["series"], p["step"]) for p in pred[:7]] == [("a", h) for h in range(1, 7)] + [
        ("b", 1)
    ]
    assert pred[0]["time"] == "96.0"


def test_autoregressive_mode_trains_and_forecasts(tmp_path):
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(120))))
    cfg = data_cfg(path, mode="autoregressive", quantiles="0.2,0.8")
    train = TrainConfig(out=str(tmp_path / "ar"), max_steps=5, eval_every=5, progress=False)
    train_forecast(ForecastModelConfig(hidden_size=8), cfg, train)
    rows = predict_run(tmp_path / "ar")
    assert len(rows) == 6 and all(np.isfinite(r["forecast"]) for r in rows)
    with pytest.raises(ValueError, match=r"autoregressive .* takes no --features"):
        data_cfg(path, mode="autoregressive", features="x")


def test_backtest_walks_forward(tmp_path, capsys):
    path = write_csv(tmp_path / "s.csv", list(enumerate(seasonal(100))))
    run = tmp_path / "run"
    train_forecast(
        ForecastModelConfig(hidden_size=8),
        data_cfg(path, lookback=12, horizon=4, season=12),
        TrainConfig(out=str(run), max_steps=3, eval_every=3, progress=False),
    )
    assert main(["backtest", str(run), "--folds", "2", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["folds"] == 2 and m["origins"] == 2
    assert sorted(p.name for p in (run / "backtest").iterdir()) == ["fold0", "fold1"]


def test_seasonal_reference_is_the_seasonal_naive_forecast():
    from rnnkit.series.windows import cut_windows

    z = np.arange(20.0)[:, None] ** 2  # (T, 1)
    w = cut_windows([z], [(0, 10)], 6, 5, reference="seasonal", season=4)
    # step h takes z[10 - 4 + h % 4]: z[6], z[7], z[8], z[9], z[6]
    np.testing.assert_array_equal(w.ref[0], [36, 49, 64, 81, 36])
    np.testing.assert_array_equal(w.y[0], z[10:15, 0] - w.ref[0])
    np.testing.assert_array_equal(w.x[0, :, 0], z[4:10, 0] - 81)
    with pytest.raises(SeriesError, match="needs --lookback >= --season"):
        cut_windows([z], [(0, 10)], 3, 5, reference="seasonal", season=4)


def test_values_too_large_to_scale_are_refused(tmp_path):
    path = tmp_path / "big.csv"
    rows = [f"2000-{m:02d}-01,{v}" for m, v in zip(range(1, 13), [1.0] * 11 + [3e200])]
    path.write_text("date,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(SeriesError, match=r"line 13, column 'y': '3e\+200' is too large to scale"):
        read_series_csv(path, time_col="date", target="y")
