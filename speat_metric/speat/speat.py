"""SpEAT: the Speech Embedding Association Test, as a Hugging Face `evaluate` measurement."""

import datasets
import evaluate

from speat_metric.statistics import speat_test

_DESCRIPTION = """
SpEAT measures whether a speech model's embeddings tie one group of speakers (targets X, e.g. female) more than
another (targets Y, e.g. male) to pleasant speech (attributes A) rather than unpleasant speech (attributes B).
For each target w, s(w) = mean_a cos(w, a) - mean_b cos(w, b). The effect size is
d = (mean_X s - mean_Y s) / std_{X u Y}(s) (sample std, ddof=1); |d| >= 0.2, 0.5, 0.8 are small, medium and large.
The p-value is a one-sided permutation test of sum_X s - sum_Y s over re-partitions of X u Y: exact when every
partition fits in `num_permutations`, otherwise (1 + #extreme) / (1 + num_permutations) over random partitions.
A percentile bootstrap over the targets gives a confidence interval for d.
"""

_KWARGS_DESCRIPTION = """
Args:
    embeddings (`list` of `list` of `float`): one embedding per stimulus, all of the same dimension.
    groups (`list` of `str`): the role of each stimulus: "X" or "Y" (targets), "A" or "B" (attributes).
        Each role needs at least 2 stimuli.
    num_permutations (`int`, default 1_000_000): partitions to evaluate; all of them when there are no more.
    seed (`int`, optional): makes the permutations and bootstrap reproducible; a drawn seed is reported.
    alternative (`str`, default "greater"): "greater" (X closer to A than Y is), "less" or "two-sided".
    confidence (`float`, default 0.95): coverage of the bootstrap confidence interval.
    n_bootstrap (`int`, default 10_000): bootstrap resamples; 0 skips the interval.
    pairs (`list` of `[int, int]`, optional): matched (X index, Y index) pairs, counted within each group in the
        order the stimuli arrive; the bootstrap then resamples pairs together.
    ddof (`int`, default 1): 1 for the sample standard deviation (SpEAT), 0 for the population one (WEFE).
Returns:
    `dict` with effect_size, effect_size_label, p_value, ci_low, ci_high, n_x, n_y, n_a, n_b,
    num_permutations (partitions actually used), exact, seed, alternative, test_statistic, confidence,
    n_bootstrap, paired, ddof, speat_version and schema_version.
Examples:
    Targets whose embeddings lean towards the pleasant attributes (X) or away from them (Y):

    >>> speat = evaluate.load("speat")  # doctest: +SKIP
    >>> embeddings = [[3.0, 1.0, 0.2], [2.5, 0.5, 0.1], [2.0, 1.5, 0.4],  # X
    ...               [0.1, 1.0, 2.0], [0.5, 0.5, 3.0], [0.2, 2.0, 2.5], [0.4, 1.0, 1.0],  # Y
    ...               [1.0, 0.1, 0.0], [0.9, 0.3, 0.1],  # A
    ...               [0.0, 0.2, 1.0], [0.1, 0.1, 0.8], [0.2, 0.3, 0.9]]  # B
    >>> groups = ["X"] * 3 + ["Y"] * 4 + ["A"] * 2 + ["B"] * 3
    >>> result = speat.compute(embeddings=embeddings, groups=groups, seed=0)
    >>> round(result["effect_size"], 3), result["effect_size_label"], result["exact"]
    (1.831, 'large', True)
    >>> result["num_permutations"], round(result["p_value"], 4)  # C(7, 3) partitions; X is the most extreme
    (35, 0.0286)
"""

_CITATION = """
@article{caliskan2017semantics,
  title={Semantics derived automatically from language corpora contain human-like biases},
  author={Caliskan, Aylin and Bryson, Joanna J and Narayanan, Arvind},
  journal={Science}, volume={356}, number={6334}, pages={183--186}, year={2017}
}
@inproceedings{slaughter2023pretrained,
  title={Pre-trained Speech Processing Models Contain Human-Like Biases that Propagate to Speech Emotion Recognition},
  author={Slaughter, Isaac and Greenberg, Craig and Schwartz, Reva and Caliskan, Aylin},
  booktitle={Findings of the Association for Computational Linguistics: EMNLP 2023}, year={2023}
}
@inproceedings{lin2024social,
  title={On the social bias of speech self-supervised models},
  author={Lin, Yi-Cheng and Lin, Tzu-Quan and Lin, Hsi-Che and Liu, Andy T. and Lee, Hung-yi},
  booktitle={Interspeech 2024}, year={2024}
}
"""

ROLES = ("X", "Y", "A", "B")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Speat(evaluate.Measurement):
    """Speech Embedding Association Test (SpEAT) effect size, permutation p-value and bootstrap interval."""

    def _info(self):
        return evaluate.MeasurementInfo(
            module_type="measurement",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"embeddings": datasets.Sequence(datasets.Value("float64")), "groups": datasets.Value("string")}
            ),
            reference_urls=["https://arxiv.org/abs/2310.18877", "https://arxiv.org/abs/2406.04997"],
        )

    def _compute(self, embeddings, groups, num_permutations=1_000_000, seed=None, alternative="greater",
                 confidence=0.95, n_bootstrap=10_000, pairs=None, ddof=1):
        unknown = sorted({str(group) for group in groups} - set(ROLES))
        if unknown:
            raise ValueError(f"groups must be 'X', 'Y', 'A' or 'B'; got {unknown}")
        x, y, a, b = ([vector for vector, group in zip(embeddings, groups) if group == role] for role in ROLES)
        missing = [role for role, rows in zip(ROLES, (x, y, a, b)) if not rows]
        if missing:
            named = " or ".join(repr(role) for role in missing)
            raise ValueError(f"no embeddings with group {named}: SpEAT needs rows "
                             "of all four roles X, Y (targets) and A, B (attributes)")
        result = speat_test(x, y, a, b, num_permutations=num_permutations, seed=seed, alternative=alternative,
                            confidence=confidence, n_bootstrap=n_bootstrap, pairs=pairs, ddof=ddof)
        return result.to_dict()
