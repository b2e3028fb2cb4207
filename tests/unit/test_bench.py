"""The bench's arithmetic: latencies from SIP traces and bridge entries, percentiles, the
event-loop lag from histogram buckets, CPU per consultation (ivr_devkit.bench)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from ivr_devkit.bench import cpu, pgstats, report, traces
from ivr_devkit.bench.run import _lag_p99_ms
from ivr_devkit.simphones import SipMessage

T0 = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


def _at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def _uas_call(call_id: str, number: str, invite: int, answered: int) -> list[SipMessage]:
    invite_line = f"INVITE sip:{number}@127.0.0.1:5070 SIP/2.0"
    return [
        SipMessage("received", call_id, "1 INVITE", invite_line, _at(invite)),
        SipMessage("sent", call_id, "1 INVITE", "SIP/2.0 200 OK", _at(answered)),
        SipMessage("received", call_id, "1 ACK", "ACK sip:x SIP/2.0", _at(answered + 10)),
    ]  # fmt: skip


def test_latencies_as_the_phones_and_the_bridge_saw_them() -> None:
    experts = traces.calls(_uas_call("e1", "+390610000001", 0, 100))
    # ACK at 110 ms, key 1000 ms later, its last packet 140 ms after that: 1250 ms.
    clients = traces.calls(_uas_call("c1", "+393330000001", 1270, 1500))
    bridges = traces.bridged([("b", "e1", _at(2700)), ("b", "c1", _at(2760))])
    found = traces.latencies(
        experts, clients, bridges, {"+393330000001": "+390610000001"}, 1000, T0, _at(10_000)
    )
    assert [round(x, 3) for x in found.key_to_invite] == [0.02]
    assert [round(x, 3) for x in found.answer_to_bridge] == [1.26]


def test_a_client_outside_the_window_or_without_its_expert_counts_for_nothing() -> None:
    experts = traces.calls(_uas_call("e1", "+390610000001", 0, 100))
    clients = traces.calls(_uas_call("c1", "+393330000009", 1270, 1500))
    found = traces.latencies(experts, clients, [], {}, 1000, _at(2000), _at(3000))
    assert found == traces.Latencies([], [])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert traces.percentile(values, 50) == 50.0
    assert traces.percentile(values, 99) == 99.0
    assert traces.percentile([3.0], 99) == 3.0
    assert traces.percentile([], 50) is None


def test_loop_lag_p99_is_the_bucket_holding_it() -> None:
    before = {0.001: 10.0, 0.005: 10.0, 0.01: 10.0, float("inf"): 10.0}
    after = {0.001: 900.0, 0.005: 1005.0, 0.01: 1010.0, float("inf"): 1010.0}
    assert _lag_p99_ms(before, after) == 5.0  # 990 of 1000 by 5 ms, not by 1 ms
    assert _lag_p99_ms(after, after) is None


def test_cpu_per_completed_consultation() -> None:
    phase = {"completed": 100, "cpu_seconds": {"asterisk": 4.2, "engine": 4.0, "postgres": 1.8}}
    assert report.per_consultation(phase) == {
        "asterisk": 42.0,
        "engine": 40.0,
        "postgres": 18.0,
        "total": 100.0,
    }
    assert report.per_consultation({"completed": 0, "cpu_seconds": {"asterisk": 1.0}}) == {
        "asterisk": None,
        "total": None,
    }


def test_this_process_uses_cpu_and_has_a_file_limit() -> None:
    seconds = cpu.tree_seconds(os.getpid())
    sum(i * i for i in range(200_000))
    assert cpu.tree_seconds(os.getpid()) > seconds > 0
    assert cpu.open_files_limit(os.getpid()).isdigit()
    assert cpu.tree_seconds(2**22 + 1) == 0.0  # no such process


def test_statement_figures_per_consultation_keep_nested_apart() -> None:
    window = pgstats.Window(
        statements=[
            pgstats.Statement("UPDATE requests SET state = $1", True, 20, 10.0, 2.0, 20),
            pgstats.Statement("BEGIN", True, 30, 0.3, 0.0, 0),
            pgstats.Statement("SELECT expert_queue_refresh(OLD.expert_id)", False, 40, 8.0, 0, 40),
        ],
        functions=[pgstats.Function("expert_queue_refresh", 40, 8.0, 6.0)],
    )
    got = pgstats.summary(window, 10, "consultation")
    assert got["statements_per_consultation"] == 5.0  # 50 top-level calls / 10
    assert got["nested_statements_per_consultation"] == 4.0
    assert got["exec_ms_per_consultation"] == 1.03
    assert got["plan_ms_per_consultation"] == 0.2
    first = got["top_level"][0]
    assert first["query"].startswith("UPDATE") and first["ms_per_call"] == 0.6
    assert got["functions"][0]["self_ms_per_consultation"] == 0.6
    assert "expert_queue_refresh" in pgstats.render(got, "consultation")


def test_postgres_processes_are_told_apart_by_their_title() -> None:
    assert pgstats._kind("postgres: ivr ivr_bench 127.0.0.1(5432) idle") == "backends"
    assert pgstats._kind("postgres: autovacuum worker ivr_bench") == "autovacuum"
    assert pgstats._kind("postgres: walwriter") == "walwriter"
    assert pgstats._kind("/usr/lib/postgresql/15/bin/postgres -D /tmp/x -p 5") == "postmaster"


def _phase(side: str, rate: float, failed: int) -> dict[str, object]:
    return {"side": side, "rate": rate, "completed": 100 - failed, "failed": failed}


def test_the_highest_clean_rate_stops_at_the_first_rate_that_failed() -> None:
    figures = {
        "phases": [
            _phase("engine", 5, 0),
            _phase("engine", 20, 0),
            _phase("engine", 30, 3),
            _phase("engine", 40, 0),  # clean again by chance: not a clean rate
            _phase("dialplan", 5, 0),
            _phase("dialplan", 40, 0),
        ]
    }
    assert report.highest_clean(figures, "engine") == 20
    assert report.clean_limit(figures, "engine") == "20/s"
    assert report.clean_limit(figures, "dialplan") == "40/s or more (the bench's top rate)"
    figures["phases"] = [_phase("engine", 5, 1)]
    assert report.highest_clean(figures, "engine") is None
    assert report.clean_limit(figures, "engine") == "none (the lowest rate failed)"
