"""Extraction profiles: which tensors count as a model's "layers", and how the audio reaches the model.

A published SpEAT d is only comparable to ours when the embeddings were extracted the same way, and the extraction of
the layers moves d. A profile (`ExtractionProfile`) names one complete extraction recipe: ``hf`` (`HF`, default,
transformers 5 ``hidden_states``), ``speat2023`` (`SPEAT2023`, the SpEAT reference code) or ``s3prl`` (`S3PRL`,
S3PRL's upstreams). ``speat evaluate --profile`` picks it (`get_profile`); every record, cache key and table says which.

Each profile takes its layers from the `LayerTaps` that the transformers adapter records with forward hooks, never
from ``hidden_states``, so no profile depends on the transformers version. A model family a profile does not define
is an error before any work starts (`check_profile_model_type`). The comparability labels (`UNNORMALISED_INPUT` ...,
`comparability_labels`) are defined here once.

Details: docs/reproducibility.md, "The three profiles" and "How the layers are taken"; where each choice comes from
in the reference code: docs/features.md, "Extraction profiles".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from speat_metric.results import DEFAULT_PROFILE

if TYPE_CHECKING:
    import torch

    from speat_metric.results import ModelDescription

# --------------------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------------------

UNNORMALISED_INPUT = "unnormalised-input"
"""A MelHuBERT whose filter banks were not normalised: its authors always normalise with LibriSpeech mean/std
(``--mean-std``); without them the input is off-scale for a trained model and differs from Lin et al.'s for a
random one."""

NOT_TABLE3_COMPARABLE = "not-table3-comparable"
"""A classical feature without per-utterance CMVN (speat's default). S3PRL's configs, which Lin et al. used for
their Table 3 baselines, turn CMVN on; averaged over time, CMVN features are zero up to rounding, so Table 3's
feature rows measure rounding residue and ours do not."""

CMVN_RESIDUE = "cmvn-rounding-residue"
"""A classical feature with CMVN (``--cmvn``), as S3PRL computes it: every time-averaged dimension is zero up to
float rounding, so d measures rounding residue and is reproducible only with the same float arithmetic."""

WHISPER_NOT_COMPARABLE = "whisper-not-comparable"
"""A Whisper encoder: the SpEAT reference kept only the frames between the timestamps its (forked) Whisper decoded,
which depends on the transcript; speat keeps every frame that covers the clip."""

SPEAT2023_HUBERT_LAYERS = "speat2023-hubert-layers"
"""A HuBERT under ``speat2023``: its layer 0 is the last transformer layer, as in the SpEAT reference (see
`speat2023_layers`), so the mean over layers counts the last layer twice and leaves out the input layer."""


# --------------------------------------------------------------------------------------------------------------
# What a forward pass exposes, and what each profile takes from it
# --------------------------------------------------------------------------------------------------------------


@dataclass
class LayerTaps:
    """The tensors one forward pass of a transformers speech encoder exposes, each (batch, frames, dim).

    `projection` is ``feature_projection`` of the CNN output, before the positional convolution (None for Whisper).
    ``layer_inputs[0]`` is the projection plus the positional convolution, then the encoder LayerNorm in post-LN
    models only (Whisper: the convolutions plus the positional embedding). `layer_outputs` come before any final
    LayerNorm; `final` is the encoder output built explicitly: the final LayerNorm (``encoder.layer_norm``,
    Whisper's ``ln_post``) of ``layer_outputs[-1]`` for stable-layer-norm models and Whisper, else that output.
    """

    projection: torch.Tensor | None
    layer_inputs: list[torch.Tensor]
    layer_outputs: list[torch.Tensor]
    final: torch.Tensor


def hf_layers(taps: LayerTaps, model_type: str) -> list[torch.Tensor]:
    """``hf``: what transformers 5 returns as ``hidden_states`` (``output_hidden_states=True``).

    The first layer's input and every layer's output; Whisper ties its last hidden state to the encoder output, after
    ``ln_post``. Sources: docs/features.md.
    """
    if model_type == "whisper":
        return [*taps.layer_inputs, taps.final]
    return [taps.layer_inputs[0], *taps.layer_outputs]


def speat2023_layers(taps: LayerTaps, model_type: str) -> list[torch.Tensor]:
    """``speat2023``: the layers the SpEAT reference code (isaacOnline/SpEAT @ e08f05ec) stored per model family.

    wav2vec2: the feature projection before the positional convolution, then every layer's output. HuBERT: fairseq's
    ``extract_features(output_layer=0)`` runs every layer, so the reference's "layer 0" is the *last* layer, and so
    is ours (the `SPEAT2023_HUBERT_LAYERS` label says so). WavLM, Whisper: the first layer's input and every layer's
    output. Never a final LayerNorm. Files and functions of the reference: docs/features.md.
    """
    if model_type == "wav2vec2":
        return [taps.projection, *taps.layer_outputs]
    if model_type == "hubert":
        return [taps.layer_outputs[-1], *taps.layer_outputs]
    return [taps.layer_inputs[0], *taps.layer_outputs]


def s3prl_layers(taps: LayerTaps, model_type: str) -> list[torch.Tensor]:
    """``s3prl``: S3PRL's upstream ``hidden_states`` for fairseq / unilm checkpoints.

    Its experts hook every encoder layer's *input* and the encoder's output, after the final LayerNorm in
    stable-layer-norm models (docs/features.md). For post-LN models this equals ``hf``.
    """
    return [*taps.layer_inputs, taps.final]


# --------------------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------------------

WAV2VEC2_FAMILY = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat",
                   "wav2vec2-conformer")
"""transformers model types whose encoder has ``feature_projection``, ``encoder.layers`` and ``encoder.layer_norm``
(the structure `LayerTaps` is recorded from)."""


@dataclass(frozen=True)
class ExtractionProfile:
    """One extraction recipe (see the module docstring).

    Attributes:
        resampler: how audio becomes 16 kHz (``speat_metric.audio.RESAMPLERS``).
        layers: picks the layers from the taps of a forward pass (`hf_layers`, `speat2023_layers`, `s3prl_layers`).
        normalisation: the waveform normalisation by model type and CNN norm: ``feature-extractor`` (the model's
            own feature extractor, the default), ``layer-norm`` (``F.layer_norm(wav, wav.shape)`` over each clip,
            fairseq's ``task.normalize``) or ``none``.
        chunk_samples: by model type, the longest piece of a clip one forward pass sees; longer clips are cut into
            such pieces whose frames are concatenated (the SpEAT reference's ``max_chunk``).
        whisper_mel_padding: Whisper's 30-second input is the clip's log-mel zero-padded (openai-whisper), instead
            of the mel of the zero-padded waveform (transformers' ``WhisperFeatureExtractor``).
        eu_emotion_positions: the EU-Emotion attributes of the tests ``age-uk`` and ``accent-romero-rivas`` are the
            clips at the all.tsv rows whose numbers are the high/low-valence clips' positions within the
            semantically neutral subset, as the SpEAT code indexes them, instead of the labelled clips themselves
            (`speat_metric.stimuli.battery.eu_emotion_groups`; docs/stimuli.md, "The published battery").
    """

    name: str
    summary: str
    resampler: str
    model_types: tuple[str, ...]
    layers: Callable[[LayerTaps, str], list[torch.Tensor]]
    normalisation: Callable[[str, str], str] | None = None
    chunk_samples: Mapping[str, int] = field(default_factory=dict)
    whisper_mel_padding: bool = False
    eu_emotion_positions: bool = False

    def waveform_normalisation(self, model_type: str, feat_extract_norm: str) -> str:
        """``feature-extractor``, ``layer-norm`` or ``none`` for a model of this type and CNN normalisation."""
        return "feature-extractor" if self.normalisation is None else self.normalisation(model_type, feat_extract_norm)


def default_normalisation(model_type: str, feat_extract_norm: str) -> str:
    """fairseq's ``task.normalize``: set, for every released checkpoint, exactly when the CNN uses layer norm (a
    group-norm CNN's first norm removes the input's scale and offset anyway; checkpoints: docs/features.md)."""
    return "layer-norm" if feat_extract_norm == "layer" else "none"


def _speat2023_normalisation(model_type: str, feat_extract_norm: str) -> str:
    # embedding_extraction/wavlm.py feeds the raw waveform (it never applies cfg.normalize, unlike unilm's example
    # and S3PRL's wavlm expert); hubert.py and wav2vec2.py apply F.layer_norm when task.cfg.normalize is set.
    return "none" if model_type == "wavlm" else default_normalisation(model_type, feat_extract_norm)


HF = ExtractionProfile(
    name="hf", summary="transformers 5 hidden_states, soxr resampling", resampler="soxr",
    model_types=(*WAV2VEC2_FAMILY, "whisper", "sew", "sew-d"), layers=hf_layers)
"""``hf`` (the default): transformers 5 ``hidden_states`` (`hf_layers`), the model's own feature extractor, soxr,
Whisper's 30-second waveform windows. SEW and SEW-D, whose encoders pool and upsample frames, keep transformers' own
``hidden_states``. Comparable with other transformers-based tools, not exactly with either study."""

SPEAT2023 = ExtractionProfile(
    name="speat2023", summary="the SpEAT reference code (Slaughter et al. 2023)", resampler="ratecv",
    model_types=("wav2vec2", "hubert", "wavlm", "whisper"), layers=speat2023_layers,
    normalisation=_speat2023_normalisation, chunk_samples={"wav2vec2": 1_600_000, "hubert": 1_600_000},
    whisper_mel_padding=True, eu_emotion_positions=True)
"""``speat2023``: the extraction of the SpEAT reference code, isaacOnline/SpEAT @ e08f05ec (the published
``speat_published_mean_mean.csv``): pydub's ``ratecv`` resampling (`speat_metric.audio.reference_resample`),
``F.layer_norm`` of the waveform as fairseq's ``task.cfg.normalize`` says except for WavLM (its script omits it),
`speat2023_layers`, 100 s chunks (``max_chunk``), Whisper's log-mel zero-padded (the frames the reference kept by
decoded timestamps are not reproduced: `WHISPER_NOT_COMPARABLE`), and the EU-Emotion attribute rows as the
reference indexes them (``eu_emotion_positions``). Only the reference's model families are defined."""

S3PRL = ExtractionProfile(
    name="s3prl", summary="S3PRL upstream hooks (our reading of Lin et al. 2024)", resampler="ratecv",
    model_types=("wav2vec2", "hubert", "wavlm", "data2vec-audio"), layers=s3prl_layers,
    normalisation=default_normalisation)
"""``s3prl``: S3PRL's upstream ``hidden_states`` (`s3prl_layers`) for the fairseq checkpoints Lin et al. 2024 name,
with ``F.layer_norm`` of the waveform when fairseq's ``task.normalize`` is set, on audio resampled as SpEAT's
preprocessing does (``ratecv``). Lin et al. released no extraction code, so this is our reading (docs/features.md)."""

PROFILES: dict[str, ExtractionProfile] = {profile.name: profile for profile in (HF, SPEAT2023, S3PRL)}
"""Every profile by name, the default first."""

PROFILE_NAMES = tuple(PROFILES)

assert DEFAULT_PROFILE in PROFILES


def get_profile(name: str) -> ExtractionProfile:
    """The profile called `name`; a ValueError listing the known ones for any other name.

    Example:
        >>> get_profile("speat2023").resampler
        'ratecv'
    """
    if name not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


def check_profile_model_type(profile: str, model_type: str | None, name: str) -> None:
    """Raise a ValueError, before any work, when `profile` defines no layers for a transformers model type.

    Example:
        >>> check_profile_model_type("s3prl", "hubert", "facebook/hubert-base-ls960")  # fine
        >>> check_profile_model_type("speat2023", "data2vec-audio", "d2v")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --profile speat2023 defines layers for ... only; 'd2v' is a 'data2vec-audio' model: use ...
    """
    chosen = get_profile(profile)
    if model_type is None or model_type in chosen.model_types:
        return
    others = [other.name for other in PROFILES.values() if model_type in other.model_types]
    hint = f"use --profile {' or '.join(others)}" if others else "no profile reads it"
    raise ValueError(f"--profile {profile} defines layers for {', '.join(chosen.model_types)} only; {name!r} is a "
                     f"{model_type!r} model: {hint}")


def comparability_labels(description: ModelDescription, profile: str) -> list[str]:
    """The labels a record of this model and profile carries (see the label constants above).

    Example:
        >>> from speat_metric.results import ModelDescription
        >>> mfcc = ModelDescription(name="mfcc", kind="feature", revision=None, weights_sha256=None,
        ...                         num_parameters=0, num_layers=1, settings={"cmvn": False})
        >>> comparability_labels(mfcc, "hf")
        ['not-table3-comparable']
    """
    settings, labels = description.settings, []
    if description.kind == "melhubert" and settings.get("normalisation_sha256") is None:
        labels.append(UNNORMALISED_INPUT)
    if description.kind == "feature":
        labels.append(CMVN_RESIDUE if settings.get("cmvn") else NOT_TABLE3_COMPARABLE)
    model_type = settings.get("model_type") if description.kind == "transformers" else None
    if model_type == "whisper":
        labels.append(WHISPER_NOT_COMPARABLE)
    if model_type == "hubert" and profile == SPEAT2023.name:
        labels.append(SPEAT2023_HUBERT_LAYERS)
    return labels
