"""The numbers behind the evolution panel's charts, per day, from the store. Plain Python.

For each day (local time) on which drafts were written: the mean Final score (the latest score of
each draft), the thumbs-up rate (of drafts given a thumb, the share of 👍), the edit rate (of sent
drafts, the share edited first), the share of all drafts sent unedited, and the teacher's calls
and cost that day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from app.store import Store

SERIES = (
    "mean_final",
    "thumbs_up_rate",
    "edit_rate",
    "unedited_share",
    "cloud_calls",
    "cloud_cost",
)


@dataclass
class DayMetrics:
    day: date
    drafts: int = 0
    mean_final: float | None = None
    thumbs_up_rate: float | None = None
    edit_rate: float | None = None
    unedited_share: float | None = None
    cloud_calls: int = 0
    cloud_cost: float = 0.0


@dataclass
class _Acc:
    finals: list[float] = field(default_factory=list)
    thumbs: list[bool] = field(default_factory=list)
    sent_edited: list[bool] = field(default_factory=list)
    drafts: int = 0


def _day(moment: datetime) -> date:
    return moment.astimezone().date()


def daily_metrics(store: Store) -> list[DayMetrics]:
    with store.session() as session:
        drafts = store.draft_times(session)
        scores = store.latest_finals(session)
        ratings = store.rating_outcomes(session)
        teacher = store.teacher_call_costs(session)
    thumb_of: dict[int, bool] = {}
    sent_of: dict[int, bool] = {}
    for draft_id, thumbs_up, sent_text, edited in ratings:
        if thumbs_up is not None:
            thumb_of[draft_id] = bool(thumbs_up)
        if sent_text is not None:
            sent_of[draft_id] = bool(edited)
    acc: dict[date, _Acc] = defaultdict(_Acc)
    for draft_id, created in drafts:
        bucket = acc[_day(created)]
        bucket.drafts += 1
        if draft_id in scores:
            bucket.finals.append(float(scores[draft_id]))
        if draft_id in thumb_of:
            bucket.thumbs.append(thumb_of[draft_id])
        if draft_id in sent_of:
            bucket.sent_edited.append(sent_of[draft_id])
    cloud: dict[date, tuple[int, float]] = {}
    for created, cost in teacher:
        calls, total = cloud.get(_day(created), (0, 0.0))
        cloud[_day(created)] = (calls + 1, total + float(cost or 0.0))
    out = []
    for day in sorted(set(acc) | set(cloud)):
        a = acc.get(day, _Acc())
        calls, cost = cloud.get(day, (0, 0.0))
        out.append(
            DayMetrics(
                day,
                a.drafts,
                sum(a.finals) / len(a.finals) if a.finals else None,
                sum(a.thumbs) / len(a.thumbs) if a.thumbs else None,
                sum(a.sent_edited) / len(a.sent_edited) if a.sent_edited else None,
                sum(1 for e in a.sent_edited if not e) / a.drafts if a.drafts else None,
                calls,
                cost,
            )
        )
    return out
