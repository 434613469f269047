"""Model adapters: one interface (`SpeechEncoder.encode`) over transformers models, MelHuBERT, M2D and features.

`load_encoder` turns the model strings users type into adapters:

| string | adapter |
|---|---|
| ``stft``, ``spectrogram``, ``mel_spectrogram``, ``mfcc`` | classical feature (one "layer") |
| ``random:melhubert-small`` (or ``-slim``, ``-base``; optional ``@SEED``) | random-init MelHuBERT ("step 0") |
| ``melhubert:PATH`` | MelHuBERT checkpoint in the authors' released format |
| ``m2d:PATH`` | M2D / M2D-S checkpoint in the authors' released format |
| anything else | a transformers model: Hub id (``facebook/hubert-base-ls960``) or local directory |
"""

from __future__ import annotations

import re
from pathlib import Path

from speat_metric.adapters.base import EncoderOutput, ModelLoadError, SpeechEncoder, torch_dtype

__all__ = ["EncoderOutput", "ModelLoadError", "SpeechEncoder", "describe_model_string", "load_encoder"]

_RANDOM = re.compile(r"^random:melhubert-(?P<size>small|slim|base)(?:@(?P<seed>\d+))?$")


def load_encoder(spec: str, *, revision: str | None = None, device: str = "cpu", dtype: str = "float32",
                 mean_std_path: str | None = None, local_files_only: bool = False, profile: str = "hf",
                 cmvn: bool = False) -> SpeechEncoder:
    """Build the adapter a model string names (see the module docstring for the forms).

    Args:
        spec: the model string.
        revision: Hub revision, for transformers models.
        device: torch device.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        mean_std_path: the MelHuBERT authors' mean/std ``.npy`` for ``melhubert:`` and ``random:melhubert-*``.
        local_files_only: load a Hub model from the local Hugging Face cache only.
        profile: the extraction profile (`speat_metric.profiles`): ``hf`` (default), ``speat2023`` or ``s3prl``.
        cmvn: per-clip CMVN of the classical features, as S3PRL's configs (see `speat_metric.adapters.classical`).

    Raises:
        ModelLoadError: the model cannot be found or is not a speech encoder.
        ValueError: an unknown profile, or one that defines no layers for the model's type.
    """
    from speat_metric.profiles import get_profile

    profile = get_profile(profile).name
    encoder = _load(spec, revision=revision, device=device, dtype=dtype, mean_std_path=mean_std_path,
                    local_files_only=local_files_only, profile=profile, cmvn=cmvn)
    encoder.profile = profile
    return encoder


def _load(spec: str, *, revision: str | None, device: str, dtype: str, mean_std_path: str | None,
          local_files_only: bool, profile: str, cmvn: bool) -> SpeechEncoder:
    from speat_metric.adapters.classical import CLASSICAL_FEATURES, ClassicalFeatureEncoder

    if spec in CLASSICAL_FEATURES:
        return ClassicalFeatureEncoder(spec, cmvn=cmvn)
    weights_dtype = torch_dtype(dtype)
    if match := _RANDOM.match(spec):
        from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTEncoder

        config = getattr(MelHuBERTConfig, match["size"])()
        return MelHuBERTEncoder.from_config(config, seed=int(match["seed"] or 0), mean_std_path=mean_std_path,
                                            device=device, dtype=weights_dtype, name=spec)
    if spec.startswith(("melhubert:", "m2d:")):
        kind, path = spec.split(":", 1)
        if not Path(path).is_file():
            raise ModelLoadError(f"{kind} checkpoint {path!r} does not exist; give the path of the authors' released "
                                 f"checkpoint file (see speat_metric/adapters/{kind}.py for where to get it)")
        if kind == "melhubert":
            from speat_metric.adapters.melhubert import MelHuBERTEncoder

            return MelHuBERTEncoder.from_checkpoint(path, mean_std_path=mean_std_path, device=device,
                                                    dtype=weights_dtype)
        from speat_metric.adapters.m2d import M2DEncoder

        return M2DEncoder.from_checkpoint(path, device=device, dtype=weights_dtype)
    if spec.startswith("random:"):
        raise ModelLoadError(f"unknown random model {spec!r}; use random:melhubert-small, -slim or -base (optionally "
                             f"@SEED)")
    from speat_metric.adapters.transformers_encoder import TransformersEncoder

    return TransformersEncoder(spec, revision=revision, device=device, dtype=dtype, local_files_only=local_files_only,
                               profile=profile)


def describe_model_string(spec: str) -> str:
    """A short plain-language label for tables: what kind of model a string names."""
    from speat_metric.adapters.classical import CLASSICAL_FEATURES

    if spec in CLASSICAL_FEATURES:
        return "classical feature"
    if spec.startswith("random:"):
        return "random init (step 0)"
    return "model"



def checkpoint_series(spec: str) -> list[tuple[str, dict]] | None:
    """The checkpoints a model string names when it is a directory of checkpoints, in training order; else None.

    A directory of transformers checkpoints (sub-directories with a ``config.json``, e.g. ``checkpoint-5000``) or
    ``melhubert:DIR`` / ``m2d:DIR`` over a directory of checkpoint files (``*.ckpt``, ``*.pt``, ``*.pth``); a plain
    directory of ``*.ckpt`` files (MelHuBERT's format) needs no prefix. Each
    entry is ``(model string, {"name": ..., "step": ...})``; the step is the last number in the name (None if none).
    """
    kind, _, path = spec.rpartition(":") if spec.startswith(("melhubert:", "m2d:")) else ("", "", spec)
    directory = Path(path)
    if not directory.is_dir() or (not kind and (directory / "config.json").exists()):
        return None
    if not kind and not any((member / "config.json").is_file() for member in directory.iterdir()) \
            and any(directory.glob("*.ckpt")):
        kind = "melhubert"  # a MelHuBERT run (e.g. `speat prune` of MelHuBERT) saves checkpoint-<step>.ckpt files
    if kind:
        members = [member for member in directory.iterdir() if member.suffix in (".ckpt", ".pt", ".pth")]
    else:
        members = [member for member in directory.iterdir() if (member / "config.json").is_file()]
    if not members:
        return None

    def step(member: Path) -> int | None:
        numbers = re.findall(r"\d+", member.stem if kind else member.name)
        return int(numbers[-1]) if numbers else None

    ordered = sorted(members, key=lambda member: (step(member) is None, step(member) or 0, member.name))
    return [(f"{kind}:{member}" if kind else str(member), {"name": member.name, "step": step(member)})
            for member in ordered]
