#!/usr/bin/env python3
"""Check the calibration cases in this directory (plain Python 3.11+, no project code, no third-party package).

Usage:  python3 configs/backtests/calibration/check_cases.py   (from anywhere; exit code 0 when every check passes)

For every case folder <slug>/ holding <slug>.toml and participants.csv (docs: README.md here and
shared/design/BACKTEST_FORMAT.md), it verifies:

- the TOML parses (tomllib) and has only the format's keys, with the required ones: name, data,
  [build] pivot, year, target, deadline_days (> 0), [observed] file, warnum, side = 1, complete = true;
  candidates, when given, is "all" (the set uses no regional restriction);
- `data` resolves, relative to the TOML file, to a directory holding cow_states.csv;
- `[observed] file` is ./participants.csv and exists; its header is exactly
  warnum,ccode,side,stateabb,note; every row has the case's warnum and side 1 and a note;
- every ccode of the participants exists in cow_states.csv with the row's stateabb, and the state is in
  the COW system in the case's year (styear <= year <= endyear) and on the reference date the project
  uses (1 July of the year, engine/data/cow.py), so that `pivotal backtest` can score it;
- pivot, target, theater and every `exclude` entry are COW abbreviations in the system on that date;
- the pivot has a row (note starting "pivot"); the target has none; no excluded state has a row;
  pivot and target are not in `exclude`; no ccode appears twice;
- names, slugs and warnums are distinct across the set; warnums are 9201..9299; years are 1950-2015;
- none is one of the eight coalitions reserved for independent evaluation (by target or theater and
  year, whatever the pivot, and by keywords in the name), and none repeats a case the project already
  has (same pivot, target and year; a same target and year with another pivot is reported, not refused).

It prints one line per case and a summary table, and every failure with its file.
"""
import csv
import re
import datetime as dt
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = ["warnum", "ccode", "side", "stateabb", "note"]
CASE_KEYS = {"name", "data", "build", "observed"}
BUILD_KEYS = {"pivot", "year", "target", "theater", "candidates", "requirement", "deadline_days", "budget",
              "institutions"}
OBSERVED_KEYS = {"file", "warnum", "side", "exclude", "complete"}

# The eight coalitions reserved for independent evaluation: (label, target/theater states, years, name keywords).
RESERVED = [
    ("INTERFET, East Timor 1999", {"ETM", "INS"}, range(1998, 2001), ["interfet", "east timor", "timor"]),
    ("ECOMOG, Liberia 1990", {"LBR"}, range(1989, 1992), ["ecomog", "liberia"]),
    ("Saudi-led intervention in Yemen 2015", {"YEM"}, range(2014, 2017), ["yemen", "decisive storm"]),
    ("Operation Turquoise, Rwanda 1994", {"RWA"}, range(1993, 1996), ["turquoise", "rwanda"]),
    ("RAMSI, Solomon Islands 2003", {"SOL"}, range(2002, 2005), ["ramsi", "solomon"]),
    ("Multinational Force in Lebanon 1982", {"LEB"}, range(1981, 1985), ["lebanon", "beirut"]),
    ("SADC intervention in the DR Congo 1998", {"DRC"}, range(1997, 2000), ["sovereign legitimacy"]),
    ("Anti-ISIS coalition 2014", {"IRQ", "SYR"}, range(2013, 2017), ["isis", "isil", "inherent resolve"]),
]
# Cases the project already has (configs/backtests, tests/fixtures): (pivot, target, year).
EXISTING = [("USA", "IRQ", 1990), ("USA", "AFG", 2001), ("USA", "IRQ", 2003), ("USA", "YUG", 1999),
            ("USA", "DRV", 1965), ("USA", "PRK", 1950), ("USA", "LIB", 2011), ("USA", "SOM", 1992),
            ("USA", "YUG", 1995), ("FRN", "MLI", 2013), ("EGY", "ISR", 1948), ("UKG", "EGY", 1956),
            ("EGY", "ISR", 1967), ("EGY", "ISR", 1973)]

errors = []


def fail(path, msg):
    errors.append(f"{path}: {msg}")


def load_states(data_dir):
    rows = []
    with open(data_dir / "cow_states.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows.append(dict(abb=r["stateabb"], ccode=int(r["ccode"]), name=r["statenme"],
                             styear=int(r["styear"]), endyear=int(r["endyear"]),
                             start=dt.date(int(r["styear"]), int(r["stmonth"]), int(r["stday"])),
                             end=dt.date(int(r["endyear"]), int(r["endmonth"]), int(r["endday"]))))
    return rows


def in_system(rows, year):
    """Rows in the system on 1 July of `year` (the project's reference date)."""
    day = dt.date(year, 7, 1)
    return [r for r in rows if r["start"] <= day <= r["end"]]


def check_case(folder, names, slugs, warnums):
    slug = folder.name
    path = folder / f"{slug}.toml"
    if not path.is_file():
        fail(folder, f"no {slug}.toml")
        return None
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        fail(path, f"TOML does not parse ({exc})")
        return None
    for key in set(doc) - CASE_KEYS:
        fail(path, f"unknown key {key}")
    b, o = doc.get("build", {}), doc.get("observed", {})
    for key in set(b) - BUILD_KEYS:
        fail(path, f"unknown key build.{key}")
    for key in set(o) - OBSERVED_KEYS:
        fail(path, f"unknown key observed.{key}")
    for key, where in [("name", doc), ("data", doc)]:
        if not isinstance(where.get(key), str):
            fail(path, f"required string {key} missing")
    for key, kind in [("pivot", str), ("year", int), ("target", str), ("deadline_days", int)]:
        if not isinstance(b.get(key), kind) or isinstance(b.get(key), bool):
            fail(path, f"required build.{key} missing or not {kind.__name__}")
    for key, kind in [("file", str), ("warnum", int), ("side", int)]:
        if not isinstance(o.get(key), kind):
            fail(path, f"required observed.{key} missing or not {kind.__name__}")
    if errors and any(e.startswith(str(path)) for e in errors):
        return None
    if o.get("complete") is not True:
        fail(path, "observed.complete must be true")
    if o["side"] != 1:
        fail(path, "observed.side must be 1")
    if b["deadline_days"] <= 0:
        fail(path, "build.deadline_days must be > 0")
    if b.get("candidates", "all") != "all":
        fail(path, "build.candidates: this set uses \"all\"")
    year = b["year"]
    if not 1950 <= year <= 2015:
        fail(path, f"year {year} outside 1950-2015")
    data = (path.parent / doc["data"]).resolve()
    if not (data / "cow_states.csv").is_file():
        fail(path, f"data = {doc['data']!r} resolves to {data}, which has no cow_states.csv")
        return None
    rows = load_states(data)
    here = in_system(rows, year)
    abb_here = {r["abb"]: r for r in here}

    def state(abb, what):
        if abb not in abb_here:
            spans = [f"{r['ccode']} {r['start']}..{r['end']}" for r in rows if r["abb"] == abb]
            fail(path, f"{what} {abb} is not in the COW system on {year}-07-01 ({spans or 'no such state'})")
            return None
        return abb_here[abb]

    pivot = state(b["pivot"], "build.pivot")
    target = state(b["target"], "build.target")
    theater = state(b["theater"], "build.theater") if "theater" in b else None
    exclude = o.get("exclude", [])
    excl = [state(a, "observed.exclude") for a in exclude]
    for a in (b["pivot"], b["target"]):
        if a in exclude:
            fail(path, f"{a} (pivot or target) need not be in exclude")
    if len(set(exclude)) != len(exclude):
        fail(path, "duplicate entries in exclude")

    if doc["name"] in names:
        fail(path, f"name {doc['name']!r} also used by {names[doc['name']]}")
    names[doc["name"]] = path
    slugs.add(slug)
    if o["warnum"] in warnums:
        fail(path, f"warnum {o['warnum']} also used by {warnums[o['warnum']]}")
    warnums[o["warnum"]] = path
    if not 9201 <= o["warnum"] <= 9299:
        fail(path, f"warnum {o['warnum']} outside 9201..9299")

    if o["file"] != "./participants.csv":
        fail(path, "observed.file must be ./participants.csv")
    pfile = folder / "participants.csv"
    if not pfile.is_file():
        fail(path, "participants.csv missing")
        return None
    with open(pfile, newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    if not lines or lines[0] != HEADER:
        fail(pfile, f"header must be {','.join(HEADER)}")
        return None
    by_code = {r["ccode"]: r for r in rows}
    seen, notes = set(), {}
    for n, row in enumerate(lines[1:], start=2):
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(HEADER):
            fail(pfile, f"line {n}: {len(row)} fields")
            continue
        w, c, s, abb, note = row
        try:
            w, c, s = int(w), int(c), int(s)
        except ValueError:
            fail(pfile, f"line {n}: warnum, ccode, side must be integers")
            continue
        if w != o["warnum"] or s != 1:
            fail(pfile, f"line {n}: warnum/side {w}/{s}, case says {o['warnum']}/1")
        if c in seen:
            fail(pfile, f"line {n}: ccode {c} appears twice")
        seen.add(c)
        if c not in by_code:
            fail(pfile, f"line {n}: ccode {c} is not in cow_states.csv")
            continue
        matches = [r for r in rows if r["ccode"] == c]
        if abb not in {r["abb"] for r in matches}:
            fail(pfile, f"line {n}: ccode {c} is {matches[0]['abb']} in cow_states.csv, not {abb}")
        if not any(r["abb"] == abb and r["styear"] <= year <= r["endyear"] for r in matches):
            fail(pfile, f"line {n}: {abb} ({c}) not in the system in {year} (styear..endyear)")
        if abb not in abb_here or abb_here[abb]["ccode"] != c:
            fail(pfile, f"line {n}: {abb} ({c}) not in the system on the reference date {year}-07-01")
        if not note.strip():
            fail(pfile, f"line {n}: empty note")
        notes[c] = note
    if pivot and pivot["ccode"] not in seen:
        fail(pfile, f"pivot {b['pivot']} has no row")
    elif pivot and not notes[pivot["ccode"]].startswith("pivot"):
        fail(pfile, f"pivot {b['pivot']}'s note must start with 'pivot'")
    if target and target["ccode"] in seen:
        fail(pfile, f"target {b['target']} has a row")
    for a, r in zip(exclude, excl):
        if r and r["ccode"] in seen:
            fail(pfile, f"{a} is both a participant and excluded")

    # Reserved coalitions and existing cases.
    places = {b["target"]} | ({b["theater"]} if "theater" in b else set())
    lname = doc["name"].lower() + " " + slug.lower().replace("_", " ")
    for label, states, years, words in RESERVED:
        if places & states and year in years:
            fail(path, f"target/theater {sorted(places & states)} in {year}: reserved coalition {label}")
        for wd in words:
            if re.search(r"\b" + re.escape(wd) + r"\b", lname):
                fail(path, f"name mentions {wd!r}: reserved coalition {label}")
    for p, t, y in EXISTING:
        if t in places and y == year:
            if p == b["pivot"]:
                fail(path, f"duplicates the project's case {p}-{t}-{y}")
            else:
                print(f"  note: {slug}: same target and year as the project's case {p}-{t}-{y}, "
                      f"another pivot ({b['pivot']})")
    size = len(seen) - (1 if pivot and pivot["ccode"] in seen else 0)
    return dict(slug=slug, name=doc["name"], pivot=b["pivot"], year=year, target=b["target"],
                size=size, excluded=len(exclude), deadline=b["deadline_days"])


def main():
    folders = sorted(p for p in HERE.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    names, slugs, warnums, results = {}, set(), {}, []
    for folder in folders:
        r = check_case(folder, names, slugs, warnums)
        if r:
            results.append(r)
    print(f"{'case':28} {'pivot':5} {'year':4} {'target':6} {'size':>4} {'excl':>4} {'days':>4}")
    for r in results:
        print(f"{r['slug']:28} {r['pivot']:5} {r['year']:4} {r['target']:6} {r['size']:4d} {r['excluded']:4d} "
              f"{r['deadline']:4d}")
    pivots = sorted({r["pivot"] for r in results})
    print(f"{len(results)} cases, {len(pivots)} pivots ({', '.join(pivots)}), "
          f"sizes {min((r['size'] for r in results), default=0)}-{max((r['size'] for r in results), default=0)}")
    if len(folders) < 22:
        errors.append(f"{HERE}: {len(folders)} cases, fewer than 22")
    for e in errors:
        print("FAIL", e)
    print("all checks passed" if not errors else f"{len(errors)} failure(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
