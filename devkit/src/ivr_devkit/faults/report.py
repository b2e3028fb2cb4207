"""The verdict of a fault run: what PostgreSQL recorded, judged against what Asterisk showed
(the observer's bridge times) and what the phones were scripted to do.

- *dropped by a fault*: a consultation whose bridge did not end by the client's hangup at its
  scripted time: ``ended_by`` neither ``client`` nor ``expert`` (an unwatched end counts as
  the client's only when the observer saw the client leave first), the expert's phone leaving
  first (in this load it never hangs up by itself), or a bridge clearly shorter than the
  client's scripted talk;
- *bill off by more than 1 s*: ``|billed_seconds - the observer's bridge time| > 1``;
- *lost*: a request not ``completed`` at the end (another final state, or still active).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from ivr_devkit.faults.injector import Fault, clock
from ivr_devkit.faults.observer import BridgeObserver, Talk

SHORT_BY = 2.0  # seconds shorter than scripted that make a bridge "clearly" short
BILL_TOLERANCE = 1.0
UNWATCHED = ("unwatched", "unwatched_estimated")


@dataclass(frozen=True)
class Verdict:
    request_id: int
    ended_by: str
    billed: int | None
    observed: float | None  # the observer's bridge time
    expected: float | None  # the client's scripted talk, from its answer to its hangup
    first_to_leave: str  # "client", "expert", "?" (not seen)
    bridge_start: datetime

    @property
    def short(self) -> bool:
        if self.observed is None or self.expected is None:
            return False
        return self.observed < self.expected - SHORT_BY

    @property
    def dropped(self) -> bool:
        if self.billed is None:
            return False  # not ended: its request counts as lost
        if self.ended_by in UNWATCHED:
            by_client = self.first_to_leave == "client"
        else:
            by_client = self.ended_by in ("client", "expert") and self.first_to_leave != "expert"
        return not by_client or self.short

    @property
    def wrong_bill(self) -> bool:
        if self.billed is None or self.observed is None:
            return False
        return abs(self.billed - self.observed) > BILL_TOLERANCE

    def line(self) -> str:
        observed = "unseen" if self.observed is None else f"{self.observed:.2f} s"
        expected = "?" if self.expected is None else f"{self.expected:.1f} s"
        return (
            f"request {self.request_id}: ended_by={self.ended_by or '-'}"
            f" billed={self.billed} observed={observed} scripted~{expected}"
            f" first to leave={self.first_to_leave} bridged at {self.bridge_start:%H:%M:%S.%f}"
        )


@dataclass
class Report:
    offered: int
    pairs: int
    seed: int
    minutes: float
    states: Counter[str]
    verdicts: list[Verdict]
    lost: list[str]
    faults: list[Fault]
    surprises: list[str]
    emails: tuple[int, int]  # earnings emails queued, sent
    began: datetime  # when the load began (the faults' times count from it)
    lease_lapses: list[str] = field(default_factory=list)  # live engines that looked dead
    notes: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return self.states["completed"]

    @property
    def dropped(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.dropped]

    @property
    def wrong_bills(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.wrong_bill]

    @property
    def exit_code(self) -> int:
        return 0 if not (self.dropped or self.wrong_bills or self.lost) else 1

    def _last_fault(self, verdict: Verdict) -> Fault | None:
        """The last fault that began before this consultation's bridge ended."""
        ended = (verdict.bridge_start - self.began).total_seconds() + (verdict.observed or 0)
        before = [f for f in self.faults if f.at <= ended]
        return before[-1] if before else None

    def _explained(self, verdict: Verdict) -> str:
        fault = self._last_fault(verdict)
        if fault is None:
            return verdict.line()
        return f"{verdict.line()}; last fault before its end: [{clock(fault.at)}] {fault.kind}"

    def _wrong_by_fault(self) -> str:
        """The wrong bills per kind of the fault before them, with their range."""
        groups: dict[str, list[float]] = {}
        for v in self.wrong_bills:
            fault = self._last_fault(v)
            assert v.billed is not None and v.observed is not None
            groups.setdefault(fault.kind if fault else "none", []).append(v.billed - v.observed)
        return ", ".join(
            f"{kind} {len(d)} ({min(d):+.1f}..{max(d):+.1f} s)" for kind, d in groups.items()
        )

    def _bill_range(self) -> str:
        diffs = [
            v.billed - v.observed
            for v in self.verdicts
            if v.billed is not None and v.observed is not None
        ]
        return f"{min(diffs):+.2f} s / {max(diffs):+.2f} s" if diffs else "-"

    def render(self) -> str:
        kinds = Counter(f.kind for f in self.faults)
        ended = Counter(v.ended_by or "(not ended)" for v in self.verdicts)
        rows = [
            ("consultations offered", str(self.offered)),
            ("completed", str(self.completed)),
            ("dropped by a fault", str(len(self.dropped))),
            ("bills off by more than 1 s", str(len(self.wrong_bills))),
            ("  by the fault before them", self._wrong_by_fault() or "-"),
            ("requests lost (not completed)", str(len(self.lost))),
            ("billed - observed, min / max", self._bill_range()),
            ("consultations by ended_by", _counts(ended)),
            ("requests by final state", _counts(self.states)),
            ("earnings emails queued / sent", f"{self.emails[0]} / {self.emails[1]}"),
            ("faults injected", f"{len(self.faults)} ({_counts(kinds)})"),
            ("live engines whose lease lapsed", str(len(self.lease_lapses))),
        ]
        width = max(len(name) for name, _ in rows)
        title = (
            f"fault run: seed {self.seed}, {self.pairs} expert/client pairs,"
            f" {self.minutes:.1f} min of load"
        )
        out = [title, "-" * len(title)]
        out += [f"{name:<{width}}  {value}" for name, value in rows]
        out.append("")
        out.append("faults (time since the load began):")
        out += [
            f"  [{clock(f.at)}] {f.kind}: {f.detail}; whole in {f.took:.1f} s" for f in self.faults
        ]
        sections = [
            ("dropped", [self._explained(v) for v in self.dropped]),
            ("bills off by more than 1 s", [self._explained(v) for v in self.wrong_bills]),
            ("lost", self.lost),
            ("live engines whose lease lapsed (outside PostgreSQL restarts)", self.lease_lapses),
            ("surprises", self.surprises),
            ("notes", self.notes),
        ]
        for name, lines in sections:
            if lines:
                out.append(f"{name}:")
                out += [f"  {line}" for line in lines]
        return "\n".join(out)


async def judge(
    pool: asyncpg.Pool,
    request_ids: list[int],
    observer: BridgeObserver,
    hangup_after: float,
) -> tuple[Counter[str], list[Verdict], list[str]]:
    """The states of the offered requests, a verdict per consultation, the lost requests."""
    requests = await pool.fetch(
        "SELECT id, state, end_reason, attempts FROM requests WHERE id = ANY($1::bigint[])"
        " ORDER BY id",
        request_ids,
    )
    states: Counter[str] = Counter(r["state"] for r in requests)
    lost = [
        f"request {r['id']}: {r['state']} ({r['end_reason'] or '-'}), {r['attempts']} attempts"
        for r in requests
        if r["state"] != "completed"
    ]
    rows = await pool.fetch(
        "SELECT c.request_id, c.bridge_id, c.bridge_start, c.billed_seconds, c.ended_by,"
        " c.expert_channel_id, c.client_channel_id, a.answered_at AS client_answered"
        " FROM consultations c LEFT JOIN call_attempts a ON a.channel_id = c.client_channel_id"
        " WHERE c.request_id = ANY($1::bigint[]) ORDER BY c.request_id",
        request_ids,
    )
    verdicts = []
    for row in rows:
        talk = _nearest(observer.talks(row["bridge_id"]), row["bridge_start"])
        expected = None
        if talk is not None and row["client_answered"] is not None:
            expected = hangup_after - (talk.start - row["client_answered"]).total_seconds()
        leaver = "?"
        if talk is not None:
            leaver = {row["client_channel_id"]: "client", row["expert_channel_id"]: "expert"}.get(
                talk.first_to_leave, "?"
            )
        verdicts.append(
            Verdict(
                request_id=row["request_id"],
                ended_by=row["ended_by"],
                billed=row["billed_seconds"],
                observed=talk.seconds if talk is not None else None,
                expected=expected,
                first_to_leave=leaver,
                bridge_start=row["bridge_start"],
            )
        )
    return states, verdicts, lost


def _nearest(talks: list[Talk], start: datetime) -> Talk | None:
    """The stretch of the bridge that the consultation row describes."""
    if not talks:
        return None
    return min(talks, key=lambda t: abs((t.start - start).total_seconds()))


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in counter.most_common()) or "-"
