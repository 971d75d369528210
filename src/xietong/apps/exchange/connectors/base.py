"""What every connector does: fetch one page of rows, and answer a connection test.

The gateway asks for source fields by name, with equality filters and a page
(``limit`` / ``offset``); a connector returns at most ``limit`` rows and says whether
more follow (it asks the provider for ``limit + 1`` and drops the extra), so a large
resource is never loaded whole. Field names are the provider's (a connector's ``fields``
mapping turns item names into them before the call).

Failures are typed so the gateway can answer precisely and log the outcome: the
provider did not answer in time (``ProviderTimeout``, 504), could not be reached or
refused (``ProviderUnavailable``, 504), or answered something unusable
(``ProviderError``, 502).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from xietong.kernel.errors import XietongError

MAX_PAGE = 1000


@dataclass(frozen=True)
class FetchRequest:
    fields: tuple[str, ...]
    filters: dict[str, Any] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0
    # (field, value): only rows whose field is greater, in that field's order — how the
    # change poll reads what is new since its cursor
    after: tuple[str, Any] | None = None


@dataclass(frozen=True)
class FetchResult:
    rows: list[dict[str, Any]]
    has_more: bool


class ProviderFailure(XietongError):
    """The provider's system failed; ``outcome`` is what the query log records."""

    outcome = "provider_error"


class ProviderTimeout(ProviderFailure):
    status = 504
    code = "provider_timeout"
    outcome = "provider_timeout"


class ProviderUnavailable(ProviderFailure):
    status = 504
    code = "provider_unavailable"
    outcome = "provider_unavailable"


class ProviderError(ProviderFailure):
    status = 502
    code = "provider_error"
    outcome = "provider_error"


class Connector(Protocol):
    def fetch(self, request: FetchRequest) -> FetchResult:
        """One page of rows with exactly the requested fields."""

    def close(self) -> None: ...


def page_of(rows: list[dict[str, Any]], limit: int) -> FetchResult:
    """Cut the ``limit + 1`` rows a connector read into a page and a has-more flag."""
    return FetchResult(rows[:limit], len(rows) > limit)
