"""A leg whose media stopped: what Asterisk does about it, and until when to bill.

A phone that vanishes without a BYE (battery out, NAT binding lost, a trunk that crashed)
leaves its channel up. PJSIP's ``rtp_timeout`` (asterisk-conf/pjsip.conf: 30 s, and
``rtp_timeout_hold`` 300 s while on hold) makes Asterisk hang such a leg up itself, in
``rtp_check_timeout`` (res/res_pjsip_sdp_rtp.c, Asterisk 22):

* it logs a NOTICE: ``Disconnecting channel 'PJSIP/…' for lack of audio RTP activity in
  N seconds``;
* it sets the hangup cause to 44, ``AST_CAUSE_REQUESTED_CHAN_UNAVAIL`` ("Requested channel
  not available"), then soft-hangs the channel up with ``AST_SOFTHANGUP_DEV``;
* over ARI, ``ChannelHangupRequest`` then says ``cause: 1, soft: true``: that 1 is the
  soft-hangup *reason flag* ``AST_SOFTHANGUP_DEV`` (main/channel.c, ``ast_softhangup``),
  not a Q.850 cause (every soft hangup's request carries its flag there: 32,
  ``AST_SOFTHANGUP_EXPLICIT``, when the engine hangs a leg up over ARI);
  ``ChannelDestroyed`` carries the real cause, 44, with cause_txt "Requested channel not
  available";
* in CEL, the channel's HANGUP row has ``"hangupcause": 44`` in ``extra``.

tests/e2e/test_media_timeout.py shows all of these on the sandbox.

Timing: Asterisk keeps the time of the last RTP or RTCP packet it read from the leg (a key
press counts) in whole seconds (``time(NULL)``), and checks again when the timeout could
next expire; the check does nothing while the channel is not Up. So the hangup comes
between ``rtp_timeout - 1`` and ``rtp_timeout + 1`` seconds after the media really stopped,
and the leg carried nothing for about ``rtp_timeout`` seconds before its hangup time.

Cause 44 alone does not prove an RTP timeout: a far end's BYE may carry it in a Q.850
Reason header (res/res_pjsip_rfc3326.c), and other channel drivers use it. Within PJSIP,
only the RTP timeout sets it on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# Q.850 cause of a leg Asterisk hung up for lack of RTP (ChannelDestroyed.cause, CEL HANGUP).
RTP_TIMEOUT_CAUSE = 44
# ChannelHangupRequest.cause of soft hangups is a flag, not a Q.850 cause: AST_SOFTHANGUP_DEV
# for the RTP timeout, AST_SOFTHANGUP_EXPLICIT for a hangup asked over ARI.
SOFTHANGUP_DEV = 1
SOFTHANGUP_EXPLICIT = 32


def media_stopped_at(hangup_at: datetime, cause: int | None, rtp_timeout: float) -> datetime:
    """When a leg's media stopped: its hangup time, less ``rtp_timeout`` when Asterisk hung
    it up for lack of media (to within a second either way, see above)."""
    if cause == RTP_TIMEOUT_CAUSE and rtp_timeout > 0:
        return hangup_at - timedelta(seconds=rtp_timeout)
    return hangup_at
