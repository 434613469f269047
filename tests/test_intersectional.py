"""The interaction of two intersectional cells: against a slow independent loop, its null coverage, and the CLI."""

import argparse
from statistics import NormalDist

import numpy as np
import pytest
from test_tests_build import write_attributes, write_corpus

from speat_metric import tests_cli
from speat_metric.cli import main
from speat_metric.cosines import cosines_of_test
from speat_metric.intersectional import cell_bootstrap, cell_interaction, record_interaction
from speat_metric.results import load_records


def cell(rng, name, n_x, n_y, a, b, shift, pairs=False):
    """One cell's cosines: X shifted towards A by `shift`; attributes `a`, `b` (ids a0.., b0..)."""
    x = rng.normal(size=(n_x, a.shape[1])) + shift * a.mean(axis=0)
    y = rng.normal(size=(n_y, a.shape[1]))
    ids = [[f"{name}x{i}" for i in range(n_x)], [f"{name}y{i}" for i in range(n_y)],
           [f"a{i}" for i in range(len(a))], [f"b{i}" for i in range(len(b))]]
    pair_ids = [(f"{name}x{i}", f"{name}y{i}") for i in range(n_x)] if pairs else None
    return cosines_of_test([x, y, a, b], ids, pair_ids)


def slow_interactions(first, second, n_resamples, seed):
    """d*_1 - d*_2 resample by resample with plain loops, drawing as the module docstring says: each cell's targets
    apart (pairs when matched), one draw of attributes for both, matched BY ID (the second's columns are shuffled)."""
    rng = np.random.default_rng(seed)

    def targets(cosines):
        n_y = len(cosines.ids["Y"])
        if cosines.pairs is not None:
            rows = cosines.pair_rows()
            chosen = rng.integers(0, len(rows), size=(n_resamples, len(rows)))
            return rows[chosen, 0], rows[chosen, 1]
        return rng.integers(0, cosines.n_x, size=(n_resamples, cosines.n_x)), rng.integers(0, n_y, (n_resamples, n_y))

    def attributes(cosines):
        return (rng.integers(0, cosines.n_a, size=(n_resamples, cosines.n_a)),
                rng.integers(0, len(cosines.ids["B"]), size=(n_resamples, len(cosines.ids["B"]))))

    x1, y1 = targets(first)
    a_draw, b_draw = attributes(first)
    x2, y2 = targets(second)
    attributes(second)  # drawn and not used: the second cell takes the first's attributes
    result = []
    for r in range(n_resamples):
        a_ids = [first.ids["A"][j] for j in a_draw[r]]
        b_ids = [first.ids["B"][j] for j in b_draw[r]]
        effect = []
        for cosines, xs, ys in ((first, x1[r], y1[r]), (second, x2[r], y2[r])):
            column = {v: i for i, v in enumerate(cosines.ids["A"] + cosines.ids["B"])}
            score = []
            for row in [*xs, *(cosines.n_x + j for j in ys)]:
                pleasant = sum(cosines.values[row, column[v]] for v in a_ids) / len(a_ids)
                unpleasant = sum(cosines.values[row, column[v]] for v in b_ids) / len(b_ids)
                score.append(pleasant - unpleasant)
            s_x, s_y = score[:len(xs)], score[len(xs):]
            effect.append((np.mean(s_x) - np.mean(s_y)) / np.std(score, ddof=1))
        result.append(effect[0] - effect[1])
    return np.array(result)


def test_the_interval_resamples_targets_apart_and_attributes_jointly_as_a_slow_loop_does():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 5)) + 1, rng.normal(size=(5, 5)) - 1
    first = cell(rng, "f", 5, 4, a, b, 1.0)
    second = cell(rng, "m", 4, 4, a, b, 0.2, pairs=True)
    order = {"A": second.ids["A"][::-1], "B": second.ids["B"][1:] + second.ids["B"][:1]}
    shuffled = second.aligned_to({**second.ids, **order})  # the same attributes, in another column order
    resampled = cell_bootstrap(first, shuffled, n_resamples=300, seed=5)
    slow = slow_interactions(first, shuffled, 300, 5)
    assert len(resampled) == 300
    np.testing.assert_allclose(resampled[:, 0] - resampled[:, 1], slow, atol=1e-9)

    result = cell_interaction(first, shuffled, n_resamples=300, seed=5)
    scores = [c.scores() for c in (first, second)]
    observed = [(s[:c.n_x].mean() - s[c.n_x:].mean()) / s.std(ddof=1) for s, c in zip(scores, (first, second))]
    assert result.difference == pytest.approx(observed[0] - observed[1])
    normal = NormalDist()
    z0 = normal.inv_cdf(np.mean(slow < result.difference) + 0.5 * np.mean(slow == result.difference))
    quantiles = [normal.cdf(2 * z0 + normal.inv_cdf(q)) for q in (0.025, 0.975)]
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(slow, quantiles)))


def test_with_no_difference_between_cells_the_interval_covers_zero_at_about_the_nominal_rate():
    rng = np.random.default_rng(11)
    covered = []
    for _ in range(120):
        a, b = rng.normal(size=(12, 8)) + 0.5, rng.normal(size=(12, 8)) - 0.5
        first, second = cell(rng, "f", 12, 12, a, b, 0.3), cell(rng, "m", 12, 12, a, b, 0.3)
        result = cell_interaction(first, second, n_resamples=400, seed=int(rng.integers(1_000)))
        covered.append(result.ci_low <= 0 <= result.ci_high)
    assert 0.88 <= np.mean(covered) <= 1.0


def test_cells_with_other_attributes_are_refused():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    first = cell(rng, "f", 3, 3, a, b, 0.0)
    other = cosines_of_test([rng.normal(size=(3, 3))] * 2 + [a, b], [["x0", "x1", "x2"], ["y0", "y1", "y2"],
                                                                     ["z0", "z1", "z2", "z3"], list(first.ids["B"])])
    with pytest.raises(ValueError, match=r"the two cells' A attributes differ"):
        cell_interaction(first, other, n_resamples=200)


def test_speat_tests_interaction_prints_each_models_interaction(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "cv", {
        **{f"us-{sex}{i}": {"accents": "us", "gender": sex} for sex in ("female", "male") for i in range(3)},
        **{f"kr-{sex}{i}": {"accents": "korean", "gender": sex} for sex in ("female", "male") for i in range(3)}},
        clips_per_speaker=1, seconds=(0.5,))
    parser = argparse.ArgumentParser(prog="speat")
    tests_cli.add_parsers(parser.add_subparsers(dest="command"))

    def run(*arguments):
        args = parser.parse_args([str(argument) for argument in arguments])
        return args.handler(args)

    out = tmp_path / "built" / "accent.json"
    run("tests", "build", corpus, "--x", "accents=us", "--y", "accents=korean", "--by", "gender=female,male",
        "--per-group", "3", "--attributes", write_attributes(tmp_path), "--valence-column", "valence", "--out", out)
    tests = ",".join(str(tmp_path / "built" / f"accent-{sex}.json") for sex in ("female", "male"))
    for model in ("mfcc", "stft"):
        assert main(["evaluate", model, "--tests", tests, "--permutations", "100", "--no-progress", "--cache-dir",
                     str(tmp_path / "cache"), "--out", str(tmp_path / "results")]) == 0
    capsys.readouterr()
    assert run("tests", "interaction", tmp_path / "built" / "accent.intersectional.json", tmp_path / "results",
               "--resamples", "300") == 0
    lines = capsys.readouterr().out.splitlines()
    records = load_records(tmp_path / "results")
    for model in ("mfcc", "stft"):
        female, male = (next(r for r in records if r.model_label == model and r.test == f"accent-{sex}")
                        for sex in ("female", "male"))
        expected = record_interaction(female, male, n_resamples=300).sentence()
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    mfcc_female, stft_male = (next(r for r in records if r.model_label == model and r.test == test)
                              for model, test in (("mfcc", "accent-female"), ("stft", "accent-male")))
    with pytest.raises(ValueError, match=r"different models \(mfcc vs stft\)"):
        record_interaction(mfcc_female, stft_male)
