"""Correlates of War and ATOP data: loading, state lookups, year coverage.

Every function takes the data directory (the files described in
`../shared/data/README.md`); loaded frames are cached per process. Nothing
here is copied into the repository: the builder reads the files in place.

COW quirks handled here (docs/SCENARIOS.md, "Building a scenario"):
- a state is in the system on the *reference date*, 1 July of the year, so
  1990 has the German Federal Republic (GFR, 260) and not Germany (GMY, 255,
  from 3 Oct 1990); asking for a state outside the system names the states
  that were there under its code or abbreviation;
- a year past a dataset's last year uses that last year (and the built file
  says so); IGO years before 1965 are COW's five-yearly waves (1950, 1955,
  1960): the latest wave at or before the year is used;
- ATOP rows are directed (ccode1 pledges to ccode2): a pledge in either
  direction counts for the pair.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

FILES = {
    "states": "cow_states.csv", "majors": "cow_majors.csv", "nmc": "cow_nmc.csv",
    "igo": "cow_igo_state_year.parquet", "igo_catalog": "cow_igo_catalog.csv",
    "atop": "atop_alliance_dyad_year.parquet", "contiguity": "cow_contiguity.csv",
    "capitals": "cow_capitals.csv", "wars": "cow_war_participants.csv",
    # interest data (engine/data/interests.py) and embeddedness data (engine/data/ties.py)
    "un_votes": "un_votes.parquet", "un_roll_calls": "un_roll_calls.parquet",
    "mindist": "cow_mindist.parquet", "democracy": "democracy_state_year.csv",
    "rivalries": "td_rivalries.csv", "trade": "cow_trade_dyad_year.parquet",
    "igo_dyad": "cow_igo_dyad_year.parquet", "gdp": "gdp_state_year.csv",
}
ATOP_PLEDGES = ("defense", "offense", "neutral", "nonagg", "consul")
IGO_WAVES_BEFORE = 1965  # COW IGO v3 observes every 5 years before this year
# COW regions by ccode range (the COW state-system convention)
REGIONS = {"americas": (2, 199), "europe": (200, 399), "africa": (400, 599),
           "middle_east": (600, 699), "asia": (700, 899), "oceania": (900, 999)}


class DataError(ValueError):
    """The data directory, a state, a year or an option cannot be used (exit code 2)."""


@dataclass(frozen=True)
class State:
    ccode: int
    abb: str
    name: str


@functools.lru_cache(maxsize=4)
def _frames(data_dir: str) -> dict[str, pl.DataFrame]:
    root = Path(data_dir)
    missing = [f for f in FILES.values() if not (root / f).is_file()]
    if missing:
        raise DataError(f"--data {data_dir}: not a COW data directory (missing {', '.join(missing)}; "
                        "see ../shared/data/README.md)")
    out = {}
    for key, name in FILES.items():
        path = root / name
        try:
            frame = (pl.read_parquet(path) if name.endswith(".parquet")
                     else pl.read_csv(path, infer_schema_length=None))
            if key in ("atop", "trade", "igo_dyad", "mindist"):
                frame = frame.with_columns(pl.col("ccode1", "ccode2", "year").cast(pl.Int64))
        except (pl.exceptions.PolarsError, OSError) as exc:  # a damaged or foreign file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"--data {data_dir}: {name}: cannot be read as the COW file it should be "
                            f"({type(exc).__name__}: {first}); restore it from ../shared/data") from None
        out[key] = frame
    return out


def latest_year(years, year: int) -> int | None:
    """The latest year of `years` (a Polars series) at or before `year`; None when there is none."""
    before = years.filter(years <= year)
    return None if before.is_empty() else int(before.max())


def dyad_matrix(frame: pl.DataFrame, value: str, ccodes: list[int], fill: float = 0.0) -> np.ndarray:
    """A symmetric matrix over `ccodes` of a dyadic column (rows in either order; the larger value
    wins where both orders are given); `fill` where a pair has no row or a null."""
    index = {c: k for k, c in enumerate(ccodes)}
    rows = frame.filter(pl.col("ccode1").is_in(ccodes) & pl.col("ccode2").is_in(ccodes))
    m = np.full((len(ccodes), len(ccodes)), np.nan)
    i = np.array([index[c] for c in rows["ccode1"].to_list()], dtype=np.int64)
    j = np.array([index[c] for c in rows["ccode2"].to_list()], dtype=np.int64)
    v = rows[value].cast(pl.Float64).fill_null(np.nan).to_numpy()
    keep = ~np.isnan(v)
    np.fmax.at(m, (i[keep], j[keep]), v[keep])
    m = np.fmax(m, m.T)
    return np.where(np.isnan(m), fill, m)


def frames(data_dir) -> dict[str, pl.DataFrame]:
    """The data files of `data_dir` as Polars frames (cached per process)."""
    return _frames(str(Path(data_dir).resolve()))


@dataclass(frozen=True)
class Coverage:
    """First and last year of each dataset in a data directory."""
    states: tuple[int, int]
    nmc: tuple[int, int]
    igo: tuple[int, int]
    atop: tuple[int, int]
    capitals: tuple[int, int]


def coverage(data_dir) -> Coverage:
    f = frames(data_dir)
    span = lambda s: (int(s.min()), int(s.max()))  # noqa: E731
    return Coverage(states=(int(f["states"]["styear"].min()), int(f["states"]["endyear"].max())),
                    nmc=span(f["nmc"]["year"]), igo=span(f["igo"]["year"]), atop=span(f["atop"]["year"]),
                    capitals=(int(f["capitals"]["stdate"].str.slice(0, 4).cast(pl.Int64).min()),
                              int(f["capitals"]["enddate"].str.slice(0, 4).cast(pl.Int64).max())))


def check_year(data_dir, year: int) -> None:
    """A year is in the data when the state system and NMC reach it (later years fall back)."""
    cov = coverage(data_dir)
    first, last = cov.states[0], max(cov.states[1], cov.nmc[1])
    if not first <= year <= last:
        raise DataError(f"--year {year}: not in the data (states and capabilities cover {first}-{last})")


def used_year(year: int, span: tuple[int, int], waves_before: int | None = None) -> int:
    """The dataset year that stands for `year`: itself, the last year when past the end,
    the latest five-yearly wave before `waves_before`, and the first year when before it."""
    y = min(max(year, span[0]), span[1])
    if waves_before is not None and y < waves_before:
        y = max(span[0], y - y % 5)
    return y


def reference_date(data_dir, year: int) -> dt.date:
    """1 July of the year, or of the state system's last year when past it."""
    return dt.date(min(year, coverage(data_dir).states[1]), 7, 1)


def _state_rows(data_dir) -> pl.DataFrame:
    s = frames(data_dir)["states"]
    return s.with_columns(
        start=pl.date(pl.col("styear"), pl.col("stmonth"), pl.col("stday")),
        end=pl.date(pl.col("endyear"), pl.col("endmonth"), pl.col("endday")))


def system(data_dir, year: int) -> list[State]:
    """States in the COW system on the reference date of `year`, by ccode."""
    day = reference_date(data_dir, year)
    rows = (_state_rows(data_dir).filter((pl.col("start") <= day) & (pl.col("end") >= day))
            .unique("ccode").sort("ccode"))
    return [State(int(c), a, n) for c, a, n in rows.select("ccode", "stateabb", "statenme").iter_rows()]


def resolve(data_dir, token, year: int, flag: str) -> State:
    """A state by COW abbreviation (any case) or numeric code, in the system in `year`."""
    text = str(token).strip()
    rows = _state_rows(data_dir)
    hits = (rows.filter(pl.col("ccode") == int(text)) if text.isdigit()
            else rows.filter(pl.col("stateabb") == text.upper()))
    if hits.height == 0:
        raise DataError(f"{flag} {text}: no such COW state (use a COW abbreviation such as USA, UKG, "
                        "GMY, or a numeric code; see cow_states.csv)")
    day = reference_date(data_dir, year)
    here = hits.filter((pl.col("start") <= day) & (pl.col("end") >= day))
    if here.height == 0:
        spans = "; ".join(f"{a} ({c}) {s}..{e}" for a, c, s, e in
                          hits.select("stateabb", "ccode", "start", "end").iter_rows())
        hint = ""
        if text.upper() == "GMY" or text == "255":
            hint = " (West Germany is GFR, code 260, until 2 Oct 1990)"
        raise DataError(f"{flag} {text}: not in the COW state system on {day} (the reference date "
                        f"of {year}): {spans}{hint}")
    c, a, n = here.select("ccode", "stateabb", "statenme").row(0)
    return State(int(c), a, n)


def major_powers(data_dir, year: int) -> set[int]:
    """ccodes of COW major powers on the reference date of `year`."""
    day = reference_date(data_dir, year)
    m = frames(data_dir)["majors"].with_columns(
        start=pl.date(pl.col("styear"), pl.col("stmonth"), pl.col("stday")),
        end=pl.date(pl.col("endyear"), pl.col("endmonth"), pl.col("endday")))
    return set(m.filter((pl.col("start") <= day) & (pl.col("end") >= day))["ccode"].to_list())


def milper(data_dir, year: int) -> dict[int, float | None]:
    """NMC military personnel (thousands) by ccode in `year` (null where NMC has none)."""
    nmc = frames(data_dir)["nmc"]
    return dict(nmc.filter(pl.col("year") == year).select("ccode", "milper").iter_rows())


def igo_members(data_dir, year: int, ccodes: list[int]) -> tuple[np.ndarray, list[str]]:
    """Full memberships (code 1) in `year`: a bool matrix (states x IGOs) and the IGO names."""
    igo = frames(data_dir)["igo"].filter(pl.col("year") == year)
    names = [c for c in igo.columns if c not in ("ccode", "year", "state")]
    order = pl.DataFrame({"ccode": ccodes}, schema={"ccode": pl.Int64})
    table = order.join(igo, on="ccode", how="left").select(names).fill_null(0)
    return table.to_numpy() == 1, names


def political_igos(data_dir) -> set[str]:
    """Lower-case names of the IGOs the COW catalog flags as political."""
    cat = frames(data_dir)["igo_catalog"]
    return {n.lower() for n in cat.filter(pl.col("political") == 1)["ioname"].to_list()}


def igo_long_names(data_dir) -> dict[str, str]:
    cat = frames(data_dir)["igo_catalog"]
    return {n.lower(): long for n, long in cat.select("ioname", "longorgname").iter_rows()}


def atop_pledges(data_dir, year: int, ccodes: list[int]) -> dict[str, np.ndarray]:
    """ATOP pledges in `year` as symmetric 0/1 matrices over `ccodes` (either direction counts)."""
    index = {c: k for k, c in enumerate(ccodes)}
    rows = frames(data_dir)["atop"].filter(
        (pl.col("year") == year) & pl.col("ccode1").is_in(ccodes) & pl.col("ccode2").is_in(ccodes))
    i = np.array([index[c] for c in rows["ccode1"].to_list()], dtype=np.int64)
    j = np.array([index[c] for c in rows["ccode2"].to_list()], dtype=np.int64)
    out = {}
    for name in ATOP_PLEDGES:
        m = np.zeros((len(ccodes), len(ccodes)), dtype=np.float64)
        v = rows[f"atop_{name}"].to_numpy().astype(np.float64)
        m[i, j] = np.maximum(m[i, j], v)
        out[name] = np.maximum(m, m.T)
    return out


def contiguity(data_dir, day: dt.date, ccodes: list[int]) -> np.ndarray:
    """Direct contiguity on `day` as a symmetric matrix: 1 for land (type 1), 0.5 by sea (2-5)."""
    index = {c: k for k, c in enumerate(ccodes)}
    c = frames(data_dir)["contiguity"].with_columns(pl.col("stdate", "enddate").str.to_date())
    c = c.filter((pl.col("stdate") <= day) & (pl.col("enddate") >= day)
                 & pl.col("ccode1").is_in(ccodes) & pl.col("ccode2").is_in(ccodes))
    m = np.zeros((len(ccodes), len(ccodes)))
    for a, b, t in c.select("ccode1", "ccode2", "conttype").iter_rows():
        v = 1.0 if t == 1 else 0.5
        m[index[a], index[b]] = m[index[b], index[a]] = max(m[index[a], index[b]], v)
    return m


def capitals(data_dir, day: dt.date) -> dict[int, tuple[str, float, float]]:
    """Capital (name, lat, lng) of each ccode valid on `day`, else its nearest listed capital."""
    cap = frames(data_dir)["capitals"].with_columns(pl.col("stdate", "enddate").str.to_date())
    out = {}
    for ccode, group in cap.group_by("ccode"):
        valid = group.filter((pl.col("stdate") <= day) & (pl.col("enddate") >= day))
        if valid.height == 0:  # outside every listed period: the period nearest to the day
            group = group.with_columns(gap=pl.min_horizontal(
                (pl.col("stdate") - pl.lit(day)).dt.total_days().abs(),
                (pl.col("enddate") - pl.lit(day)).dt.total_days().abs()))
            valid = group.sort("gap")
        name, lat, lng = valid.select("capital", "lat", "lng").row(0)
        out[int(ccode[0])] = (name, float(lat), float(lng))
    return out


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance in km between (lat, lng) points, Earth radius 6,371 km."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def region_of(ccode: int) -> str:
    for name, (lo, hi) in REGIONS.items():
        if lo <= ccode <= hi:
            return name
    return "other"
