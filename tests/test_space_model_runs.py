"""speat_metric.space.model_runs: evaluating a model from the Space is off unless allowed; inputs checked first."""

from __future__ import annotations

import pytest

from speat_metric.space.model_runs import ModelEvaluationDisabled, check_request, evaluate_model


def test_a_space_without_the_resources_says_how_to_turn_it_on():
    with pytest.raises(ModelEvaluationDisabled, match="turned off.*SPEAT_SPACE_EVALUATE_MODELS=1"):
        evaluate_model("facebook/hubert-base-ls960", stimuli="demo", tests=["gender"], num_permutations=10,
                       enabled=False)


@pytest.mark.parametrize(("model", "stimuli", "tests", "permutations", "message"), [
    ("/etc/passwd", "demo", ["gender"], 10, "'/etc/passwd' is not a Hub model id"),
    ("random:melhubert-huge", "demo", ["gender"], 10, "is not a Hub model id"),
    ("facebook/hubert-base-ls960", "local", ["gender"], 10, "stimuli must be demo or speat, got 'local'"),
    ("facebook/hubert-base-ls960", "demo", [], 10, "choose at least one test"),
    ("facebook/hubert-base-ls960", "demo", ["age"], 0, "permutations must be between 1 and 1,000,000, got 0"),
])
def test_requests_are_checked_before_anything_loads(model, stimuli, tests, permutations, message):
    with pytest.raises(ValueError, match=message):
        check_request(model, stimuli, tests, permutations)
    assert check_request(" random:melhubert-small@3 ", "speat", ["age"], 5) == "random:melhubert-small@3"
