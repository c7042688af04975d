"""A built scenario as a commented TOML file: every figure beside its source and formula, so
that an analyst can read how each number was made (docs/SCENARIOS.md)."""
from __future__ import annotations

import json

import numpy as np

from engine.data import builder, ties
from engine.data.builder import CREDIBILITY, INFORMATION, LINKAGE, PREF_COVARIATES


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


def header(doc: dict, inp: builder.Inputs, prm: builder.BuilderParams, command: str) -> list[str]:
    """The opening comment: the command, the formula table and every formula with its values."""
    terms = " + ".join(f"{getattr(prm, 'pref_' + k):g}*{k}" for k in PREF_COVARIATES)
    pref = builder.preference_mean(prm, inp)
    shortfall = float(np.median(np.maximum(0.0, -pref)))
    lines = [
        f"# {doc['name']}",
        "# Built from public data by `pivotal scenario build`" + (f":\n#   {command}" if command else "."),
        "# Formulas and named parameters: docs/SCENARIOS.md, \"Building a scenario from data\".",
        f"# Candidates: {inp.chosen_by}, minus pivot {inp.pivot.abb} and target {inp.target.abb}.",
        "#",
        "# PREFERENCE (why a candidate would want to go) comes from interest data only:",
        f"#   mean = {prm.pref_intercept:g} + {terms}; sd {prm.pref_sd:g}",
        "#   un_pivot, un_target: UN General Assembly agreement index (Voeten et al.; yes 1, abstain 2, no 3;",
        f"#     mean of 1 - |a - b|/2 over shared roll calls, {builder.interests.UN_WINDOW} years ending "
        f"{inp.years.get('un')}); log_distance = ln(1 + km/1000), km = cow_mindist to {inp.theater.abb};",
        "#   regime = 1 - |V-Dem polyarchy difference with the pivot|; rival_*: Thompson-Dreyer rivalry;",
        "#   major: COW major power; major_aligned = major x un_pivot; log_milper = ln(1 + NMC milper).",
        "# TIES (what the pivot can use) come from embeddedness data only, one family per mechanism:",
        f"#   channel mean = {prm.tie_base:g} + {prm.tie_max - prm.tie_base:g} x index; concentration "
        f"{prm.tie_concentration:g}",
        "#   information index = IGOs shared with the pivot (COW IGO dyadic) / the most any candidate shares",
        f"#   linkage index     = min(1, trade with the pivot / own total trade / {prm.trade_share_full:g}) x "
        "GDP_P / (GDP_P + GDP_i)",
        f"#   credibility index = ATOP defence pledge x ({prm.credibility_young:g} + "
        f"{1 - prm.credibility_young:g} x min(1, age / {ties.AGE_FULL_YEARS})), or "
        f"{prm.credibility_consult:g} for a consultation pledge alone",
        "#   tie (the generic draw) = the mean of the three channel means",
        "# No data column feeds both a preference and a tie (builder.FORMULAS; docs/SCENARIOS.md).",
        f"# CAPACITY = NMC milper ({inp.years['nmc']}) x 1000 x {prm.share_low}/{prm.share_mode}/"
        f"{prm.share_high} (low/mode/high deployable share), troops.",
        "# COSTS: the payment unit is one preference sd. A payment of 1 moves a candidate whose mean is 0",
        "#   from a 50% to an 84% chance of accepting (a Normal shift of one sd). Here the median candidate",
        f"#   needs {shortfall:.2f} units to reach even odds, so the budget of {doc['budget']:g} pays about "
        f"{doc['budget'] / shortfall if shortfall > 0 else float('inf'):.1f} such offers.",
    ]
    return lines + [f"# NOTE: {n}" for n in inp.notes] + [""]


def render(doc: dict, inp: builder.Inputs, prm: builder.BuilderParams, command: str = "", given=()) -> str:
    """The scenario as a commented TOML file."""
    x = builder.covariates(inp)
    index = builder.tie_indices(prm, inp)
    t = inp.ties
    lines = header(doc, inp, prm, command)
    for key in ("name", "pivot", "deadline_days", "requirement", "min_partners", "budget",
                "capacity_unit", "payment_unit", "description"):
        comment = {
            "pivot": f"COW {inp.pivot.abb}, ccode {inp.pivot.ccode} ({inp.pivot.name})",
            "requirement": (f"{prm.requirement_share:g} x expected capacity of the states willing without "
                            "payment: sum of Phi(mean/sd) x mean capacity"),
            "budget": "payment units (preference sd; see COSTS above)",
            "deadline_days": "days from the decision to the operation",
        }.get(key)
        if key in given:
            comment = "given"
        lines.append(f"{key} = {_toml(doc[key])}" + (f"  # {comment}" if comment else ""))
    lines.append("sources = [")
    lines += [f"  {_toml(s)}," for s in doc["sources"]]
    lines += ["]", "", f"# {len(doc['candidates'])} candidates: {inp.chosen_by}, minus pivot {inp.pivot.abb} "
              f"and target {inp.target.abb}. Above each: ccode, milper, the preference covariates, and the "
              "tie indices with their data.", "candidates = ["]
    for k, c in enumerate(doc["candidates"]):
        mil = inp.milper[k]
        lines += [
            f"  # {c['id']} {inp.candidates[k].ccode}: milper "
            + ("missing (capacity 0)" if np.isnan(mil) else f"{mil:g}k")
            + f"; PREF un_pivot {x['un_pivot'][k]:.2f}, un_target {x['un_target'][k]:.2f}, "
            f"{inp.interests.distance_km[k]:,.0f} km, regime {x['regime'][k]:.2f}, rival_target "
            f"{x['rival_target'][k]:g}, rival_pivot {x['rival_pivot'][k]:g}, major {x['major'][k]:g}",
            f"  #   TIES information {index[INFORMATION][k]:.2f} ({t.igo_shared[k]:g} IGOs), linkage "
            f"{index[LINKAGE][k]:.2f} (trade share {t.trade_share[k]:.3f}, asymmetry {t.gdp_asymmetry[k]:.2f}), "
            f"credibility {index[CREDIBILITY][k]:.2f} (defence {t.defense[k]:g}, age {t.defense_age[k]:g} y, "
            f"consult {t.consult[k]:g})",
            f"  {_toml(c)},",
        ]
    lines.append("]")
    if doc["ties"]:
        lines += ["", f"# candidate-to-candidate ties: each state's strongest {prm.peer_k} by "
                  "(shared IGOs / the most any pair shares + ATOP defence) / 2", "ties = ["]
        lines += [f"  {_toml(r)}," for r in doc["ties"]]
        lines.append("]")
    lines += ["", "# behavioural parameters: docs/SCENARIOS.md (\"The pace of coalition diplomacy\")",
              "[parameters]"]
    lines += [f"{k} = {_toml(v)}" for k, v in doc["parameters"].items()]
    if doc["institutions"]:
        lines += ["", f"# institutions: the pivot's security organisations (engine/data/ties.py SECURITY_IGOS, "
                  f"COW IGO {inp.years['igo']}) with at least {prm.institution_min_members} candidate members, "
                  "and those given with --institutions; broker = "
                  f"{prm.broker_scale:g} x (1 - share of the system that are members); each institution the "
                  f"pivot belongs to is a venue (its council) on day {prm.venue_share:g} x the deadline, "
                  "unless --institutions ID:DAY gives its summit day"]
        why = {iid: ties.SECURITY_IGOS.get(iid, "given with --institutions")
               for iid, *_ in inp.ties.institutions}
        longs = {iid: long for iid, long, *_ in inp.ties.institutions}
        for row in doc["institutions"]:
            lines += ["", "[[institutions]]", f"id = {_toml(row['id'])}  # {longs.get(row['id'], '')}: "
                      f"{why.get(row['id'], '')}"]
            lines += [f"{k} = {_toml(v)}" for k, v in row.items() if k != "id"]
    return "\n".join(lines) + "\n"


def build_file(data, pivot, year, target, *, theater=None, candidates="all", institutions=None, prm=None,
               requirement=None, deadline_days=None, budget=None, name=None, command="") -> tuple[str, dict, builder.Inputs]:
    """gather + compose + render: (TOML text, document, inputs)."""
    prm = prm or builder.load_params()
    inp = builder.gather(data, pivot, year, target, theater, candidates, institutions)
    doc = builder.compose(inp, prm, requirement=requirement, deadline_days=deadline_days, budget=budget, name=name)
    given = {k for k, v in (("requirement", requirement), ("deadline_days", deadline_days),
                            ("budget", budget)) if v is not None}
    return render(doc, inp, prm, command, given), doc, inp
