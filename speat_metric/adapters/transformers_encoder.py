"""Hugging Face transformers speech encoders: wav2vec 2.0, HuBERT (and DistilHuBERT), WavLM, data2vec-audio, Whisper.

Loaded with ``AutoModel`` and ``AutoFeatureExtractor`` from a Hub id (at a ``revision``) or a local directory. The
extraction profile (`speat_metric.profiles`) picks the layers from what forward hooks record (`record_taps`), so the
result does not depend on what the installed transformers puts in ``hidden_states``. Group-norm models
(``supports_padding`` False) are never padded; Whisper is encoded in 30-second windows whose frames are joined.

Details (layers, padding, Whisper windows): docs/adapters.md, "Transformers encoders".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speat_metric.adapters.base import (
    SAMPLING_RATE,
    EncoderOutput,
    ModelDescription,
    ModelLoadError,
    SpeechEncoder,
    count_parameters,
    frames_mask,
    join_windows,
    pad_batch,
    padding_is_harmless,
    torch_dtype,
    weights_sha256,
)
from speat_metric.adapters.preflight import WEIGHT_FILE, ModelCheck, check_model, first_line, hidden_state_count
from speat_metric.adapters.pruned import load_pretrained  # from_pretrained that also rebuilds pruned models
from speat_metric.profiles import WAV2VEC2_FAMILY, LayerTaps, check_profile_model_type, get_profile
from speat_metric.results import DEFAULT_PROFILE

logger = logging.getLogger(__name__)


_WHISPER_WINDOW = 30 * SAMPLING_RATE
_WHISPER_SAMPLES_PER_FRAME = 320  # 10 ms mel hop x conv stride 2


class TransformersEncoder(SpeechEncoder):
    """A transformers speech encoder behind the `SpeechEncoder` interface.

    Args:
        model: Hub model id (e.g. ``"facebook/hubert-base-ls960"``) or path of a local ``save_pretrained`` directory.
        revision: Hub branch, tag or commit; the resolved commit is recorded in the description.
        dtype: ``"float32"`` (default), ``"float16"`` or ``"bfloat16"``.
        profile: the extraction profile (`speat_metric.profiles`): ``hf`` (default), ``speat2023`` or ``s3prl``.

    Raises:
        ModelLoadError: the model does not exist (locally or on the Hub), cannot be reached, or is not a speech encoder.
        ValueError: the profile is unknown or defines no layers for this model type.
    """

    def __init__(self, model: str | Path | ModelCheck, *, revision: str | None = None, device: str = "cpu",
                 dtype: str = "float32", profile: str = DEFAULT_PROFILE) -> None:
        import transformers

        self._profile = get_profile(profile)
        self.profile = self._profile.name
        self._dtype = torch_dtype(dtype)
        check = model if isinstance(model, ModelCheck) else check_model(str(model), revision=revision)
        if check.kind not in ("local", "hub"):
            raise ModelLoadError(f"{check.spec.text!r} is not a transformers model directory or Hub id")
        # Everything is loaded from one local folder: the model's own, or the Hub files fetched once at the commit
        # the check resolved, so loading asks the Hub nothing more.
        source = _local_files(check, revision)
        name = str(source.resolve()) if check.kind == "local" else check.spec.text
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"could not read the configuration of model {name!r} ({first_line(error)})") from error
        check_profile_model_type(self.profile, config.model_type, name)
        self._model_type = config.model_type
        self._is_whisper = config.model_type == "whisper"
        self._tapped = self._is_whisper or config.model_type in WAV2VEC2_FAMILY
        self._final_norm = self._is_whisper or bool(getattr(config, "do_stable_layer_norm", False))
        self._normalisation = "log-mel" if self._is_whisper else self._profile.waveform_normalisation(
            config.model_type, getattr(config, "feat_extract_norm", "layer"))
        self._chunk_samples = self._profile.chunk_samples.get(config.model_type)
        loader = transformers.WhisperModel if self._is_whisper else transformers.AutoModel
        model_object = load_pretrained(loader, str(source), dtype=self._dtype, local_files_only=True)
        self.model = (model_object.get_encoder() if self._is_whisper else model_object).to(device).eval()
        self.extractor, extractor_source = _load_feature_extractor(source, name, config)
        self._device = torch.device(device)
        # Group-norm CNNs normalise over padding by design; anything else is checked, since some models leak
        # padding into real frames despite the attention mask.
        self.supports_padding = self._is_whisper or (getattr(config, "feat_extract_norm", "layer") == "layer"
                                                     and padding_is_harmless(self))
        self.description = ModelDescription(
            name=name, kind="transformers", revision=check.commit if check.kind == "hub" else None,
            weights_sha256=weights_sha256(self.model), num_parameters=count_parameters(self.model),
            num_layers=hidden_state_count(config.to_dict()),
            settings={"model_type": config.model_type, "dtype": dtype, "feature_extractor": extractor_source,
                      "requested_revision": revision,
                      "extraction": {"profile": self.profile, "waveform_normalisation": self._normalisation,
                                     "chunk_samples": self._chunk_samples,
                                     "whisper_mel_padding": self._is_whisper and self._profile.whisper_mel_padding}})

    @property
    def device(self) -> torch.device:
        return self._device

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        if self._is_whisper:
            return self._encode_whisper(waveforms)
        lengths = [len(waveform) for waveform in waveforms]
        if not self.supports_padding and len(set(lengths)) > 1:
            raise ValueError(f"{self.description.name} normalises over padding (group norm), so a batch must hold "
                             f"clips of one length; got lengths {sorted(set(lengths))}")
        if self._chunk_samples is not None and max(lengths) > self._chunk_samples:
            return self._encode_in_chunks(waveforms)
        hidden_states = self._layers(*self._inputs(waveforms))
        num_frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths))
        return EncoderOutput(hidden_states, frames_mask(num_frames.tolist(), hidden_states[0].shape[1]))

    def _inputs(self, waveforms: Sequence[np.ndarray], *, normalise: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The padded batch of model inputs and its attention mask (None when the model takes none)."""
        if self._normalisation == "feature-extractor":
            features = self.extractor(list(waveforms), sampling_rate=SAMPLING_RATE, padding=True,
                                      return_attention_mask=self.supports_padding, return_tensors="pt")
            return features["input_values"], features.get("attention_mask")
        clips = [torch.as_tensor(np.asarray(waveform), dtype=torch.float32) for waveform in waveforms]
        if normalise and self._normalisation == "layer-norm":  # fairseq: F.layer_norm(x, x.shape), eps 1e-5
            clips = [F.layer_norm(clip, clip.shape) for clip in clips]
        batch, mask = pad_batch(clips)
        return batch, mask.long() if self.supports_padding else None

    def _layers(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None) -> list[torch.Tensor]:
        """The profile's layers for one padded batch, as float32 on the CPU."""
        inputs = inputs.to(self._device, self._dtype)
        mask = None if attention_mask is None else attention_mask.to(self._device)
        with torch.inference_mode():
            if not self._tapped:  # SEW, SEW-D under hf: transformers' own hidden_states
                layers = self.model(inputs, attention_mask=mask, output_hidden_states=True).hidden_states
            else:
                with record_taps(self.model, final_norm=self._final_norm) as taps:
                    self.model(inputs, attention_mask=mask)
                layers = self._profile.layers(taps(), self._model_type)
        return [layer.float().cpu() for layer in layers]

    def _encode_in_chunks(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        """Each clip in pieces of at most `chunk_samples`, each piece encoded alone, the pieces' frames concatenated
        (the SpEAT reference's ``max_chunk`` loop in ``get_feats``, after normalising the whole clip)."""
        pieces, owners, valid = [], [], []
        for index, waveform in enumerate(waveforms):
            clip = torch.as_tensor(np.asarray(waveform), dtype=torch.float32)
            if self._normalisation == "layer-norm":
                clip = F.layer_norm(clip, clip.shape)
            for start in range(0, len(clip), self._chunk_samples):
                piece = clip[start:start + self._chunk_samples].numpy()
                pieces.append(self._layers(*self._inputs([piece], normalise=False)))
                owners.append(index)
                valid.append(int(self.model._get_feat_extract_output_lengths(torch.tensor(len(piece)))))
        layers = [[piece[layer][0] for piece in pieces] for layer in range(len(pieces[0]))]
        return join_windows(layers, valid, owners, len(waveforms))

    def _encode_whisper(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        if self._profile.whisper_mel_padding:
            features, owners, valid = self._zero_padded_mel_windows(waveforms)
        else:
            windows, owners = [], []
            for index, waveform in enumerate(waveforms):
                for start in range(0, max(len(waveform), 1), _WHISPER_WINDOW):
                    windows.append(np.asarray(waveform[start:start + _WHISPER_WINDOW], dtype=np.float32))
                    owners.append(index)
            features = self.extractor(windows, sampling_rate=SAMPLING_RATE, return_tensors="pt")["input_features"]
            valid = [math.ceil(len(window) / _WHISPER_SAMPLES_PER_FRAME) for window in windows]
        layers = self._layers(features, None)
        valid = [min(layers[0].shape[1], count) for count in valid]
        return join_windows(layers, valid, owners, len(waveforms))

    def _zero_padded_mel_windows(self, waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[int], list[int]]:
        """openai-whisper's input: each clip's log-mel (normalised by the clip's own maximum), cut into windows of
        ``nb_max_frames`` frames, the last one padded with zeros (``pad_or_trim(mel, N_FRAMES)``); with each window's
        owner and its encoder frames that cover mel frames of the clip."""
        window_frames = self.extractor.nb_max_frames
        windows, owners, valid = [], [], []
        for index, waveform in enumerate(waveforms):
            mel = self.extractor(np.asarray(waveform, dtype=np.float32), sampling_rate=SAMPLING_RATE,
                                 padding="longest", truncation=False, return_tensors="pt")["input_features"][0]
            for start in range(0, max(mel.shape[-1], 1), window_frames):
                window = mel[:, start:start + window_frames]
                windows.append(F.pad(window, (0, window_frames - window.shape[-1])))
                owners.append(index)
                valid.append(math.ceil(window.shape[-1] / 2))  # conv2 has stride 2
        return torch.stack(windows), owners, valid


@contextmanager
def record_taps(model: torch.nn.Module, *, final_norm: bool) -> Iterator[Callable[[], LayerTaps]]:
    """Record a forward pass of a wav2vec2-family model or a Whisper encoder as `LayerTaps`, with forward hooks.

    Hooks keep the output of ``feature_projection`` (cloned: the encoder zeroes its padded frames in place), the
    input of every ``encoder.layers[i]`` (its first positional argument or ``hidden_states``) and its output (the
    first element of a tuple). The encoder output is built here, not read from the model: ``encoder.layer_norm``
    (Whisper: ``layer_norm``, i.e. ``ln_post``) applied to the last layer's output when `final_norm`, else that
    output.

    Yields:
        A function that returns the taps of the forward pass run inside the ``with`` block.

    Example:
        >>> with record_taps(model, final_norm=config.do_stable_layer_norm) as taps:  # doctest: +SKIP
        ...     model(input_values)
        >>> len(taps().layer_outputs) == config.num_hidden_layers  # doctest: +SKIP
        True
    """
    encoder = getattr(model, "encoder", model)  # a WhisperEncoder is its own encoder
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    projection: list[torch.Tensor] = []

    def first(value):
        return value[0] if isinstance(value, tuple) else value

    def keep_input(module, args, kwargs):
        inputs.append(args[0] if args else kwargs["hidden_states"])

    handles = []
    for layer in encoder.layers:
        handles.append(layer.register_forward_pre_hook(keep_input, with_kwargs=True))
        handles.append(layer.register_forward_hook(lambda module, args, output: outputs.append(first(output))))
    if hasattr(model, "feature_projection"):
        handles.append(model.feature_projection.register_forward_hook(
            lambda module, args, output: projection.append(first(output).clone())))

    def taps() -> LayerTaps:
        if len(outputs) != len(encoder.layers):
            raise RuntimeError(f"recorded {len(outputs)} of {len(encoder.layers)} transformer layers (layer drop in "
                               "training mode?); put the model in eval mode")
        final = encoder.layer_norm(outputs[-1]) if final_norm else outputs[-1]
        return LayerTaps(projection[0] if projection else None, list(inputs), list(outputs), final)

    try:
        yield taps
    finally:
        for handle in handles:
            handle.remove()


def _local_files(check: ModelCheck, revision: str | None) -> Path:
    """The folder a checked model loads from: its directory, or (for a Hub id) the Hub cache's snapshot of the
    commit the check resolved, holding its configuration, weights and feature extractor settings."""
    from huggingface_hub import hf_hub_download, snapshot_download

    if check.kind == "local":
        return Path(check.spec.target).expanduser()
    repo_id, commit = check.spec.text, check.commit or revision
    if check.local_files_only or check.files is None:
        return Path(snapshot_download(repo_id, revision=commit, local_files_only=check.local_files_only))
    weights = [name for name in check.files if WEIGHT_FILE.match(name)]
    safetensors = [name for name in weights if ".safetensors" in name]
    needed = ["config.json", *(safetensors or weights)]
    needed += [name for name in ("preprocessor_config.json",) if name in check.files]
    try:
        paths = [hf_hub_download(repo_id, name, revision=commit) for name in needed]
    except Exception as error:
        raise ModelLoadError(f"could not download {repo_id!r} from the Hub ({first_line(error)})") from error
    return Path(paths[0]).parent


def _load_feature_extractor(source: Path, name: str, config) -> tuple[object, str]:
    """The model's own feature extractor; a training checkpoint without one gets the family default, logged."""
    import transformers

    try:
        return transformers.AutoFeatureExtractor.from_pretrained(source, local_files_only=True), "preprocessor_config"
    except (OSError, ValueError):
        if config.model_type == "whisper":
            extractor = transformers.WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        else:
            layer_norm = getattr(config, "feat_extract_norm", "layer") == "layer"
            extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=layer_norm, return_attention_mask=layer_norm)
        logger.warning("%s has no preprocessor_config.json; using the default %s feature extractor",
                       name, type(extractor).__name__)
        return extractor, "default"
