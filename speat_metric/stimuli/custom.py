"""Custom SpEAT tests defined in a JSON file, for ``speat evaluate --tests my-test.json``.

`load_custom_test` reads the file into a `SpeatTestSpec`. The format, with an example: docs/stimuli.md, "Custom
tests".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from speat_metric.stimuli.errors import StimulusError
from speat_metric.stimuli.selections import SpeatTestSpec

ROLE_KEYS = ("x", "y", "a", "b")
DEFAULT_GROUP_NAMES = ("X", "Y", "A", "B")
_KEYS = {"name", "description", "group_names", "pairs", *ROLE_KEYS}


def load_custom_test(path: str | Path) -> SpeatTestSpec:
    """Read a custom test from a JSON file (the format: docs/stimuli.md, "Custom tests").

    Raises:
        FileNotFoundError: the JSON file does not exist.
        StimulusError: the file is not valid JSON of that form, an audio file is missing, or a pair names a
            stimulus that is not in X (first) or Y (second).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"custom test file {str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
        definition = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StimulusError(f"custom test file {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(definition, dict):
        raise StimulusError(f"custom test file {str(path)!r} must hold a JSON object with name, x, y (and "
                            "optionally a, b, group_names, pairs)")
    unknown = sorted(set(definition) - _KEYS)
    if unknown:
        raise StimulusError(f"custom test file {str(path)!r}: unknown key(s) {', '.join(unknown)}; expected "
                            f"{', '.join(sorted(_KEYS))}")
    for key in ("name", "x", "y"):
        if not definition.get(key):
            raise StimulusError(f"custom test file {str(path)!r} needs {key!r}")
    if not isinstance(definition["name"], str):
        raise StimulusError(f"custom test file {str(path)!r}: 'name' must be a string (the test's name in tables and "
                            f"file names), got {definition['name']!r}")
    base = path.parent
    files = {role: _group_files(definition.get(role), base, path, role) for role in ROLE_KEYS}
    pairs = [_pair(entry, files, base, path) for entry in definition.get("pairs") or ()]
    spec = SpeatTestSpec.from_files(
        str(definition["name"]), **files, group_names=_group_names(definition.get("group_names"), path),
        description=str(definition.get("description", "")), pairs=pairs,
    )
    return dataclasses.replace(spec, definition_file=str(path), definition_sha256=hashlib.sha256(raw).hexdigest())


def _group_files(entries: Any, base: Path, path: Path, role: str) -> dict[str, Path] | None:
    """A group's stimulus id -> audio path."""
    if entries is None:
        return None
    if isinstance(entries, Mapping):
        return {str(stimulus_id): base / str(file) for stimulus_id, file in entries.items()}
    if not (isinstance(entries, list) and all(isinstance(entry, str) for entry in entries)):
        raise StimulusError(f"custom test file {str(path)!r}: {role!r} must be a list of audio paths or a mapping "
                            "of stimulus ids to audio paths")
    given: dict[str, str] = {}
    for entry in entries:
        stimulus_id = "custom/" + PurePosixPath(entry).with_suffix("").as_posix().lstrip("./")
        if stimulus_id in given:
            raise StimulusError(
                f"custom test file {str(path)!r}: {given[stimulus_id]!r} and {entry!r} in {role!r} would both "
                f"get the id {stimulus_id!r}; give {role!r} as a mapping of unique stimulus ids to paths instead, "
                f"e.g. \"{role}\": {{\"{stimulus_id}-1\": \"{entry}\", ...}}")
        given[stimulus_id] = entry
    return {stimulus_id: base / entry for stimulus_id, entry in given.items()}


def _group_names(value: Any, path: Path) -> tuple[str, str, str, str]:
    if value is None:
        return DEFAULT_GROUP_NAMES
    if isinstance(value, Mapping):
        lowered = {str(key).lower(): str(name) for key, name in value.items()}
        unknown = sorted(set(lowered) - set(ROLE_KEYS))
        if unknown:
            raise StimulusError(f"custom test file {str(path)!r}: group_names has unknown key(s) "
                                f"{', '.join(unknown)}; use x, y, a, b")
        return tuple(lowered.get(key, default) for key, default in zip(ROLE_KEYS, DEFAULT_GROUP_NAMES))
    if isinstance(value, list) and len(value) == 4:
        return tuple(str(name) for name in value)
    raise StimulusError(f"custom test file {str(path)!r}: group_names must be a list of 4 names (X, Y, A, B) or a "
                        f"mapping {{\"x\": ..., \"y\": ..., \"a\": ..., \"b\": ...}}, got {value!r}")


def _pair(entry: Any, targets: dict[str, dict[str, Path] | None], base: Path, path: Path) -> tuple[str, str]:
    if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(member, str) for member in entry)):
        raise StimulusError(f"custom test file {str(path)!r}: each pair must be [X stimulus, Y stimulus] (two ids or "
                            f"audio paths), got {entry!r}")
    return (_stimulus_id(entry[0], targets["x"], base, path, "X"),
            _stimulus_id(entry[1], targets["y"], base, path, "Y"))


def _stimulus_id(value: Any, group: dict[str, Path], base: Path, path: Path, role: str) -> str:
    """A pair member given by stimulus id, or by audio path (relative to the JSON file)."""
    if value in group:
        return value
    by_path = {str(file.resolve()): stimulus_id for stimulus_id, file in group.items()}
    resolved = str((base / str(value)).resolve())
    if resolved in by_path:
        return by_path[resolved]
    raise StimulusError(f"custom test file {str(path)!r}: pair member {value!r} is neither the id nor the audio "
                        f"path of a stimulus of group {role}")
