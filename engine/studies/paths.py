"""Study paths (STUDY_FORMAT.md): what a path such as `candidates.*.tie.mean` names in a base
scenario (`resolve`: its `Location`s), and setting those values in a scenario document."""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.model.scenario import CHANNELS, MECHANISMS, PARAMETERS, Scenario

TOP_NUMBERS = {"budget": "number", "requirement": "number", "deadline_days": "number",
               "min_partners": "integer"}
CANDIDATE_FIELDS = {"capacity": ("low", "mode", "high"), "preference": ("mean", "sd"),
                    "tie": ("mean", "concentration"),
                    **{channel: ("mean", "concentration") for channel in CHANNELS}}
INSTITUTION_FIELDS = ("broker", "venue_day", "venue_bonus")


@dataclass(frozen=True)
class Location:
    """One value of a scenario document a path names."""
    keys: tuple            # where in the TOML document, e.g. ("candidates", 3, "tie", "mean")
    error_keys: tuple      # the key paths a scenario error about this value names
    base: object           # its value in the base scenario (None: not set, e.g. no venue_day)
    kind: str              # number | integer | bool


def _copy(node):
    """A copy of a TOML document's tables and arrays (its values are immutable)."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _named(doc, base_name, label):
    doc["name"] = f"{base_name} [{label}]" if label != "base" else base_name
    return doc


def _applied(apply, loc: Location, value):
    if apply == "shift":
        value = loc.base + value
    elif apply == "scale":
        value = loc.base * value
    if loc.kind == "integer":
        return int(math.floor(value + 0.5))  # half up (Python's round() goes half to even)
    if loc.kind == "number" and not isinstance(value, bool):
        return float(value)
    return value


def _shallow(doc):
    """A new top table for a scenario document, sharing everything below it with `doc`, and the
    set of ids of the tables and arrays of the new document that are its own (`_put`)."""
    doc = dict(doc)
    return doc, {id(doc)}


def _put(doc, loc: Location, value, copied):
    """Set one value, copying the tables and arrays on its way that `doc` still shares with
    the base document (whose values the rows of a study all start from)."""
    node = doc
    for k in loc.keys[:-1]:
        if isinstance(k, str) and k not in node:
            node[k] = {}
            copied.add(id(node[k]))
        child = node[k]
        if id(child) not in copied:
            child = node[k] = dict(child) if isinstance(child, dict) else list(child)
            copied.add(id(child))
        node = child
    node[loc.keys[-1]] = value


def _get(doc, loc: Location):
    node = doc
    for k in loc.keys:
        try:
            node = node[k]
        except (KeyError, IndexError, TypeError):
            return loc.base
    return node


def resolve(path: str, doc: dict, base: Scenario) -> tuple[Location, ...] | str:
    """The values `path` names in the base scenario, or why it names nothing."""
    parts = path.split(".")
    head = parts[0]
    if head in TOP_NUMBERS and len(parts) == 1:
        return (Location((head,), (head,), getattr(base, head), TOP_NUMBERS[head]),)
    if head == "parameters" and len(parts) == 2:
        if parts[1] not in PARAMETERS:
            return f"no parameter {parts[1]!r} (known: {', '.join(PARAMETERS)})"
        kind = "integer" if PARAMETERS[parts[1]][1] == "integer" else "number"
        return (Location(("parameters", parts[1]), (path,), base.parameters[parts[1]], kind),)
    if head == "mechanisms" and len(parts) == 2:
        if parts[1] not in MECHANISMS:
            return f"no mechanism {parts[1]!r} (known: {', '.join(MECHANISMS)})"
        return (Location(("mechanisms", parts[1]), (path,), base.mechanisms[parts[1]], "bool"),)
    if head == "candidates" and len(parts) == 4:
        cid, fld, sub = parts[1:]
        if fld not in CANDIDATE_FIELDS or sub not in CANDIDATE_FIELDS[fld]:
            return f"a candidate has no value {fld}.{sub} (known: " + ", ".join(
                f"{f}.{s}" for f, subs in CANDIDATE_FIELDS.items() for s in subs) + ")"
        picked = [i for i, c in enumerate(base.candidates) if cid in ("*", c.id)]
        if not picked:
            return f"it has no candidate {cid!r}"
        if fld in CHANNELS:  # a per-mechanism tie is varied where the base scenario gives one
            picked = [i for i in picked if base.candidates[i].field(fld) is not None]
            if not picked:
                return f"no candidate {cid!r} with a {fld} (give it in the base scenario)"
        sub_index = CANDIDATE_FIELDS[fld].index(sub)
        return tuple(Location(("candidates", i, fld, sub),
                              (f"candidates[{i}].{fld}.{sub}", f"candidates[{i}].{fld}"),
                              base.candidates[i].field(fld)[sub_index], "number") for i in picked)
    if head == "ties" and len(parts) == 4:
        a, b, sub = parts[1:]
        if sub not in ("mean", "concentration"):
            return f"a tie has no value {sub!r} (known: mean, concentration)"
        for k, t in enumerate(base.ties):
            if {t.a, t.b} == {a, b}:
                return (Location(("ties", k, sub), (f"ties[{k}].{sub}", f"ties[{k}]"),
                                 getattr(t, sub), "number"),)
        return f"it has no tie between {a!r} and {b!r}"
    if head == "institutions" and len(parts) == 3:
        iid, attr = parts[1:]
        if attr not in INSTITUTION_FIELDS:
            return f"an institution has no value {attr!r} (known: {', '.join(INSTITUTION_FIELDS)})"
        for k, inst in enumerate(base.institutions):
            if inst.id == iid:
                return (Location(("institutions", k, attr), (f"institutions[{k}].{attr}",),
                                 getattr(inst, attr), "number"),)
        return f"it has no institution {iid!r}"
    return ("names nothing in a scenario (paths: budget, requirement, deadline_days, min_partners, "
            "parameters.<key>, mechanisms.<key>, candidates.<ID|*>.<field>.<sub>, ties.<A>.<B>.<sub>, "
            "institutions.<ID>.<broker|venue_day|venue_bonus>)")
