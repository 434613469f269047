"""The controls and baselines of bias-aware pruning (``speat prune debias``): what else could be removed, or erased,
to compare the attribution's choice with (docs/debiasing.md, "Controls").

Each selection returns the `Component`s to remove (positions in the layers' current tensors, what
`speat_metric.training.slicing.keep_heads` and ``keep_ffn_dims`` take), never fewer than one head and one FFN row
left per layer:

- `random_components`: the same number of heads or rows drawn at random (seeded), anywhere in the model.
- `magnitude_rows`: Lin et al.'s (2024) row pruning criterion, the FFN rows of lowest L1 norm
  (`speat_metric.pruning.structured.row_scores`), the same number from every layer as ``prune_rows``.
- `property_neurons`: the FFN rows whose activations tell X from Y on the selection fold, after PropertyNeurons
  (Lin, Lin, Lee and Tang 2024, arXiv 2409.05910; github.com/nervjack2/PropertyNeurons).

And one that removes nothing: `leace_erasure`, LEACE (Belrose et al. 2023, the ``concept-erasure`` package) of the X/Y
direction from every layer's pooled embeddings, with `erased_speat`, the held-out SpEAT after it.

Example:
    >>> rows = magnitude_rows(model, 24)                          # doctest: +SKIP
    >>> drawn = random_components(model, 24, "row", seed=1)      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from speat_metric.pruning.attribution import Component, prunable_layers
from speat_metric.pruning.structured import row_scores

if TYPE_CHECKING:
    from torch import nn

    from speat_metric.adapters.base import SpeechEncoder
    from speat_metric.results import SpeatResult
    from speat_metric.stimuli.loaders import StimulusSet

KINDS = ("head", "row")

TOP_FRACTION = 0.01
"""PropertyNeurons' "activated" units of a frame: the top 1% of a layer's FFN units by |activation|
(``tau = round(D * 0.01)`` in the authors' ``match_phone_s3prl.py``; at least one here, for tiny layers)."""


def _sizes(encoder: nn.Module, kind: str) -> list[int]:
    """Heads (or FFN rows) of every layer now."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    layers = prunable_layers(encoder)
    return [layer.num_heads if kind == "head" else layer.ffn_dim for layer in layers]


def _check_count(count: int, sizes: list[int], kind: str) -> None:
    """`count` must leave at least one head (row) in every layer."""
    removable = sum(size - 1 for size in sizes)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= removable:
        raise ValueError(f"count must be an integer from 0 to {removable} (the {kind}s that can go while every layer "
                         f"keeps one), got {count!r}")


def random_components(encoder: nn.Module, count: int, kind: str, seed: int) -> list[Component]:
    """`count` heads or FFN rows (`kind`: ``"head"`` or ``"row"``) drawn uniformly at random from the whole model.

    The random-pruning control of the issue: the attribution ranks every component of a kind across all layers and
    removes the top ones wherever they are, so the control draws from all layers alike too (not the same number per
    layer): a seeded permutation of every (layer, index), taken in order, skipping a component that would empty its
    layer. The same `seed` gives the same components. (The ablation check's draws, which keep the top set's per-layer
    counts, are `speat_metric.pruning.attribution.random_like`.)

    Args:
        encoder: an adapter, a transformers speech model or any `PrunableEncoder`
            (`speat_metric.pruning.attribution.prunable_layers`).
        count: how many to remove.
        kind: ``"head"`` or ``"row"``.
        seed: the draw's seed.

    Returns:
        The components, sorted.

    Raises:
        ValueError: an unknown kind, or a count that would empty a layer.
    """
    sizes = _sizes(encoder, kind)
    _check_count(count, sizes, kind)
    every = [(layer, index) for layer, size in enumerate(sizes) for index in range(size)]
    order = np.random.default_rng(seed).permutation(len(every))
    left = list(sizes)
    chosen = []
    for position in order:
        if len(chosen) == count:
            break
        layer, index = every[position]
        if left[layer] > 1:
            left[layer] -= 1
            chosen.append(Component(kind, layer, index))
    return sorted(chosen)


def magnitude_rows(encoder: nn.Module, count: int) -> list[Component]:
    """The `count` FFN rows of lowest L1 norm, the same number from every layer: Lin et al.'s (2024) row pruning.

    The score is `speat_metric.pruning.structured.row_scores` (the authors' ``rp_utils.get_layer_rows_norm``: the
    L1 norm of the row of the first FFN layer, its bias and the column of the second), and as ``prune_rows`` every
    layer gives up its lowest-scoring rows (`speat_metric.pruning.structured.lowest`, ties to the lower index), so
    that a count of ``per_layer * layers`` is exactly one ``prune_rows(encoder, per_layer)``. A count that does not
    divide by the number of layers: each layer gives ``count // layers``, and the remaining rows are the lowest-scoring
    next rows across layers (one more from those layers).

    Raises:
        ValueError: a count that would empty a layer.
    """
    layers = prunable_layers(encoder)
    sizes = [layer.ffn_dim for layer in layers]
    _check_count(count, sizes, "row")
    per_layer, remainder = divmod(count, len(layers))
    if per_layer + (remainder > 0) > min(sizes) - 1:
        raise ValueError(f"count {count} takes {per_layer + (remainder > 0)} rows from every layer, but the narrowest "
                         f"layer has {min(sizes)}: at most {(min(sizes) - 1) * len(layers)} rows")
    scores = [row_scores(layer) for layer in layers]
    orders = [sorted(range(len(score)), key=lambda index, score=score: (float(score[index]), index))
              for score in scores]
    chosen = [Component("row", layer, index) for layer, order in enumerate(orders) for index in order[:per_layer]]
    next_rows = sorted(((float(scores[layer][order[per_layer]]), layer, order[per_layer])
                        for layer, order in enumerate(orders)))
    chosen += [Component("row", layer, index) for _, layer, index in next_rows[:remainder]]
    return sorted(chosen)


def property_scores(x_clips: list[list[np.ndarray]], y_clips: list[list[np.ndarray]]
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, how strongly each FFN unit tells X from Y: PropertyNeurons' activation frequencies, and the means.

    For one clip and layer with activations ``h`` of shape (frames, D), unit i is *activated* in a frame when
    ``|h[t, i]|`` is among the frame's top ``tau = max(1, round(TOP_FRACTION * D))`` (the authors'
    ``match_phone_s3prl.py``); its activating frequency in the clip is the fraction of frames in which it is, and a
    group's activating probability ``p_G(i)`` is the mean of its clips' frequencies (each clip counting once). The
    authors keep, per property class, the units whose probability exceeds the chance level ``tau / D`` for most
    phones and call "property neurons" those of one class only; without phone labels we rank instead by the
    difference between the groups: ``frequency = |p_X(i) - p_Y(i)|``. The second score needs no threshold (many
    units of a small layer are never in a top ``tau``): ``mean = |m_X(i) - m_Y(i)| / s(i)``, the difference between
    the groups' mean (over clips) of the clip's frame-mean activation, over the pooled standard
    deviation (ddof 1) of those clip means (0 where it is 0).

    Args:
        x_clips, y_clips: per clip, per layer, the (frames, D) activations of the FFN units (the input of the FFN's
            output linear: after the activation function).

    Returns:
        ``(frequency, mean)``: two lists of (D,) arrays, one per layer.
    """
    frequency, mean = [], []
    for layer in range(len(x_clips[0])):
        group_frequency, group_means = [], []
        for clips in (x_clips, y_clips):
            per_clip, clip_means = [], []
            for clip in clips:
                activations = np.abs(np.asarray(clip[layer], dtype=np.float64))
                tau = max(1, round(TOP_FRACTION * activations.shape[1]))
                top = np.argsort(-activations, axis=1, kind="stable")[:, :tau]
                activated = np.zeros_like(activations, dtype=bool)
                np.put_along_axis(activated, top, True, axis=1)
                per_clip.append(activated.mean(axis=0))
                clip_means.append(np.asarray(clip[layer], dtype=np.float64).mean(axis=0))
            group_frequency.append(np.mean(per_clip, axis=0))
            group_means.append(np.stack(clip_means))
        frequency.append(np.abs(group_frequency[0] - group_frequency[1]))
        x_means, y_means = group_means
        pooled = (((len(x_means) - 1) * x_means.var(axis=0, ddof=1) + (len(y_means) - 1) * y_means.var(axis=0, ddof=1))
                  / (len(x_means) + len(y_means) - 2))
        spread = np.sqrt(pooled)
        difference = np.abs(x_means.mean(axis=0) - y_means.mean(axis=0))
        mean.append(np.divide(difference, spread, out=np.zeros_like(difference), where=spread > 0))
    return frequency, mean


def ffn_activations(encoder: SpeechEncoder, waveform: np.ndarray) -> list[np.ndarray]:
    """Per transformer layer, the (frames, D) activated FFN units of one clip: what enters each layer's FFN output
    linear, caught by a forward pre-hook while `encoder` (an adapter of `speat_metric.adapters`) encodes the clip
    alone (no padding frames; a clip encoded in chunks gives its chunks' frames in order)."""
    layers = prunable_layers(encoder)
    caught: list[list[torch.Tensor]] = [[] for _ in layers]
    handles = [layer.output.register_forward_pre_hook(
        lambda module, inputs, number=number: caught[number].append(inputs[0].detach().float().cpu().reshape(
            -1, inputs[0].shape[-1])))
        for number, layer in enumerate(layers)]
    try:
        encoder.encode([waveform])
    finally:
        for handle in handles:
            handle.remove()
    return [torch.cat(parts).numpy() for parts in caught]


MEASURES = ("mean", "frequency")


def property_neurons(encoder: SpeechEncoder | nn.Module, selection_tests: Mapping[str, StimulusSet], count: int, *,
                     measure: str = "mean", trim_silence: bool = False) -> list[Component]:
    """The `count` FFN rows whose activations tell the X targets from the Y targets best on the selection fold.

    Each distinct target clip of the tests is encoded alone by `encoder` (an adapter: its audio decoding and
    normalisation are those of ``speat evaluate``) and every layer's activated FFN units are caught
    (`ffn_activations`); each test's X and Y clips are scored by `property_scores`, the scores summed over the tests,
    and the rows ranked across all layers by `measure`, the other one breaking ties (then layer and index):

    - ``"mean"`` (default): the standardised difference between the groups' clip-mean activations. PropertyNeurons'
      signal (how a unit's activation depends on the group) without its threshold: robust in a small layer, where
      the paper's top 1% is a single unit and most units are never "activated".
    - ``"frequency"``: PropertyNeurons' own statistic, the difference between the groups' activating probabilities
      (top 1% of a layer's units by |activation|, per frame); on base-size models (3072 units: the top 31) this is
      the paper's criterion, ranked by the difference instead of thresholded per phone class.

    A row whose removal would empty its layer is passed over.

    Raises:
        ValueError: an unknown measure, a test with fewer than 2 X or 2 Y targets, or a count that would empty a
            layer.
    """
    from speat_metric.adapters.base import SAMPLING_RATE
    from speat_metric.audio import load_audio
    from speat_metric.profiles import get_profile

    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    sizes = [layer.ffn_dim for layer in prunable_layers(encoder)]
    _check_count(count, sizes, "row")
    for name, test in selection_tests.items():
        counts = {role: len(test.of_role(role)) for role in ("X", "Y")}
        if min(counts.values()) < 2:
            raise ValueError(f"test {name!r}: property neurons need at least 2 X and 2 Y targets on the selection "
                             f"fold, got {counts['X']} and {counts['Y']}")
    resampler = get_profile(encoder.profile).resampler
    activations: dict[str, list[np.ndarray]] = {}
    totals = {kind: [np.zeros(size) for size in sizes] for kind in ("frequency", "mean")}
    for test in selection_tests.values():
        groups = []
        for role in ("X", "Y"):
            for stimulus in test.of_role(role):
                if stimulus.sha256 not in activations:
                    waveform = load_audio(stimulus.path, sampling_rate=SAMPLING_RATE, trim_silence=trim_silence,
                                          name=stimulus.stimulus_id, resampler=resampler)
                    activations[stimulus.sha256] = ffn_activations(encoder, waveform)
            groups.append([activations[stimulus.sha256] for stimulus in test.of_role(role)])
        for kind, scores in zip(("frequency", "mean"), property_scores(*groups)):
            totals[kind] = [total + part for total, part in zip(totals[kind], scores)]
    first, second = totals[measure], totals["frequency" if measure == "mean" else "mean"]
    ranked = sorted(((-float(first[layer][index]), -float(second[layer][index]), layer, index)
                     for layer, size in enumerate(sizes) for index in range(size)))
    left, chosen = list(sizes), []
    for _, _, layer, index in ranked:
        if len(chosen) == count:
            break
        if left[layer] > 1:
            left[layer] -= 1
            chosen.append(Component("row", layer, index))
    return sorted(chosen)


def leace_erasure(embeddings_by_layer: Mapping[int, np.ndarray], labels: np.ndarray
                  ) -> Callable[[int, np.ndarray], np.ndarray]:
    """LEACE erasure of the X/Y concept from every layer's pooled embeddings, fitted on the selection fold.

    LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed form"; ``concept_erasure.LeaceFitter``
    with its defaults) finds, per layer, the affine map ``r(e) = e - P (e - mean)`` of least change such that no
    linear classifier does better than a constant at telling the labels apart: on the fitting data the erased
    embeddings of the two groups have the same mean. It is the "erase the group direction" baseline: nothing is
    pruned, the representation is edited.

    Args:
        embeddings_by_layer: ``{layer: (n, dim)}`` the selection fold's frame-pooled target embeddings, rows in the
            order of `labels` (e.g. ``embed_stimuli(...)[sha][layer]`` of its X and Y targets).
        labels: (n,) the two groups (any two values, e.g. 1 for X and 0 for Y), at least 2 of each.

    Returns:
        ``erase(layer, embeddings)``: (m, dim) embeddings of that layer (any stimuli: held-out targets and
        attributes) with the layer's fitted erasure applied, float64.

    Raises:
        ValueError: no layers, labels that are not two groups of at least 2, or shapes that disagree.
    """
    from concept_erasure import LeaceFitter

    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True) if labels.ndim == 1 else (np.array([]), np.array([]))
    if len(values) != 2 or counts.min() < 2:
        raise ValueError(f"labels must be a 1-D array of two groups with at least 2 stimuli each, got groups "
                         f"{dict(zip(values.tolist(), counts.tolist()))}")
    if not embeddings_by_layer:
        raise ValueError("embeddings_by_layer is empty: give the selection fold's embeddings of at least one layer")
    concept = torch.from_numpy((labels == values[1]).astype(np.float64))[:, None]
    erasers = {}
    for layer, embeddings in embeddings_by_layer.items():
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or len(embeddings) != len(labels):
            raise ValueError(f"layer {layer}: embeddings must be ({len(labels)}, dim) like the labels, got shape "
                             f"{embeddings.shape}")
        # float64: the guarantee (equal group means) is exact up to rounding, which float32 makes visible
        erasers[layer] = LeaceFitter.fit(torch.from_numpy(embeddings), concept).eraser

    def erase(layer: int, embeddings: np.ndarray) -> np.ndarray:
        if layer not in erasers:
            raise ValueError(f"no erasure was fitted for layer {layer}; fitted: {sorted(erasers)}")
        with torch.no_grad():
            return erasers[layer](torch.from_numpy(np.asarray(embeddings, dtype=np.float64))).numpy()

    return erase


def erased_speat(embeddings: Mapping[str, np.ndarray], selection: StimulusSet, held_out: StimulusSet, *,
                 num_permutations: int = 10_000, seed: int = 0, n_bootstrap: int = 10_000
                 ) -> tuple[SpeatResult, SpeatResult]:
    """The held-out SpEAT before and after LEACE erasure of the X/Y direction fitted on the selection fold.

    `embeddings` are per-layer frame-pooled clip embeddings, ``{sha256: (layers, dim)}`` as
    `speat_metric.embedding.embed_stimuli` returns them (computed once: erasure needs no forward pass). Per layer,
    `leace_erasure` is fitted on the selection fold's X (label 1) and Y (label 0) targets and applied to every
    held-out stimulus (X, Y, A and B); then the layers are averaged (the default SpEAT's layer pooling) and
    `speat_metric.statistics.speat_test` runs with matched pairs when the held-out targets have them.

    Returns:
        ``(before, after)``: the held-out SpEAT on the original and on the erased embeddings (same seed).

    Raises:
        ValueError: a stimulus without an embedding, or a fold without 2 X and 2 Y targets.
    """
    from speat_metric.pipeline import matched_pairs
    from speat_metric.statistics import speat_test

    for fold, stimuli in (("selection", selection), ("held-out", held_out)):
        missing = [stimulus.stimulus_id for stimulus in stimuli if stimulus.sha256 not in embeddings]
        if missing:
            raise ValueError(f"{fold} stimuli {missing[:5]} have no embedding: embed every stimulus of both folds")
    targets = selection.of_role("X") + selection.of_role("Y")
    stacked = np.stack([embeddings[stimulus.sha256] for stimulus in targets]).astype(np.float64)
    labels = np.array([1] * len(selection.of_role("X")) + [0] * len(selection.of_role("Y")))
    erase = leace_erasure({layer: stacked[:, layer] for layer in range(stacked.shape[1])}, labels)
    roles = {role: held_out.of_role(role) for role in ("X", "Y", "A", "B")}
    per_layer = {role: np.stack([embeddings[stimulus.sha256] for stimulus in stimuli]).astype(np.float64)
                 for role, stimuli in roles.items()}
    erased = {role: np.stack([erase(layer, values[:, layer]) for layer in range(values.shape[1])], axis=1)
              for role, values in per_layer.items()}
    pairs = matched_pairs(roles["X"], roles["Y"])
    options = dict(num_permutations=num_permutations, seed=seed, n_bootstrap=n_bootstrap, pairs=pairs)
    before, after = (speat_test(*(views[role].mean(axis=1) for role in ("X", "Y", "A", "B")), **options)
                     for views in (per_layer, erased))
    return before, after
