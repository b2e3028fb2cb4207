"""Simulated phones for the end-to-end tests: one SIPp process per phone, on 127.0.0.1.

A ``Phone`` is a SIPp UAS listening on its own port. Asterisk rings it with an INVITE to
``sip:NUMBER@127.0.0.1:PORT`` and it plays one person's behaviour: answer and press keys,
be busy, let it ring, decline. A ``Caller`` is a SIPp UAC that places one call to Asterisk
(an expert who calls the service and types a PIN). A ``PhoneBook`` hands out ports, keeps
every phone it made, and stops them all at the end of a test, passed or failed.

Keys go as RFC 4733 telephone events (payload type 101) with ``play_pcap_audio``. The pcaps
are written here for each phone rather than taken from /usr/share/sip-tester: each stock
dtmf_2833_N.pcap carries its own fixed RTP sequence numbers and timestamp, so "5" then "1"
goes backwards in both and "1" then "1" repeats one event. Asterisk 22 drops the later
press: it heard "51" as "5" and "11" as "1". Ours continue one stream (one SSRC, rising
sequence numbers, a new timestamp for each press) and it hears every key.

A phone may also speak when it answers (``answer(greeting=Voice("Hello?"))``): the text is
spoken by espeak-ng, made 8 kHz G.711 mu-law by sox, followed by real silence (audio
packets, so that Asterisk's answering-machine detection hears the pause) and played as RTP
(payload type 0) on the same stream as the keys, which come after it.

Exceptions:
    PhoneError          SIPp could not start, or died before it listened
    +-- PhoneTimeout    SIPp had not finished its calls when the test stopped waiting
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal
from xml.sax.saxutils import quoteattr

__all__ = [
    "ASTERISK_SIP",
    "HELLO",
    "SCENARIOS",
    "TELEPHONE_EVENT",
    "VOICEMAIL_GREETING",
    "Answer",
    "Behaviour",
    "Caller",
    "Keys",
    "NoAnswer",
    "Phone",
    "PhoneBook",
    "PhoneError",
    "PhoneResult",
    "PhoneTimeout",
    "Refuse",
    "SipMessage",
    "SippProcess",
    "Voice",
    "answer",
    "audio_pcap",
    "busy",
    "dial_routes",
    "dtmf_pcap",
    "free_udp_port",
    "no_answer",
    "reject",
]

LOOPBACK = "127.0.0.1"
ASTERISK_SIP = "127.0.0.1:15060"
SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"

TELEPHONE_EVENT = 101
PCMU = 0
_ULAW_SILENCE = b"\xff"  # mu-law of a zero sample
_SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz
_EVENTS = {**{str(n): n for n in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
_FRAME_MS = 20
_TONE_FRAMES = 8
# How long one press takes to leave (its last packet goes 140 ms after the first), with room.
_PRESS_MS = 200
MIN_GAP_MS = _PRESS_MS


class PhoneError(Exception):
    """A simulated phone could not do its job."""


class PhoneTimeout(PhoneError):
    """SIPp was still running when the test stopped waiting for it."""


# ---------------------------------------------------------------------------------------------
# Ports


_handed_out: set[int] = set()


def _udp_port_free(port: int) -> bool:
    # 0.0.0.0 collides with a socket on any local address, 127.0.0.1 included.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_udp_port(span: int = 1) -> int:
    """A UDP port free now, with the ``span - 1`` ports above it free too.

    Never hands out a port twice in one test run: the probe socket is closed before SIPp
    binds, so two phones made one after the other could otherwise get the same port.
    """
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            first = int(probe.getsockname()[1])
        ports = range(first, first + span)
        if ports[-1] > 65535 or _handed_out.intersection(ports):
            continue
        if all(_udp_port_free(port) for port in ports):
            _handed_out.update(ports)
            return first
    raise PhoneError(f"no run of {span} free UDP ports on {LOOPBACK}")


def _bound_udp_ports() -> set[int]:
    ports: set[int] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            local = line.split()[1]
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


# ---------------------------------------------------------------------------------------------
# Key presses


@dataclass(frozen=True)
class Keys:
    """Keys pressed in one go: wait ``after_ms``, then press each digit ``gap_ms`` apart.

    ``after_ms`` counts from the answer, or from the last press of the previous ``Keys``.
    """

    digits: str
    after_ms: int = 1000
    gap_ms: int = 300

    def __post_init__(self) -> None:
        unknown = set(self.digits) - set(_EVENTS)
        if unknown or not self.digits:
            raise ValueError(f"keys {self.digits!r}: use 0-9, *, #, A-D")
        if self.after_ms < 0 or self.gap_ms < MIN_GAP_MS:
            raise ValueError(f"keys {self.digits!r}: after_ms >= 0, gap_ms >= {MIN_GAP_MS}")


def dtmf_pcap(digit: str, *, seq: int, timestamp: int, ssrc: int) -> bytes:
    """One key press as a pcap of RFC 4733 event packets, 20 ms apart.

    Eight updates with a growing duration, the marker on the first; the last one has the End
    bit and is sent three times, as RFC 4733 asks. Uses ten sequence numbers from ``seq``.
    """
    event = _EVENTS[digit]
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet captures
    for frame in range(_TONE_FRAMES):
        end = frame == _TONE_FRAMES - 1
        for _ in range(3 if end else 1):
            rtp = struct.pack(
                "!BBHIIBBH",
                0x80,
                (0x80 if frame == 0 else 0) | TELEPHONE_EVENT,
                seq & 0xFFFF,
                timestamp & 0xFFFFFFFF,
                ssrc,
                event,
                (0x80 if end else 0) | 10,  # End bit, volume -10 dBm0
                (frame + 1) * 160,
            )
            seq += 1
            chunks.append(_pcap_record(frame * _FRAME_MS, rtp))
    return b"".join(chunks)


def _pcap_record(at_ms: int, rtp: bytes) -> bytes:
    # SIPp only reads the UDP part (it rewrites ports and addresses): the rest is a plausible
    # Ethernet + IPv4 wrapper on loopback.
    udp = struct.pack("!HHHH", 10000, 10000, 8 + len(rtp), 0) + rtp
    loopback = socket.inet_aton(LOOPBACK)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, loopback, loopback)
    frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
    header = struct.pack("<IIII", at_ms // 1000, at_ms % 1000 * 1000, len(frame), len(frame))
    return header + frame


def audio_pcap(ulaw: bytes, *, seq: int, timestamp: int, ssrc: int) -> bytes:
    """G.711 mu-law samples as a pcap of RTP packets (payload type 0), one per 20 ms, the
    marker on the first. Uses one sequence number per packet from ``seq``."""
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    ulaw = ulaw + _ULAW_SILENCE * (-len(ulaw) % _SAMPLES_PER_FRAME)
    for index in range(len(ulaw) // _SAMPLES_PER_FRAME):
        payload = ulaw[index * _SAMPLES_PER_FRAME : (index + 1) * _SAMPLES_PER_FRAME]
        header = struct.pack(
            "!BBHII",
            0x80,
            (0x80 if index == 0 else 0) | PCMU,
            (seq + index) & 0xFFFF,
            (timestamp + index * _SAMPLES_PER_FRAME) & 0xFFFFFFFF,
            ssrc,
        )
        chunks.append(_pcap_record(index * _FRAME_MS, header + payload))
    return b"".join(chunks)


def _greeting_steps(
    ulaw: bytes, workdir: Path, prefix: str, *, seq: int, timestamp: int, ssrc: int
) -> tuple[str, int, int]:
    """The steps that play ``ulaw`` from the answer on; with the sequence numbers and the
    milliseconds it takes."""
    frames = -(-len(ulaw) // _SAMPLES_PER_FRAME)
    pcap = workdir / f"{prefix}-greeting.pcap"
    pcap.write_bytes(audio_pcap(ulaw, seq=seq, timestamp=timestamp, ssrc=ssrc))
    duration_ms = frames * _FRAME_MS
    steps = (
        f"  <nop><action><exec play_pcap_audio={quoteattr(str(pcap))}/></action></nop>\n"
        f'  <pause milliseconds="{duration_ms}"/>'
    )
    return steps, frames, duration_ms


def _press_steps(keys: Sequence[Keys], workdir: Path, prefix: str, greeting: bytes = b"") -> str:
    """The scenario steps that speak ``greeting`` (mu-law samples) if any, then press
    ``keys``: a pcap play and a pause per digit."""
    rng = random.Random()
    ssrc, seq, base = rng.getrandbits(32), rng.randrange(1, 30000), rng.getrandbits(31)
    steps: list[str] = []
    clock_ms = 0  # planned time since the answer, for the RTP timestamps (8 kHz clock)
    presses = 0
    if greeting:
        played, frames, clock_ms = _greeting_steps(
            greeting, workdir, prefix, seq=seq, timestamp=base, ssrc=ssrc
        )
        steps.append(played)
        seq += frames
    for group in keys:
        if group.after_ms:
            steps.append(f'  <pause milliseconds="{group.after_ms}"/>')
            clock_ms += group.after_ms
        for index, digit in enumerate(group.digits):
            presses += 1
            pcap = workdir / f"{prefix}-key{presses:02d}.pcap"
            pcap.write_bytes(dtmf_pcap(digit, seq=seq, timestamp=base + 8 * clock_ms, ssrc=ssrc))
            seq += 10
            wait = group.gap_ms if index < len(group.digits) - 1 else _PRESS_MS
            steps.append(
                f"  <nop><action><exec play_pcap_audio={quoteattr(str(pcap))}/></action></nop>"
            )
            steps.append(f'  <pause milliseconds="{wait}"/>')
            clock_ms += wait
    return "\n".join(steps)


def _hang_up_step(hangup_after_ms: int | None) -> str:
    if hangup_after_ms is None:
        return ""  # the scenario goes on to wait for the far end's BYE
    return f'  <pause milliseconds="{max(hangup_after_ms, 1)}" next="hang_up"/>'


def _render(template: str, dest: Path, **values: str) -> Path:
    text = (SCENARIOS / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise ValueError(f"{template}: a placeholder was left unfilled")
    dest.write_text(text, encoding="utf-8")
    return dest


# ---------------------------------------------------------------------------------------------
# Behaviours


@dataclass(frozen=True)
class Voice:
    """What a phone says as it answers: ``lead_ms`` of silence, ``text`` spoken by
    espeak-ng in ``language``, then ``silence_ms`` of silence, all sent as audio.

    A person says a short "Hello?" and waits; a voicemail talks for seconds on end.
    """

    text: str
    language: str = "en"
    lead_ms: int = 200
    silence_ms: int = 3000

    def __post_init__(self) -> None:
        if not self.text.strip() or self.lead_ms < 0 or self.silence_ms < 0:
            raise ValueError(f"voice {self.text!r}: some text, lead_ms and silence_ms >= 0")

    def render(self, workdir: Path, name: str) -> bytes:
        """The whole greeting as 8 kHz G.711 mu-law samples (espeak-ng, then sox)."""
        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                raise PhoneError(f"a speaking phone needs {tool} (`make system-deps`)")
        spoken = workdir / f"{name}-voice.wav"
        ulaw = workdir / f"{name}-voice.ul"
        try:
            subprocess.run(
                ["espeak-ng", "-v", self.language, "-s", "150", "-w", str(spoken), self.text],
                check=True,
                capture_output=True,
                timeout=60,
            )
            subprocess.run(
                ["sox", "-V1", str(spoken), "-r", "8000", "-c", "1", "-t", "ul", str(ulaw)],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            raise PhoneError(f"cannot render the voice {self.text!r}: {err}") from err
        lead = _ULAW_SILENCE * (8 * self.lead_ms)
        return lead + ulaw.read_bytes() + _ULAW_SILENCE * (8 * self.silence_ms)


# A person picking up: one short word, then waiting to be spoken to.
HELLO = Voice("Hello?")
# A voicemail: a greeting of several seconds, then the tone's silence.
VOICEMAIL_GREETING = Voice(
    "Hello, you have reached Anna Rossi. I cannot take your call right now."
    " Please leave a message after the tone.",
    silence_ms=1000,
)


@dataclass(frozen=True)
class Answer:
    """Answer, say ``greeting`` if any, press ``keys``, then wait for the far end's BYE or
    hang up after a while.

    ``hangup_after_ms`` counts from the last key press (from the answer if there is none,
    from the end of the greeting if there is one). A BYE from the far end at any moment
    ends the call normally.
    """

    keys: tuple[Keys, ...] = ()
    hangup_after_ms: int | None = None
    greeting: Voice | None = None


@dataclass(frozen=True)
class Refuse:
    """Refuse the call with a final response: 486 Busy Here, 603 Decline."""

    status: int
    reason: str


@dataclass(frozen=True)
class NoAnswer:
    """Ring (100, 180) until the caller sends CANCEL; answer it with 200 and 487."""


Behaviour = Answer | Refuse | NoAnswer


def answer(
    dtmf: str = "",
    *,
    dtmf_delay_ms: int = 1000,
    digit_gap_ms: int = 3000,
    hangup_after_ms: int | None = None,
    greeting: Voice | None = None,
) -> Answer:
    """Answer; ``dtmf_delay_ms`` after the ACK press each key of ``dtmf``, ``digit_gap_ms``
    apart (e.g. "51": a wrong key, then 1 once the engine has replayed its prompt).
    With a ``greeting``, say it first: the delay then counts from its end.

    Then wait for the far end's BYE, or send one ``hangup_after_ms`` after the last key.
    """
    keys = (Keys(dtmf, after_ms=dtmf_delay_ms, gap_ms=digit_gap_ms),) if dtmf else ()
    return Answer(keys=keys, hangup_after_ms=hangup_after_ms, greeting=greeting)


def busy() -> Refuse:
    return Refuse(486, "Busy Here")


def reject() -> Refuse:
    return Refuse(603, "Decline")


def no_answer() -> NoAnswer:
    return NoAnswer()


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class SipMessage:
    """One line of SIPp's short message trace."""

    direction: Literal["received", "sent"]
    call_id: str
    cseq: str
    first_line: str
    at: datetime | None = None  # when SIPp sent or received it, by the machine's clock

    @property
    def kind(self) -> str:
        """The method of a request ("INVITE"), the status code of a response ("486")."""
        words = self.first_line.split()
        if words and words[0].startswith("SIP/"):
            return words[1] if len(words) > 1 else "?"
        return words[0] if words else "?"


@dataclass(frozen=True)
class PhoneResult:
    """What one SIPp process did, once it has exited."""

    name: str
    exit_code: int  # 0 all calls succeeded, 1 one failed, 97 -timeout hit, 99 no call, <0 fatal
    successful: int
    failed: int
    messages: tuple[SipMessage, ...]
    log: str  # the full SIP messages, for debugging
    errors: str

    @property
    def received(self) -> list[str]:
        return [m.kind for m in self.messages if m.direction == "received"]

    @property
    def sent(self) -> list[str]:
        return [m.kind for m in self.messages if m.direction == "sent"]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and self.successful > 0

    def __str__(self) -> str:
        flow = " ".join(("<" if m.direction == "received" else ">") + m.kind for m in self.messages)
        counts = f"exit {self.exit_code}, {self.successful} ok, {self.failed} failed"
        errors = f"\n{self.errors.strip()}" if self.errors.strip() else ""
        return f"{self.name}: {counts}; {flow}{errors}"


def _epoch_time(text: str) -> datetime | None:
    """The short trace's third field, epoch seconds and microseconds ("1796177435.238018")."""
    found = re.fullmatch(r"(\d+)\.(\d{6})", text)
    if found is None:
        return None
    seconds, micros = int(found.group(1)), int(found.group(2))
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)


def _parse_short_messages(text: str) -> list[SipMessage]:
    messages: list[SipMessage] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 7 and fields[3] in ("R", "S"):
            direction: Literal["received", "sent"] = "received" if fields[3] == "R" else "sent"
            at = _epoch_time(fields[2])
            messages.append(SipMessage(direction, fields[4], fields[5], fields[6].strip(), at))
    return messages


def _screen_count(screen: str, counter: str) -> int:
    # The final statistics screen: "  Successful call  |  <periodic>  |  <cumulative>"
    found = re.findall(rf"{counter}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(found[-1]) if found else 0


# ---------------------------------------------------------------------------------------------
# Processes


class SippProcess:
    """One SIPp run, kept by PID, with its traces in ``workdir`` under ``name``."""

    def __init__(
        self,
        name: str,
        scenario: Path,
        *,
        workdir: Path,
        port: int,
        media_port: int,
        calls: int = 1,
        timeout_s: float = 90,
        remote: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.port = port
        self.media_port = media_port
        self._files = {kind: workdir / f"{name}.{kind}.log" for kind in ("msg", "short", "err")}
        self._stdout = workdir / f"{name}.screen.log"
        self._stderr = workdir / f"{name}.stderr.log"
        self.argv = [
            SIPP,
            *([remote] if remote else []),
            "-sf", str(scenario),
            "-i", LOOPBACK, "-p", str(port),
            "-mi", LOOPBACK, "-mp", str(media_port),
            "-cp", str(free_udp_port()),  # SIPp's control socket, 8888 by default: shared
            "-m", str(calls),
            "-nostdin",
            "-aa",  # 200 OK to INFO, NOTIFY, OPTIONS and UPDATE inside a call
            "-timeout", f"{max(int(timeout_s), 1)}s",  # a forgotten phone exits by itself
            "-trace_msg", "-message_file", str(self._files["msg"]),
            "-trace_shortmsg", "-shortmessage_file", str(self._files["short"]),
            "-trace_err", "-error_file", str(self._files["err"]),
            *extra_args,
        ]  # fmt: skip
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _open_outputs(self) -> tuple[IO[bytes], IO[bytes]]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self._stdout.open("wb"), self._stderr.open("wb")

    async def start(self, ready_timeout: float = 5.0) -> None:
        """Spawn SIPp and return once its SIP and media ports are bound."""
        if self._proc is not None:
            raise PhoneError(f"{self.name}: already started")
        stdout, stderr = self._open_outputs()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C of pytest is for pytest; teardown stops us
            )
        except OSError as err:
            raise PhoneError(f"{self.name}: cannot run {SIPP}: {err}") from err
        finally:
            stdout.close()
            stderr.close()
        try:
            await self._wait_listening(self._proc, ready_timeout)
        except BaseException:
            self._kill()
            raise

    async def _wait_listening(self, proc: asyncio.subprocess.Process, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not {self.port, self.media_port} <= _bound_udp_ports():
            if proc.returncode is not None or loop.time() > deadline:
                raise PhoneError(f"{self.name}: SIPp did not start\n{self._diagnostics()}")
            await asyncio.sleep(0.02)

    async def finished(self, timeout: float) -> PhoneResult:
        """Wait for SIPp to exit (it does after its ``calls`` calls) and say how it went."""
        if self._proc is None:
            raise PhoneError(f"{self.name}: never started")
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError as err:
            seen = " ".join(m.kind for m in self.messages())
            raise PhoneTimeout(
                f"{self.name}: SIPp still running after {timeout:g} s; SIP so far: {seen or '-'}"
            ) from err
        return self.result()

    async def stop(self) -> None:
        """Stop SIPp if it still runs: SIGTERM, then SIGKILL. Safe to call twice."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        try:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                self._kill()
                await proc.wait()
        except asyncio.CancelledError:
            self._kill()  # asyncio's child watcher still reaps it
            raise

    def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def messages(self) -> list[SipMessage]:
        """The SIP messages so far (SIPp writes each one as it goes)."""
        return _parse_short_messages(self._read(self._files["short"]))

    def result(self) -> PhoneResult:
        if self._proc is None or self._proc.returncode is None:
            raise PhoneError(f"{self.name}: SIPp has not exited")
        screen = self._read(self._stdout)
        return PhoneResult(
            name=self.name,
            exit_code=self._proc.returncode,
            successful=_screen_count(screen, "Successful call"),
            failed=_screen_count(screen, "Failed call"),
            messages=tuple(self.messages()),
            log=self._read(self._files["msg"]),
            errors=self._read(self._files["err"]),
        )

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _diagnostics(self) -> str:
        return "\n".join(
            text.strip()[-2000:]
            for text in (self._read(self._stderr), self._read(self._files["err"]))
            if text.strip()
        )


class _SippPhone:
    """What a Phone and a Caller share: a rendered scenario run by one SippProcess."""

    process: SippProcess

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def start(self) -> None:
        await self.process.start()

    async def finished(self, timeout: float) -> PhoneResult:
        return await self.process.finished(timeout)

    async def stop(self) -> None:
        await self.process.stop()

    def messages(self) -> list[SipMessage]:
        return self.process.messages()

    async def wait_received(self, kind: str, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``count`` messages of ``kind`` ("INVITE", "BYE", "200") have arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._count_received(kind) < count:
            if loop.time() > deadline:
                seen = " ".join(m.kind for m in self.messages()) or "-"
                raise PhoneTimeout(
                    f"{self.process.name}: {count} x {kind} not received in {timeout:g} s;"
                    f" SIP so far: {seen}"
                )
            await asyncio.sleep(0.05)

    def _count_received(self, kind: str) -> int:
        # Retransmissions carry the same Call-ID and CSeq: count each transaction once.
        received = [m for m in self.messages() if m.direction == "received" and m.kind == kind]
        return len({(m.call_id, m.cseq) for m in received})


_serial = itertools.count(1)


def _trace_name(kind: str, who: str) -> str:
    # Numbered in the order the phones were made, so a test's workdir reads like its story,
    # and a replaced phone does not overwrite the traces of the one before.
    return f"{next(_serial):02d}-{kind}-{re.sub(r'[^A-Za-z0-9+_-]', '_', who)}"


class Phone(_SippPhone):
    """One simulated phone: a SIPp UAS on 127.0.0.1:``port`` playing ``behaviour``.

    It takes ``calls`` calls, one at a time, then SIPp exits. ``announce_media_port`` puts
    another RTP port in the answer's SDP, for tests that capture the phone's key presses.
    """

    def __init__(
        self,
        number: str,
        port: int,
        media_port: int,
        behaviour: Behaviour,
        calls: int = 1,
        *,
        workdir: Path,
        timeout_s: float = 90,
        announce_media_port: int | None = None,
    ) -> None:
        self.number = number
        self.port = port
        self.behaviour = behaviour
        name = _trace_name("phone", number)
        workdir.mkdir(parents=True, exist_ok=True)
        extra = ["-s", number]
        match behaviour:
            case Answer():
                greeting = b""
                if behaviour.greeting is not None:
                    greeting = behaviour.greeting.render(workdir, name)
                scenario = _render(
                    "uas_answer.xml",
                    workdir / f"{name}.xml",
                    MEDIA_PORT=str(announce_media_port or "[media_port]"),
                    KEYS=_press_steps(behaviour.keys, workdir, name, greeting),
                    HANG_UP=_hang_up_step(behaviour.hangup_after_ms),
                )
            case Refuse():
                scenario = _render(
                    "uas_refuse.xml",
                    workdir / f"{name}.xml",
                    STATUS=str(behaviour.status),
                    REASON=behaviour.reason,
                )
            case NoAnswer():
                scenario = SCENARIOS / "uas_no_answer.xml"
        self.process = SippProcess(
            name,
            scenario,
            workdir=workdir,
            port=port,
            media_port=media_port,
            calls=calls,
            timeout_s=timeout_s,
            extra_args=extra,
        )

    @property
    def uri(self) -> str:
        """The address Asterisk must send the INVITE to."""
        return f"sip:{self.number}@{LOOPBACK}:{self.port}"

    @property
    def dial_string(self) -> str:
        """The sandbox's dial string for this phone (see sandbox/conf/pjsip.conf)."""
        return f"PJSIP/phone-network/{self.uri}"

    def invites_received(self) -> int:
        return self._count_received("INVITE")


class Caller(_SippPhone):
    """A SIPp UAC that places one call to ``sip:EXTENSION@target`` from ``from_number``.

    Once answered it presses ``keys`` (e.g. ``[Keys("1"), Keys("1234#", after_ms=3000)]``),
    then hangs up ``hangup_after_ms`` after the last press, or waits for the far end's BYE.
    """

    def __init__(
        self,
        extension: str,
        *,
        port: int,
        media_port: int,
        workdir: Path,
        from_number: str = "0000",
        keys: Sequence[Keys] = (),
        hangup_after_ms: int | None = None,
        target: str = ASTERISK_SIP,
        timeout_s: float = 90,
        announce_media_port: int | None = None,
    ) -> None:
        self.extension = extension
        name = _trace_name("caller", f"{from_number}-to-{extension}")
        workdir.mkdir(parents=True, exist_ok=True)
        scenario = _render(
            "caller.xml",
            workdir / f"{name}.xml",
            MEDIA_PORT=str(announce_media_port or "[media_port]"),
            KEYS=_press_steps(keys, workdir, name),
            HANG_UP=_hang_up_step(hangup_after_ms),
        )
        self.process = SippProcess(
            name,
            scenario,
            workdir=workdir,
            port=port,
            media_port=media_port,
            timeout_s=timeout_s,
            remote=target,
            extra_args=["-s", extension, "-key", "from_user", from_number],
        )


# ---------------------------------------------------------------------------------------------
# Test fixture helper


def dial_routes(
    phones: Iterable[Phone], fallback: str = f"PJSIP/phone-network/sip:{{number}}@{LOOPBACK}:9"
) -> dict[str, str]:
    """``IVR_DIAL_ROUTES`` that send each phone's number to its SIPp.

    Routes match the longest prefix, so a full number always wins. The engine requires a
    ``*`` route: by default it points at the discard port, where nothing answers.
    """
    routes = {"*": fallback}
    routes.update({phone.number: phone.dial_string for phone in phones})
    return routes


class PhoneBook:
    """Makes phones and callers with fresh ports, and stops every one of them in ``aclose``."""

    def __init__(self, workdir: Path, *, asterisk: str = ASTERISK_SIP) -> None:
        self.workdir = workdir
        self.asterisk = asterisk
        self.phones: dict[str, Phone] = {}
        self._all: list[_SippPhone] = []

    def add(
        self,
        number: str,
        behaviour: Behaviour,
        calls: int = 1,
        *,
        timeout_s: float = 90,
        announce_media_port: int | None = None,
    ) -> Phone:
        """A phone for ``number``, not started yet (its route exists already)."""
        if number in self.phones:
            raise PhoneError(f"phone {number} exists already")
        return self._register(
            number, free_udp_port(), behaviour, calls, timeout_s, announce_media_port
        )

    def _register(
        self,
        number: str,
        port: int,
        behaviour: Behaviour,
        calls: int,
        timeout_s: float,
        announce_media_port: int | None,
    ) -> Phone:
        """A new phone for ``number`` on SIP ``port``: the one the book rings and stops."""
        phone = Phone(
            number,
            port,
            free_udp_port(span=4),  # SIPp binds media_port and media_port + 2
            behaviour,
            calls,
            workdir=self.workdir,
            timeout_s=timeout_s,
            announce_media_port=announce_media_port,
        )
        self.phones[number] = phone
        self._all.append(phone)
        return phone

    async def phone(
        self,
        number: str,
        behaviour: Behaviour,
        calls: int = 1,
        *,
        timeout_s: float = 90,
        announce_media_port: int | None = None,
    ) -> Phone:
        """A started phone for ``number``, ready to be rung."""
        phone = self.add(
            number, behaviour, calls, timeout_s=timeout_s, announce_media_port=announce_media_port
        )
        await phone.start()
        return phone

    async def replace(
        self,
        number: str,
        behaviour: Behaviour,
        calls: int = 1,
        *,
        timeout_s: float = 90,
        announce_media_port: int | None = None,
    ) -> Phone:
        """A new, started phone for ``number`` on the same SIP port as the one it replaces.

        The engine's dial routes are fixed when it starts: this is how a test makes the
        same number behave differently the next time (busy now, answers on the retry).
        The old phone is stopped first if it still runs.
        """
        old = self.phones.get(number)
        if old is None:
            raise PhoneError(f"no phone {number} to replace")
        await old.stop()
        phone = self._register(number, old.port, behaviour, calls, timeout_s, announce_media_port)
        await phone.start()
        return phone

    async def call(
        self,
        extension: str,
        *,
        from_number: str = "0000",
        keys: Sequence[Keys] = (),
        hangup_after_ms: int | None = None,
        target: str | None = None,
        timeout_s: float = 90,
        announce_media_port: int | None = None,
    ) -> Caller:
        """A started Caller: it calls ``extension`` at Asterisk (or ``target``) at once."""
        caller = Caller(
            extension,
            port=free_udp_port(),
            media_port=free_udp_port(span=4),
            workdir=self.workdir,
            from_number=from_number,
            keys=keys,
            hangup_after_ms=hangup_after_ms,
            target=target or self.asterisk,
            timeout_s=timeout_s,
            announce_media_port=announce_media_port,
        )
        self._all.append(caller)
        await caller.start()
        return caller

    def running(self) -> list[int]:
        """PIDs of the SIPp processes of this book that still run."""
        return [s.pid for s in self._all if s.process.running and s.pid is not None]

    def routes(self, fallback: str | None = None) -> dict[str, str]:
        if fallback is None:
            return dial_routes(self.phones.values())
        return dial_routes(self.phones.values(), fallback)

    async def aclose(self) -> None:
        """Stop every SIPp still running; one failure does not keep the others alive."""
        results = await asyncio.gather(*(sipp.stop() for sipp in self._all), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
