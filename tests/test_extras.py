"""speat_metric.extras: an extra's requirements come from the installed metadata, and the install line from where
this speat was installed from (an environment without the extras is tested in test_wheel.py)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from speat_metric.extras import MissingExtraError, install_command, missing_requirements, require_extra

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_declared_extras_are_installed_in_the_development_environment():
    declared = metadata.metadata("speat").get_all("Provides-Extra")
    assert {"hub", "train", "space", "all", "dev"} <= set(declared)
    for extra in ("hub", "train", "space", "all"):
        assert missing_requirements(extra) == [], extra
    require_extra("all", "anything")  # nothing raised


def test_an_unknown_extra_is_a_clear_error():
    with pytest.raises(ValueError, match="speat has no extra 'gpu'; it has .*hub.*train.*space"):
        missing_requirements("gpu")


def test_the_base_install_pulls_no_service_training_or_space_package():
    base = [line.split(";")[0] for line in metadata.requires("speat") if "extra ==" not in line]
    names = {line.split(">")[0].split("=")[0].split("<")[0].strip().lower() for line in base}
    assert not names & {"fastapi", "uvicorn", "matplotlib", "scikit-learn", "gradio"}
    assert {"numpy", "torch", "evaluate", "transformers", "huggingface_hub"} <= names


def test_the_install_line_points_at_where_this_speat_came_from():
    origin = json.loads(metadata.distribution("speat").read_text("direct_url.json") or "{}")
    line = install_command("space")
    if origin.get("dir_info", {}).get("editable"):  # scripts/setup.sh installs the checkout in editable mode
        assert line == f"pip install -e '{REPOSITORY}[space]'"
    assert "pypi" not in line and line != "pip install 'speat[space]'"


def test_a_missing_extra_names_the_extra_the_missing_packages_and_the_command(monkeypatch):
    real = metadata.version

    def without_gradio(name: str) -> str:
        if name.lower() == "gradio":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", without_gradio)  # the metadata lookup only; the real message follows
    with pytest.raises(MissingExtraError) as raised:
        require_extra("space", "space")
    message = str(raised.value)
    assert message.startswith("speat space needs the 'space' extra (missing: gradio<7,>=6): pip install ")
    assert "\n" not in message
