"""The per-camera state machine: learning, then ok, covered, defocused or moved; masks beside.

A :class:`CameraMonitor` is given each analysed keyframe with its time (seconds on any
monotonic clock: nothing here reads a clock, so tests drive time themselves). It first learns
the camera's reference view, sharpness and structure from ``learning_frames`` healthy keyframes,
then judges every keyframe against them (:mod:`gateway.analysis.judge`) and raises or clears
each condition once its test has held for ``min_duration`` (:mod:`gateway.analysis.debounce`).
Every condition clears by itself when the picture is back.

Precedence, when several conditions hold at once, for the one ``state`` shown:

1. ``covered``: a covered picture says nothing about focus or aim, so while it is covered (or
   looks covered) the focus and aim tests are not even run; their pending changes are dropped.
2. ``defocused``: the loss of sharpness is measured directly. A blurred picture may fail to
   match the reference; that failure is put down to the blur, never reported as a move.
3. ``moved``: raised on a measured displacement over the threshold, or when a sharp,
   structured picture no longer matches the reference at all (turned right away).

``conditions`` lists every condition raised, so a moved camera that is also out of focus shows
``defocused`` with both listed. The privacy-mask check runs beside these (also during learning)
and is not judged on a covered picture.

While the camera is healthy and still, the sharpness baseline follows the picture slowly (a
running mean) and the reference view is refreshed every ``refresh_every`` seconds, keeping the
transform to the view first learned so that moves are always measured from it. ``relearn()``
starts learning again (after a camera was deliberately re-aimed or refocused).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from gateway.analysis.debounce import Debounce
from gateway.analysis.frame import Frame
from gateway.analysis.judge import Judgement, Reference, Settings, judge, turned
from gateway.analysis.measures import LIVE
from gateway.analysis.motion import Features

__all__ = ["CONDITIONS", "CameraMonitor", "Change", "Condition", "State", "Status"]

State = Literal["learning", "ok", "covered", "defocused", "moved"]
Condition = Literal["covered", "defocused", "moved", "privacy_mask_missing"]
CONDITIONS: Final[tuple[Condition, ...]] = ("covered", "defocused", "moved", "privacy_mask_missing")

_Update = Callable[[Condition, bool, bool], None]

STILL_PERCENT: Final = 1.0
"""A recognised picture within this percent of the width (and half a degree) is still."""


@dataclass(frozen=True, slots=True)
class Change:
    """A condition raised (``active``) or cleared at time ``at``."""

    condition: Condition
    active: bool
    at: float


@dataclass(frozen=True, slots=True)
class Status:
    """The camera's integrity after one keyframe."""

    state: State
    conditions: frozenset[Condition]
    """Every condition raised (``state`` is the first by precedence; the mask is separate)."""
    since: float | None
    """When ``state`` was entered (``None`` before the first keyframe changed it)."""
    unmasked: tuple[str, ...]
    """Privacy zones found with content on this keyframe."""
    judgement: Judgement
    learned: int
    """Healthy keyframes learned so far (``learning_frames`` once learned)."""
    changes: tuple[Change, ...] = ()
    """Conditions raised or cleared by this keyframe."""

    @property
    def privacy_mask_missing(self) -> bool:
        return "privacy_mask_missing" in self.conditions


@dataclass(slots=True)
class _Learning:
    features: list[Features] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    structure: list[float] = field(default_factory=list)
    tiles: list[NDArray[np.float64]] = field(default_factory=list)


class CameraMonitor:
    """The integrity state of one camera, from its keyframes (see the module's docstring)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        s = self.settings
        self._debounce: dict[Condition, Debounce] = {
            c: Debounce(s.min_duration, s.max_gap) for c in CONDITIONS
        }
        self.reference: Reference | None = None
        self._learning = _Learning()
        self._state: State = "learning"
        self._since: float | None = None

    @property
    def state(self) -> State:
        return self._state

    def relearn(self) -> None:
        """Forget the reference and the sharpness baseline and learn them again; focus and aim
        conditions are cleared (cover and masks, judged without a reference, are kept)."""
        self.reference = None
        self._learning = _Learning()
        self._debounce["defocused"].reset()
        self._debounce["moved"].reset()

    def observe(self, frame: Frame, at: float) -> Status:
        """Take one analysed keyframe seen at ``at`` seconds; the camera's status after it."""
        s = self.settings
        j = judge(frame, self.reference, s)
        changes: list[Change] = []

        def update(condition: Condition, raising: bool, clearing: bool) -> None:
            if self._debounce[condition].update(raising=raising, clearing=clearing, at=at):
                changes.append(Change(condition, self._debounce[condition].active, at))

        update("covered", j.covered, j.uncovered)
        if j.covered:
            self._debounce["privacy_mask_missing"].hold(at)
        else:
            worst = max((z.detail for z in j.zones), default=0.0)
            update("privacy_mask_missing", worst > s.mask_detail, worst <= s.mask_clear)
        covered = j.covered or self._debounce["covered"].active
        if self.reference is None:
            if not covered:
                self._learn(j, at)
        elif covered or j.sharpness_ratio is None:
            self._debounce["defocused"].hold(at)
            self._debounce["moved"].hold(at)
        else:
            self._judge_aim_and_focus(j, update, at)
            self._refresh(j, at)
        self._settle(at)
        return Status(
            state=self._state,
            conditions=frozenset(c for c in CONDITIONS if self._debounce[c].active),
            since=self._since,
            unmasked=tuple(z.zone for z in j.zones if z.detail > s.mask_detail),
            judgement=j,
            learned=s.learning_frames if self.reference else len(self._learning.sharpness),
            changes=tuple(changes),
        )

    def _judge_aim_and_focus(self, j: Judgement, update: _Update, at: float) -> None:
        s = self.settings
        ratio = j.sharpness_ratio if j.sharpness_ratio is not None else 1.0
        blurred = ratio < s.defocus_ratio
        update("defocused", blurred, ratio > s.defocus_clear)
        moved = j.displacement
        if moved is not None:
            over = turned(moved, s)
            under = (
                moved.percent < s.move_clear * s.move_percent
                and abs(moved.rotation) < s.move_clear * s.move_degrees
            )
            update("moved", over, under)
        elif blurred or self._debounce["defocused"].active:
            self._debounce["moved"].hold(at)
        else:
            update("moved", True, False)

    def _learn(self, j: Judgement, at: float) -> None:
        learning = self._learning
        if j.features is None or len(j.features) == 0:
            return
        learning.features.append(j.features)
        learning.sharpness.append(j.measures.sharpness)
        learning.structure.append(j.measures.structure)
        if j.measures.tiles is not None:
            learning.tiles.append(j.measures.tiles)
        if len(learning.sharpness) < self.settings.learning_frames:
            return
        self.reference = Reference(
            features=max(learning.features, key=len),
            sharpness=statistics.median(learning.sharpness),
            structure=statistics.median(learning.structure),
            live=np.median(np.stack(learning.tiles), axis=0) > LIVE,
            offset=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
            taken_at=at,
        )
        self._learning = _Learning()

    def _refresh(self, j: Judgement, at: float) -> None:
        """Follow a healthy, still camera slowly (see the module's docstring)."""
        ref, s = self.reference, self.settings
        moved = j.displacement
        if ref is None or moved is None or j.features is None or j.transform is None:
            return
        if any(d.active or d.pending_since is not None for d in self._debounce.values()):
            return
        if moved.percent > STILL_PERCENT or abs(moved.rotation) > 0.5:
            return
        ratio = j.sharpness_ratio or 0.0
        if not 0.8 <= ratio <= 1.25:
            return
        w = s.baseline_weight
        ref.sharpness = (1 - w) * ref.sharpness + w * j.measures.sharpness
        ref.structure = (1 - w) * ref.structure + w * j.measures.structure
        if at - ref.taken_at >= s.refresh_every and len(j.features) >= len(ref.features) // 2:
            ref.features, ref.offset, ref.taken_at = j.features, j.transform, at
            if j.measures.tiles is not None:
                ref.live = j.measures.tiles > LIVE

    def _settle(self, at: float) -> None:
        if self.reference is None and not self._debounce["covered"].active:
            state: State = "learning"
        else:
            state = next(
                (c for c in ("covered", "defocused", "moved") if self._debounce[c].active), "ok"
            )
        if state != self._state:
            self._state, self._since = state, at
