"""What the Hub's client raises when the Hub cannot be reached: one definition for every module that talks to it.

huggingface_hub 2.x sends requests through httpx2, whose connection errors (refused, DNS failure, timeout) are not
OSErrors; older clients raised OSErrors (requests, httpx). An answer of the Hub (404, 401, 5xx) is an
``HfHubHTTPError``, which is an OSError too: catch ``HfHubHTTPError`` first, then `UNREACHABLE`.
"""

try:
    from httpx2 import TransportError
except ImportError:  # pragma: no cover (older huggingface_hub: its errors are OSErrors)
    TransportError = OSError

UNREACHABLE = (OSError, TransportError)
