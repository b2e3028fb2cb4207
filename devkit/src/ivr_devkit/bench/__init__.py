"""``make bench``: the engine against the same consultation flow in pure dialplan, side by
side, and what a claim costs with long waiting lists.

    python -m ivr_devkit.bench [--quick] [--rates 5,10,15,20] [--seconds 30]

It takes the lock the end-to-end tests take on the sandbox (it waits while a test run uses
it), brings the sandbox up, starts a throwaway PostgreSQL, an SMTP sink, the engine as a
process of its own and two SIPp phones (one answers every expert number and presses 1,
one answers every client number), an ARI observer of the bridges (event filter: bridge
entries only). Then, for each offered rate, the same consultations are placed two ways:

- dialplan: AMI Originate (the sandbox-only user ivr-bench) into the sandbox-only context
  ivr-bench: the same prompts and legs as flows/acceptance.py;
- engine: requests posted to the engine's HTTP API.

For each rate and side it measures CPU per completed consultation from /proc (Asterisk, the
engine, PostgreSQL), key → client INVITE and client answer → bridge where the phones see
them, and the engine's event-loop lag. A last step fills the waiting lists (up to 100,000
requests across 10,000 experts) and times claim_next and next_due. It prints the table,
writes build/bench/bench-<time>.json (and latest.json) and build/bench/bench.png, and ends
everything it started by PID.

    cpu.py      CPU seconds of a process tree, from /proc
    ami.py      the bench's AMI client (Originate, the BenchEnd UserEvents)
    traces.py   latencies from the SIPp traces and the observer's bridge entries
    claims.py   the claim step
    machine.py  what the figures came from
    report.py   table, JSON, plot
    run.py      one run, start to end
"""
