"""The engine against an independent plain-SimPy implementation of REM-1 (bench/peers/),
written from MODEL.md alone: their outcome distributions must agree.

Here the SimPy model draws from NumPy's PCG64, independently of the engine, so this
also checks the engine's generator and variates (Beta by Marsaglia-Tsang, AS 241
normals, inverse-CDF triangulars and exponentials) against NumPy's; the
episode-by-episode comparison on shared draws is tests/model/test_exact_model.py."""
from pathlib import Path

import numpy as np
import pytest

import pivotal
from bench.peers import simpy_rem1
from conftest import build
from exact_scenarios import exact_scenario_doc
from random_scenarios import random_scenario_toml

ROOT = Path(__file__).resolve().parents[2]
ENGINE_EPISODES, PEER_EPISODES = 200_000, 20_000
Z_LIMIT = 4.5  # ~150 comparisons in all; a real rule difference shows up far beyond this


def z_scores(scenario, peer_episodes=PEER_EPISODES):
    """z of engine minus SimPy for each outcome mean and per-candidate probability;
    `scenario` is a file or a scenario document."""
    source = build(scenario) if isinstance(scenario, dict) else scenario
    tables = pivotal.forecast(source, episodes=ENGINE_EPISODES, seed=2, progress=False).tables
    peer = simpy_rem1.simulate(scenario if isinstance(scenario, dict) else str(scenario),
                               peer_episodes, seed=3)
    summary = {r["metric"]: r for r in tables["summary"].iter_rows(named=True)}
    z = {}
    for m in ("size", "capacity", "spent", "success", "offers", "venue_joins", "withdrawals"):
        x = np.asarray(peer[m], float)
        se = np.hypot(x.std() / np.sqrt(peer_episodes), summary[m]["se"])
        z[m] = 0.0 if se == 0 else (summary[m]["mean"] - x.mean()) / se
    reached_engine = summary["time_to_success"]["n"] / ENGINE_EPISODES
    reached_peer = np.mean(~np.isnan(peer["time_to_success"]))
    z["reached"] = _binomial_z(reached_engine, reached_peer, peer_episodes)
    cands = tables["candidates"]
    for column, key in (("p_member", "member_at_T"), ("p_ever_joined", "ever_joined"),
                        ("p_venue_join", "venue_joined")):
        for cid, a, b in zip(cands["candidate_id"], cands[column], peer[key].mean(axis=0)):
            z[f"{column}[{cid}]"] = _binomial_z(a, b, peer_episodes)
    return z


def _binomial_z(p_engine, p_peer, peer_episodes):
    var = max(p_peer * (1 - p_peer), 1 / peer_episodes) / peer_episodes
    var += p_engine * (1 - p_engine) / ENGINE_EPISODES
    return (p_engine - p_peer) / np.sqrt(var)


@pytest.mark.parametrize("name,make", [
    ("tutorial", lambda tmp: ROOT / "configs" / "scenarios" / "tutorial.toml"),
    *[(f"random-{seed}", lambda tmp, seed=seed: _write(tmp, seed, all_mechanisms=True)) for seed in (1, 5, 14)],
    *[(f"random-{seed}-switches", lambda tmp, seed=seed: _write(tmp, seed)) for seed in (21, 26)],
])
def test_engine_agrees_with_independent_simpy_model(tmp_path, name, make):
    z = z_scores(make(tmp_path))
    worst = max(z, key=lambda k: abs(z[k]))
    assert abs(z[worst]) < Z_LIMIT, (worst, z[worst])


def _write(tmp, seed, all_mechanisms=False):
    path = tmp / f"random_{seed}.toml"
    path.write_text(random_scenario_toml(seed, all_mechanisms))
    return path


@pytest.mark.parametrize("seed,large,peer_episodes", [(201, False, PEER_EPISODES), (202, True, 5_000)])
def test_engine_agrees_with_simpy_on_scenarios_that_use_every_rule(seed, large, peer_episodes):
    """Budgets, escalation, withdrawals, peers, venues (also after success), brokers and
    hold-outs all at work (tests/exact_scenarios.py); the large one has > 48 candidates."""
    doc = exact_scenario_doc(seed, large=large, all_mechanisms=True)
    assert (len(doc["candidates"]) > 48) == large
    z = z_scores(doc, peer_episodes)
    worst = max(z, key=lambda k: abs(z[k]))
    assert abs(z[worst]) < Z_LIMIT, (worst, z[worst])
