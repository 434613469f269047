"""speat_metric.hub.module_space: the evaluate module as a Hub Space, loaded by name through the Hub test server."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest
import yaml
from http_servers import HubServer
from hub_testing import hub_env, run_python, run_speat

from speat_metric import __version__, speat_test
from speat_metric.hub.module_space import publish_module

TOKEN = "hf_spaceSECRET31415"
SPACE = "lab/speat"

rng = np.random.default_rng(7)
X, Y, A, B = (rng.normal(loc, 1.0, size=(n, 5)) for loc, n in ((0.6, 6), (-0.2, 5), (1.0, 4), (-1.0, 3)))
EXPECTED = speat_test(X, Y, A, B, num_permutations=5000, seed=3)

LOAD = f"""
import json, evaluate
speat = evaluate.load({SPACE!r})
embeddings = json.loads({json.dumps(json.dumps([row.tolist() for part in (X, Y, A, B) for row in part]))})
groups = {[role for role, part in zip("XYAB", (X, Y, A, B)) for _ in part]!r}
print(json.dumps(speat.compute(embeddings=embeddings, groups=groups, num_permutations=5000, seed=3)))
"""


@pytest.mark.slow
def test_evaluate_load_by_hub_name_gives_the_same_d_as_speat_test(tmp_path):
    with HubServer(tokens={TOKEN: "lab"}) as server:
        env = hub_env(server, tmp_path, HF_TOKEN=TOKEN)
        published = run_speat("hub", "publish-module", "--space", SPACE, env=env, cwd=tmp_path)
        assert published.returncode == 0, published.stderr
        assert f"{SPACE}: committed" in published.stdout and f"evaluate.load({SPACE!r})" in published.stdout
        wheel = f"speat-{__version__}-py3-none-any.whl"
        files = {path: content.decode() for path, content in server.files(SPACE, repo_type="space").items()
                 if path != wheel}
        wheel_url = f"{server.url}/spaces/{SPACE}/resolve/main/{wheel}#sha256="
        card = yaml.safe_load(files["README.md"].split("---")[1])
        assert {"evaluate", "measurement"} <= set(card["tags"]) and card["sdk"] == "gradio"
        assert card["app_file"] == "app.py" and card["sdk_version"] and card["python_version"]
        assert f"pip install '{wheel_url}" in files["README.md"] and "pip install speat" not in files["README.md"]
        assert f"from speat_metric.statistics import speat_test  # From: {wheel_url}" in files["speat.py"]
        assert 'MODULE_FILE = "speat.py"' in files["app.py"] or "MODULE_FILE = 'speat.py'" in files["app.py"]
        assert files["requirements.txt"].splitlines()[-1].startswith(f"speat[space] @ {wheel_url}")
        again = publish_module(SPACE, token=TOKEN, endpoint=server.url)
        assert (again.status, again.commit) == ("unchanged", None)

        loaded = run_python(LOAD, env=env, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        result = json.loads(loaded.stdout.strip().splitlines()[-1])
        assert result["effect_size"] == pytest.approx(EXPECTED.effect_size, rel=1e-12)
        assert result["p_value"] == pytest.approx(EXPECTED.p_value, rel=1e-12)
        assert server.count("GET", f"/spaces/{SPACE}/resolve/main/speat.py") == 1  # from the Space, by name

        fresh = {**env, "HF_MODULES_CACHE": str(tmp_path / "fresh-modules")}  # a user who never loaded it
        without_speat = run_python("import sys\nsys.modules['speat_metric'] = None\n" + LOAD, env=fresh, cwd=tmp_path)
        assert without_speat.returncode != 0 and f"pip install {wheel_url}" in without_speat.stderr


def test_the_space_app_computes_with_the_spaces_own_module(tmp_path):
    with HubServer() as server:
        publish_module(SPACE, endpoint=server.url)
        for path, content in server.files(SPACE, repo_type="space").items():
            (tmp_path / path).write_bytes(content)
    with open(tmp_path / "embeddings.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["group", *(f"d{index}" for index in range(5))])
        for role, part in zip("XYAB", (X, Y, A, B)):
            writer.writerows([role, *row] for row in part.tolist())
    spec = importlib.util.spec_from_file_location("space_app_under_test", tmp_path / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    result = app.compute(str(tmp_path / "embeddings.csv"), 5000, 3)
    assert result["effect_size"] == pytest.approx(EXPECTED.effect_size, rel=1e-12)
    with pytest.raises(ValueError, match="upload a .csv or .npz file"):
        app.compute(str(tmp_path / "app.py"))


def test_dry_run_and_bad_space_ids():
    with HubServer() as server:
        outcome = publish_module(SPACE, dry_run=True, endpoint=server.url)
        assert outcome.status == "dry-run" and "+++ b/speat.py" in outcome.diff and server.repos == {}
        assert f"added speat-{__version__}-py3-none-any.whl" in outcome.diff
    with pytest.raises(ValueError, match="--space 'speat' is not a Hub repository id; use OWNER/NAME"):
        publish_module("speat")
