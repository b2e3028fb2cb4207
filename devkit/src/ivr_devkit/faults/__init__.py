"""``make faults``: a load of consultations on the sandbox while the engine is killed, stopped
and its PostgreSQL restarted at random moments; then a table of what went wrong.

    python -m ivr_devkit.faults [--consultations 100] [--seed N] [--max-minutes 10]

It takes the lock the end-to-end tests take on the sandbox (it waits while a test run uses
it), brings the sandbox up, starts a throwaway PostgreSQL, SIPp phones (experts who press 1,
clients who hang up a fixed time after answering), an ARI observer of every bridge, and the
engine as a process of its own; then drives the load through the HTTP API while it injects
one fault at a time (seeded): kill -9 and a new engine 0-5 s later, SIGTERM and a new engine,
a PostgreSQL restart away 0-5 s. It stops by itself, ends everything it started by PID and
prints the table; the exit code is 0 only when no call was dropped, no bill is off by more
than a second and no request was lost.

    engines.py   the engine processes, one after another
    observer.py  Asterisk's own bridge times (an ARI application subscribed to everything)
    load.py      expert/client pairs placing requests through the API
    injector.py  the faults
    report.py    the verdicts and the table
    run.py       one run, start to end
"""
