"""MODEL.md's closed form: with no budget, noise, hold-out, peers, venues or withdrawals
and an unreachable requirement, candidates join independently with p_i = Phi(mean/sd)."""
import numpy as np
from scipy import stats

from conftest import metric, run

EPISODES = 200_000


def poisson_binomial(p):
    pmf = np.array([1.0])
    for q in p:
        pmf = np.convolve(pmf, [1 - q, q])
    return pmf


def test_size_is_poisson_binomial(closed_form_doc):
    tables = run(closed_form_doc, episodes=EPISODES, seed=3)
    p = [stats.norm.cdf(c["preference"]["mean"] / c["preference"]["sd"])
         for c in closed_form_doc["candidates"]]
    expected = poisson_binomial(p) * EPISODES
    observed = tables["size_distribution"]["episodes"].to_numpy()
    keep = expected >= 5  # the thin tails are pooled into one bin

    def chisquare_pvalue(expected):
        obs, exp = observed[keep], expected[keep]
        if (~keep).any():
            obs, exp = np.append(obs, observed[~keep].sum()), np.append(exp, expected[~keep].sum())
        return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue

    assert observed.sum() == EPISODES
    assert chisquare_pvalue(expected) > 1e-3
    # the test has power: a 2% shift in every p_i is rejected
    assert chisquare_pvalue(poisson_binomial(np.clip(np.array(p) * 1.02, 0, 1)) * EPISODES) < 1e-3


def test_expected_capacity_and_membership(closed_form_doc):
    tables = run(closed_form_doc, episodes=EPISODES, seed=4)
    cands = closed_form_doc["candidates"]
    p = np.array([stats.norm.cdf(c["preference"]["mean"] / c["preference"]["sd"]) for c in cands])
    e = np.array([sum(c["capacity"].values()) / 3 for c in cands])
    mean, se = metric(tables, "capacity"), metric(tables, "capacity", "se")
    assert abs(mean - (p * e).sum()) < 4 * se
    z = (tables["candidates"]["p_member"].to_numpy() - p) / np.sqrt(p * (1 - p) / EPISODES)
    assert np.abs(z).max() < 4.5
    assert metric(tables, "spent", "max") == 0.0
    assert metric(tables, "success") == 0.0
