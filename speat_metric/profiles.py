"""Extraction profiles: which tensors count as a model's "layers", and how the audio reaches the model.

A published SpEAT d is only comparable to ours when the embeddings were extracted the same way, and the extraction of
the layers moves d. A profile (`ExtractionProfile`) names one complete extraction recipe: ``hf`` (`HF`, default,
transformers 5 ``hidden_states``), ``speat2023`` (`SPEAT2023`, the SpEAT reference code) or ``s3prl`` (`S3PRL`,
S3PRL's upstreams). ``speat evaluate --profile`` picks it (`get_profile`); every record, cache key and table says which.

Each profile takes its layers from the `LayerTaps` that the transformers adapter records with forward hooks, never
from ``hidden_states``, so no profile depends on the transformers version. A model family a profile does not define
is an error before any work starts (`check_profile_model_type`). The comparability labels (`UNNORMALISED_INPUT` ...,
`comparability_labels`) are defined here once.

Details: docs/reproducibility.md, "The three profiles" and "How the layers are taken".
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

LABELS = (UNNORMALISED_INPUT, NOT_TABLE3_COMPARABLE, CMVN_RESIDUE, WHISPER_NOT_COMPARABLE, SPEAT2023_HUBERT_LAYERS)


# --------------------------------------------------------------------------------------------------------------
# What a forward pass exposes, and what each profile takes from it
# --------------------------------------------------------------------------------------------------------------


@dataclass
class LayerTaps:
    """The tensors one forward pass of a transformers speech encoder exposes, each (batch, frames, dim).

    Attributes:
        projection: the feature projection of the CNN output (``feature_projection``: LayerNorm, Linear), before the
            positional convolution; None for Whisper.
        layer_inputs: the input of each transformer layer. ``layer_inputs[0]`` is the projection plus the
            positional convolution, followed by the encoder LayerNorm in post-LN models (wav2vec2-base,
            HuBERT-base, WavLM-base, data2vec-audio) but not in stable-layer-norm (pre-LN) models; for Whisper it is
            the convolutions' output plus the positional embedding.
        layer_outputs: the output of each transformer layer (for stable-layer-norm models, the last one is before
            the final LayerNorm).
        final: the encoder's output, built explicitly: the final LayerNorm (``encoder.layer_norm``, Whisper's
            ``ln_post``) applied to ``layer_outputs[-1]`` for stable-layer-norm models and Whisper, else
            ``layer_outputs[-1]``.
    """

    projection: torch.Tensor | None
    layer_inputs: list[torch.Tensor]
    layer_outputs: list[torch.Tensor]
    final: torch.Tensor


def hf_layers(taps: LayerTaps, model_type: str) -> list[torch.Tensor]:
    """``hf``: what transformers 5 returns as ``hidden_states`` (``output_hidden_states=True``).

    ``[layer_inputs[0], *layer_outputs]`` for the wav2vec2 family (transformers 5 records the first layer's input and
    every layer's output, ``capture_outputs(tie_last_hidden_states=False)`` in ``modeling_wav2vec2.py``,
    ``modeling_hubert.py``, ``modeling_wavlm.py``), so the last layer of a stable-layer-norm model is taken before
    the final LayerNorm. For Whisper, whose encoder ties the last hidden state to its output
    (``WhisperEncoder.forward`` under ``capture_outputs``), ``[*layer_inputs, final]``: the last layer after
    ``layer_norm`` (``ln_post``).
    """
    if model_type == "whisper":
        return [*taps.layer_inputs, taps.final]
    return [taps.layer_inputs[0], *taps.layer_outputs]


def speat2023_layers(taps: LayerTaps, model_type: str) -> list[torch.Tensor]:
    """``speat2023``: the layers the SpEAT reference code (isaacOnline/SpEAT @ e08f05ec) stored per model family.

    - wav2vec2 (``embedding_extraction/wav2vec2.py``, ``Wav2vec2FeatureReader.get_feats``): layer 0 is
      ``model.post_extract_proj(results["features"])``, the projection of the layer-normed CNN output, before the
      positional convolution (`LayerTaps.projection`); layers 1..L are fairseq's ``layer_results[l][0]``, the
      output of each transformer layer (fairseq ``models/wav2vec/wav2vec2.py``, ``TransformerEncoder.
      extract_features``), so the last layer of a stable-layer-norm model is before the final LayerNorm.
    - HuBERT (``embedding_extraction/hubert.py``, ``HubertFeatureReader.get_feats``): layer i is fairseq's
      ``extract_features(output_layer=i)``, which runs the encoder with ``layer=output_layer - 1``
      (fairseq ``models/hubert/hubert.py``, ``HubertModel.forward``). For i = 0 that is ``layer=-1``, which no
      layer index matches, so every layer runs and the *last* layer's output comes back (without the final
      LayerNorm, which fairseq applies only when ``layer is None``). The reference's "layer 0" is therefore the last
      layer: ``[layer_outputs[-1], *layer_outputs]``. The published numbers were computed this way, so this profile
      does the same (records say so with the `SPEAT2023_HUBERT_LAYERS` label); ``hf`` and ``s3prl`` never do.
    - WavLM (``embedding_extraction/wavlm.py``): unilm's ``extract_features(output_layer=encoder_layers,
      ret_layer_results=True)``, whose ``layer_results`` are the first layer's input (after the positional
      convolution, and the encoder LayerNorm in post-LN models) and every layer's output, no final LayerNorm
      (unilm ``wavlm/WavLM.py``, ``TransformerEncoder.extract_features``): ``[layer_inputs[0], *layer_outputs]``.
    - Whisper (``embedding_extraction/extract_whisper.py`` with the isaacOnline/whisper fork, ``whisper/model.py``,
      ``AudioEncoder.forward(include_embeddings=True)``): the convolution output plus positional embedding and
      every block's output, all before ``ln_post``: ``[layer_inputs[0], *layer_outputs]``.
    """
    if model_type == "wav2vec2":
        return [taps.projection, *taps.layer_outputs]
    if model_type == "hubert":
        return [taps.layer_outputs[-1], *taps.layer_outputs]
    return [taps.layer_inputs[0], *taps.layer_outputs]


def s3prl_layers(taps: LayerTaps, model_type: str) -> list[torch.Tensor]:
    """``s3prl``: S3PRL's upstream ``hidden_states`` for fairseq / unilm checkpoints.

    S3PRL's experts (``s3prl/upstream/wav2vec2/expert.py``, ``hubert/expert.py``, ``wavlm/expert.py``,
    ``data2vec/expert.py``) add a forward hook on every ``model.encoder.layers[i]`` that keeps its *input*, and one
    on ``model.encoder`` that keeps its output, after the final LayerNorm in stable-layer-norm models (fairseq's
    ``TransformerEncoder.forward`` with ``layer=None``); ``UpstreamBase.__call__`` (``s3prl/upstream/
    interfaces.py``) returns them in call order: ``[*layer_inputs, final]``. For post-LN models this equals ``hf``.
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
        name: ``hf``, ``speat2023`` or ``s3prl``.
        summary: one line for tables and help texts.
        resampler: how audio becomes 16 kHz (``speat_metric.audio.RESAMPLERS``).
        model_types: the transformers model types it defines layers for.
        layers: picks the layers from the taps of a forward pass (`hf_layers`, `speat2023_layers`, `s3prl_layers`).
        normalisation: the waveform normalisation by model type (default: `default_normalisation`):
            ``feature-extractor`` (the model's own feature extractor, ``do_normalize`` of its
            ``preprocessor_config.json``), ``layer-norm`` (``F.layer_norm(wav, wav.shape)`` over each clip, as
            fairseq's feature readers and S3PRL do when ``task.normalize`` is set) or ``none``.
        chunk_samples: by model type, the longest piece of a clip one forward pass sees; longer clips are cut into
            such pieces whose frames are concatenated (the SpEAT reference's ``max_chunk``).
        whisper_mel_padding: Whisper's 30-second input is the clip's log-mel zero-padded, as openai-whisper's
            ``pad_or_trim(mel, N_FRAMES)`` in ``transcribe``, instead of the mel of the zero-padded waveform
            (transformers' ``WhisperFeatureExtractor``).
    """

    name: str
    summary: str
    resampler: str
    model_types: tuple[str, ...]
    layers: Callable[[LayerTaps, str], list[torch.Tensor]]
    normalisation: Callable[[str, str], str] | None = None
    chunk_samples: Mapping[str, int] = field(default_factory=dict)
    whisper_mel_padding: bool = False

    def waveform_normalisation(self, model_type: str, feat_extract_norm: str) -> str:
        """``feature-extractor``, ``layer-norm`` or ``none`` for a model of this type and CNN normalisation."""
        if self.normalisation is None:
            return "feature-extractor"
        return self.normalisation(model_type, feat_extract_norm)


def default_normalisation(model_type: str, feat_extract_norm: str) -> str:
    """fairseq's ``task.normalize``, which for every released wav2vec2 / HuBERT / WavLM / data2vec checkpoint is set
    exactly when the CNN uses layer norm (``feat_extract_norm == "layer"``: wav2vec2-large-lv60, HuBERT-large/xl,
    WavLM-large, data2vec-audio) and off for group-norm CNNs (wav2vec2-base and -large-ls960, HuBERT-base,
    WavLM-base/+), whose first group norm removes the input's scale and offset anyway."""
    return "layer-norm" if feat_extract_norm == "layer" else "none"


def _speat2023_normalisation(model_type: str, feat_extract_norm: str) -> str:
    # embedding_extraction/wavlm.py feeds the raw waveform (it never applies cfg.normalize, unlike unilm's example
    # and S3PRL's wavlm expert); hubert.py and wav2vec2.py apply F.layer_norm when task.cfg.normalize is set.
    return "none" if model_type == "wavlm" else default_normalisation(model_type, feat_extract_norm)


HF = ExtractionProfile(
    name="hf", summary="transformers 5 hidden_states, soxr resampling", resampler="soxr",
    model_types=(*WAV2VEC2_FAMILY, "whisper", "sew", "sew-d"), layers=hf_layers)
"""``hf`` (the default): today's behaviour, the layers transformers 5 returns as ``hidden_states`` (`hf_layers`),
the model's own feature extractor, soxr's anti-aliased resampling, Whisper's 30-second windows of waveform as its
feature extractor pads them. SEW and SEW-D, whose encoders pool and upsample frames, keep transformers' own
``hidden_states``. Comparable with other transformers-based tools, not exactly with either study."""

SPEAT2023 = ExtractionProfile(
    name="speat2023", summary="the SpEAT reference code (Slaughter et al. 2023)", resampler="ratecv",
    model_types=("wav2vec2", "hubert", "wavlm", "whisper"), layers=speat2023_layers,
    normalisation=_speat2023_normalisation, chunk_samples={"wav2vec2": 1_600_000, "hubert": 1_600_000},
    whisper_mel_padding=True)
"""``speat2023``: the extraction of the SpEAT reference code, isaacOnline/SpEAT @ e08f05ec, whose result file is
``../shared/reference/speat_published_mean_mean.csv``:

- audio: pydub's conversion to 16 kHz WAV (``preprocessing/downloading_utils.py``): ``audioop.ratecv`` on integer
  PCM, no anti-alias filter, MP3s as 16-bit (`speat_metric.audio.reference_resample`);
- waveform normalisation: ``F.layer_norm`` when fairseq's ``task.cfg.normalize`` is set (wav2vec2, HuBERT), never
  for WavLM (``embedding_extraction/wavlm.py`` omits it);
- layers: `speat2023_layers` (wav2vec2's layer 0 is the feature projection before the positional convolution;
  HuBERT's "layer 0" is its last layer; nothing after a final LayerNorm);
- clips longer than ``max_chunk`` = 1,600,000 samples (100 s) are encoded in such pieces (wav2vec2.py, hubert.py);
- Whisper: the clip's log-mel zero-padded to 30 s, layers before ``ln_post``. The reference also kept only the
  frames between the timestamps its forked Whisper decoded (``whisper/transcribe.py``); that depends on decoding
  and is not reproduced, so Whisper records carry `WHISPER_NOT_COMPARABLE`.

Only the model families of the reference are defined (wav2vec2, HuBERT, WavLM, Whisper)."""

S3PRL = ExtractionProfile(
    name="s3prl", summary="S3PRL upstream hooks (our reading of Lin et al. 2024)", resampler="ratecv",
    model_types=("wav2vec2", "hubert", "wavlm", "data2vec-audio"), layers=s3prl_layers,
    normalisation=default_normalisation)
"""``s3prl``: S3PRL's upstream ``hidden_states`` for the fairseq checkpoints Lin et al. 2024 name (`s3prl_layers`:
every layer's input, then the encoder output after its final LayerNorm), with ``F.layer_norm`` of the waveform when
fairseq's ``task.normalize`` is set (``s3prl/upstream/*/expert.py``, ``forward``). Lin et al. released no extraction
code we could read; they "follow the SpEAT setup closely" and compress with S3PRL, so this profile is our reading:
S3PRL's layers on audio prepared as SpEAT's preprocessing prepares it (pydub's ``ratecv``). Each clip is encoded
with its valid frames only (S3PRL's ``Featurizer.tolist`` keeps ``round(samples / 320)`` frames, which for a clip
padded inside a batch can include one frame of padding; not reproduced)."""

PROFILES: dict[str, ExtractionProfile] = {profile.name: profile for profile in (HF, SPEAT2023, S3PRL)}
"""Every profile by name, the default first."""

PROFILE_NAMES = tuple(PROFILES)

assert DEFAULT_PROFILE in PROFILES


def get_profile(name: str) -> ExtractionProfile:
    """The profile called `name`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).

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
