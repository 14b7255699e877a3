"""Named numeric series for forecasting, read from the data folders of PyPI wheels.

Each archive is downloaded once with ``pip download`` (never installed) and only the CSV file is
kept, pinned by sha256. The wheels of ``arch`` and ``statsmodels`` are built per platform; their
data files are the same bytes in every build, so the pin holds whichever wheel pip picks.

Each entry's ``defaults`` give its columns and season, so ``rnnkit train forecast --data
airline`` needs no column flags; ``rnnkit.datasets.load_series_set`` fetches a set's CSV file.
"""

from __future__ import annotations

from rnnkit.datasets.spec import DatasetSpec

_SP500 = "arch/data/sp500/sp500.csv.gz"
_SUNSPOTS = "statsmodels/datasets/sunspots/sunspots.csv"
_CO2 = "statsmodels/datasets/co2/co2.csv"
_AIRLINE = "sktime/datasets/data/Airline/Airline.csv"

SPECS = (
    DatasetSpec(
        name="sp500",
        description=(
            "S&P 500 index, daily open/high/low/close/volume, 4 Jan 1999 to 31 Dec 2018 "
            "(5,031 trading days), from the arch package's data folder."
        ),
        licence="NCSA",
        kind="series",
        package="arch",
        version="8.0.0",
        archive_kind="wheel",
        members=(_SP500,),
        sha256={_SP500: "1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de"},
        defaults={"time_col": "Date", "target": "Adj Close", "season": 1},
    ),
    DatasetSpec(
        name="sunspots",
        description="Yearly mean sunspot numbers, 1700-2008 (309 years), from statsmodels.",
        licence="BSD-3-Clause",
        kind="series",
        package="statsmodels",
        version="0.15.0",
        archive_kind="wheel",
        members=(_SUNSPOTS,),
        sha256={_SUNSPOTS: "f67889b1d9002cd5227f0e0ef54e35b419cdd85a31279adef6f73fb41e5c0a9b"},
        defaults={"time_col": "YEAR", "target": "SUNACTIVITY", "season": 11},
    ),
    DatasetSpec(
        name="co2",
        description=(
            "Weekly atmospheric CO2 at Mauna Loa, ppm, March 1958 to December 2001 (2,284 weeks, "
            "59 missing: train with --fill linear), from statsmodels."
        ),
        licence="BSD-3-Clause",
        kind="series",
        package="statsmodels",
        version="0.15.0",
        archive_kind="wheel",
        members=(_CO2,),
        sha256={_CO2: "16695fa2786e53414e5a6b54767a3fdf5de99cfbc68617f69d1362d92776a92f"},
        defaults={"time_col": "date", "time_format": "%Y%m%d", "target": "co2", "season": 52},
    ),
    DatasetSpec(
        name="airline",
        description=(
            "Monthly international airline passengers (thousands), 1949-1960 (144 months; Box "
            "& Jenkins' series G), from sktime's data folder."
        ),
        licence="BSD-3-Clause",
        kind="series",
        package="sktime",
        version="1.2.0",
        archive_kind="wheel",
        members=(_AIRLINE,),
        sha256={_AIRLINE: "28af0eb869db6d9fbd31d5af03993a0cbf36c0857c3eb046a068c094b60da851"},
        defaults={"time_col": "Date", "target": "Passengers", "season": 12},
    ),
)
