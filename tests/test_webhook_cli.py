"""`speat hub webhook` refuses bad configuration with one line, before it listens; the secret is never a flag."""

import logging

import pytest
from http_servers import HubServer

from speat_metric.cli import main
from speat_metric.hub.webhook_events import own_account_ids
from speat_metric.hub.webhooks import load_secret

SECRET = "cli-SECRET-0123456789abc"


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("SPEAT_WEBHOOK_SECRET", SECRET)


@pytest.fixture(autouse=True)
def _restore_logging():
    """The command configures the process's logging (JSON lines) when it gets that far: undo it after each test."""
    names = ("", "speat_metric", "huggingface_hub", "transformers", "datasets", "evaluate",
             "accelerate", "httpx", "httpx2", "httpcore", "urllib3", "filelock")
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    logging.captureWarnings(False)


def fails(capsys, *arguments: str) -> str:
    assert main(["hub", "webhook", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    return error


def test_without_a_secret_the_service_does_not_start(capsys, monkeypatch):
    monkeypatch.delenv("SPEAT_WEBHOOK_SECRET")
    assert ("speat hub webhook: error: no webhook secret: set SPEAT_WEBHOOK_SECRET or give --secret-file FILE"
            in fails(capsys))


def test_the_secret_cannot_be_given_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["hub", "webhook", "--secret", SECRET])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and "--secret is not accepted: a secret on the command line shows in `ps`" in error
    assert SECRET not in error


def test_the_secret_file_is_read_and_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SPEAT_WEBHOOK_SECRET")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    assert load_secret(secret_file).verify(SECRET)
    secret_file.write_text("\n")
    assert f"--secret-file '{secret_file}' is empty" in fails(capsys, "--secret-file", str(secret_file))
    secret_file.write_text("short")
    assert "the webhook secret is too short (5 characters)" in fails(capsys, "--secret-file", str(secret_file))
    assert "cannot be read (FileNotFoundError)" in fails(capsys, "--secret-file", str(tmp_path / "missing"))


@pytest.mark.parametrize("arguments,message", [
    (("--stimuli", "demo"), "--stimuli demo is the embedded SYNTHETIC demo set"),  # annotate.check_settings
    (("--revision", "main"), "--revision does not apply: the service evaluates the commit each event names"),
    (("--tests", "colour"), "colour"),
    (("--permutations", "0"), "--permutations must be a whole number of at least 1, got 0"),
    (("--device", "cuda:7"), "--device 'cuda:7'"),
    (("--workers", "0"), "--workers must be at least 1, got 0"),
    (("--target-url", "https://x.hf.space"), "--target-url is for --register"),
    (("--watch", "team:acme"), "--watch 'team:acme': expected user:NAME, org:NAME or model:OWNER/NAME"),
    (("--register",), "--register needs --target-url URL: where the Hub should send the events"),
])
def test_bad_options_are_one_line_errors(capsys, arguments, message):
    assert message in fails(capsys, *arguments)


def test_a_token_the_hub_rejects_stops_the_service(monkeypatch):
    with HubServer(tokens={"hf_goodTOKEN0123456789": "speat-bot-user"}) as hub:
        monkeypatch.setenv("HF_TOKEN", "hf_unknownTOKEN0123456789")
        with pytest.raises(ValueError, match=r"the Hub rejects the Hugging Face token \(401\)"):
            own_account_ids(hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_goodTOKEN0123456789")
        assert own_account_ids(hub.url) == frozenset({"speat-bot-user"})
