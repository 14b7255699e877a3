"""The ``forecast`` task: ordered numbers forecast ``horizon`` steps ahead, beside baselines."""

from rnnkit.tasks.base import TaskSpec, Verb
from rnnkit.tasks.forecast import backtest, run, verbs
from rnnkit.tasks.forecast.task import ForecastDataConfig, ForecastModelConfig


def _epilogue(result) -> str:
    lines = []
    refit = run.read_run_config(result.run_dir)["task"]["data"].get("refit")
    if refit and not result.interrupted:
        lines.append(
            f"refit: {result.counters.step} steps on training + validation (the step "
            f"{result.run_dir / run.SELECT} chose); its validation loss above is not held out"
        )
    lines.append(f"next: rnnkit evaluate {result.run_dir}")
    return "\n".join(lines)


SPEC = TaskSpec(
    name="forecast",
    help="a forecaster of ordered numbers (prices, counts, sensors) from a CSV file",
    configs={"model": ForecastModelConfig, "data": ForecastDataConfig},
    train=run.train_forecast,
    rebuild=run.rebuild,
    verbs={
        "evaluate": Verb(run.evaluate_run, verbs.EvaluateOptions, verbs.format_table),
        "predict": Verb(
            run.predict_run, verbs.PredictOptions, verbs.show_predict, show_only=("format",)
        ),
        "backtest": Verb(
            backtest.backtest_run, verbs.BacktestOptions, verbs.format_table, loads=False
        ),
    },
    epilogue=_epilogue,
    hint=" (a CSV file or a data-set name)",
    best="loss (scaled units)",
)

__all__ = ["SPEC", "ForecastDataConfig", "ForecastModelConfig"]
