"""Hugging Face transformers speech encoders: wav2vec 2.0, HuBERT (and DistilHuBERT), WavLM, data2vec-audio, Whisper.

Loaded with ``AutoModel`` and ``AutoFeatureExtractor`` from a Hub id (at a ``revision``) or a local directory. Hidden
states are all of ``output_hidden_states``: the input embedding layer (the CNN features after projection) and every
transformer layer, as in SpEAT and Lin et al.

Padding. wav2vec2-style models whose first CNN layer uses group norm (``feat_extract_norm == "group"``: wav2vec2-base,
HuBERT-base, DistilHuBERT) normalise over the whole input, padding included, and take no attention mask; for them
``supports_padding`` is False and the pipeline never pads. Layer-norm models take the feature extractor's attention
mask, and a check at load time (`padding_is_harmless`) confirms that padding leaves real frames unchanged: it does
not for data2vec-audio, whose stacked, normalised positional convolutions carry padding into real frames.

Whisper's encoder always sees 30-second windows padded by its feature extractor, alone or in a batch: a clip is
cut into consecutive 30 s windows, each window's frames that cover real audio (one per 20 ms) are kept and the
windows' frames are concatenated, following the segment-wise extraction of the SpEAT reference code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from speat_metric.adapters.base import (
    SAMPLING_RATE,
    EncoderOutput,
    ModelDescription,
    ModelLoadError,
    SpeechEncoder,
    count_parameters,
    frames_mask,
    padding_is_harmless,
    torch_dtype,
    weights_sha256,
)
from speat_metric.adapters.preflight import check_model, check_model_type

logger = logging.getLogger(__name__)


_WHISPER_WINDOW = 30 * SAMPLING_RATE
_WHISPER_SAMPLES_PER_FRAME = 320  # 10 ms mel hop x conv stride 2


class TransformersEncoder(SpeechEncoder):
    """A transformers speech encoder behind the `SpeechEncoder` interface.

    Args:
        model: Hub model id (e.g. ``"facebook/hubert-base-ls960"``) or path of a local ``save_pretrained`` directory.
        revision: Hub branch, tag or commit; the resolved commit is recorded in the description.
        device: torch device to run on.
        dtype: ``"float32"`` (default), ``"float16"`` or ``"bfloat16"``.

    Raises:
        ModelLoadError: the model does not exist (locally or on the Hub), cannot be reached, or is not a speech encoder.
    """

    def __init__(self, model: str | Path, *, revision: str | None = None, device: str = "cpu",
                 dtype: str = "float32", local_files_only: bool = False) -> None:
        import transformers

        self._dtype = torch_dtype(dtype)
        name = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
        check = check_model(str(model), revision=revision)
        if check.kind not in ("local", "hub"):
            raise ModelLoadError(f"{str(model)!r} is not a transformers model directory or Hub id")
        local_files_only = local_files_only or check.local_files_only
        config = _load_config(name, revision, local_files_only)
        check_model_type(config.model_type, name)
        self._is_whisper = config.model_type == "whisper"
        loader = transformers.WhisperModel if self._is_whisper else transformers.AutoModel
        from speat_metric.adapters.pruned import load_pretrained  # from_pretrained that rebuilds pruned models

        model_object = load_pretrained(loader, name, revision=revision, dtype=self._dtype,
                                       local_files_only=local_files_only)
        self.model = (model_object.get_encoder() if self._is_whisper else model_object).to(device).eval()
        self.extractor, extractor_source = _load_feature_extractor(name, revision, config, local_files_only)
        self._device = torch.device(device)
        # Group-norm CNNs normalise over padding by design; anything else is checked, since some models leak
        # padding into real frames despite the attention mask.
        self.supports_padding = self._is_whisper or (
            getattr(config, "feat_extract_norm", "layer") == "layer" and padding_is_harmless(self)
        )
        self.description = ModelDescription(
            name=name,
            kind="transformers",
            revision=None if Path(name).is_dir() else _hub_commit(name, revision, local_files_only),
            weights_sha256=weights_sha256(self.model),
            num_parameters=count_parameters(self.model),
            num_layers=config.num_hidden_layers + 1 if not self._is_whisper else config.encoder_layers + 1,
            settings={"model_type": config.model_type, "dtype": dtype, "feature_extractor": extractor_source,
                      "requested_revision": revision},
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        if self._is_whisper:
            return self._encode_whisper(waveforms)
        lengths = [len(waveform) for waveform in waveforms]
        if not self.supports_padding and len(set(lengths)) > 1:
            raise ValueError(
                f"{self.description.name} normalises over padding (group norm), so a batch must hold clips of one "
                f"length; got lengths {sorted(set(lengths))}"
            )
        features = self.extractor(list(waveforms), sampling_rate=SAMPLING_RATE, padding=True,
                                  return_attention_mask=self.supports_padding, return_tensors="pt")
        attention_mask = features.get("attention_mask")
        with torch.inference_mode():
            output = self.model(
                features["input_values"].to(self._device, self._dtype),
                attention_mask=None if attention_mask is None else attention_mask.to(self._device),
                output_hidden_states=True,
            )
        hidden_states = [layer.float().cpu() for layer in output.hidden_states]
        num_frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths))
        return EncoderOutput(hidden_states, frames_mask(num_frames.tolist(), hidden_states[0].shape[1]))

    def _encode_whisper(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        windows, owners = [], []
        for index, waveform in enumerate(waveforms):
            for start in range(0, max(len(waveform), 1), _WHISPER_WINDOW):
                windows.append(np.asarray(waveform[start:start + _WHISPER_WINDOW], dtype=np.float32))
                owners.append(index)
        features = self.extractor(windows, sampling_rate=SAMPLING_RATE, return_tensors="pt")
        with torch.inference_mode():
            output = self.model(features["input_features"].to(self._device, self._dtype), output_hidden_states=True)
        valid = [min(output.hidden_states[0].shape[1], math.ceil(len(window) / _WHISPER_SAMPLES_PER_FRAME))
                 for window in windows]
        per_clip_frames = [sum(count for count, owner in zip(valid, owners) if owner == index)
                           for index in range(len(waveforms))]
        total = max(per_clip_frames)
        hidden_states = []
        for layer in output.hidden_states:
            layer = layer.float().cpu()
            stacked = torch.zeros(len(waveforms), total, layer.shape[-1])
            filled = [0] * len(waveforms)
            for row, (owner, count) in enumerate(zip(owners, valid)):
                stacked[owner, filled[owner]:filled[owner] + count] = layer[row, :count]
                filled[owner] += count
            hidden_states.append(stacked)
        return EncoderOutput(hidden_states, frames_mask(per_clip_frames, total))


def _load_config(name: str, revision: str | None, local_files_only: bool):
    import transformers

    try:
        return transformers.AutoConfig.from_pretrained(name, revision=revision, local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"could not read the configuration of model {name!r} ({first_line})") from error


def _hub_commit(name: str, revision: str | None, local_files_only: bool) -> str | None:
    """The commit a Hub model resolved to: the snapshot folder of its config.json in the Hub cache (works offline)."""
    from huggingface_hub import hf_hub_download

    try:
        snapshot = Path(hf_hub_download(name, "config.json", revision=revision,
                                        local_files_only=local_files_only)).parent
    except Exception as error:  # the model loaded already; a missing commit id must not stop the evaluation
        logger.warning("could not resolve the Hub commit of %s (%s); the result records no revision", name, error)
        return None
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def _load_feature_extractor(name: str, revision: str | None, config, local_files_only: bool) -> tuple[object, str]:
    """The model's own feature extractor; a training checkpoint without one gets the family default, logged."""
    import transformers

    try:
        return (transformers.AutoFeatureExtractor.from_pretrained(name, revision=revision,
                                                                  local_files_only=local_files_only),
                "preprocessor_config")
    except (OSError, ValueError):
        if config.model_type == "whisper":
            extractor = transformers.WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        else:
            layer_norm = getattr(config, "feat_extract_norm", "layer") == "layer"
            extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=layer_norm, return_attention_mask=layer_norm)
        logger.warning("%s has no preprocessor_config.json; using the default %s feature extractor",
                       name, type(extractor).__name__)
        return extractor, "default"
