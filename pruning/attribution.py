"""Bias attribution: gates on every attention head and FFN row, the gradient of the SpEAT effect sizes through them,
per-layer maps, speaker-disjoint folds, and the check that removing the top components beats removing random ones.

Read top to bottom (docs/debiasing.md, the method):

1. `Component` names one prunable unit: a head or an FFN row (intermediate unit) of a transformer layer.
2. `attach_gates` puts a multiplicative gate (1.0 = unchanged) on each of them with forward pre-hooks: head h of
   layer l scales its ``head_dim`` columns of the input of the attention output projection (``out``), row i scales
   column i of the input of the FFN's second linear (``output``). A closed gate (0.0) computes exactly what the model
   computes with that head or row physically removed (`speat_metric.training.slicing.keep_heads` / `keep_ffn_dims`).
3. `speaker_folds` splits each test's targets into a selection and a held-out part by speaker (matched pairs stay
   together), so that a component chosen on some speakers is judged on others.
4. `gated_effect_sizes` computes every test's SpEAT effect size d as a differentiable function of the gates, with
   the extraction of ``speat evaluate`` (the adapter's inputs and layers, the mean over valid frames and over
   layers)::

       s(w) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
       d    = (mean_{x in X} s(x) - mean_{y in Y} s(y)) / std_{w in X u Y} s(w)          (ddof=1)

5. `attribute` scores each component by the first-order change of the bias objective ``L = sum_tests |d|`` when its
   gate goes from 1 to 0::

       score(c) = L(g_c = 0) - L(g = 1)  ~  -dL/dg_c

   Negative: removing the component lowers the bias; `Attribution.ranked` puts the most negative first.
6. `ablation_check` closes the top components and, `random_draws` times, random sets of the same kinds and per-layer
   counts, on held-out speakers, and says whether the top set moves sum |d| beyond the random sets' percentile
   interval.

Gate indices are positions among a layer's *current* heads and rows (as `keep_heads` takes them): after a physical
pruning step, attach new gates.

Example:
    >>> gates = attach_gates(adapter)                                                 # doctest: +SKIP
    >>> fold = speaker_folds(tests["gender"], folds=3, seed=0)[0]                     # doctest: +SKIP
    >>> attribution = attribute(adapter, gates, {"gender": fold.selection})           # doctest: +SKIP
    >>> check = ablation_check(adapter, gates, {"gender": fold.held_out}, attribution.ranked()[:4], seed=0)
    ...                                                                               # doctest: +SKIP
    >>> print(attribution.table(10)); print(check.sentence())                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from speat_metric.adapters.base import EncoderOutput, SpeechEncoder, frames_mask
from speat_metric.adapters.pruned import prunable
from speat_metric.defaults import BATCH_SECONDS
from speat_metric.embedding import Clip, clips_of, length_batches
from speat_metric.pipeline import matched_pairs
from speat_metric.training.slicing import PrunableLayer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from speat_metric.stimuli.loaders import Stimulus, StimulusSet

HEAD, ROW = "head", "row"
KINDS = (HEAD, ROW)
TARGET_ROLES = ("X", "Y")


# 1. Components ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Component:
    """One prunable unit: attention head `index` or FFN row (intermediate unit) `index` of transformer layer `layer`
    (0-based, as `PrunableEncoder.layers` lists them).

    Example:
        >>> str(Component("head", 1, 3)), sorted([Component("row", 0, 5), Component("head", 1, 0)])[0].kind
        ('head 1.3', 'head')
    """

    kind: str
    layer: int
    index: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"a component's kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.kind} {self.layer}.{self.index}"


# 2. Gates -----------------------------------------------------------------------------------------------------------


def prunable_layers(encoder: SpeechEncoder | nn.Module) -> list[PrunableLayer]:
    """The transformer layers of an adapter (its ``model``), a model, or a `PrunableEncoder`."""
    if hasattr(encoder, "layers") and hasattr(encoder, "original_sizes"):
        return encoder.layers()
    return prunable(encoder.model if isinstance(encoder, SpeechEncoder) else encoder).layers()


class Gates:
    """Multiplicative gates on every head and FFN row of an encoder, attached by forward pre-hooks (`attach_gates`).

    Attributes:
        head: (layers, max heads) float32 leaf tensor with ``requires_grad``; entry (l, h) scales head h of layer l.
        row: (layers, max FFN width) float32 leaf tensor with ``requires_grad``; entry (l, i) scales row i of layer l.
        sizes: the (heads, FFN width) of each layer; entries beyond them are unused.
        calls: how many gated forwards each hook has seen (a model whose attention bypasses ``out`` shows 0).
    """

    def __init__(self, layers: Sequence[PrunableLayer]) -> None:
        if not layers:
            raise ValueError("the encoder has no transformer layers to gate")
        self.sizes = [(layer.num_heads, layer.ffn_dim) for layer in layers]
        self.head = torch.ones(len(layers), max(heads for heads, _ in self.sizes), requires_grad=True)
        self.row = torch.ones(len(layers), max(width for _, width in self.sizes), requires_grad=True)
        self.calls = {HEAD: 0, ROW: 0}
        self._handles = []
        for number, layer in enumerate(layers):
            self._handles.append(layer.out.register_forward_pre_hook(self._head_hook(number, layer.head_dim)))
            self._handles.append(layer.output.register_forward_pre_hook(self._row_hook(number)))

    def _head_hook(self, layer: int, head_dim: int):
        heads = self.sizes[layer][0]

        def scale_heads(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            # The input of `out` is the heads' outputs side by side: head h owns columns h*head_dim:(h+1)*head_dim.
            self.calls[HEAD] += 1
            gate = self.head[layer, :heads].repeat_interleave(head_dim).to(args[0].dtype)
            return (args[0] * gate, *args[1:])

        return scale_heads

    def _row_hook(self, layer: int):
        width = self.sizes[layer][1]

        def scale_rows(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            self.calls[ROW] += 1
            return (args[0] * self.row[layer, :width].to(args[0].dtype), *args[1:])

        return scale_rows

    def components(self, kind: str | None = None) -> list[Component]:
        """Every gated component (of one `kind`, or all), heads first, by layer and index."""
        kinds = KINDS if kind is None else (kind,)
        return [Component(each, layer, index) for each in kinds for layer, sizes in enumerate(self.sizes)
                for index in range(sizes[KINDS.index(each)])]

    def _tensor(self, component: Component) -> torch.Tensor:
        heads, width = self.sizes[component.layer] if 0 <= component.layer < len(self.sizes) else (0, 0)
        if not 0 <= component.index < (heads if component.kind == HEAD else width):
            raise ValueError(f"{component} is not a gated component: the model has {len(self.sizes)} layers"
                             + (f", layer {component.layer} has {heads} heads and {width} FFN rows" if heads else ""))
        return self.head if component.kind == HEAD else self.row

    def close(self, components: Iterable[Component]) -> None:
        """Set the gates of `components` to 0 (in place, outside the graph)."""
        with torch.no_grad():
            for component in components:
                self._tensor(component)[component.layer, component.index] = 0.0

    def reset(self) -> None:
        """Every gate back to 1."""
        with torch.no_grad():
            self.head.fill_(1.0)
            self.row.fill_(1.0)

    def closed(self) -> list[Component]:
        """The components whose gate is not 1."""
        return [component for component in self.components()
                if float(self._tensor(component).detach()[component.layer, component.index]) != 1.0]

    def remove(self) -> None:
        """Detach the hooks: the model runs as if it had never been gated."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def attach_gates(encoder: SpeechEncoder | nn.Module) -> Gates:
    """Gates (all 1) on every head and FFN row of `encoder`: a speat adapter (``load_encoder``), a transformers
    wav2vec2-family model or a `MelHuBERTModel`.

    A family whose attention does not call its output projection as a module (WavLM's ``WavLMAttention``) is first
    put in its per-head form, as head pruning does (`PrunableLayer.on_keep_heads` with every head kept).
    """
    layers = prunable_layers(encoder)
    for layer in layers:
        if layer.on_keep_heads is not None:
            layer.on_keep_heads(layer.attention, list(range(layer.num_heads)))
    return Gates(layers)


# 3. Speaker-disjoint folds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    """One split of a test: the targets of the selection speakers and of the held-out speakers, each with every
    attribute stimulus (A and B are the concepts, not the people measured)."""

    selection: StimulusSet
    held_out: StimulusSet


def speaker_of(stimulus: Stimulus) -> str:
    """The speaker of a stimulus: its ``speaker_id`` metadata (the study's SAA and MESS stimuli carry it), else the
    stimulus itself (a clip of unknown speaker is its own speaker)."""
    speaker = stimulus.metadata.get("speaker_id") if stimulus.metadata else None
    return f"speaker:{speaker}" if speaker not in (None, "") else f"stimulus:{stimulus.stimulus_id}"


def _target_units(targets: Sequence[Stimulus]) -> list[list[Stimulus]]:
    """Groups of targets that must stay on one side: connected by a shared speaker or a matched pair (union-find)."""
    parent = list(range(len(targets)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_of: dict[Any, int] = {}
    for index, stimulus in enumerate(targets):
        keys = [speaker_of(stimulus)] + ([("pair", stimulus.pair_id)] if stimulus.pair_id is not None else [])
        for key in keys:
            if key in first_of:
                parent[root(index)] = root(first_of[key])
            else:
                first_of[key] = index
    units: dict[int, list[Stimulus]] = {}
    for index, stimulus in enumerate(targets):
        units.setdefault(root(index), []).append(stimulus)
    return list(units.values())


def speaker_folds(test: StimulusSet, *, folds: int = 3, seed: int = 0) -> list[Fold]:
    """Split a test's X and Y targets into `folds` speaker-disjoint parts; fold k holds part k out.

    Units (targets linked by a speaker or a matched pair) are shuffled by `seed`, then taken largest first, each
    into the part where its roles are least represented so far (ties: the smaller part, then the lower index): every
    part's count of each role is within one unit of the others.

    Raises:
        ValueError: `folds` < 2, or a side of a fold would have fewer than 2 targets of a group.
    """
    if folds < 2:
        raise ValueError(f"speaker_folds needs at least 2 folds, got folds={folds}")
    targets = [stimulus for stimulus in test if stimulus.role in TARGET_ROLES]
    units = _target_units(targets)
    order = np.random.default_rng(seed).permutation(len(units))
    units = sorted((units[index] for index in order), key=len, reverse=True)  # stable: the shuffle breaks ties
    counts = np.zeros((folds, len(TARGET_ROLES)), dtype=int)
    parts: list[list[Stimulus]] = [[] for _ in range(folds)]
    for unit in units:
        roles = np.array([sum(stimulus.role == role for stimulus in unit) for role in TARGET_ROLES])
        part = min(range(folds), key=lambda k: (int(counts[k] @ roles), int(counts[k].sum()), k))
        parts[part].extend(unit)
        counts[part] += roles
    result = []
    for held_out in range(folds):
        kept = {id(stimulus) for stimulus in parts[held_out]}
        selection = [stimulus for stimulus in targets if id(stimulus) not in kept]
        for side, chosen in (("selection", selection), ("held-out", parts[held_out])):
            sizes = {role: sum(stimulus.role == role for stimulus in chosen) for role in TARGET_ROLES}
            if min(sizes.values()) < 2:
                raise ValueError(f"test {test.name!r}: fold {held_out} of {folds} has {sizes['X']} X and {sizes['Y']} "
                                 f"Y targets on its {side} side ({len(targets)} targets from {len(units)} speaker "
                                 "groups); SpEAT needs at least 2 per group: use fewer folds")
        result.append(Fold(_subset(test, selection), _subset(test, parts[held_out])))
    return result


def _subset(test: StimulusSet, targets: Sequence[Stimulus]) -> StimulusSet:
    """The test with only `targets` as X and Y (in the test's order) and every attribute; provenance counts updated."""
    chosen = {id(stimulus) for stimulus in targets}
    stimuli = tuple(stimulus for stimulus in test if stimulus.role not in TARGET_ROLES or id(stimulus) in chosen)
    provenance = dataclasses.replace(
        test.provenance, loaded=len(stimuli),
        group_sizes={role: sum(stimulus.role == role for stimulus in stimuli) for role in "XYAB"})
    return dataclasses.replace(test, stimuli=stimuli, provenance=provenance)


# 4. Differentiable effect sizes -------------------------------------------------------------------------------------


def encode_with_grad(encoder: SpeechEncoder, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
    """What ``encoder.encode`` computes (the same inputs, layers and frame mask), with autograd on.

    The adapters encode under ``torch.inference_mode``; this runs a transformers wav2vec2-family model
    (`TransformersEncoder`) the same way outside it. (MelHuBERT needs the same switch inside its adapter, which alone
    may know the MelHuBERT classes.)

    Raises:
        ValueError: another kind of adapter, or a clip the profile would cut into chunks.
    """
    from speat_metric.adapters.transformers_encoder import TransformersEncoder, record_taps

    if not isinstance(encoder, TransformersEncoder) or not encoder._tapped or encoder._is_whisper:
        raise ValueError(f"attribution runs through a wav2vec2-family transformers model, not "
                         f"{encoder.description.name} ({type(encoder).__name__})")
    lengths = [len(waveform) for waveform in waveforms]
    if encoder._chunk_samples is not None and max(lengths) > encoder._chunk_samples:
        raise ValueError(f"a clip of {max(lengths)} samples exceeds the {encoder.profile} profile's chunk of "
                         f"{encoder._chunk_samples}; attribution encodes whole clips: use shorter clips")
    inputs, mask = encoder._inputs(waveforms)
    inputs = inputs.to(encoder.device, encoder._dtype)
    mask = None if mask is None else mask.to(encoder.device)
    with record_taps(encoder.model, final_norm=encoder._final_norm) as taps:
        encoder.model(inputs, attention_mask=mask)
    layers = [layer.float() for layer in encoder._profile.layers(taps(), encoder._model_type)]
    num_frames = encoder.model._get_feat_extract_output_lengths(torch.tensor(lengths))
    return EncoderOutput(layers, frames_mask(num_frames.tolist(), layers[0].shape[1]).to(layers[0].device))


def mean_over_frames(output: EncoderOutput) -> torch.Tensor:
    """(batch, layers, dim): each layer's mean over each clip's valid frames (`speat_metric.pooling.pool_frames`'s
    ``"mean"``, kept in torch)."""
    mask = output.frame_mask[:, :, None].to(output.hidden_states[0].dtype)
    return torch.stack([(layer * mask).sum(dim=1) / mask.sum(dim=1) for layer in output.hidden_states], dim=1)


def _waveforms(clips: Sequence[Clip], encoder: SpeechEncoder) -> dict[str, np.ndarray]:
    from speat_metric.embedding import _decode
    from speat_metric.profiles import get_profile

    resampler = get_profile(encoder.profile).resampler
    return {clip.sha256: _decode(clip, False, resampler) for clip in clips}


def _batches(encoder: SpeechEncoder, waveforms: Mapping[str, np.ndarray], batch_seconds: float) -> list[list[str]]:
    from speat_metric.adapters.base import SAMPLING_RATE

    if batch_seconds <= 0:
        raise ValueError(f"batch_seconds must be positive, got {batch_seconds}")
    return length_batches([(sha256, len(waveform)) for sha256, waveform in waveforms.items()],
                           max_samples=int(batch_seconds * SAMPLING_RATE), allow_padding=encoder.supports_padding)


def _check_hooks_ran(gates: Gates, before: Mapping[str, int]) -> None:
    silent = [kind for kind in KINDS if gates.calls[kind] == before[kind]]
    if silent:
        raise RuntimeError(f"the {' and '.join(silent)} gates never ran: this model's layers bypass the gated "
                           "linears (attach the gates to the model the adapter runs)")


def _layer_mean_embeddings(encoder: SpeechEncoder, gates: Gates, waveforms: Mapping[str, np.ndarray],
                           batches: Sequence[Sequence[str]], *, grad: bool) -> dict[str, torch.Tensor]:
    """{sha256: (dim,)} mean over layers of the mean over valid frames, as SpEAT's default pooling."""
    before = dict(gates.calls)
    embeddings: dict[str, torch.Tensor] = {}
    with torch.set_grad_enabled(grad):
        for batch in batches:
            pooled = mean_over_frames(encode_with_grad(encoder, [waveforms[sha256] for sha256 in batch]))
            embeddings.update(zip(batch, pooled.mean(dim=1)))
    _check_hooks_ran(gates, before)
    return embeddings


def _roles(test: StimulusSet, name: str, labels_shuffled_seed: int | None) -> dict[str, list[Stimulus]]:
    """X, Y, A, B of a test; with `labels_shuffled_seed`, X and Y relabelled at random but *balanced*: each new group
    holds half of the old X and half of the old Y (sizes kept; in a matched design exactly half of the pairs, chosen at
    random, are swapped as wholes). A plain permutation of a few targets often leaves a group mostly of one old label,
    and a control that keeps following the true labels removes the biased component too."""
    roles = {role: test.of_role(role) for role in ("X", "Y", "A", "B")}
    empty = [role for role, stimuli in roles.items() if len(stimuli) < (2 if role in TARGET_ROLES else 1)]
    if empty:
        raise ValueError(f"test {name!r} has too few stimuli in role(s) {', '.join(empty)} (2 targets per group, "
                         "1 attribute)")
    if labels_shuffled_seed is None:
        return roles
    rng = np.random.default_rng(labels_shuffled_seed)
    x, y = roles["X"], roles["Y"]
    pairs = matched_pairs(x, y)
    if pairs is not None:
        swap = np.zeros(len(pairs), dtype=bool)
        swap[rng.choice(len(pairs), size=len(pairs) // 2, replace=False)] = True
        roles["X"] = [y[j] if flip else x[i] for (i, j), flip in zip(pairs, swap)]
        roles["Y"] = [x[i] if flip else y[j] for (i, j), flip in zip(pairs, swap)]
    else:
        from_x = len(x) // 2  # the new X: half of X and the rest from Y; the new Y: everything else
        x_order, y_order = rng.permutation(len(x)), rng.permutation(len(y))
        roles["X"] = [x[i] for i in x_order[:from_x]] + [y[j] for j in y_order[:len(x) - from_x]]
        roles["Y"] = [x[i] for i in x_order[from_x:]] + [y[j] for j in y_order[len(x) - from_x:]]
    return roles


def effect_size(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, ddof: int = 1) -> torch.Tensor:
    """Differentiable SpEAT d of embeddings (rows), in float64, as `speat_metric.statistics.speat_test` computes it::

        s(w) = unit(w) . (mean_a unit(a) - mean_b unit(b)),   d = (mean s_X - mean s_Y) / std_{X u Y}(s, ddof)
    """
    def unit(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.double()
        return rows / rows.norm(dim=1, keepdim=True)

    direction = unit(a).mean(dim=0) - unit(b).mean(dim=0)
    s = unit(torch.cat([x, y])) @ direction
    return (s[:len(x)].mean() - s[len(x):].mean()) / s.std(correction=ddof)


def _effect_sizes(embeddings: Mapping[str, torch.Tensor], tests: Mapping[str, StimulusSet],
                  labels_shuffled_seed: int | None) -> dict[str, torch.Tensor]:
    effect_sizes = {}
    for name, test in tests.items():
        roles = _roles(test, name, labels_shuffled_seed)
        x, y, a, b = (torch.stack([embeddings[stimulus.sha256] for stimulus in roles[role]]) for role in "XYAB")
        effect_sizes[name] = effect_size(x, y, a, b)
    return effect_sizes


def gated_effect_sizes(encoder: SpeechEncoder, gates: Gates, tests: Mapping[str, StimulusSet], *,
                       batch_seconds: float = BATCH_SECONDS,
                       labels_shuffled_seed: int | None = None) -> dict[str, torch.Tensor]:
    """Every test's d as a differentiable function of the gates (a 0-d float64 tensor per test).

    Each distinct clip is decoded as the pipeline decodes it (the profile's resampler, no trimming), encoded in
    length-sorted batches of at most `batch_seconds` of audio, mean-pooled over its valid frames and then over all
    layers (SpEAT's default pooling); d as `effect_size`. With the gates all 1 this is the d of
    `speat_metric.pipeline.evaluate_tests` (to float32 rounding). The whole graph is kept: for many clips, use
    `attribute`, which holds one batch's graph at a time.

    Args:
        labels_shuffled_seed: relabel X and Y at random with this seed (the shuffled-label control).
    """
    clips = clips_of(stimulus for test in tests.values() for stimulus in test)
    waveforms = _waveforms(clips, encoder)
    embeddings = _layer_mean_embeddings(encoder, gates, waveforms, _batches(encoder, waveforms, batch_seconds),
                                        grad=torch.is_grad_enabled())
    return _effect_sizes(embeddings, tests, labels_shuffled_seed)


# 5. Attribution -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    """First-order attribution of the bias objective ``L = sum_tests |d|`` to every gated component.

    Attributes:
        scores: ``score(c) ~ L(c removed) - L(unpruned) = -dL/dg_c``; negative means removing c lowers the bias.
        effect_sizes: each test's d with every gate open (the point the scores linearise around).
        labels_shuffled_seed: the seed of the shuffled-label control, when the scores are of that control.
    """

    scores: dict[Component, float]
    effect_sizes: dict[str, float] = field(default_factory=dict)
    labels_shuffled_seed: int | None = None

    def ranked(self, kind: str | None = None) -> list[Component]:
        """Components (of one `kind`, or all) by score, most bias-reducing (most negative) first."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} or None, got {kind!r}")
        return sorted((component for component in self.scores if kind in (None, component.kind)),
                      key=lambda component: (self.scores[component], component))

    def table(self, top: int = 20) -> str:
        """The `top` most bias-reducing components as a Markdown table."""
        objective = sum(abs(d) for d in self.effect_sizes.values())
        lines = ["| rank | component | layer | index | predicted change of sum abs(d) |",
                 "| ---: | --- | ---: | ---: | ---: |"]
        for rank, component in enumerate(self.ranked()[:top], start=1):
            lines.append(f"| {rank} | {component.kind} | {component.layer} | {component.index} | "
                         f"{self.scores[component]:+.4f} |")
        note = f"sum abs(d) with every component: {objective:.3f}" if self.effect_sizes else ""
        return "\n".join(lines) + (f"\n\n{note}" if note else "")

    def layer_map(self) -> dict[str, np.ndarray]:
        """``{"head": (layers, heads) scores (NaN where a layer has fewer heads), "row": (layers,) sum of each
        layer's row scores (the first-order change of removing its whole FFN)}``."""
        layers = 1 + max((component.layer for component in self.scores), default=-1)
        heads = 1 + max((component.index for component in self.scores if component.kind == HEAD), default=-1)
        head_map = np.full((layers, heads), np.nan)
        row_map = np.zeros(layers)
        for component, score in self.scores.items():
            if component.kind == HEAD:
                head_map[component.layer, component.index] = score
            else:
                row_map[component.layer] += score
        return {HEAD: head_map, ROW: row_map}


@contextmanager
def _gates_kept(gates: Gates) -> Iterator[None]:
    """Restore the gates' values afterwards (attribution and checks may close some)."""
    head, row = gates.head.detach().clone(), gates.row.detach().clone()
    try:
        yield
    finally:
        with torch.no_grad():
            gates.head.copy_(head)
            gates.row.copy_(row)


def attribute(encoder: SpeechEncoder, gates: Gates, tests: Mapping[str, StimulusSet], *,
              batch_seconds: float = BATCH_SECONDS, labels_shuffled_seed: int | Sequence[int] | None = None,
              verify: int = 0) -> Attribution:
    """Score every gated component by ``-dL/dg`` with ``L = sum_tests |d|`` (see `Attribution.scores`), at the gates'
    current values (normally all 1), on `tests` (a selection fold); then, with `verify` > 0, replace the scores of the
    `verify` components of largest ``|score|`` by their exact effect, ``L(gate closed) - L`` (one forward pass each).

    Two passes keep one batch's graph at a time: the pooled embeddings E without gradients, then ``G = dL/dE``, then
    each batch again with gradients, adding ``(dE_batch/dg)^T G_batch`` (the chain rule: the same gradient as
    differentiating `gated_effect_sizes` directly). The model's parameters get no ``.grad``.

    With several `labels_shuffled_seed` (the shuffled-label control), ``L`` is the mean over those shufflings of
    ``sum_tests |d|``: a component that dominates d moves one shuffling's |d| up or down by chance, but on average it
    only adds spread to s, so averaging keeps the control from removing it by luck.

    Why verify: the first-order score is a slope at gate 1, and a component that dominates d can sit where d has
    levelled off (its slope even points the wrong way) although closing it removes most of d. Such a component has a
    large ``|score|`` of either sign, so the shortlist by ``|score|`` catches it and its exact effect ranks it.
    """
    clips = clips_of(stimulus for test in tests.values() for stimulus in test)
    waveforms = _waveforms(clips, encoder)
    batches = _batches(encoder, waveforms, batch_seconds)
    embeddings = {sha256: embedding.detach().requires_grad_(True) for sha256, embedding in
                  _layer_mean_embeddings(encoder, gates, waveforms, batches, grad=False).items()}
    shufflings = (list(labels_shuffled_seed) if isinstance(labels_shuffled_seed, Sequence)
                  else [labels_shuffled_seed])

    def objective_of(pooled: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """L: sum_tests |d|, averaged over the shufflings (one, unshuffled, normally)."""
        return torch.stack([d.abs() for seed in shufflings
                            for d in _effect_sizes(pooled, tests, seed).values()]).sum() / len(shufflings)

    effect_sizes = _effect_sizes(embeddings, tests, shufflings[0])
    objective = objective_of(embeddings)
    shas = list(embeddings)
    upstream = dict(zip(shas, torch.autograd.grad(objective, [embeddings[sha256] for sha256 in shas])))
    head_grad, row_grad = torch.zeros_like(gates.head), torch.zeros_like(gates.row)
    for batch in batches:
        pooled = _layer_mean_embeddings(encoder, gates, waveforms, [batch], grad=True)
        grads = torch.autograd.grad([pooled[sha256] for sha256 in batch], [gates.head, gates.row],
                                    grad_outputs=[upstream[sha256].float() for sha256 in batch], allow_unused=True)
        head_grad += grads[0] if grads[0] is not None else 0.0
        row_grad += grads[1] if grads[1] is not None else 0.0
    scores = {component: -float((head_grad if component.kind == HEAD else row_grad)[component.layer, component.index])
              for component in gates.components()}
    if verify > 0:
        baseline = float(objective.detach())
        shortlist = sorted(scores, key=lambda component: (-abs(scores[component]), component))[:verify]
        for component in shortlist:
            with _gates_kept(gates):
                gates.close([component])
                closed = _layer_mean_embeddings(encoder, gates, waveforms, batches, grad=False)
                scores[component] = float(objective_of(closed)) - baseline
    return Attribution(scores, {name: float(d.detach()) for name, d in effect_sizes.items()}, shufflings[0])


# 6. The ablation check ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationCheck:
    """Removing the top components vs removing random sets of the same kinds and per-layer counts (held-out d).

    Attributes:
        effect_sizes: each test's d with no component removed (beyond those already closed).
        top_effect_sizes: each test's d with the top components closed.
        top_change: sum |d| with the top components closed minus sum |d| without.
        random_changes: the same change for each random set.
        interval: the `confidence` percentile interval of `random_changes`.
    """

    components: tuple[Component, ...]
    effect_sizes: dict[str, float]
    top_effect_sizes: dict[str, float]
    top_change: float
    random_changes: tuple[float, ...]
    interval: tuple[float, float]
    confidence: float
    seed: int

    @property
    def beats_random(self) -> bool:
        """True when removing the top components lowers sum |d| more than the random interval's lower end."""
        return self.top_change < self.interval[0]

    def sentence(self) -> str:
        kinds = ", ".join(f"{sum(c.kind == kind for c in self.components)} {kind}s" for kind in KINDS
                          if any(c.kind == kind for c in self.components))
        low, high = self.interval
        verdict = ("more than random removal does" if self.beats_random else
                   "no more than random removal of the same size does")
        return (f"Removing the top {len(self.components)} components ({kinds}) changes held-out sum |d| by "
                f"{self.top_change:+.3f}; removing random sets of the same kinds and per-layer counts changes it by "
                f"{float(np.median(self.random_changes)):+.3f} (median of {len(self.random_changes)} draws, "
                f"{self.confidence:.0%} interval {low:+.3f} to {high:+.3f}): the attribution lowers the bias "
                f"{verdict}.")


def random_like(gates: Gates, components: Sequence[Component], rng: np.random.Generator) -> list[Component]:
    """A random set with the same number of components of each kind in each layer as `components`."""
    counts: dict[tuple[str, int], int] = {}
    for component in components:
        counts[component.kind, component.layer] = counts.get((component.kind, component.layer), 0) + 1
    drawn = []
    for (kind, layer), count in sorted(counts.items()):
        size = gates.sizes[layer][KINDS.index(kind)]
        drawn += [Component(kind, layer, int(index)) for index in rng.choice(size, size=count, replace=False)]
    return drawn


def _sum_abs(effect_sizes: Mapping[str, torch.Tensor]) -> float:
    return float(sum(abs(float(d.detach())) for d in effect_sizes.values()))


def ablation_check(encoder: SpeechEncoder, gates: Gates, held_out_tests: Mapping[str, StimulusSet],
                   components: Sequence[Component], *, random_draws: int = 20, seed: int = 0,
                   confidence: float = 0.95, batch_seconds: float = BATCH_SECONDS) -> AblationCheck:
    """Close `components` and, `random_draws` times, a `random_like` set (drawn with `seed`), and compare the change
    of held-out ``sum_tests |d|``; the gates are left as they were.

    Raises:
        ValueError: no components, fewer than 2 random draws, or a confidence outside (0, 1).
    """
    if not components:
        raise ValueError("ablation_check needs at least one component to remove")
    if random_draws < 2:
        raise ValueError(f"random_draws must be at least 2, got {random_draws}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)

    def effect_sizes_with(closed: Sequence[Component]) -> dict[str, torch.Tensor]:
        with _gates_kept(gates), torch.no_grad():
            gates.close(closed)
            return gated_effect_sizes(encoder, gates, held_out_tests, batch_seconds=batch_seconds)

    before = effect_sizes_with([])
    top = effect_sizes_with(components)
    changes = [_sum_abs(effect_sizes_with(random_like(gates, components, rng))) - _sum_abs(before)
               for _ in range(random_draws)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(changes, [tail, 1 - tail])
    return AblationCheck(tuple(components), {name: float(d) for name, d in before.items()},
                         {name: float(d) for name, d in top.items()}, _sum_abs(top) - _sum_abs(before),
                         tuple(changes), (float(low), float(high)), confidence, seed)


# 7. The figure ------------------------------------------------------------------------------------------------------


def attribution_figure(attribution: Attribution) -> Figure:
    """Per-layer maps: a heatmap of head scores (layers x heads) and a bar per layer of its summed row scores
    (negative, blue: removing lowers sum |d|)."""
    from matplotlib.figure import Figure

    maps = attribution.layer_map()
    heads, rows = maps[HEAD], maps[ROW]
    figure = Figure(figsize=(9, 0.5 * max(len(rows), 4) + 1.5), layout="constrained")
    head_axes, row_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [max(heads.shape[1], 1), 4]})
    limit = float(np.nanmax(np.abs(heads))) if np.isfinite(heads).any() else 1.0
    image = head_axes.imshow(heads, cmap="coolwarm", vmin=-limit or -1, vmax=limit or 1, aspect="auto")
    head_axes.set(xlabel="head", ylabel="layer", title="heads: predicted change of sum |d|")
    figure.colorbar(image, ax=head_axes, shrink=0.8)
    layers = np.arange(len(rows))
    row_axes.barh(layers, rows, color=["tab:blue" if value < 0 else "tab:red" for value in rows])
    row_axes.axvline(0.0, color="black", linewidth=0.8)
    row_axes.set(yticks=layers, ylim=(len(rows) - 0.5, -0.5), xlabel="sum of row scores",
                 title="FFN rows, per layer")
    return figure
