"""Graph's `synchronizationJobRestartScope` (a flags enum) to tenant-sync's restart scopes.

`criteria.resetScope` is a comma-separated combination of Graph's member names (any case, any
spaces): `Watermark, Escrows, QuarantineState, Full, ForceDeletes`. Decisions where Graph's members
have no counterpart (docs/operator-service.md):
- no criteria, or an empty or null `resetScope`: Graph's default, which its documentation says
  "is similar to" `QuarantineState, Watermark, Escrows` — exactly that here;
- `None`: clears nothing (Graph documents it as "use start instead"); combined with others it adds
  nothing;
- `ConnectorDataStore` (Graph: "clears the underlying cache for all users", not for customers):
  refused. tenant-sync's cache is its link table, which is what keeps re-runs from inviting
  duplicates; `Full` resets everything else.
"""

from __future__ import annotations

from worker.service.admin import RestartScope

GRAPH_SCOPES: dict[str, tuple[RestartScope, ...]] = {
    "none": (),
    "escrows": (RestartScope.ESCROWS,),
    "watermark": (RestartScope.WATERMARK,),
    "quarantinestate": (RestartScope.QUARANTINE,),
    "full": (RestartScope.FULL,),
    "forcedeletes": (RestartScope.FORCE_DELETES,),
}
DEFAULT = (RestartScope.QUARANTINE, RestartScope.WATERMARK, RestartScope.ESCROWS)
NAMES = "None, Escrows, Watermark, QuarantineState, Full, ForceDeletes"


class ScopeError(ValueError):
    """A resetScope that names something this service does not do."""


def parse_reset_scope(text: str | None) -> list[RestartScope]:
    """tenant-sync's restart scopes for Graph's `resetScope`, in a safe order (the deletions
    allowance last, after what clears state); ScopeError names the first bad member."""
    members = text.split(",") if text and text.strip() else []
    chosen: set[RestartScope] = set() if members else set(DEFAULT)
    for part in members:
        name = part.strip()
        key = name.lower()
        if key == "connectordatastore":
            raise ScopeError(
                "resetScope 'ConnectorDataStore' is not supported: tenant-sync keeps its links "
                "between source and target users (they prevent duplicate invitations); "
                "use 'Full' to reset everything else"
            )
        if key not in GRAPH_SCOPES:
            shown = name or "(empty)"
            raise ScopeError(
                f"resetScope member '{shown}' is not a synchronizationJobRestartScope "
                f"(one or more of: {NAMES}, comma-separated)"
            )
        chosen.update(GRAPH_SCOPES[key])
    if RestartScope.FULL in chosen:
        # Full already covers watermark, escrows and quarantine.
        chosen -= {RestartScope.WATERMARK, RestartScope.ESCROWS, RestartScope.QUARANTINE}
    # The watermark first: it alone needs the job's lock, so a running cycle refuses the whole
    # restart (409) before anything else is cleared.
    order = list(RestartScope)
    return sorted(chosen, key=order.index)
