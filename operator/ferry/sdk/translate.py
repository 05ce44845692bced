"""Mapping the clients' exceptions to the SDK's, so a user sees one vocabulary.

Owns: which client error is which SDK error. Must not: swallow an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ferry.clients.s3 import (
    StoreAccessDeniedError,
    StoreError,
    StoreNotFoundError,
)
from ferry.clients.user import (
    KubeConfigMissingError,
    KubeNotFoundError,
    KubeRefusedError,
    UserKubeError,
)
from ferry.sdk.errors import (
    ConfigError,
    NotFoundError,
    RefusedError,
    UnavailableError,
)


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except KubeConfigMissingError as exc:
        raise ConfigError(str(exc)) from None
    except KubeNotFoundError as exc:
        raise NotFoundError(str(exc)) from None
    except KubeRefusedError as exc:
        raise RefusedError(str(exc)) from None
    except UserKubeError as exc:
        raise UnavailableError(str(exc)) from None
    except StoreNotFoundError as exc:
        raise NotFoundError(str(exc)) from None
    except StoreAccessDeniedError as exc:
        raise RefusedError(str(exc)) from None
    except StoreError as exc:
        raise UnavailableError(str(exc)) from None
