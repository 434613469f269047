"""Optional parts of speat and how to install them: the extras of the ``speat`` distribution.

The base install is what ``speat evaluate``, ``evaluate.load("speat")`` and ``speat hub render|annotate`` need. The
rest comes with extras declared in ``pyproject.toml``: ``hub`` (the webhook service; building the wheel the Spaces
install), ``train`` (pruning and distillation), ``space`` (the Gradio Space), and ``all``. A command that needs an
extra calls `require_extra` before its first heavy import, so that a missing one is a single line naming the exact
``pip install`` to run, from wherever this speat was installed from (`install_command`): a checkout, a wheel file,
a URL, or a package index. We never send anyone to a package index this speat did not come from.

Example:
    >>> require_extra("all", "an example")   # doctest: +SKIP
    Traceback (most recent call last):
    ...
    speat_metric.extras.MissingExtraError: speat an example needs the 'all' extra (missing: ...): pip install ...
"""

from __future__ import annotations

import json
import shlex
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

DISTRIBUTION = "speat"


class MissingExtraError(ImportError):
    """A command needs an extra that is not installed; the message says what to install, in one line."""


def require_extra(extra: str, command: str) -> None:
    """Raise `MissingExtraError` unless every requirement of `extra` is installed (at a version it accepts).
    `command` is what needs it, as typed after ``speat`` (``"space"``, ``"hub webhook"``)."""
    missing = missing_requirements(extra)
    if missing:
        raise MissingExtraError(f"speat {command} needs the {extra!r} extra (missing: {', '.join(missing)}): "
                                f"{install_command(extra)}")


def missing_requirements(extra: str) -> list[str]:
    """The requirements of `extra` (as declared in the installed metadata) that are absent or at another version;
    a ValueError when the installed speat has no such extra."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared = metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []
    if extra not in declared:
        raise ValueError(f"speat has no extra {extra!r}; it has {', '.join(declared)}")
    missing = []
    for line in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}) \
                or "extra" not in str(requirement.marker):
            continue
        if canonicalize_name(requirement.name) == DISTRIBUTION:  # speat[a,b] inside ``all``
            missing += [need for inner in sorted(requirement.extras) for need in missing_requirements(inner)
                        if need not in missing]
            continue
        wanted = f"{requirement.name}{requirement.specifier}"
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(wanted)
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{wanted} (found {version})")
    return missing


def install_command(extra: str) -> str:
    """The ``pip install`` that adds `extra` to this speat, from where this speat was installed from.

    A checkout installed in editable mode: ``pip install -e 'DIR[extra]'``; a wheel file that is still there:
    ``pip install 'FILE[extra]'``; a URL: ``pip install 'speat[extra] @ URL'``; otherwise (a package index, so a
    release exists there): ``pip install 'speat[extra]==VERSION'``.
    """
    version = metadata.version(DISTRIBUTION)
    origin = installed_from()
    if origin is None:
        return f"pip install {shlex.quote(f'{DISTRIBUTION}[{extra}]=={version}')}"
    url, editable = origin
    parts = urlsplit(url)
    if parts.scheme == "file":
        local = Path(unquote(parts.path))
        if local.exists():
            return f"pip install {'-e ' if editable else ''}{shlex.quote(f'{local}[{extra}]')}"
    return f"pip install {shlex.quote(f'{DISTRIBUTION}[{extra}] @ {url}')}"


def installed_from() -> tuple[str, bool] | None:
    """(URL, editable) of the place this speat was installed from (PEP 610 ``direct_url.json``), or None when it came
    from a package index."""
    text = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    if not text:
        return None
    record = json.loads(text)
    return record["url"], bool(record.get("dir_info", {}).get("editable"))
