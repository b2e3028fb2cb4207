"""The development kit of ivr-engine: what the demo and the tests need, never the engine.

    sandbox/     a real Asterisk 22 in a Debian sid chroot (``ivr-engine sandbox ...``)
    simphones/   simulated phones: SIPp processes and their scenarios
    pgcluster    a throwaway PostgreSQL cluster
    demo         the scripted consultation of ``ivr-engine demo``
    faults       ``make faults``: a load of consultations under injected faults
    cli          what those ``ivr-engine`` commands run

It is a separate distribution (``devkit/pyproject.toml``) that depends on ivr-engine; the
engine imports nothing from it, except its command line, which hands these commands over
when the kit is installed.
"""
