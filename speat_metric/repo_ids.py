"""Hugging Face Hub repository ids as users type them: ``OWNER/NAME``, checked before any request, so that a bare
name or a URL fails in one line naming the option it came from, and nothing is created under another name."""

from __future__ import annotations

import re

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_repo_id(repo_id: str, option: str, example: str = "my-org/speat-results") -> str:
    """`repo_id` if it is ``OWNER/NAME``, else a ValueError naming `option` (``--repo``, ``$SPEAT_BENCHMARK``, ...).

    Example:
        >>> check_repo_id("my-org/speat-results", "--repo")
        'my-org/speat-results'
        >>> check_repo_id("speat-results", "--repo")
        Traceback (most recent call last):
        ...
        ValueError: --repo 'speat-results' is not a Hub repository id; use OWNER/NAME, e.g. my-org/speat-results ...
    """
    if not isinstance(repo_id, str) or not REPO_ID.fullmatch(repo_id):
        raise ValueError(f"{option} {repo_id!r} is not a Hub repository id; use OWNER/NAME, e.g. {example} "
                         "(not a URL)")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:  # the Hub client's own rules ('--', '..', a '.git' ending, 96 characters), before any request
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{option} {repo_id!r} is not a Hub repository id the Hub accepts ({error}); use OWNER/NAME, "
                         f"e.g. {example}") from None
    return repo_id
