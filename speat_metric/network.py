"""What the Hub's client raises when the Hub cannot be reached: one definition for every module that talks to it.

huggingface_hub 2.x sends requests through httpx2, whose connection errors (refused, DNS failure, timeout) are not
OSErrors; older clients raised OSErrors (requests, httpx). Catch `UNREACHABLE` to tell an unreachable Hub from an
answer of the Hub.
"""

try:
    from httpx2 import TransportError
except ImportError:  # pragma: no cover (older huggingface_hub: its errors are OSErrors)
    TransportError = OSError

UNREACHABLE = (OSError, TransportError)
