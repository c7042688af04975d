"""Interest data: why a candidate would *want* to join (its preference mean; docs/SCENARIOS.md).

Every covariate here comes from data about interests and alignment, never from the data
the ties are built from (engine/data/ties.py); the builder's formula table
(`builder.FORMULAS`) says which file and column feeds which output, and a test asserts
that no column feeds both a preference and a tie.

- UN General Assembly voting agreement with the pivot and with the target (Voeten,
  Strezhnev and Bailey, "United Nations General Assembly Voting Data"): the *agreement
  index* (Voeten 2000; Bailey, Strezhnev and Voeten 2017): votes coded yes 1, abstain 2,
  no 3; agreement = mean over the roll calls both states voted on of 1 - |v_a - v_b| / 2
  (1: always the same vote; 0: always opposite), over the roll calls dated in the year and
  the year before (`UN_WINDOW`), with at least `UN_MIN_VOTES` in common.
- distance to the theater: COW/Cshapes minimum distance between the two territories
  (cow_mindist.parquet `mindist`, km; 0 for neighbours), capitals where it has no row;
- regime similarity with the pivot: 1 - |polyarchy_i - polyarchy_P| (V-Dem electoral
  democracy, democracy_state_year.csv `v2x_polyarchy`; Polity2 rescaled where V-Dem has none);
- strategic rivalry with the target and with the pivot (Thompson and Dreyer, td_rivalries.csv);
- COW major power (cow_majors.csv) and NMC military personnel (size).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from engine.data import cow

UN_WINDOW = 2          # calendar years of roll calls: the year and the one before
UN_MIN_VOTES = 10      # roll calls two states must share for an agreement score
UN_LOOKBACK = 10       # years a window may step back to find a state's votes
VOTE_CODE = {"yes": 1.0, "abstain": 2.0, "no": 3.0}
RIVALRY_LAST = 2010    # Thompson and Dreyer end in 2010: a rivalry open then is taken as ongoing


@dataclass
class Interests:
    """Preference covariates of every candidate (arrays over the candidates)."""
    un_pivot: np.ndarray         # agreement index with the pivot (imputed where missing)
    un_target: np.ndarray        # agreement index with the target
    distance_km: np.ndarray      # minimum distance to the theater's territory
    regime_similarity: np.ndarray
    rival_target: np.ndarray     # 0/1
    rival_pivot: np.ndarray      # 0/1
    major: np.ndarray            # 0/1
    years: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def un_agreement(data, year: int, ccode: int, others: list[int]) -> tuple[np.ndarray, int | None]:
    """Agreement index of `ccode` with each of `others` over the roll calls of the window that
    ends in `year` (or in the data's last year); nan below UN_MIN_VOTES shared votes. When
    `ccode` itself has too few votes there (absent, as Iraq 1996-2003, or not a member), the
    window steps back by UN_WINDOW years, at most UN_LOOKBACK years. Returns the scores and
    the window's last year (None when no window has its votes)."""
    calls = cow.frames(data)["un_roll_calls"].with_columns(y=pl.col("date").dt.year())
    last = cow.latest_year(calls["y"], year)
    out = np.full(len(others), np.nan)
    while last is not None and last > year - UN_LOOKBACK:
        scores = _agreement_window(data, calls, last, ccode, others)
        if (~np.isnan(scores)).any():
            return scores, last
        last -= UN_WINDOW
    return out, None


def _agreement_window(data, calls, last: int, ccode: int, others: list[int]) -> np.ndarray:
    f = cow.frames(data)
    rcids = calls.filter((pl.col("y") > last - UN_WINDOW) & (pl.col("y") <= last))["rcid"]
    votes = (f["un_votes"].filter(pl.col("rcid").is_in(rcids.to_list()) & pl.col("ccode").is_in([ccode, *others]))
             .with_columns(v=pl.col("vote").replace_strict(VOTE_CODE, default=None, return_dtype=pl.Float64))
             .drop_nulls("v").unique(["rcid", "ccode"], keep="first"))
    mine = votes.filter(pl.col("ccode") == ccode).select("rcid", pl.col("v").alias("vp"))
    pairs = (votes.filter(pl.col("ccode") != ccode).join(mine, on="rcid")
             .group_by("ccode").agg(n=pl.len(), s=(1 - (pl.col("v") - pl.col("vp")).abs() / 2).mean()))
    score = {c: s for c, n, s in pairs.select("ccode", "n", "s").iter_rows() if n >= UN_MIN_VOTES}
    return np.array([score.get(c, np.nan) for c in others])


def min_distance(data, year: int, theater: int, ccodes: list[int]) -> tuple[np.ndarray, int | None]:
    """cow_mindist km from each of `ccodes` to `theater` in the latest year at or before `year`
    (nan where the data have no row)."""
    d = cow.frames(data)["mindist"]
    mine = d.filter((pl.col("ccode1") == theater) | (pl.col("ccode2") == theater))
    used = cow.latest_year(mine["year"].unique(), year)  # e.g. Kuwait has no 1990 shape: 1989
    if used is None:
        return np.full(len(ccodes), np.nan), None
    rows = mine.filter(pl.col("year") == used)
    codes = list(dict.fromkeys([theater, *ccodes]))  # the theater may be a candidate (Kuwait, 1990)
    m = cow.dyad_matrix(rows, "mindist", codes, fill=np.nan)
    at = {c: k for k, c in enumerate(codes)}
    return np.array([0.0 if c == theater else m[0, at[c]] for c in ccodes]), used


def regime(data, year: int, ccodes: list[int]) -> tuple[np.ndarray, int | None]:
    """V-Dem electoral democracy (0-1) of each ccode in the latest year at or before `year`;
    where V-Dem has none, Polity2 rescaled to 0-1 ((polity2 + 10) / 20)."""
    d = cow.frames(data)["democracy"]
    used = cow.latest_year(d["year"].unique(), year)
    if used is None:
        return np.full(len(ccodes), np.nan), None
    rows = d.filter(pl.col("year") == used).with_columns(
        score=pl.coalesce(pl.col("v2x_polyarchy"), (pl.col("polity2") + 10) / 20))
    v = dict(rows.select("ccode", "score").iter_rows())
    return np.array([np.nan if v.get(c) is None else float(v[c]) for c in ccodes]), used


def rivals(data, year: int, ccode: int) -> set[int]:
    """States in a strategic rivalry with `ccode` in `year` (Thompson and Dreyer; after
    RIVALRY_LAST, the rivalries still open in RIVALRY_LAST)."""
    r = cow.frames(data)["rivalries"]
    y = min(year, RIVALRY_LAST)
    open_ = r.filter((pl.col("styear") <= y) & (pl.col("endyear") >= y)
                     & ((pl.col("ccode1") == ccode) | (pl.col("ccode2") == ccode)))
    return {int(b if a == ccode else a) for a, b in open_.select("ccode1", "ccode2").iter_rows()}


def _impute(values: np.ndarray, label: str, states, notes: list[str]) -> np.ndarray:
    """Missing values get the candidates' mean (neutral in a linear index); a note names them."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    names = [s.abb for s, m in zip(states, missing) if m]
    if missing.all():
        notes.append(f"{label}: missing for every candidate: 0 used (the term is the same for all)")
        return np.zeros_like(values)
    fill = float(np.nanmean(values))
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    notes.append(f"{label}: missing for {shown}; the candidates' mean {fill:.3f} used")
    return np.where(missing, fill, values)


def gather(data, year: int, pivot, target, theater, candidates, capitals_km: np.ndarray,
           majors: set[int]) -> Interests:
    """Every preference covariate of `candidates` (cow.State lists; `capitals_km`: capital
    distances, used where cow_mindist has no row)."""
    notes: list[str] = []
    ccodes = [s.ccode for s in candidates]
    un_p, un_year = un_agreement(data, year, pivot.ccode, ccodes)
    un_t, un_t_year = un_agreement(data, year, target.ccode, ccodes)
    for who, used in ((f"pivot {pivot.abb}", un_year), (f"target {target.abb}", un_t_year)):
        if used is not None and used != year:
            notes.append(f"UN votes: agreement with the {who} over the roll calls of {used - UN_WINDOW + 1}-"
                         f"{used} (the latest window with its votes at or before {year}; the data end in 2019)")
    if np.isnan(un_t).all():
        notes.append(f"UN votes: target {target.abb} has no agreement score (not a member or too few "
                     "votes): agreement with the target is the same for every candidate")
    un_p = _impute(un_p, "UN agreement with the pivot", candidates, notes)
    un_t = _impute(un_t, "UN agreement with the target", candidates, notes)
    dist, dist_year = min_distance(data, year, theater.ccode, ccodes)
    if dist_year is not None and dist_year != year:
        notes.append(f"cow_mindist: year {dist_year} used for {year}")
    gap = np.isnan(dist)
    if gap.any():
        names = [s.abb for s, g in zip(candidates, gap) if g]
        notes.append(f"cow_mindist: no row for {len(names)} candidate(s) ({', '.join(names[:8])}"
                     f"{' ...' if len(names) > 8 else ''}): great-circle distance between capitals used")
        dist = np.where(gap, capitals_km, dist)
    dem, dem_year = regime(data, year, [pivot.ccode, *ccodes])
    if dem_year is not None and dem_year != year:
        notes.append(f"V-Dem polyarchy: year {dem_year} used for {year}")
    if np.isnan(dem[0]):
        notes.append(f"V-Dem polyarchy: none for pivot {pivot.abb}: regime similarity set to 0.5")
        sim = np.full(len(ccodes), 0.5)
    else:
        sim = _impute(1.0 - np.abs(dem[1:] - dem[0]), "regime similarity", candidates, notes)
    if year > RIVALRY_LAST:
        notes.append(f"rivalries: Thompson and Dreyer end in {RIVALRY_LAST}; rivalries open then taken as "
                     "ongoing")
    rt, rp = rivals(data, year, target.ccode), rivals(data, year, pivot.ccode)
    return Interests(
        un_pivot=un_p, un_target=un_t, distance_km=dist, regime_similarity=sim,
        rival_target=np.array([1.0 if c in rt else 0.0 for c in ccodes]),
        rival_pivot=np.array([1.0 if c in rp else 0.0 for c in ccodes]),
        major=np.array([1.0 if c in majors else 0.0 for c in ccodes]),
        years={"un": un_year, "un_target": un_t_year, "mindist": dist_year, "democracy": dem_year,
               "rivalries": min(year, RIVALRY_LAST)},
        notes=notes)
