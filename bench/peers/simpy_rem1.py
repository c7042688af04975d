"""Plain-SimPy reference implementation of REM-1 (the Recruitment Episode Model).

Written independently from ``shared/design/MODEL.md`` and
``shared/design/SCENARIO_FORMAT.md`` only.  It is meant as (a) the "plain SimPy
baseline" in benchmarks and (b) an independent oracle for outcome
distributions.  One ``simpy.Environment`` per episode; negotiations, venues and
withdrawals are SimPy processes.

API
---
``load(path) -> dict``
    Parse a scenario TOML with ``tomllib`` and apply every default of
    SCENARIO_FORMAT.md (no validation beyond what is needed to run).
``simulate(scenario, episodes, seed, bulk_draws=True, draws="pcg64") -> dict``
    ``scenario`` is a dict (as from ``load``; defaults are re-applied) or a
    path.  Returns numpy arrays of length ``episodes``: ``size`` (int),
    ``capacity``, ``spent`` (float), ``success`` (bool), ``time_to_success``
    (float, NaN if never reached before T), ``offers``, ``venue_joins``,
    ``withdrawals`` (int); and (episodes x N) arrays ``member_at_T``,
    ``ever_joined``, ``venue_joined`` (bool), ``payment`` (float).
CLI: ``python -m bench.peers.simpy_rem1 SCENARIO.toml --episodes 2000 --seed 1``

Random numbers: one ``numpy.random.Generator(PCG64(seed))`` per ``simulate``
call.  Per-episode draws (a_i, theta_i, w_i, z_i, w_ab) are drawn in bulk up
front (``bulk_draws=True``, the default) or at the start of each episode
(``bulk_draws=False``, as a first implementation would); response delays and
withdrawal times are drawn when scheduled.  The
numbers match nothing else; only the distributions are meant to match (the
common-random-numbers scheme of MODEL.md "Randomness" is not reproduced).
This is the mode of the benchmark and of the statistical comparison
(tests/model/test_independent_model.py).

With ``draws="keyed"`` every variate instead comes from the engine's keyed
generator (``kernels/rng.py`` keyed as ``engine/model/keys.py`` keys it; see
``KeyedDraws``): episode e with seed s sees the same numbers as the engine's
episode e of a study with seed s, so the two can be compared episode by
episode (tests/model/test_exact_model.py).  Only the draws are shared; the event
logic below is this module's own in both modes.

Event ordering: every model event is a ``simpy.Timeout`` created at the very
moment the model schedules it (SimPy orders equal-time events by creation
order, and a process' ``Initialize`` event is URGENT, so it never reorders the
model's NORMAL-priority timeouts).  ``env.run(until=T)`` schedules its stop
event as URGENT at T, so timeouts at exactly t == T never run.

Readings (choices where the spec leaves room)
---------------------------------------------
1. Response delays use the information tie wInf_i (the tie itself when the
   scenario gives no ``tie_information``), read as 0 when ``information`` is
   off (MODEL.md, revision 2026-12-04).  Mean 0 gives D = 0 exactly: the
   response is then a same-time event queued after those already scheduled.
2. ``information`` off: wInf_i is read as 0 in wI_i = max(wInf_i, g_i), so
   wI_i = g_i; brokers keep informing P unless ``brokers`` is off too.
3. ``credibility`` off sets wC_i = 0 both in v_i and in the withdrawal hazard
   h * (1 - wC_i).  ``linkage`` off sets wL_i = 0.  ``peers`` off: beta = 0.
4. The initial Open check at t = 0 happens before any event, including a venue
   with venue_day = 0 (venues are still *scheduled* first, so a venue at 0
   runs before responses with D = 0 from that initial Open).
5. Skipped candidates (status not ``untouched``, e.g. already joined at a
   venue) and ``passed`` ones use no slot; Open keeps walking the list in the
   same call.  Open stops (pointer not advanced) as soon as P is no longer
   recruiting; if a withdrawal makes P recruit again, it resumes from where
   it stopped.
6. Venues run whether or not P is recruiting; when P is no longer recruiting
   as the venue opens, every eligible state is offered 0 (REM-1 revision of
   2026-11-27).  Venue offers are not counted in ``offers`` (bilateral only).
7. At a venue, a ``refused`` or ``passed`` candidate is offered its original
   planned offer shat_j (not its last escalated offer).  Offers are reserved
   one by one in list order, so an earlier reservation can make a later
   candidate's shat_j unaffordable (offer 0).  shat_j = +inf is never
   affordable (offer 0).  Offers are fixed for the whole venue.
8. share_k counts members of k that are currently in C (withdrawn members
   excluded), plus 1 for the pivot if pivot_member; 0 if the denominator is 0.
9. Peer share counts only current members; its denominator is the sum of the
   *drawn* w_ij over all of i's tied candidates; if that sum is 0 (no ties, or
   all drawn 0) the share is 0.
10. Candidates that are ``negotiating`` (or members / withdrawn) are not
    eligible at a venue.  Withdrawn candidates never re-enter.
11. An accepted bilateral offer converts its reservation into payment (Bfree
    unchanged); this equals "release, then Bfree -= s" exactly, without the
    floating-point round trip.  A re-offer is checked against Bfree after
    releasing the current reservation.  Escalation uses sd_i = the scenario's
    preference sd (not a drawn quantity).
12. ``time_to_success`` is checked at t = 0 and after every event (joins in a
    venue all happen at the venue's t, so the first time is exact); it keeps
    the first time even if withdrawals later undo success.  ``success`` is the
    state at T (after every event with t < T).
13. ``payment`` is the amount of the accepted offer (0 for a free join), kept
    after a withdrawal; ``spent`` is the sum of payments.
14. Ties w_ab are drawn for every listed tie even when ``peers`` is off (they
    are then unused).  Triangular with low == high is the constant low.
15. Sums over the current members are formed afresh, never kept running:
    A after a withdrawal (``math.fsum``, so R = 0 held by a zero-capacity
    member stays held) and each peer share's numerator at every use.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib

import numpy as np
import simpy

PARAM_DEFAULTS = {
    "info_noise": 1.0,
    "credibility_floor": 0.5,
    "linkage": 1.0,
    "holdout": 0.0,
    "peer_weight": 0.0,
    "bandwidth": 5,
    "delay_min_days": 7.0,
    "delay_max_days": 60.0,
    "max_rounds": 3,
    "escalation": 0.25,
    "margin": 0.1,
    "approach_cost": 1.0,
    "withdrawal_rate": 0.0,
}
MECHANISMS = ("information", "linkage", "credibility", "brokers", "venues",
              "peers", "withdrawals")

UNTOUCHED, NEGOTIATING, MEMBER, REFUSED, PASSED, WITHDRAWN = range(6)


# --------------------------------------------------------------------------
# scenario reading
# --------------------------------------------------------------------------
def load(path) -> dict:
    """Parse a scenario TOML file and apply all defaults."""
    with open(path, "rb") as f:
        return apply_defaults(tomllib.load(f))


def apply_defaults(raw: dict) -> dict:
    """Return a new scenario dict with every SCENARIO_FORMAT.md default filled."""
    sc = {
        "name": raw["name"],
        "pivot": raw["pivot"],
        "deadline_days": float(raw["deadline_days"]),
        "requirement": float(raw.get("requirement", 0)),
        "min_partners": int(raw.get("min_partners", 0)),
        "budget": float(raw.get("budget", 0)),
        "capacity_unit": raw.get("capacity_unit", "capacity"),
        "payment_unit": raw.get("payment_unit", "payment units"),
        "description": raw.get("description", ""),
        "sources": list(raw.get("sources", [])),
    }
    params = dict(PARAM_DEFAULTS)
    params.update(raw.get("parameters", {}))
    sc["parameters"] = params
    mech = {m: True for m in MECHANISMS}
    mech.update(raw.get("mechanisms", {}))
    sc["mechanisms"] = mech
    sc["candidates"] = [
        {
            "id": c["id"],
            "name": c.get("name", c["id"]),
            "capacity": {k: float(c["capacity"][k]) for k in ("low", "mode", "high")},
            "preference": {k: float(c["preference"][k]) for k in ("mean", "sd")},
            "tie": {k: float(c["tie"][k]) for k in ("mean", "concentration")},
            # per-mechanism ties (MODEL.md, revision 2026-12-04); absent: the channel is the tie itself
            **{ch: {k: float(c[ch][k]) for k in ("mean", "concentration")} for ch in CHANNELS if ch in c},
        }
        for c in raw["candidates"]
    ]
    sc["ties"] = [
        {"a": t["a"], "b": t["b"], "mean": float(t["mean"]),
         "concentration": float(t["concentration"])}
        for t in raw.get("ties", [])
    ]
    sc["institutions"] = [
        {
            "id": k["id"],
            "members": list(k["members"]),
            "pivot_member": bool(k.get("pivot_member", False)),
            "broker": float(k.get("broker", 0.0)),
            "venue_day": (float(k["venue_day"]) if k.get("venue_day") is not None else None),
            "venue_bonus": float(k.get("venue_bonus", 0.0)),
        }
        for k in raw.get("institutions", [])
    ]
    return sc


# --------------------------------------------------------------------------
# random draws (vectorised over episodes)
# --------------------------------------------------------------------------
def _triangular(rng, low, mode, high, size):
    if low == high:
        return np.full(size, low)
    return rng.triangular(low, mode, high, size)


def _normal(rng, mean, sd, size):
    if sd == 0:
        return np.full(size, mean)
    return rng.normal(mean, sd, size)


def _tie(rng, mean, conc, size):
    if mean <= 0.0 or mean >= 1.0:
        return np.full(size, min(max(mean, 0.0), 1.0))
    return rng.beta(mean * conc, (1.0 - mean) * conc, size)


class _ExpStream:
    """Standard exponential draws served from a refilled buffer."""

    def __init__(self, rng, block=4096):
        self.rng, self.block = rng, block
        self.buf, self.pos = [], 0

    def __call__(self):
        if self.pos >= len(self.buf):
            self.buf, self.pos = self.rng.standard_exponential(self.block).tolist(), 0
        self.pos += 1
        return self.buf[self.pos - 1]


# --------------------------------------------------------------------------
# one episode
# --------------------------------------------------------------------------
class Episode:
    """State and event logic of one REM-1 episode on its own simpy.Environment."""

    def __init__(self, m, ep, exp):
        # m: static model (dict); ep: this episode's draws (lists); exp: Exp(1) stream
        self.m, self.exp = m, exp
        self.a, self.theta = ep["a"], ep["theta"]
        self.v, self.shat, self.order = ep["v"], ep["shat"], ep["order"]
        self.delay_mean, self.wrate = ep["delay_mean"], ep["wrate"]
        self.nbrs, self.peer_den = ep["nbrs"], ep["peer_den"]
        n_cand = m["N"]
        self.env = simpy.Environment()
        self.status = [UNTOUCHED] * n_cand
        self.payment = [0.0] * n_cand
        self.ever = [False] * n_cand
        self.at_venue = [False] * n_cand
        self.A, self.n = 0.0, 0
        self.bfree, self.spent = m["B"], 0.0
        self.n_open, self.ptr = 0, 0
        self.offers = self.venue_joins = self.withdrawals = 0
        self.tts = math.nan

    # ---- helpers -----------------------------------------------------------
    def recruiting(self):
        return not (self.A >= self.m["R"] and self.n >= self.m["L"])

    def peer_share(self, i):
        den = self.peer_den[i]
        if den <= 0.0:
            return 0.0
        st = self.status
        return sum(w for j, w in self.nbrs[i] if st[j] == MEMBER) / den

    def utility(self, i, s, bonus):
        m = self.m
        u = self.theta[i] + self.v[i] * s + bonus - m["q"][i]
        if m["beta"] > 0.0:
            u += m["beta"] * self.peer_share(i)
        return u

    def draw_delay(self, i, r):
        """Response delay of round r of i's negotiation."""
        mean = self.delay_mean[i]
        return mean * self.exp() if mean > 0.0 else 0.0

    def draw_stay(self, i, rate):
        """Time until member i withdraws (rate > 0)."""
        return self.exp() / rate

    def check_success(self):
        if math.isnan(self.tts) and not self.recruiting():
            self.tts = self.env.now

    def after_event(self):
        self.check_success()
        self.open_rule()

    def join(self, i, s, venue):
        self.status[i] = MEMBER
        self.A += self.a[i]
        self.n += 1
        self.spent += s
        self.payment[i] = s
        self.ever[i] = True
        if venue:
            self.at_venue[i] = True
            self.venue_joins += 1
        rate = self.wrate[i]
        if rate > 0.0:
            ev = self.env.timeout(self.draw_stay(i, rate))
            self.env.process(self.withdraw(i, ev))

    # ---- rule 1: Open --------------------------------------------------------
    def open_rule(self):
        m = self.m
        while self.recruiting() and self.n_open < m["W"] and self.ptr < m["N"]:
            i = self.order[self.ptr]
            self.ptr += 1
            if self.status[i] != UNTOUCHED:
                continue
            s = self.shat[i]
            if s > self.bfree:
                self.status[i] = PASSED
                continue
            self.bfree -= s
            self.status[i] = NEGOTIATING
            self.n_open += 1
            self.offers += 1
            ev = self.env.timeout(self.draw_delay(i, 1))
            self.env.process(self.negotiate(i, s, ev))

    # ---- rule 2: Response(s) of one bilateral negotiation --------------------
    def negotiate(self, i, s, ev):
        m = self.m
        r = 1
        while True:
            yield ev
            if self.utility(i, s, 0.0) >= 0.0:
                self.join(i, s, venue=False)        # reservation becomes payment
                break
            self.bfree += s                         # release the reservation
            s2 = (1.0 + m["eps"]) * s + m["eps"] * m["sd"][i]
            if r < m["M"] and s2 <= self.bfree:
                self.bfree -= s2
                s, r = s2, r + 1
                self.offers += 1
                ev = self.env.timeout(self.draw_delay(i, r))
                self.after_event()                  # slot stays taken
                continue
            self.status[i] = REFUSED
            break
        self.n_open -= 1
        self.after_event()

    # ---- rule 3: Venue(k) ---------------------------------------------------
    def venue(self, k, ev):
        yield ev
        inst = self.m["venues"][k]
        in_k, members, pm = inst["in_k"], inst["members"], inst["pm"]
        st = self.status
        eligible = [j for j in self.order
                    if in_k[j] and st[j] in (UNTOUCHED, PASSED, REFUSED)]
        offer = {}
        paying = self.recruiting()          # after success P offers nobody anything
        for j in eligible:
            s = self.shat[j]
            if paying and s <= self.bfree:
                self.bfree -= s
                offer[j] = s
            else:
                offer[j] = 0.0
        denom = len(members) + pm
        in_c = sum(1 for j in members if st[j] == MEMBER) + pm
        joined = set()
        added = True
        while added:
            added = False
            for j in eligible:
                if j in joined:
                    continue
                bonus = inst["nu"] * (in_c / denom if denom > 0 else 0.0)
                if self.utility(j, offer[j], bonus) >= 0.0:
                    joined.add(j)
                    self.join(j, offer[j], venue=True)
                    in_c += 1
                    added = True
        for j in eligible:
            if j not in joined:
                self.bfree += offer[j]
        self.after_event()

    # ---- rule 4: Withdraw(i) --------------------------------------------------
    def withdraw(self, i, ev):
        yield ev
        self.status[i] = WITHDRAWN
        self.n -= 1
        self.A = math.fsum(self.a[j] for j in range(self.m["N"]) if self.status[j] == MEMBER)
        self.withdrawals += 1
        self.after_event()

    # ---- run -------------------------------------------------------------------
    def run(self):
        env, m = self.env, self.m
        for k, inst in enumerate(m["venues"]):          # institution order, first
            env.process(self.venue(k, env.timeout(inst["day"])))
        self.check_success()
        self.open_rule()
        env.run(until=m["T"])


# --------------------------------------------------------------------------
# static model + vectorised per-episode quantities
# --------------------------------------------------------------------------
def _compile(sc):
    p, mech = sc["parameters"], sc["mechanisms"]
    cands = sc["candidates"]
    ids = [c["id"] for c in cands]
    idx = {c: i for i, c in enumerate(ids)}
    N = len(cands)
    R, T = sc["requirement"], sc["deadline_days"]
    E = np.array([(c["capacity"]["low"] + c["capacity"]["mode"] + c["capacity"]["high"]) / 3.0
                  for c in cands])
    crit = np.minimum(1.0, E / R) if R > 0 else np.zeros(N)
    g = np.zeros(N)
    if mech["brokers"]:
        for k in sc["institutions"]:
            if k["pivot_member"]:
                for c in k["members"]:
                    g[idx[c]] = max(g[idx[c]], k["broker"])
    venues = []
    if mech["venues"]:
        for k in sc["institutions"]:
            if k["venue_day"] is not None and k["venue_day"] < T:
                mem = [idx[c] for c in k["members"]]
                in_k = [False] * N
                for j in mem:
                    in_k[j] = True
                venues.append({"id": k["id"], "day": k["venue_day"], "members": mem,
                               "in_k": in_k, "pm": 1 if k["pivot_member"] else 0,
                               "nu": k["venue_bonus"]})
    return {
        "N": N, "ids": ids, "idx": idx, "R": R, "L": sc["min_partners"],
        "B": sc["budget"], "T": T, "E": E, "q": (p["holdout"] * crit).tolist(),
        "g": g, "sd": [c["preference"]["sd"] for c in cands],
        "beta": float(p["peer_weight"]) if mech["peers"] else 0.0,
        "h": float(p["withdrawal_rate"]) if mech["withdrawals"] else 0.0,
        "W": int(p["bandwidth"]), "M": int(p["max_rounds"]),
        "eps": float(p["escalation"]), "venues": venues,
        "ties": [(idx[t["a"]], idx[t["b"]], t["mean"], t["concentration"]) for t in sc["ties"]],
    }


CHANNELS = ("tie_information", "tie_linkage", "tie_credibility")


def _draw_all(sc, m, rng, episodes):
    """Draw a, theta, w, z, w_ab (then any per-mechanism ties) for all episodes and derive v,
    shat, order, ..."""
    p, mech, cands = sc["parameters"], sc["mechanisms"], sc["candidates"]
    E_, N = episodes, m["N"]
    a = np.empty((E_, N)); theta = np.empty((E_, N)); w = np.empty((E_, N))
    for i, c in enumerate(cands):
        cap, pref, tie = c["capacity"], c["preference"], c["tie"]
        a[:, i] = _triangular(rng, cap["low"], cap["mode"], cap["high"], E_)
        theta[:, i] = _normal(rng, pref["mean"], pref["sd"], E_)
        w[:, i] = _tie(rng, tie["mean"], tie["concentration"], E_)
    z = rng.standard_normal((E_, N))
    wab = np.empty((E_, len(m["ties"])))
    for t, (_, _, mean, conc) in enumerate(m["ties"]):
        wab[:, t] = _tie(rng, mean, conc, E_)
    channels = [w.copy() for _ in CHANNELS]  # a channel not given is the tie itself
    for i, c in enumerate(cands):
        for k, ch in enumerate(CHANNELS):
            if ch in c:
                channels[k][:, i] = _tie(rng, c[ch]["mean"], c[ch]["concentration"], E_)
    return _derive(sc, m, a, theta, w, z, wab, channels)


def _derive(sc, m, a, theta, w, z, wab, channels):
    """v, shat, P's list, delay means and withdrawal rates from the episodes' draws
    (`channels`: the information, linkage and credibility ties)."""
    p, mech = sc["parameters"], sc["mechanisms"]
    zero = np.zeros_like(w)
    w_inf, w_lnk, w_crd = channels
    wInf = w_inf if mech["information"] else zero
    wI = np.maximum(wInf, m["g"][None, :])
    wC = w_crd if mech["credibility"] else zero
    wL = w_lnk if mech["linkage"] else zero
    rho, lam = float(p["credibility_floor"]), float(p["linkage"])
    v = (rho + (1.0 - rho) * wC) * (1.0 + lam * wL)
    thetahat = theta + float(p["info_noise"]) * (1.0 - wI) * z
    q = np.asarray(m["q"])[None, :]
    gap = q - thetahat
    with np.errstate(divide="ignore", invalid="ignore"):
        shat = np.where(gap <= 0.0, 0.0,
                        np.where(v > 0.0, gap / v * (1.0 + float(p["margin"])), np.inf))
        pi = np.where(np.isinf(shat), 0.0, m["E"][None, :] / (float(p["approach_cost"]) + shat))
    order = np.argsort(-pi, axis=1, kind="stable")      # pi descending, ties by index
    dmin, dmax = float(p["delay_min_days"]), float(p["delay_max_days"])
    delay_mean = dmin + (dmax - dmin) * (1.0 - wInf)
    wrate = m["h"] * (1.0 - wC)
    return {"a": a, "theta": theta, "wab": wab, "v": v, "shat": shat,
            "order": order, "delay_mean": delay_mean, "wrate": wrate}


class KeyedDraws:
    """Every variate from the engine's counter-based generator (kernels/rng.py), keyed
    as the engine keys it (engine/model/keys.py): the same (seed, episode, candidate or
    tie, purpose) gives the same number here and in the engine, so outcomes can be
    compared episode by episode.  Only the draws are shared; the event logic above
    stays this module's own.

    Candidate i (key k_i), block (k_i, CANDIDATE, 0) = (u0, u1, u2, u3): theta_i =
    mean + sd * Phi^-1(u0), P's error z = Phi^-1(u1), w_i = the Beta quantile at u2
    (the engine's inverse-CDF table, engine/model/tie_tables.py), the delay of round 1
    its mean times -log(u3); round r >= 2 takes -log of the first uniform of
    (k_i, DELAY, block r).  A joiner's block (k_i, JOIN, 0): a_i = triangular
    inverse CDF at u0, withdrawal time -log(u1) over the rate.  Tie a-b: w_ab =
    the Beta quantile at the first uniform of (tie key, PEER_TIE, 0), drawn only
    when beta > 0 (otherwise unused).
    """

    def __init__(self, sc, m, seed):
        from engine.model.tie_tables import beta_tables
        from engine.model.keys import candidate_key, tie_key
        from kernels import rng
        self.rng, self.seed = rng, seed
        self.keys = [candidate_key(c["id"]) for c in sc["candidates"]]
        self.tie_keys = [tie_key(t["a"], t["b"]) for t in sc["ties"]]
        shapes = ([(c["tie"]["mean"], c["tie"]["concentration"]) for c in sc["candidates"]]
                  + [(mean, conc) for _, _, mean, conc in m["ties"]])
        self.channel_rows = []  # per candidate: the Beta table row of each channel given, else None
        for c in sc["candidates"]:
            rows = []
            for ch in CHANNELS:
                rows.append(len(shapes) if ch in c else None)
                if ch in c:
                    shapes.append((c[ch]["mean"], c[ch]["concentration"]))
            self.channel_rows.append(rows)
        self.tables = beta_tables(shapes)
        self.first_delay = None

    def draw_all(self, sc, m, episodes):
        """The fixed draws of episodes 0 .. episodes - 1 and what derives from them."""
        rng, seed, cands = self.rng, self.seed, sc["candidates"]
        E_, N = episodes, m["N"]
        a = np.empty((E_, N)); theta = np.empty((E_, N)); w = np.empty((E_, N))
        z = np.empty((E_, N)); wab = np.zeros((E_, len(m["ties"])))
        self.first_delay = np.empty((E_, N))
        channels = [np.empty((E_, N)) for _ in CHANNELS]
        for e in range(E_):
            for i, (c, key) in enumerate(zip(cands, self.keys)):
                cap, pref = c["capacity"], c["preference"]
                u_theta, u_z, u_tie, u_delay = rng.uniforms(seed, e, key, rng.CANDIDATE, 0)
                theta[e, i] = pref["mean"] + pref["sd"] * rng.inverse_normal(u_theta)
                z[e, i] = rng.inverse_normal(u_z)
                w[e, i] = rng.beta_quantile(self.tables, i, u_tie)
                for k in range(len(CHANNELS)):  # a channel not given is the tie itself
                    channels[k][e, i] = w[e, i]
                self.first_delay[e, i] = -math.log(u_delay)
                u = rng.uniforms(seed, e, key, rng.JOIN, 0)[0]
                a[e, i] = rng.triangular(cap["low"], cap["mode"], cap["high"], u)
            if m["beta"] > 0.0:
                for t, key in enumerate(self.tie_keys):
                    u = rng.uniforms(seed, e, key, rng.PEER_TIE, 0)[0]
                    wab[e, t] = rng.beta_quantile(self.tables, N + t, u)
            for i, (rows, key) in enumerate(zip(self.channel_rows, self.keys)):
                if any(r is not None for r in rows):
                    us = rng.uniforms(seed, e, key, rng.CHANNEL, 0)
                    for k, r in enumerate(rows):
                        if r is not None:
                            channels[k][e, i] = rng.beta_quantile(self.tables, r, us[k])
        return _derive(sc, m, a, theta, w, z, wab, channels)


class _KeyedEpisode(Episode):
    """An Episode whose delays and withdrawal times come from `KeyedDraws`."""

    def __init__(self, m, ep, keyed, episode):
        super().__init__(m, ep, None)
        self.keyed, self.episode = keyed, episode

    def draw_delay(self, i, r):
        k = self.keyed
        if r == 1:
            return self.delay_mean[i] * k.first_delay[self.episode, i]
        return self.delay_mean[i] * k.rng.exponential(k.seed, self.episode, k.keys[i], k.rng.DELAY, r)

    def draw_stay(self, i, rate):
        k = self.keyed
        return -math.log(k.rng.uniforms(k.seed, self.episode, k.keys[i], k.rng.JOIN, 0)[1]) / rate


def simulate(scenario, episodes: int, seed: int, bulk_draws: bool = True,
             draws: str = "pcg64") -> dict:
    """Run `episodes` independent episodes; return numpy outcome arrays.

    With `bulk_draws` (the default) every episode's fixed draws are made up
    front in vectorised NumPy calls (a tuned implementation); without it each
    episode draws its own at its start, as a first implementation would.

    `draws="pcg64"` (the default) takes every variate from NumPy's PCG64
    seeded with `seed`; `draws="keyed"` takes them from the engine's keyed
    generator (`KeyedDraws`), so that episode e here sees the same numbers as
    the engine's episode e with study seed `seed` (slower: one call per draw).
    """
    sc = load(scenario) if not isinstance(scenario, dict) else apply_defaults(scenario)
    m = _compile(sc)
    N = m["N"]
    if draws == "keyed":
        keyed = KeyedDraws(sc, m, seed)
        D, bulk_draws, exp = keyed.draw_all(sc, m, episodes), True, None
    elif draws == "pcg64":
        keyed = None
        rng = np.random.Generator(np.random.PCG64(seed))
        D = _draw_all(sc, m, rng, episodes) if bulk_draws else None
        exp = _ExpStream(rng)
    else:
        raise ValueError(f"draws must be 'pcg64' or 'keyed', not {draws!r}")

    out = {
        "size": np.zeros(episodes, dtype=np.int64),
        "capacity": np.zeros(episodes), "spent": np.zeros(episodes),
        "success": np.zeros(episodes, dtype=bool),
        "time_to_success": np.full(episodes, np.nan),
        "offers": np.zeros(episodes, dtype=np.int64),
        "venue_joins": np.zeros(episodes, dtype=np.int64),
        "withdrawals": np.zeros(episodes, dtype=np.int64),
        "member_at_T": np.zeros((episodes, N), dtype=bool),
        "ever_joined": np.zeros((episodes, N), dtype=bool),
        "venue_joined": np.zeros((episodes, N), dtype=bool),
        "payment": np.zeros((episodes, N)),
    }
    for e in range(episodes):
        if not bulk_draws:
            D, e_draw = _draw_all(sc, m, rng, 1), 0
        else:
            e_draw = e
        nbrs = [[] for _ in range(N)]
        peer_den = [0.0] * N
        for t, (ia, ib, _, _) in enumerate(m["ties"]):
            wt = float(D["wab"][e_draw, t])
            nbrs[ia].append((ib, wt)); nbrs[ib].append((ia, wt))
            peer_den[ia] += wt; peer_den[ib] += wt
        ep = {"a": D["a"][e_draw].tolist(), "theta": D["theta"][e_draw].tolist(),
              "v": D["v"][e_draw].tolist(), "shat": D["shat"][e_draw].tolist(),
              "order": D["order"][e_draw].tolist(), "delay_mean": D["delay_mean"][e_draw].tolist(),
              "wrate": D["wrate"][e_draw].tolist(), "nbrs": nbrs, "peer_den": peer_den}
        x = Episode(m, ep, exp) if keyed is None else _KeyedEpisode(m, ep, keyed, e)
        x.run()
        member = [s == MEMBER for s in x.status]
        out["size"][e] = x.n
        out["capacity"][e] = x.A
        out["spent"][e] = x.spent
        out["success"][e] = not x.recruiting()
        out["time_to_success"][e] = x.tts
        out["offers"][e] = x.offers
        out["venue_joins"][e] = x.venue_joins
        out["withdrawals"][e] = x.withdrawals
        out["member_at_T"][e] = member
        out["ever_joined"][e] = x.ever
        out["venue_joined"][e] = x.at_venue
        out["payment"][e] = x.payment
    return out


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description="Plain-SimPy REM-1 reference simulator")
    ap.add_argument("scenario")
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    sc = load(args.scenario)
    t0 = time.perf_counter()
    res = simulate(sc, args.episodes, args.seed)
    dt = time.perf_counter() - t0
    print(f"scenario: {sc['name']}  episodes: {args.episodes}  seed: {args.seed}")
    for k in ("size", "capacity", "spent", "success", "offers", "venue_joins", "withdrawals"):
        print(f"  {k:16s} mean = {np.mean(res[k]):.6g}")
    tts = res["time_to_success"]
    reached = ~np.isnan(tts)
    mean_tts = f"{np.mean(tts[reached]):.6g}" if reached.any() else "nan"
    print(f"  {'time_to_success':16s} mean = {mean_tts} (over reached; "
          f"reached share = {reached.mean():.4f})")
    print(f"  {'candidate':10s} {'member_at_T':>11s} {'ever_joined':>11s} "
          f"{'venue_joined':>12s} {'payment':>10s}")
    for i, c in enumerate(sc["candidates"]):
        print(f"  {c['id']:10s} {res['member_at_T'][:, i].mean():11.4f} "
              f"{res['ever_joined'][:, i].mean():11.4f} "
              f"{res['venue_joined'][:, i].mean():12.4f} {res['payment'][:, i].mean():10.4g}")
    print(f"episodes/s: {args.episodes / dt:.1f}  ({dt:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
