"""The data side of forecasting: reading series (``table``), splits, scaling and windows
(``windows``), baselines, metrics and plots. The task itself is ``rnnkit.tasks.forecast.task``."""
