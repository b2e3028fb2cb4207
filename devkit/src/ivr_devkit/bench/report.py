"""The bench's table (printed), its JSON and its plot (build/bench/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: a file
import matplotlib.pyplot as plt


def per_consultation(phase: dict[str, Any]) -> dict[str, float | None]:
    """CPU milliseconds per completed consultation, per process and in total."""
    done = phase["completed"]
    cpu = phase["cpu_seconds"]
    figures: dict[str, float | None] = {
        k: (round(cpu[k] * 1000 / done, 1) if done else None)
        for k in ("asterisk", "engine", "postgres")
        if k in cpu
    }
    figures["total"] = round(sum(cpu.values()) * 1000 / done, 1) if done else None
    return figures


def rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per rate: the engine's figures beside the dialplan's."""
    by_rate: dict[float, dict[str, dict[str, Any]]] = {}
    for phase in figures["phases"]:
        by_rate.setdefault(phase["rate"], {})[phase["side"]] = phase
    result = []
    for rate, sides in sorted(by_rate.items()):
        engine, dialplan = sides.get("engine"), sides.get("dialplan")
        if engine is None or dialplan is None:
            continue
        e, d = per_consultation(engine), per_consultation(dialplan)
        ratio = round(e["total"] / d["total"], 2) if e["total"] is not None and d["total"] else None
        result.append({"rate": rate, "engine": engine, "dialplan": dialplan, "e": e, "d": d,
                       "ratio": ratio})  # fmt: skip
    return result


def highest_clean(figures: dict[str, Any], side: str) -> float | None:
    """The highest offered rate at which this side, and every lower rate, failed nothing."""
    phases = sorted((p for p in figures["phases"] if p["side"] == side), key=lambda p: p["rate"])
    best = None
    for p in phases:
        if p["failed"] or not p["completed"]:
            break
        best = p["rate"]
    return best


def clean_limit(figures: dict[str, Any], side: str) -> str:
    """``highest_clean`` in words: a limit found (a higher rate failed), or a lower bound."""
    best = highest_clean(figures, side)
    top = max((p["rate"] for p in figures["phases"] if p["side"] == side), default=None)
    if best is None:
        return "none (the lowest rate failed)"
    if best == top:
        return f"{_f(best)}/s or more (the bench's top rate)"
    return f"{_f(best)}/s"


def _f(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def render(figures: dict[str, Any]) -> str:
    m, box = figures["machine"], figures["machine"]["sandbox"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']};"
        f" Asterisk {m['asterisk']}, Python {m['python']};"
        f" load at the end {m['load_average_at_end']}",
        f"sandbox: RTP {box['rtp_ports']}, http sessionlimit {box['http_sessionlimit']},"
        f" Asterisk open files {box['asterisk_open_files']}",
        "",
        "| calls/s | side | offered | completed | failed | Asterisk ms | engine ms"
        " | PostgreSQL ms | total ms | ratio | key→INVITE p50/p99 ms"
        " | answer→bridge p50/p99 ms | loop lag p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows(figures):
        for side, per in (("dialplan", row["d"]), ("engine", row["e"])):
            p = row[side]
            lines.append(
                f"| {_f(row['rate'])} | {side} | {p['offered']} | {p['completed']} | {p['failed']}"
                f" | {_f(per.get('asterisk'))} | {_f(per.get('engine'))}"
                f" | {_f(per.get('postgres'))} | {_f(per['total'])}"
                f" | {_f(row['ratio']) if side == 'engine' else ''}"
                f" | {_f(p['key_to_invite_p50_ms'])} / {_f(p['key_to_invite_p99_ms'])}"
                f" | {_f(p['answer_to_bridge_p50_ms'])} / {_f(p['answer_to_bridge_p99_ms'])}"
                f" | {_f(p['loop_lag_p99_ms'])} |"
            )
    failures = [
        f"  {p['side']} {_f(p['rate'])}/s: {why} × {n}"
        for p in figures["phases"]
        for why, n in p["reasons"].items()
    ]
    if failures:
        lines += ["", "failures:", *failures]
    lines += [
        "",
        f"highest rate with no failure: dialplan {clean_limit(figures, 'dialplan')},"
        f" engine {clean_limit(figures, 'engine')}",
        "",
        "| waiting requests | experts | claim_next p50/p99 ms | in PostgreSQL p50/p99 ms"
        " | next_due p50/p99 ms | in PostgreSQL p99 ms | SELECT 1 p50/p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in figures["claims"]:
        lines.append(
            f"| {c['waiting']:,} | {c['experts']:,}"
            f" | {_r(c['claim_p50_ms'])} / {_r(c['claim_p99_ms'])}"
            f" | {_r(c['claim_server_p50_ms'])} / {_r(c['claim_server_p99_ms'])}"
            f" | {_r(c['next_due_p50_ms'])} / {_r(c['next_due_p99_ms'])}"
            f" | {_r(c['next_due_server_p99_ms'])}"
            f" | {_r(c.get('select1_p50_ms'))} / {_r(c.get('select1_p99_ms'))} |"
        )
    return "\n".join(lines)


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write(figures: dict[str, Any], out_dir: Path) -> list[Path]:
    stamp = figures["when"].replace(":", "").replace("-", "")[:15]
    data = out_dir / f"bench-{stamp}.json"
    data.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (out_dir / "latest.json").write_text(data.read_text(encoding="utf-8"), encoding="utf-8")
    png = out_dir / "bench.png"
    plot(figures, png)
    return [data, png]


def plot(figures: dict[str, Any], path: Path) -> None:
    """CPU per consultation and latencies against the offered rate, both sides."""
    table = rows(figures)
    rates = [r["rate"] for r in table]
    fig, (cpu_ax, lat_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for side, key, style in (("dialplan", "d", "s--"), ("engine", "e", "o-")):
        cpu_ax.plot(rates, [r[key]["total"] for r in table], style, label=f"{side}: total")
    for part, style in (("asterisk", "^:"), ("engine", "v:"), ("postgres", "x:")):
        cpu_ax.plot(rates, [r["e"].get(part) for r in table], style, label=f"engine side: {part}")
    cpu_ax.set(xlabel="offered calls/s", ylabel="CPU ms per completed consultation",
               title="CPU per consultation")  # fmt: skip
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.legend(fontsize=8)
    for side, style in (("dialplan", "--"), ("engine", "-")):
        for metric, marker, label in (
            ("key_to_invite_p99_ms", "o", "key→client INVITE p99"),
            ("answer_to_bridge_p99_ms", "s", "client answer→bridge p99"),
        ):
            lat_ax.plot(rates, [r[side][metric] for r in table], marker + style,
                        label=f"{side}: {label}")  # fmt: skip
    lat_ax.set(xlabel="offered calls/s", ylabel="ms (as the phones saw it)", title="Latency")
    lat_ax.set_yscale("symlog", linthresh=10)
    lat_ax.legend(fontsize=8)
    m = figures["machine"]
    fig.suptitle(f"make bench — {m['cpu']}, {m['cores']} cores, Asterisk {m['asterisk']}",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
