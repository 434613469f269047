"""Every example in a docstring of speat runs and shows what it says (the docstrings are the documentation)."""

import doctest
import importlib
import pkgutil

import pytest

import speat_metric

SKIPPED = {
    "speat_metric.speat.speat",  # the evaluate module's example needs evaluate.load: test_evaluate_module runs it
}
CONSUMERS = ("hub", "pruning", "distill", "space")  # installed from their own folders (package-dir)


def _modules() -> list[str]:
    names = {info.name for info in pkgutil.walk_packages(speat_metric.__path__, "speat_metric.")}
    for consumer in CONSUMERS:
        package = importlib.import_module(f"speat_metric.{consumer}")
        names |= {package.__name__, *(info.name for info in pkgutil.walk_packages(package.__path__,
                                                                                  f"{package.__name__}."))}
    return sorted(name for name in names if name not in SKIPPED and not name.endswith("__main__"))


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_each_module_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see above)"
