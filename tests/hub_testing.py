"""Helpers of the Hub integration tests (tests/test_hub_*.py): tiny model repos, a hand-written card, subprocesses.

Commands that evaluate a Hub model run in fresh subprocesses, because huggingface_hub and transformers read
``HF_ENDPOINT`` when they are imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from http_servers import HubServer
from tiny_models import save_tiny_model

SPEAT = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"

FOREIGN_CARD = """\
---
# written by the owner; speat must not touch this comment
license: apache-2.0
language: [en]
tags:
- audio
- "speech"
model-index:
- name: tiny-owner-model
  results:
  - task: {type: automatic-speech-recognition, name: ASR}
    dataset:
      type: librispeech_asr
      name: LibriSpeech (clean)
    metrics:
    - type: wer
      value: 3.14   # the owner's own result
pipeline_tag: feature-extraction
---

# Tiny owner model

A hand-written body.  Trailing spaces stay.

| a | table |
|---|---|
| 1 | 2 |
"""


@cache
def tiny_model_files(kind: str = "wav2vec2", seed: int = 0) -> dict[str, bytes]:
    """The files of a tiny random model (made once per process, in a temporary folder)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        directory = save_tiny_model(kind, Path(folder) / "model", seed=seed)
        return {path.name: path.read_bytes() for path in directory.iterdir()}


def publish_tiny_model(server: HubServer, repo_id: str, *, readme: str | None = FOREIGN_CARD,
                       kind: str = "wav2vec2", seed: int = 0) -> str:
    """Create a model repository holding a tiny random model (and a README); return its commit."""
    server.create_repo(repo_id)
    files = dict(tiny_model_files(kind, seed))
    if readme is not None:
        files["README.md"] = readme.encode()
    return server.commit(repo_id, files, message="upload model")


def hub_env(server: HubServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that talks to the test Hub only (its own caches, no download counter)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING_FACE"))}
    env.update(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"), HF_UPDATE_DOWNLOAD_COUNTS="0",
               HF_HUB_DISABLE_TELEMETRY="1", SPEAT_CACHE=str(tmp_path / "speat-cache"),
               HF_MODULES_CACHE=str(tmp_path / "modules"), NO_PROXY="127.0.0.1,localhost")
    env.update(extra)
    return env


def run_speat(*arguments: str, env: Mapping[str, str], cwd: Path, timeout: float = 300
              ) -> subprocess.CompletedProcess:
    return subprocess.run([SPEAT, *arguments], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)


def run_python(code: str, *, env: Mapping[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)


def added_lines(old: str, new: str) -> set[int]:
    """Indices of the lines of `new` that `old` does not have; fails if any line of `old` was removed or changed."""
    import difflib

    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    added = set()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        assert tag in ("equal", "insert"), f"lines of the card changed: {old_lines[i1:i2]!r} -> {new_lines[j1:j2]!r}"
        if tag == "insert":
            added.update(range(j1, j2))
    return added


def as_hub_records(records, repo_id: str, commit: str) -> list:
    """Records of a local model, as if evaluated from the Hub repository `repo_id` at `commit`."""
    import dataclasses

    return [record.replace(model=dataclasses.replace(record.model, name=repo_id, revision=commit))
            for record in records]


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under `root` whose bytes contain `secret`."""
    needle = secret.encode()
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def server_texts(server: HubServer) -> list[str]:
    """Everything the Hub holds as text: every file of every commit, commit messages, discussion titles and events."""
    import json

    texts = []
    with server._lock:
        for repo in server.repos.values():
            texts += [content.decode("utf-8", "replace") for tree in repo.commits.values() for content in tree.values()]
            texts += [discussion.title + json.dumps(discussion.events) for discussion in repo.discussions]
        texts += list(server._messages.values())
    return texts


def write_tone_test(folder: Path, name: str = "tones") -> Path:
    """A custom test (``--tests FILE``) of 3 short tones per role: a few forward passes instead of the demo set's."""
    import json

    import soundfile
    from tiny_models import tone_in_noise

    folder.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for role_number, role in enumerate("xyab"):
        groups[role] = []
        for index in range(3):
            path = folder / f"{role}{index}.wav"
            soundfile.write(path, tone_in_noise(0.25, 200 + 100 * role_number + 15 * index, seed=index), 16_000)
            groups[role].append(path.name)
    definition = folder / f"{name}.json"
    definition.write_text(json.dumps({"name": name, **groups, "group_names": ["low", "mid", "high", "top"]}))
    return definition
