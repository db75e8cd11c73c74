"""Why a deployment revision exists, as a typed value: ``RevisionKind``.

Every revision is made by one of a few writers: a user's apply or rollback, the alias poller, the
reconciler's automatic rollback, a progressive canary's steps, promotion and rollback. The kind is
stored with the revision (column ``revisions.kind``, migration 0007), shown in the API
(``RevisionBody.kind``) and read by everything that used to guess it from the free-text ``cause``
(which stays, for people: ``rollback to revision 2``, ``canary iris:7 at 10%``).
"""

from __future__ import annotations

from enum import StrEnum


class RevisionKind(StrEnum):
    APPLIED = "applied"  # a user applied a document (pier deploy, PUT, the GitOps entry)
    ROLLBACK = "rollback"  # a user rolled back to an earlier revision (pier rollout undo)
    AUTO_ROLLBACK = "auto-rollback"  # the reconciler rolled back a revision that never became ready
    ALIAS_FOLLOW = "alias-follow"  # a followed alias moved (the alias poller)
    CANARY_STEP = "canary-step"  # a progressive canary started or moved to its next weight
    CANARY_PROMOTE = "canary-promote"  # the canary's version replaced the stable one's
    CANARY_ROLLBACK = "canary-rollback"  # the canary predictor was removed (failed, aborted)

    @property
    def pins_versions(self) -> bool:
        """Whether such a revision re-used versions instead of resolving aliases: every rollback, and a
        canary's steps, which pin every predictor but the canary to the version it ran."""
        return self in _PINNING


_PINNING = frozenset({RevisionKind.ROLLBACK, RevisionKind.AUTO_ROLLBACK, RevisionKind.CANARY_ROLLBACK,
                      RevisionKind.CANARY_STEP})
