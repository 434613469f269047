"""speat_metric.errors: every error class, importable from one light module."""

from __future__ import annotations

import subprocess
import sys

import pytest

import speat_metric.errors as errors


def test_every_name_is_an_error_class_users_can_catch():
    for name in errors.__all__:
        error = getattr(errors, name)
        assert isinstance(error, type) and issubclass(error, (ValueError, ImportError)), name


def test_the_adapters_raise_the_same_class():
    from speat_metric.adapters import ModelLoadError

    assert ModelLoadError is errors.ModelLoadError


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NotAnError'"):
        errors.NotAnError  # noqa: B018


def test_importing_it_loads_no_heavy_library():
    code = "import sys, speat_metric.errors; print(sorted({'torch', 'datasets', 'transformers'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
