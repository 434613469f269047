"""What the Hub's client raises when the Hub cannot be reached (speat_metric.network): real requests to a closed
port, to a server that never answers, and to the test Hub."""

import socket
import time

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from speat_metric.network import UNREACHABLE


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _raised(call) -> BaseException:
    try:
        call()
    except BaseException as error:  # noqa: BLE001 (the test looks at whatever the client raises)
        return error
    raise AssertionError("the request succeeded")


def test_unreachable_is_a_tuple_of_exception_classes():
    assert isinstance(UNREACHABLE, tuple) and OSError in UNREACHABLE
    assert all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in UNREACHABLE)


def test_a_refused_connection_is_unreachable():
    error = _raised(lambda: HfApi(endpoint=_closed_port_url()).model_info("org/model", timeout=5))
    assert isinstance(error, UNREACHABLE)
    assert not isinstance(error, HfHubHTTPError)  # no answer, so no HTTP error


def test_a_server_that_never_answers_is_unreachable():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        error = _raised(lambda: HfApi(endpoint=url).model_info("org/model", timeout=0.3))
    assert isinstance(error, UNREACHABLE)
    assert time.monotonic() - started < 5


def test_an_answer_of_the_hub_is_an_http_error(hub_server):
    error = _raised(lambda: HfApi(endpoint=hub_server.url).model_info("nobody/nothing", timeout=5))
    assert isinstance(error, RepositoryNotFoundError) and isinstance(error, HfHubHTTPError)


def test_an_answer_of_the_hub_is_an_os_error_too_so_it_is_caught_first(hub_server):
    """As the module says: an HfHubHTTPError is also in UNREACHABLE, so callers catch it first."""
    error = _raised(lambda: HfApi(endpoint=hub_server.url).model_info("nobody/nothing", timeout=5))
    assert isinstance(error, HfHubHTTPError) and isinstance(error, UNREACHABLE)
