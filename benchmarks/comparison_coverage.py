"""How often the paired interval of Δd (`speat_metric.comparison`) covers 0 when two models are equally biased.

A 95% interval of Δd = d_first - d_second should contain 0 in about 95% of studies in which the true Δd is 0. Each
simulated study draws fresh stimuli, resamples two models' d jointly on them (`joint_bootstrap`: targets and
attributes, as ``speat compare`` does) and forms both intervals from the same resamples: the bias-corrected one that
`compare_cosines` reports (`bias_corrected_interval`) and the plain percentile one (`percentile_interval`). Two
nulls:

- ``two-models``: two models (different random projections of the same latent stimuli, plus their own noise) where
  X and Y come from one distribution: neither model has a group effect.
- ``shuffled-labels``: the latent X are planted nearer A than the latent Y, so both models are biased; then the X/Y
  labels of the targets are shuffled (one shuffle: the two models embed the same stimuli), which leaves neither a
  group effect in expectation.

Each study has n targets and n attributes per group. The attributes sit around two centres; how widely they spread
decides how much resampling them shrinks d* towards 0 (a perturbed A - B direction spreads s), which puts the
plain percentile interval off-centre and makes it over-cover a zero Δd; the bias correction moves it back.
`tests/test_comparison.py` holds the reported (bias-corrected) interval at n = 20 to 90%-98% for both spreads.

    .venv/bin/python benchmarks/comparison_coverage.py [--simulations 400] [--resamples 1000]
"""

import argparse
import time

import numpy as np

from speat_metric.comparison import bias_corrected_interval, joint_bootstrap, percentile_interval
from speat_metric.cosines import cosines_of_test

NULLS = ("two-models", "shuffled-labels")
LATENT_DIMENSION, EMBEDDING_DIMENSION = 16, 32
ATTRIBUTE_OFFSET = 1.0
"""How far the latent A and B centres sit from the origin (in opposite directions), so that s(w) separates them."""
ATTRIBUTE_SPREADS = (0.2, 1.0)
"""Standard deviations of the latent attributes around their centre: tight (the default) and wide."""
INTERVALS = ("bias-corrected", "percentile")
PLANTED_SHIFT = 0.8
"""How far the latent X of the ``shuffled-labels`` null sit towards A before the labels are shuffled."""
NOISE = 0.5
"""Standard deviation of each model's own noise, per embedding dimension."""


def null_stimuli(rng: np.random.Generator, n: int, null: str, attribute_spread: float) -> list[np.ndarray]:
    """Latent X, Y, A, B (n rows each) of one study under `null` (module docstring)."""
    if null not in NULLS:
        raise ValueError(f"null must be one of {', '.join(NULLS)}, got {null!r}")
    direction = np.zeros(LATENT_DIMENSION)
    direction[0] = 1.0
    a = rng.normal(0, attribute_spread, (n, LATENT_DIMENSION)) + ATTRIBUTE_OFFSET * direction
    b = rng.normal(0, attribute_spread, (n, LATENT_DIMENSION)) - ATTRIBUTE_OFFSET * direction
    shift = PLANTED_SHIFT if null == "shuffled-labels" else 0.0
    targets = np.concatenate([rng.normal(size=(n, LATENT_DIMENSION)) + shift * direction,
                              rng.normal(size=(n, LATENT_DIMENSION))])
    if null == "shuffled-labels":
        targets = targets[rng.permutation(2 * n)]
    return [targets[:n], targets[n:], a, b]


def model_embeddings(rng: np.random.Generator, latent: list[np.ndarray]) -> list[np.ndarray]:
    """One random model's X, Y, A, B: a random linear projection of the latent stimuli plus the model's noise."""
    projection = rng.normal(size=(LATENT_DIMENSION, EMBEDDING_DIMENSION)) / np.sqrt(LATENT_DIMENSION)
    return [rows @ projection + rng.normal(0, NOISE, (len(rows), EMBEDDING_DIMENSION)) for rows in latent]


def null_coverage(n: int, null: str, *, attribute_spread: float = ATTRIBUTE_SPREADS[0], simulations: int = 400,
                  n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Share of `simulations` studies (n targets and n attributes per group, `null` "two-models" or
    "shuffled-labels") in which the `confidence` interval of Δd between two models contains 0, for each of
    `INTERVALS` (the bias-corrected one is what `compare_cosines` reports)."""
    covered = dict.fromkeys(INTERVALS, 0)
    for simulation in range(simulations):
        rng = np.random.default_rng([seed, simulation])
        latent = null_stimuli(rng, n, null, attribute_spread)
        ids = [[f"{role}{index}" for index in range(n)] for role in "XYAB"]
        models = [cosines_of_test(model_embeddings(rng, latent), ids) for _ in range(2)]
        resampled = joint_bootstrap(models, n_resamples=n_resamples, seed=simulation)
        observed = [_effect_size(model.scores(), n) for model in models]
        differences = resampled[:, 0] - resampled[:, 1]
        intervals = {"bias-corrected": bias_corrected_interval(differences, observed[0] - observed[1], confidence),
                     "percentile": percentile_interval(differences, confidence)}
        for name, (low, high) in intervals.items():
            covered[name] += low <= 0 <= high
    return {name: count / simulations for name, count in covered.items()}


def _effect_size(scores: np.ndarray, n_x: int) -> float:
    """d of one model from its s(w), X then Y (ddof 1, as records)."""
    return float((scores[:n_x].mean() - scores[n_x:].mean()) / scores.std(ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulations", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    print(f"coverage of 0 by the 95% paired interval of Δd, {args.simulations} simulated studies, "
          f"{args.resamples} resamples each (nominal 95%; binomial standard error about "
          f"{np.sqrt(0.95 * 0.05 / args.simulations):.1%})")
    for spread in ATTRIBUTE_SPREADS:
        for null in NULLS:
            for n in (10, 20, 60):
                start = time.perf_counter()
                coverage = null_coverage(n, null, attribute_spread=spread, simulations=args.simulations,
                                         n_resamples=args.resamples)
                figures = "   ".join(f"{name} {coverage[name]:6.1%}" for name in INTERVALS)
                print(f"  attribute spread {spread}, {null:<16} n = {n:>2}: {figures}   "
                      f"({time.perf_counter() - start:5.1f} s)")


if __name__ == "__main__":
    main()
