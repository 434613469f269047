"""Check model strings before any model is loaded, so a bad one fails in seconds with one line.

`check_model` says what a model string names and whether it can be loaded, without loading weights: a classical
feature, a random-init MelHuBERT, a checkpoint file, a local transformers directory (or a directory of checkpoints),
or a Hugging Face Hub id. For a Hub id it makes one request (no retries) and tells apart "the Hub could not be
reached", "the Hub has no such model" and "this is not a speech encoder"; with ``HF_HUB_OFFLINE`` set, or when the
Hub cannot be reached, a model already in the local Hugging Face cache is used from there.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from speat_metric.adapters.base import ModelLoadError
from speat_metric.model_spec import CHECKPOINT_KINDS, FEATURES, RANDOM_MODELS, ModelSpec

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "unispeech",
                         "unispeech-sat", "sew", "sew-d", "whisper")
"""transformers ``model_type`` values speat reads as speech encoders."""

HUB_TIMEOUT_SECONDS = 5.0
"""One request to the Hub may take this long before the Hub counts as unreachable."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

WEIGHT_FILE = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?$")
"""The weight files transformers loads a model from (whole, sharded, or the shards' index)."""


@dataclass(frozen=True)
class ModelCheck:
    """What a model string names, found without loading any weights; the adapter is built from it.

    Attributes:
        spec: the parsed model string.
        kind: ``feature``, ``random``, ``melhubert``, ``m2d``, ``local`` (a transformers directory), ``checkpoints``
            (a directory of checkpoints) or ``hub``.
        local_files_only: load a Hub model from the local Hugging Face cache only (offline, or the Hub unreachable).
        model_type: the transformers ``model_type`` when known.
        num_layers: the hidden-state layers the model gives (input embedding layer included) when its configuration
            tells without loading it (transformers models, features); None otherwise.
        config: a transformers model's ``config.json`` settings.
        commit: the Hub commit a Hub model resolved to.
        files: the files of a Hub model at that commit (None when not known, e.g. from the cache).
    """

    spec: ModelSpec
    kind: str
    local_files_only: bool = False
    model_type: str | None = None
    num_layers: int | None = None
    config: dict | None = field(default=None, repr=False)
    commit: str | None = None
    files: tuple[str, ...] | None = field(default=None, repr=False)


def check_model(model: str | ModelSpec, *, revision: str | None = None) -> ModelCheck:
    """Check that a model string can be loaded, without loading it.

    Args:
        model: a model string (`speat_metric.model_spec`) or its parsed spec.
        revision: Hub revision (branch, tag or commit) for a Hub id.

    Raises:
        ModelLoadError: a one-line, plain-language reason: an unknown feature or random model, a missing checkpoint
            file, a directory that is not a model, the Hub unreachable (and the model not cached), no such model on
            the Hub, no such revision, or a model that is not a speech encoder.
    """
    spec = ModelSpec.parse(model)
    if spec.kind == "feature":
        return ModelCheck(spec, "feature", num_layers=1)
    if spec.kind == "random":
        return ModelCheck(spec, "random")
    if spec.kind in CHECKPOINT_KINDS:
        if not Path(spec.target).exists():
            raise ModelLoadError(f"{spec.kind} checkpoint {spec.target!r} does not exist; give the path of the "
                                 f"authors' released checkpoint file (see speat_metric/adapters/{spec.kind}.py for "
                                 "where to get it)")
        return ModelCheck(spec, spec.kind)
    path = Path(spec.target).expanduser()
    if path.is_dir():
        return _check_local_directory(spec, path)
    if path.exists():
        raise ModelLoadError(f"{spec.text!r} is a file, not a model: give a transformers model directory (with "
                             "config.json), a Hub id, or melhubert:FILE / m2d:FILE for a research checkpoint")
    if _looks_like_path(spec.text) or not _HUB_ID.fullmatch(spec.text):
        raise ModelLoadError(f"model directory {spec.text!r} does not exist")
    if "/" not in spec.text:  # a bare word is more likely a misspelt built-in than one of the Hub's few owner-less ids
        close = difflib.get_close_matches(spec.text, [*FEATURES, *RANDOM_MODELS], n=1, cutoff=0.75)
        if close:
            raise ModelLoadError(f"{spec.text!r} is not a model speat knows, nor a local directory; did you mean "
                                 f"{close[0]!r}? (a Hub model is named OWNER/NAME)")
    return _check_hub_model(spec, revision)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when it has none), for one-line reasons."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def hidden_state_count(config: dict) -> int | None:
    """The hidden-state layers a transformers speech encoder of this configuration gives: its transformer layers
    plus the input embedding layer (Whisper: its encoder's), or None when the configuration does not say.

    Example:
        >>> hidden_state_count({"model_type": "hubert", "num_hidden_layers": 12})
        13
    """
    layers = config.get("encoder_layers" if config.get("model_type") == "whisper" else "num_hidden_layers")
    return layers + 1 if isinstance(layers, int) and not isinstance(layers, bool) else None


def check_model_type(model_type: str | None, name: str) -> None:
    """Raise a ModelLoadError unless `model_type` is a speech encoder speat reads."""
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(f"{name!r} is a {model_type!r} model, not a speech encoder speat can read; supported "
                             f"model types: {', '.join(SUPPORTED_MODEL_TYPES)}")


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep != "/" and os.sep in spec


def _check_local_directory(spec: ModelSpec, path: Path) -> ModelCheck:
    if (path / "config.json").is_file():
        settings = _checked_model_directory(path, spec.text)
        return ModelCheck(spec, "local", model_type=settings["model_type"], num_layers=hidden_state_count(settings),
                          config=settings)
    members = [member for member in path.iterdir() if (member / "config.json").is_file()]
    if not members and any(path.glob("*.ckpt")):
        return ModelCheck(spec, "checkpoints")  # MelHuBERT checkpoint files (see `checkpoint_series`)
    if not members:
        raise ModelLoadError(f"{spec.text!r} is a directory but not a model: it has no config.json (a transformers "
                             "save_pretrained directory) and no checkpoint sub-directories holding one")
    for member in members:  # every checkpoint is checked as a model of its own would be
        _checked_model_directory(member, str(member))
    return ModelCheck(spec, "checkpoints")


def _checked_model_directory(path: Path, name: str) -> dict:
    """A transformers directory's settings, checked to be a speech encoder's with weights to load."""
    settings = _local_config(path / "config.json", name)
    if not any(WEIGHT_FILE.match(member.name) for member in path.iterdir()):
        raise ModelLoadError(f"{name!r} has a config.json but no weights (no model.safetensors or "
                             "pytorch_model.bin, whole or sharded): there is nothing to evaluate")
    return settings


def _local_config(config: Path, name: str) -> dict:
    """A transformers configuration file's settings, checked to be a speech encoder's."""
    try:
        settings = json.loads(config.read_text())
        model_type = settings.get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ModelLoadError(f"{str(config)!r} is not a readable JSON model configuration ({error})") from None
    check_model_type(model_type, name)
    return settings


def _check_hub_model(spec: ModelSpec, revision: str | None) -> ModelCheck:
    from huggingface_hub import constants

    repo_id = spec.text
    if constants.is_offline_mode():
        return _cached_hub_model(spec, revision, reason="HF_HUB_OFFLINE is set")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_SECONDS)
    except GatedRepoError:
        raise ModelLoadError(f"{repo_id!r} is gated on the Hugging Face Hub: accept its terms on the Hub and set "
                             "HF_TOKEN (or run `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"the Hugging Face Hub has no model {repo_id!r} (check the spelling; for a private "
                             "model set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"the Hugging Face Hub model {repo_id!r} has no revision {revision!r}") from None
    except Exception as error:  # connection refused, DNS failure, timeout, a 5xx: the Hub is unreachable
        return _cached_hub_model(spec, revision, reason=f"the Hub could not be reached at {constants.ENDPOINT} "
                                 f"({first_line(error)})")
    # The Hub's summary leaves out the layer count. Fetched at the revision asked for, so the cache records the
    # branch (refs/main) and an offline run finds this commit again.
    settings = _hub_config(repo_id, revision)
    if info.siblings is not None and not any(WEIGHT_FILE.match(sibling.rfilename) for sibling in info.siblings):
        raise ModelLoadError(f"the Hugging Face Hub model {repo_id!r} has no weights at "
                             f"{'revision ' + repr(revision) if revision else 'its main branch'} (no model.safetensors "
                             "or pytorch_model.bin, whole or sharded): there is nothing to evaluate")
    return ModelCheck(spec, "hub", model_type=settings.get("model_type"), num_layers=hidden_state_count(settings),
                      config=settings, commit=info.sha,
                      files=None if info.siblings is None else tuple(sibling.rfilename for sibling in info.siblings))


def _hub_config(repo_id: str, revision: str | None) -> dict:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        config = hf_hub_download(repo_id, "config.json", revision=revision)
    except EntryNotFoundError:
        raise ModelLoadError(f"the Hugging Face Hub model {repo_id!r} has no config.json, so it is not a "
                             "transformers model; for research checkpoints use melhubert:FILE or m2d:FILE") from None
    except Exception as error:
        raise ModelLoadError(f"could not read config.json of {repo_id!r} from the Hub ({first_line(error)})") from None
    return _local_config(Path(config), repo_id)


def _cached_hub_model(spec: ModelSpec, revision: str | None, *, reason: str) -> ModelCheck:
    from huggingface_hub import try_to_load_from_cache

    repo_id = spec.text
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(cached, str):
        raise ModelLoadError(f"{reason}, and {repo_id!r} is not in the local Hugging Face cache; connect to the "
                             "Hub once to download it, or pass a local model directory")
    logger.warning("%s; using the cached copy of %s", reason, repo_id)
    settings = _local_config(Path(cached), repo_id)
    snapshot = Path(cached).parent  # .../snapshots/<commit>/config.json
    return ModelCheck(spec, "hub", local_files_only=True, model_type=settings["model_type"],
                      num_layers=hidden_state_count(settings), config=settings,
                      commit=snapshot.name if snapshot.parent.name == "snapshots" else None)
