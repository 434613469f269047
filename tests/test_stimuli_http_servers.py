"""Tests of the test servers in tests/http_servers.py, so that later tests can rely on them: HTTP semantics of the
static server, and the Hub server through huggingface_hub itself (model repos, uploads, model cards)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from http_servers import HubServer, StaticFileServer, git_blob_sha1
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_static_server_serves_ranges_and_counts_requests(static_server: StaticFileServer) -> None:
    url = static_server.add_file("/a/file.bin", bytes(range(100)))
    assert get(url)[2] == bytes(range(100))
    status, headers, body = get(url, {"Range": "bytes=90-"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 90-99/100", bytes(range(90, 100)))
    status, headers, _ = get(url, {"Range": "bytes=100-"})
    assert (status, headers["Content-Range"]) == (416, "bytes */100")
    assert get(f"{static_server.url}/nothing")[0] == 404
    assert static_server.count("GET", "/a/file.bin") == 3 and static_server.count() == 4


def test_static_server_faults_happen_the_given_number_of_times(static_server: StaticFileServer) -> None:
    url = static_server.add_file("/f", b"x" * 50)
    static_server.fail("/f", 503, times=1)
    assert get(url)[0] == 503 and get(url)[0] == 200
    static_server.drop_connection("/f", after_bytes=10)
    with pytest.raises(http.client.IncompleteRead, match=r"10 bytes read, 40 more expected"):
        get(url)
    assert get(url)[2] == b"x" * 50


def test_hub_server_serves_model_repos_to_huggingface_hub(hub_server: HubServer, tmp_path: Path) -> None:
    hub_server.create_repo("org/tiny-model")
    hub_server.commit("org/tiny-model", {"config.json": b'{"a": 1}', "weights/model.bin": b"\x00" * 64})
    path = hf_hub_download("org/tiny-model", "config.json", cache_dir=tmp_path, endpoint=hub_server.url)
    assert Path(path).read_bytes() == b'{"a": 1}'
    folder = snapshot_download("org/tiny-model", cache_dir=tmp_path, endpoint=hub_server.url)
    assert (Path(folder) / "weights" / "model.bin").read_bytes() == b"\x00" * 64
    api = HfApi(endpoint=hub_server.url, token=False)
    tree = {item.path: getattr(item, "blob_id", None) for item in api.list_repo_tree("org/tiny-model", recursive=True)}
    assert tree["config.json"] == git_blob_sha1(b'{"a": 1}') and "weights" in tree
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/tiny-model", "missing.json", cache_dir=tmp_path, endpoint=hub_server.url)


def test_hub_server_accepts_repo_creation_and_uploads(hub_server: HubServer) -> None:
    api = HfApi(endpoint=hub_server.url, token="hf_test")
    url = api.create_repo("speat-tester/card-model")
    assert url.repo_id == "speat-tester/card-model"
    api.create_repo("speat-tester/card-model", exist_ok=True)
    info = api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# card\n", path_in_repo="README.md",
                           repo_id="speat-tester/card-model", commit_message="add card")
    assert hub_server.files("speat-tester/card-model")["README.md"] == b"---\nlicense: mit\n---\n# card\n"
    assert info.oid == hub_server.repos[("model", "speat-tester/card-model")].branches["main"]
    assert hub_server.commit_messages("speat-tester/card-model")[-1] == "add card"
    assert api.model_info("speat-tester/card-model").sha == info.oid


def test_model_card_push_goes_to_hf_endpoint(hub_server: HubServer, tmp_path: Path) -> None:
    # huggingface_hub reads HF_ENDPOINT when it is imported, hence a fresh interpreter
    hub_server.create_repo("speat-tester/pushed")
    script = textwrap.dedent("""
        from huggingface_hub import ModelCard
        ModelCard("---\\nlicense: apache-2.0\\n---\\n# Pushed card\\n").push_to_hub("speat-tester/pushed", token="hf_x")
    """)
    env = {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert hub_server.files("speat-tester/pushed")["README.md"].startswith(b"---\nlicense: apache-2.0")
