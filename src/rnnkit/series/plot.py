"""A PNG of a series' history, the held-out actual values, the forecasts and their intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.plotting import pyplot


def plot_forecasts(
    prep, fc: dict, out: str | Path, *, title: str = "", max_series: int = 4
) -> Path:
    """Draw up to ``max_series`` series: history before the first origin, the actual values,
    and the model's (and the baselines') forecasts from non-overlapping origins.

    Args:
        prep: the ``Prepared`` series (``rnnkit.tasks.forecast.task``).
        fc: forecasts as returned by ``rnnkit.tasks.forecast.run.forecast_part``.
        out: the PNG's path.
    """
    try:
        plt = pyplot("forecast plots")
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'rnnkit[plot]'") from e
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    horizon = fc["actual"].shape[1]
    shown = sorted({s for s, _ in fc["picks"]})[:max_series]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 3.2 * len(shown)), squeeze=False)
    colours = {"model": "C3", "network": "C4", "ets": "C2", "seasonal_naive": "C1", "naive": "C7"}
    for ax, s in zip(axes[:, 0], shown):
        series = prep.series[s]
        rows = [i for i, (k, _) in enumerate(fc["picks"]) if k == s]
        first = fc["picks"][rows[0]][1]
        end = fc["picks"][rows[-1]][1] + horizon
        start = max(0, first - 4 * max(horizon, prep.data.lookback))
        t = series.times  # years, indices or dates, as the file gives them
        ax.plot(t[start:end], series.target[start:end], color="black", lw=1, label="actual")
        ax.axvline(t[first - 1], color="grey", ls=":", lw=1)  # the last point before the part
        last_drawn = -np.inf
        for i in rows:
            o = fc["picks"][i][1]
            if o < last_drawn + horizon:
                continue  # draw non-overlapping forecasts only, to keep the picture readable
            last_drawn = o
            steps = t[o : o + horizon]
            if "lower" in fc:
                ax.fill_between(steps, fc["lower"][i], fc["upper"][i], color="C3", alpha=0.2)
            for name, colour in colours.items():
                if name in fc:
                    label = name.replace("_", " ") if o == fc["picks"][rows[0]][1] else None
                    if name == "network":
                        label = label and "network alone"
                    style = "--" if name == "network" else "-"
                    ax.plot(steps, fc[name][i], color=colour, lw=1.2, ls=style, label=label)
        ax.set_title(f"{title} series {series.id}" if len(prep.series) > 1 else title)
        ax.set_xlabel(prep.data.time_col)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
