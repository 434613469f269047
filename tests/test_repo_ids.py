"""Hub repository ids as users type them (speat_metric.repo_ids), checked against huggingface_hub's own validator."""

import re

import pytest
from huggingface_hub.utils import validate_repo_id

from speat_metric.repo_ids import check_repo_id

VALID = ["my-org/speat-results", "o/n", "Org_1/name.v2", "user/x-1_2.3", "0org/9name", "a_/b_"]


@pytest.mark.parametrize("repo_id", VALID)
def test_owner_name_ids_come_back_unchanged(repo_id):
    assert check_repo_id(repo_id, "--repo") is repo_id
    validate_repo_id(repo_id)  # and the Hub's client accepts them too


@pytest.mark.parametrize("repo_id", [
    "speat-results",  # a bare name: the Hub would create it under the token's user
    "https://huggingface.co/datasets/my-org/speat-results",  # a URL
    "huggingface.co/my-org/speat-results",
    "my-org/speat-results/",
    "datasets/my-org/speat-results",
    "/speat-results", "my-org/", "", " my-org/speat-results", "my-org/speat results",
    "-org/name", ".org/name", "org/-name", "org/.name", "org\n/name",
])
def test_other_strings_are_refused_naming_the_option(repo_id):
    message = (f"$SPEAT_BENCHMARK {repo_id!r} is not a Hub repository id; use OWNER/NAME, e.g. my-org/speat-results "
               "(not a URL)")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_repo_id(repo_id, "$SPEAT_BENCHMARK")


@pytest.mark.parametrize("value", [None, 42, ("my-org", "name")])
def test_a_non_string_is_a_value_error_not_a_type_error(value):
    with pytest.raises(ValueError, match=rf"^--benchmark {re.escape(repr(value))} is not a Hub repository id"):
        check_repo_id(value, "--benchmark")


def test_the_example_is_the_callers():
    with pytest.raises(ValueError, match=r"use OWNER/NAME, e\.g\. me/my-model \(not a URL\)$"):
        check_repo_id("my-model", "--model-repo", example="me/my-model")


@pytest.mark.parametrize("repo_id", ["a--b/c", "a/b..c", "a/b.git", "org/name-", "org/name.", "org/" + "x" * 97,
                                     "org/name\n"])
def test_every_id_it_accepts_is_one_the_hub_client_accepts(repo_id):
    try:
        check_repo_id(repo_id, "--repo")
    except ValueError:
        return  # refused early: what the test wants
    validate_repo_id(repo_id)
