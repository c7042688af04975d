#!/usr/bin/env python3
"""Re-derive the data-based figures of configs/scenarios/syria_safe_zone_2019.toml.

Reads the Correlates of War / ATOP files from --data (default: ../shared/data
relative to the repository root) and prints, for the pivot GMY and every
candidate: COW NMC milper, the capacity triangle, the ATOP 2018 obligations
with GMY, IGO co-memberships in 2014 and the resulting tie mean; then the
candidate-to-candidate ties and the assumption-based preference figures.
It only reads; it writes nothing.

Usage:  .venv/bin/python configs/derive/syria_safe_zone_2019.py [--data DIR]
"""
import argparse
import math
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[2]

PIVOT = "GMY"
CANDIDATES = ["FRN", "UKG", "ITA", "NTH", "BEL", "DEN", "NOR", "SWD", "FIN",
              "POL", "SPN", "CAN", "AUL", "TUR", "USA", "RUS"]
PAIRS = [("FRN", "UKG"), ("UKG", "USA"), ("USA", "CAN"), ("USA", "AUL"),
         ("NTH", "BEL"), ("DEN", "NOR"), ("SWD", "FIN"), ("RUS", "TUR")]

NMC_YEAR = 2019   # the proposal's year (NMC v7 in this file runs to 2022)
ATOP_YEAR = 2018  # latest ATOP 5.1 year
IGO_YEAR = 2014   # latest COW IGO v3 year

# capacity triangle = share of total military personnel (assumption)
SHARE = {"low": 0.005, "mode": 0.015, "high": 0.03}

# tie mean = 0.05 + 0.40*atop_defense + 0.10*atop_consul + 0.40*igo_cosine
def tie_mean(defense, consul, cosine):
    return round(0.05 + 0.40 * defense + 0.10 * consul + 0.40 * cosine, 2)

# preference (assumption): mean = -attitude * EUR 0.25 million * mode troops,
# sd = 0.5*|mean| (0.25*|mean| for states that publicly refused)
COST_PER_TROOP = 0.25
ATTITUDE = {c: 1.0 for c in CANDIDATES}
ATTITUDE.update({"FRN": 1.5, "UKG": 1.5, "POL": 1.5, "AUL": 1.5,
                 "TUR": 3.0, "USA": 3.0, "RUS": 3.0})
REFUSED = {"TUR", "USA", "RUS"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"),
                    help="directory with the COW/ATOP files (default: %(default)s)")
    data = Path(ap.parse_args().data)

    # COW state abbreviations -> ccode (states in the system at the end of 2016)
    states = pl.read_csv(data / "cow_states.csv").filter(pl.col("endyear") == 2016)
    ccode = dict(states.select("stateabb", "ccode").unique().iter_rows())

    # COW NMC v7: milper in thousands
    nmc = pl.read_csv(data / "cow_nmc.csv", infer_schema_length=None)
    milper = dict(nmc.filter(pl.col("year") == NMC_YEAR)
                  .select("ccode", "milper").iter_rows())

    # ATOP 5.1 directed dyad-years
    atop = pl.read_parquet(data / "atop_alliance_dyad_year.parquet").filter(
        pl.col("year") == ATOP_YEAR)

    def atop_row(a, b):
        r = atop.filter((pl.col("ccode1") == ccode[a]) & (pl.col("ccode2") == ccode[b]))
        if r.height == 0:
            return {"def": 0, "neu": 0, "nag": 0, "con": 0}
        r = r.row(0, named=True)
        return {"def": r["atop_defense"], "neu": r["atop_neutral"],
                "nag": r["atop_nonagg"], "con": r["atop_consul"]}

    # COW IGO v3: full memberships (code 1) in IGO_YEAR
    igo = pl.read_parquet(data / "cow_igo_state_year.parquet").filter(
        pl.col("year") == IGO_YEAR)
    orgs = [c for c in igo.columns if c not in ("ccode", "year", "state")]
    full = {}
    for row in igo.iter_rows(named=True):
        full[row["ccode"]] = {o for o in orgs if row[o] == 1}

    def igo_stats(a, b):
        sa, sb = full[ccode[a]], full[ccode[b]]
        shared = len(sa & sb)
        return shared, len(sa), len(sb), shared / math.sqrt(len(sa) * len(sb))

    print(f"data: {data}")
    print(f"pivot {PIVOT} ccode {ccode[PIVOT]}: milper {NMC_YEAR} = {milper[ccode[PIVOT]]:.0f}k, "
          f"full IGO memberships {IGO_YEAR} = {len(full[ccode[PIVOT]])}")
    print()
    print(f"Candidates: milper (NMC {NMC_YEAR}, thousands); capacity = milper*1000*"
          f"{SHARE['low']}/{SHARE['mode']}/{SHARE['high']};")
    print(f"ATOP {ATOP_YEAR} with {PIVOT} (def, neutral, nonagg, consult); "
          f"IGO {IGO_YEAR} shared full memberships with {PIVOT}, own count, cosine; tie mean")
    hdr = (f"{'id':4} {'ccode':>5} {'milper':>6} {'low':>6} {'mode':>6} {'high':>6} "
           f"{'def':>3} {'neu':>3} {'nag':>3} {'con':>3} {'shared':>6} {'own':>4} "
           f"{'cos':>6} {'tie':>5}")
    print(hdr)
    for c in CANDIDATES:
        m = milper[ccode[c]]
        cap = {k: round(m * 1000 * s) for k, s in SHARE.items()}
        a = atop_row(PIVOT, c)
        shared, n_p, n_c, cos = igo_stats(PIVOT, c)
        print(f"{c:4} {ccode[c]:>5} {m:>6.0f} {cap['low']:>6} {cap['mode']:>6} {cap['high']:>6} "
              f"{a['def']:>3} {a['neu']:>3} {a['nag']:>3} {a['con']:>3} {shared:>6} {n_c:>4} "
              f"{cos:>6.3f} {tie_mean(a['def'], a['con'], cos):>5.2f}")
    total = sum(round(milper[ccode[c]] * 1000 * SHARE["mode"]) for c in CANDIDATES)
    print(f"sum of mode capacities: {total}")
    print()
    print("Candidate-to-candidate ties (same formula; ATOP row ccode1=a, ccode2=b)")
    print(f"{'a':4} {'b':4} {'def':>3} {'con':>3} {'shared':>6} {'n_a':>4} {'n_b':>4} {'cos':>6} {'tie':>5}")
    for a, b in PAIRS:
        r = atop_row(a, b)
        shared, na, nb, cos = igo_stats(a, b)
        print(f"{a:4} {b:4} {r['def']:>3} {r['con']:>3} {shared:>6} {na:>4} {nb:>4} "
              f"{cos:>6.3f} {tie_mean(r['def'], r['con'], cos):>5.2f}")
    print()
    print(f"Preferences (assumption, EUR million): mean = -attitude * {COST_PER_TROOP} * mode; "
          "sd = 0.5*|mean| (0.25*|mean| if publicly refused)")
    means = []
    for c in CANDIDATES:
        mode = round(milper[ccode[c]] * 1000 * SHARE["mode"])
        mean = -ATTITUDE[c] * COST_PER_TROOP * mode
        sd = (0.25 if c in REFUSED else 0.5) * abs(mean)
        means.append(abs(mean))
        print(f"{c:4} attitude {ATTITUDE[c]:>3.1f}  mean {round(mean):>7}  sd {round(sd):>6}")
    means.sort()
    n = len(means)
    print(f"median |mean| = {(means[n // 2 - 1] + means[n // 2]) / 2:.0f}")


if __name__ == "__main__":
    main()
