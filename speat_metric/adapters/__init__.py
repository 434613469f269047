"""Model adapters: one interface (`SpeechEncoder.encode`) over transformers models, MelHuBERT, M2D and features.

`load_encoder` builds the adapter of a checked model (`speat_metric.adapters.preflight.check_model`), or of a model
string, whose forms `speat_metric.model_spec` lists.
"""

from __future__ import annotations

import re
from pathlib import Path

from speat_metric.adapters.base import EncoderOutput, ModelLoadError, SpeechEncoder, torch_dtype
from speat_metric.adapters.preflight import ModelCheck, check_model
from speat_metric.model_spec import ModelSpec

__all__ = ["EncoderOutput", "ModelLoadError", "ModelSpec", "SpeechEncoder", "load_encoder"]


def load_encoder(model: str | ModelCheck, *, revision: str | None = None, device: str = "cpu",
                 dtype: str = "float32", mean_std_path: str | None = None, profile: str = "hf",
                 cmvn: bool = False) -> SpeechEncoder:
    """Build the adapter of a model: checked here when given as a string, else the check is used as it is.

    Args:
        model: a `ModelCheck`, or a model string (checked first).
        revision: Hub revision, for a transformers model string.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        mean_std_path: the MelHuBERT authors' mean/std ``.npy`` for ``melhubert:`` and ``random:melhubert-*``.
        profile: the extraction profile (`speat_metric.profiles`): ``hf`` (default), ``speat2023`` or ``s3prl``.
        cmvn: per-clip CMVN of the classical features, as S3PRL's configs (see `speat_metric.adapters.classical`).

    Raises:
        ModelLoadError: the model cannot be found or is not a speech encoder.
        ValueError: an unknown profile, or one that defines no layers for the model's type.
    """
    from speat_metric.profiles import get_profile

    check = model if isinstance(model, ModelCheck) else check_model(model, revision=revision)
    profile = get_profile(profile).name
    spec = check.spec
    if spec.kind == "feature":
        from speat_metric.adapters.classical import ClassicalFeatureEncoder

        encoder: SpeechEncoder = ClassicalFeatureEncoder(spec.target, cmvn=cmvn)
    elif spec.kind == "random":
        from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTEncoder

        encoder = MelHuBERTEncoder.from_config(getattr(MelHuBERTConfig, spec.target)(), seed=spec.seed,
                                               mean_std_path=mean_std_path, device=device, dtype=torch_dtype(dtype),
                                               name=spec.text)
    elif spec.kind in ("melhubert", "m2d"):
        if not Path(spec.target).is_file():
            raise ModelLoadError(f"{spec.kind} checkpoint {spec.target!r} is not a file; give the path of the authors' "
                                 f"released checkpoint file (see speat_metric/adapters/{spec.kind}.py for where to get "
                                 "it)")
        if spec.kind == "melhubert":
            from speat_metric.adapters.melhubert import MelHuBERTEncoder

            encoder = MelHuBERTEncoder.from_checkpoint(spec.target, mean_std_path=mean_std_path, device=device,
                                                       dtype=torch_dtype(dtype))
        else:
            from speat_metric.adapters.m2d import M2DEncoder

            encoder = M2DEncoder.from_checkpoint(spec.target, device=device, dtype=torch_dtype(dtype))
    else:
        from speat_metric.adapters.transformers_encoder import TransformersEncoder

        encoder = TransformersEncoder(check, revision=revision, device=device, dtype=dtype, profile=profile)
    encoder.profile = profile
    return encoder


_SEED_DIRECTORY = re.compile(r"^seed-(\d+)$")


def seed_directory(run_dir: str | Path, seed: int) -> Path:
    """Where the run of `seed` of a replicated run (``--seeds``) goes: ``RUN_DIR/seed-<seed>/``."""
    return Path(run_dir) / f"seed-{seed}"


def replicate_directories(run_dir: str | Path) -> dict[int, Path]:
    """The seed directories of a replicated run, by seed in ascending order ({} for a run of one seed)."""
    run_dir = Path(run_dir)
    found = [(int(match[1]), path) for path in (run_dir.iterdir() if run_dir.is_dir() else [])
             if (match := _SEED_DIRECTORY.match(path.name)) and path.is_dir()]
    return dict(sorted(found))


def checkpoint_series(model: str | ModelSpec) -> list[tuple[str, dict]] | None:
    """The checkpoints a model string names when it is a directory of checkpoints, in training order; else None.

    A directory of transformers checkpoints (sub-directories with a ``config.json``, e.g. ``checkpoint-5000``) or
    ``melhubert:DIR`` / ``m2d:DIR`` over a directory of checkpoint files (``*.ckpt``, ``*.pt``, ``*.pth``); a plain
    directory of ``*.ckpt`` files (MelHuBERT's format) needs no prefix; a run of several seeds (``seed-<s>/``
    sub-directories, ``--seeds``) gives each seed's series in turn, named ``seed-<s>/checkpoint-<step>``. Each
    entry is ``(model string, {"name": ..., "step": ...})``; the step is the last number in the name (None if none).
    """
    spec = ModelSpec.parse(model)
    directory = Path(spec.target)
    plain = spec.kind == "transformers"
    if not directory.is_dir() or (plain and (directory / "config.json").exists()):
        return None
    if plain and not any((member / "config.json").is_file() for member in directory.iterdir()) \
            and any(directory.glob("*.ckpt")):
        spec = ModelSpec.parse(f"melhubert:{directory}")  # `speat prune` of MelHuBERT saves checkpoint-<step>.ckpt
    files = spec.kind != "transformers"
    members = [member for member in directory.iterdir()
               if (member.suffix in (".ckpt", ".pt", ".pth") if files else (member / "config.json").is_file())]
    if not members:
        series = [(name, {**info, "name": f"{seed.name}/{info['name']}"})
                  for seed in replicate_directories(directory).values()
                  for name, info in checkpoint_series(spec.member(seed)) or []]
        return series or None

    def step(member: Path) -> int | None:
        numbers = re.findall(r"\d+", member.stem if files else member.name)
        return int(numbers[-1]) if numbers else None

    ordered = sorted(members, key=lambda member: (step(member) is None, step(member) or 0, member.name))
    return [(spec.member(member), {"name": member.name, "step": step(member)}) for member in ordered]
