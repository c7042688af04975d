"""What a backtest compares pivotal with, and how coalition size is scored (BACKTEST_FORMAT.md,
revision 2026-12-04).

- `shuffled_ties`: a placebo, the case's scenario with the candidates' ties to the pivot (every
  channel) permuted among the candidates, averaged over `SHUFFLES` permutations fixed by the
  seed. Ties that carry information beat it.
- `logit`: a logistic regression of joining on the builder's covariates, fitted on the *other*
  cases of the command (leave-one-case-out); none with fewer than `LOGIT_MIN_CASES` others.
- Size: a complete case's observed number of partners against the forecast's distribution of
  the coalition size (its percentile and log score).
- Paired differences: pivotal minus each baseline, per case, averaged over seeds, with a
  bootstrap interval over cases.
"""
from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

from engine.data import builder

SHUFFLES = 10          # permutations averaged in the shuffled_ties row
LOGIT_MIN_CASES = 3    # other cases the logit baseline needs
BOOTSTRAP = 10_000     # resamples of the cases for a paired difference's interval

COMPARISONS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("baseline", pa.string()), ("metric", pa.string()), ("cases", pa.int64()),
    ("seeds", pa.int64()), ("difference", pa.float64()), ("difference_low", pa.float64()),
    ("difference_high", pa.float64()), ("seed_min", pa.float64()), ("seed_max", pa.float64())])


def tie_permutation(slug: str, seed: int, k: int, n: int) -> np.ndarray:
    """The k-th permutation of a case's n candidates, fixed by the seed and the case's file name."""
    return np.random.default_rng([seed, zlib.crc32(slug.encode()), k]).permutation(n)


def shuffle_ties(doc: dict, permutation: np.ndarray) -> dict:
    """A scenario document whose candidate i has the ties to the pivot (every `tie*` channel) of
    candidate permutation[i]; everything else (preferences, capacities, peer ties) unchanged."""
    candidates = doc["candidates"]
    ties = [{k: v for k, v in c.items() if k.startswith("tie")} for c in candidates]
    shuffled = []
    for c, j in zip(candidates, permutation):
        kept = {k: v for k, v in c.items() if not k.startswith("tie")}
        shuffled.append(kept | ties[j])
    return doc | {"candidates": shuffled}


def logit_probabilities(others: list, case) -> np.ndarray | None:
    """Leave-one-case-out logistic regression: fitted on the scored states of `others` (prepared
    cases), the probability of joining of every candidate of `case`; None with fewer than
    LOGIT_MIN_CASES others."""
    if len(others) < LOGIT_MIN_CASES:
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([_features(p)[p.scored] for p in others])
    y = np.concatenate([p.joined[p.scored] for p in others])
    if y.all() or not y.any():
        return np.full(len(case.scored), float(y.mean()))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    model.fit(x, y)
    return model.predict_proba(_features(case))[:, 1]


def _features(p) -> np.ndarray:
    x = builder.covariates(p.inputs)
    return np.column_stack([np.asarray(x[k], float) for k in sorted(x)])


def poisson_binomial(p) -> np.ndarray:
    """P(size = k), k = 0..n, of the number of independent joiners with probabilities `p`."""
    pmf = np.zeros(len(p) + 1)
    pmf[0] = 1.0
    for q in p:
        pmf[1:] = pmf[1:] * (1 - q) + pmf[:-1] * q
        pmf[0] *= 1 - q
    return pmf


def size_scores(pmf, observed: int, episodes: int) -> dict:
    """The forecast's size distribution (`pmf[k]` = P(size = k)) against the observed size:
    its percentile P(size < observed) + P(size = observed) / 2, the log score -ln P(size =
    observed) (clipped as the log loss), its mean and 5th and 95th percentiles (the smallest
    size whose cdf reaches 0.05 and 0.95)."""
    pmf = np.asarray(pmf, float)
    at = pmf[observed] if observed < len(pmf) else 0.0
    cdf = np.cumsum(pmf)
    eps = 1.0 / (2 * episodes)
    quantile = lambda q: int(np.searchsorted(cdf, q - 1e-12))  # noqa: E731
    return {"size_observed": observed, "size_percentile": float(pmf[:observed].sum() + at / 2),
            "size_log_score": float(-np.log(np.clip(at, eps, 1 - eps))),
            "size_mean": float((np.arange(len(pmf)) * pmf).sum()),
            "size_p05": quantile(0.05), "size_p95": quantile(0.95)}


def paired_differences(run_id: str, scores: list, baselines, metrics=("auc", "brier", "log_loss"),
                       seed: int = 0) -> pa.Table:
    """pivotal minus each baseline, per metric: `scores` holds one dict per seed, mapping
    (case, model) to a row of scores. A case enters where both values exist in every seed;
    per case the difference is averaged over seeds, and the interval is the 2.5-97.5%
    percentile of BOOTSTRAP resamples of the cases (fixed by `seed`)."""
    rows = []
    cases = sorted({case for by_seed in scores for case, _ in by_seed})
    for baseline in baselines:
        for metric in metrics:
            per_seed, kept = [], []
            for case in cases:
                d = [_get(s, case, "pivotal", metric) - _get(s, case, baseline, metric)
                     if _get(s, case, "pivotal", metric) is not None
                     and _get(s, case, baseline, metric) is not None else None for s in scores]
                if all(v is not None for v in d):
                    per_seed.append(d)
                    kept.append(case)
            row = {"run_id": run_id, "baseline": baseline, "metric": metric, "cases": len(kept),
                   "seeds": len(scores), "difference": None, "difference_low": None,
                   "difference_high": None, "seed_min": None, "seed_max": None}
            if kept:
                d = np.array(per_seed)                     # cases x seeds
                by_case = d.mean(axis=1)
                rng = np.random.default_rng([seed, zlib.crc32(f"{baseline}/{metric}".encode())])
                means = by_case[rng.integers(0, len(by_case), (BOOTSTRAP, len(by_case)))].mean(axis=1)
                seed_means = d.mean(axis=0)
                row.update(difference=float(by_case.mean()),
                           difference_low=float(np.percentile(means, 2.5)),
                           difference_high=float(np.percentile(means, 97.5)),
                           seed_min=float(seed_means.min()), seed_max=float(seed_means.max()))
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=COMPARISONS_SCHEMA)


def _get(scores: dict, case: str, model: str, metric: str):
    row = scores.get((case, model))
    return None if row is None else row.get(metric)
