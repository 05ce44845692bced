"""Ferry: run research-computing Jobs of registered Apps on Kubernetes.

`from ferry import Client` is the SDK's client (ferry.sdk), imported on first use so that the
operator's and the stager's `import ferry` stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ferry.sdk import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from ferry.sdk import Client

        return Client
    raise AttributeError(f"module 'ferry' has no attribute {name!r}")
