"""The development kit's errors, under the engine's :class:`~ivr_engine.errors.IvrError`, so
that ``ivr-engine`` reports them as one line like its own."""

from __future__ import annotations

from ivr_engine.errors import IvrError


class SandboxError(IvrError):
    """The Asterisk sandbox could not be built, started or stopped."""


class ClusterError(IvrError):
    """The throwaway PostgreSQL cluster could not be set up, started or stopped."""
