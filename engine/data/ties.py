"""Embeddedness data: what ties the pivot can use with each candidate (docs/SCENARIOS.md).

One source family per mechanism of Henke's theory (none of it feeds a preference; see
`builder.FORMULAS`):

- information: shared IGO memberships (COW IGO v3 dyadic, cow_igo_dyad_year.parquet
  `dyadigos`: the number of IGOs in which both are full members);
- linkage: trade dependence on the pivot (COW Dyadic Trade v4.0, cow_trade_dyad_year.parquet
  `flow1`, `flow2`: the candidate's trade with the pivot as a share of its total trade) and
  economic asymmetry (gdp_state_year.csv `wbgdp2011est`: the pivot's share of the pair's GDP);
- credibility: ATOP defence pledges and their age (atop_alliance_dyad_year.parquet
  `atop_defense`, the years the current run of pledges has lasted; `atop_consul`, a
  consultation pledge, counts for less);
- brokers and venues: shared *security* organisations and regional bodies (`SECURITY_IGOS`,
  COW IGO v3 state-year membership columns), not every political IGO.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from engine.data import cow

# The security organisations and regional bodies that can broker a military coalition or host
# its summits (COW IGO ioname -> why). Chosen by hand from cow_igo_catalog.csv: alliances and
# collective-security bodies, and regional organisations that have mounted or mandated
# military operations. Universal bodies (the UN), economic, technical and cultural IGOs are out.
SECURITY_IGOS = {
    "NATO": "North Atlantic alliance", "WEU": "Western European Union (defence pact, 1955-2011)",
    "WPACT": "Warsaw Treaty Organization", "SEATO": "Southeast Asia Treaty Organization",
    "CENTO": "Central Treaty Organization (Baghdad Pact)", "ANZUS": "ANZUS security treaty",
    "CSTO": "Collective Security Treaty Organization", "IADEFB": "Inter-American Defense Board",
    "OSCE": "security and cooperation in Europe (CSCE until 1995)",
    "EU": "European Union (common security and defence policy, operations since 2003)",
    "CIS": "Commonwealth of Independent States (CIS peacekeeping)",
    "SCO": "Shanghai Cooperation Organisation (security cooperation)",
    "OAS": "Organization of American States (Rio Treaty partners; Dominican Republic 1965)",
    "OECS": "Organization of Eastern Caribbean States (Grenada 1983; Regional Security System)",
    "OCAS": "Organization of Central American States",
    "LOAS": "League of Arab States (Arab Deterrent Force, Lebanon 1976)",
    "GCC": "Gulf Cooperation Council (Peninsula Shield Force)",
    "ECOWAS": "Economic Community of West African States (ECOMOG)",
    "SADC": "Southern African Development Community (Organ on Politics, Defence and Security)",
    "ECCAS": "Economic Community of Central African States (MICOPAX)",
    "IGAD": "Intergovernmental Authority on Development (Horn of Africa peace processes)",
    "OAU": "Organization of African Unity (Chad 1981 peacekeeping)",
    "AU": "African Union (Peace and Security Council; AMIS, AMISOM)",
    "PIF": "Pacific Islands Forum (Biketawa Declaration)",
}
AGE_FULL_YEARS = 10    # a defence pledge counts fully once it has lasted this long


@dataclass
class Ties:
    """Embeddedness of every candidate with the pivot, and between candidates."""
    igo_shared: np.ndarray          # dyadigos with the pivot
    trade_share: np.ndarray         # candidate's trade with the pivot / its total trade (0 if none)
    gdp_asymmetry: np.ndarray       # GDP_P / (GDP_P + GDP_i); 0.5 where GDP is missing
    defense: np.ndarray             # 0/1 ATOP defence pledge with the pivot
    defense_age: np.ndarray         # years the current run of defence pledges has lasted (0 if none)
    consult: np.ndarray             # 0/1 ATOP consultation pledge with the pivot
    pair_igo: np.ndarray            # candidate x candidate dyadigos
    pair_defense: np.ndarray        # candidate x candidate ATOP defence 0/1
    institutions: list[tuple[str, str, list[int], float, bool]] = field(default_factory=list)
    # (id, long name, candidate member indices, share of the system that are members, pivot member)
    years: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def igo_dyads(data, year: int, ccodes: list[int]) -> tuple[np.ndarray, int | None]:
    d = cow.frames(data)["igo_dyad"]
    used = cow.latest_year(d["year"].unique(), year)
    if used is None:
        return np.zeros((len(ccodes), len(ccodes))), None
    return cow.dyad_matrix(d.filter(pl.col("year") == used), "dyadigos", ccodes), used


def trade_shares(data, year: int, pivot: int, ccodes: list[int]) -> tuple[np.ndarray, int | None]:
    """Each candidate's trade (imports plus exports, COW flows) with the pivot as a share of its
    trade with every state that year; 0 where nothing is recorded."""
    t = cow.frames(data)["trade"]
    used = cow.latest_year(t["year"].unique(), year)
    if used is None:
        return np.zeros(len(ccodes)), None
    rows = t.filter(pl.col("year") == used).with_columns(
        total=pl.col("flow1").fill_null(0.0) + pl.col("flow2").fill_null(0.0))
    both = pl.concat([rows.select(pl.col("ccode1").alias("c"), pl.col("ccode2").alias("o"), "total"),
                      rows.select(pl.col("ccode2").alias("c"), pl.col("ccode1").alias("o"), "total")])
    total = dict(both.group_by("c").agg(pl.col("total").sum()).iter_rows())
    with_pivot = dict(both.filter(pl.col("o") == pivot).select("c", "total").iter_rows())
    share = [with_pivot.get(c, 0.0) / total[c] if total.get(c, 0.0) > 0 else 0.0 for c in ccodes]
    return np.array(share, dtype=np.float64), used


def gdp_asymmetry(data, year: int, pivot: int, ccodes: list[int]) -> tuple[np.ndarray, int | None]:
    """GDP_P / (GDP_P + GDP_i) from ln GDP (2011 USD); 0.5 where either is missing."""
    g = cow.frames(data)["gdp"]
    used = cow.latest_year(g["year"].unique(), year)
    if used is None:
        return np.full(len(ccodes), 0.5), None
    ln = dict(g.filter(pl.col("year") == used).select("ccode", "wbgdp2011est").iter_rows())
    lp = ln.get(pivot)
    out = [0.5 if lp is None or ln.get(c) is None else 1.0 / (1.0 + np.exp(ln[c] - lp)) for c in ccodes]
    return np.array(out, dtype=np.float64), used


def defence(data, year: int, pivot: int, ccodes: list[int]) -> tuple[dict[str, np.ndarray], int | None]:
    """ATOP defence and consultation pledges with the pivot in the year (either direction) and
    the age of the defence pledge: the number of consecutive years up to the year with one."""
    a = cow.frames(data)["atop"]
    used = cow.latest_year(a["year"].unique(), year)
    n = len(ccodes)
    if used is None:
        return {"defense": np.zeros(n), "age": np.zeros(n), "consult": np.zeros(n)}, None
    mine = a.filter((pl.col("year") <= used) & ((pl.col("ccode1") == pivot) | (pl.col("ccode2") == pivot)))
    mine = mine.with_columns(other=pl.when(pl.col("ccode1") == pivot).then(pl.col("ccode2"))
                             .otherwise(pl.col("ccode1")))
    by_year = mine.group_by("other", "year").agg(pl.col("atop_defense").max(), pl.col("atop_consul").max())
    now = by_year.filter(pl.col("year") == used)
    defense = dict(now.select("other", "atop_defense").iter_rows())
    consult = dict(now.select("other", "atop_consul").iter_rows())
    years_with = {}
    for other, y in by_year.filter(pl.col("atop_defense") == 1).select("other", "year").iter_rows():
        years_with.setdefault(other, set()).add(y)
    age = []
    for c in ccodes:
        k, have = 0, years_with.get(c, set())
        while used - k in have:
            k += 1
        age.append(float(k))
    return {"defense": np.array([float(defense.get(c, 0) or 0) for c in ccodes]),
            "age": np.array(age), "consult": np.array([float(consult.get(c, 0) or 0) for c in ccodes])}, used


def security_institutions(data, igo_year: int, everyone: list[int], system: list[int], wanted=()):
    """The security IGOs (SECURITY_IGOS) the pivot (everyone[0]) belongs to, plus `wanted` (any
    COW IGO given by the analyst), as (id, long name, candidate indices, share of the system,
    pivot member); candidates are everyone[2:]. Refuses an unknown IGO name."""
    members, names = cow.igo_members(data, igo_year, everyone)
    system_members, _ = cow.igo_members(data, igo_year, system)
    n_system = max(1, system_members.shape[0])
    long_names = cow.igo_long_names(data)
    wanted = [w.upper() for w in wanted]
    unknown = [w for w in wanted if w.lower() not in names]
    if unknown:
        raise cow.DataError(f"--institutions {unknown[0]}: no IGO {unknown[0]} in COW IGO v3 in {igo_year} "
                            "(names as cow_igo_catalog.csv ioname, e.g. NATO, ECOWAS, LOAS, GCC)")
    chosen = list(dict.fromkeys(wanted + sorted(k for k in SECURITY_IGOS
                                                if k.lower() in names
                                                and members[0, names.index(k.lower())])))
    out = []
    for iid in chosen:
        col = names.index(iid.lower())
        idx = [k for k in range(len(everyone) - 2) if members[2 + k, col]]
        out.append((iid, long_names.get(iid.lower(), iid), idx,
                    float(system_members[:, col].sum()) / n_system, bool(members[0, col])))
    return out


def gather(data, year: int, igo_year: int, pivot, target, candidates, system: list[int],
           wanted_institutions=()) -> Ties:
    """Every tie covariate of `candidates` (cow.State lists) with the pivot and between them."""
    notes: list[str] = []
    ccodes = [s.ccode for s in candidates]
    igo, igo_used = igo_dyads(data, year, [pivot.ccode, *ccodes])
    share, trade_year = trade_shares(data, year, pivot.ccode, ccodes)
    asym, gdp_year = gdp_asymmetry(data, year, pivot.ccode, ccodes)
    pledges, atop_year = defence(data, year, pivot.ccode, ccodes)
    pair = cow.atop_pledges(data, atop_year, ccodes)["defense"] if atop_year else np.zeros((len(ccodes),) * 2)
    for label, used in (("COW IGO dyads", igo_used), ("COW trade", trade_year), ("GDP", gdp_year),
                        ("ATOP", atop_year)):
        if used is None:
            notes.append(f"{label}: no data at or before {year}: that tie is 0 for every candidate")
        elif used != year:
            notes.append(f"{label}: year {used} used for {year} (latest available)")
    insts = security_institutions(data, igo_year, [pivot.ccode, target.ccode, *ccodes], system,
                                  wanted_institutions)
    return Ties(igo_shared=igo[0, 1:], trade_share=share, gdp_asymmetry=asym, defense=pledges["defense"],
                defense_age=pledges["age"], consult=pledges["consult"], pair_igo=igo[1:, 1:],
                pair_defense=pair, institutions=insts,
                years={"igo_dyad": igo_used, "trade": trade_year, "gdp": gdp_year, "atop": atop_year},
                notes=notes)
