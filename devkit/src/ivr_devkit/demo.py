"""``ivr-engine demo``: one scripted consultation on the sandbox, with simulated phones.

A client asks for an expert over the HTTP API; the expert's phone (a SIPp UAS) rings,
answers and presses 1; the client's phone rings, answers, talks for a few seconds and hangs
up. Then a second client calls the service number (a SIPp UAC), types the expert's code,
holds (hearing their place in line) and is bridged to the expert on their own call. The
transcripts come from what PostgreSQL recorded. Everything started here is stopped
at the end, unless ``--keep``: then it stays up until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import tempfile
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.controller import Controller

from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_devkit.sandbox import Sandbox
from ivr_devkit.simphones import Keys, PhoneBook, answer
from ivr_engine.config import settings_from_env
from ivr_engine.engine import Engine
from ivr_engine.store import accounts, waiting
from ivr_engine.transcript import transcript

EXPERT_PHONE = "+390600000101"
CLIENT_PHONE = "+393330000202"
INBOUND_CALLER = "+393330000203"
SERVICE_NUMBER = "0200000001"  # the demo's service number (IVR_SERVICE_NUMBERS)
# KEEP=1: numbers that ring the sandbox's softphone accounts, for an operator to play with.
SOFTPHONE_EXPERT = "+390600000991"  # rings operator1
SOFTPHONE_CLIENT = "+393330000992"  # rings operator2
# Demo-only sign-ins of the panel, printed by the demo and listed in the README.
DEMO_LOGINS = {
    "anna@example.org": "anna-demo-2026",
    "sofia@example.org": "sofia-demo-2026",
    "staff@example.org": "staff-demo-2026",
}


async def run_demo(*, keep: bool = False) -> int:
    box = Sandbox()
    cluster = ThrowawayCluster()
    print("starting PostgreSQL and the Asterisk sandbox ...")
    dsn = await asyncio.to_thread(cluster.start)
    info = await asyncio.to_thread(box.up)
    workdir = Path(tempfile.mkdtemp(prefix="ivr-demo-"))
    phones = PhoneBook(workdir)
    engine: Engine | None = None
    mailbox = _Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_tcp_port())
    smtp.start()
    try:
        # Twice: the API request, then the call in (the caller hangs up after talking).
        await phones.phone(EXPERT_PHONE, answer("1", dtmf_delay_ms=1500), calls=2)
        await phones.phone(CLIENT_PHONE, answer(hangup_after_ms=10000))
        token = secrets.token_urlsafe(16)
        settings = settings_from_env(
            info.engine_env(),
            database_url=dsn,
            api_token=token,
            link_secret=secrets.token_urlsafe(16),
            http_port=8080 if _tcp_port_free(8080) else 0,
            dial_routes={
                **phones.routes(),
                SOFTPHONE_EXPERT: "PJSIP/operator1",
                SOFTPHONE_CLIENT: "PJSIP/operator2",
            },
            ring_timeout=15,
            service_numbers={SERVICE_NUMBER: {"language": "en"}},
            hold_announce_seconds=5,
            smtp_port=smtp.port,
            mail_from="ivr-engine@demo.invalid",
        )
        engine = Engine(settings)
        await engine.start()
        await engine.ari.wait_connected(15)
        base = f"http://127.0.0.1:{engine.http_port}"
        expert_id, request_id = await _consultation(base, token)
        state = await _wait_final(engine, request_id, timeout=90)
        print()
        print(f"request {request_id}: {state}")
        for line in await transcript(engine.pool, request_id):
            print("  " + line)
        try:
            await asyncio.wait_for(mailbox.arrived.wait(), 20)
            print()
            print("email received by the demo's SMTP server:")
            for line in mailbox.text.splitlines():
                print("  | " + line)
        except TimeoutError:
            print("no email arrived within 20 s")
        inbound_state = await _inbound_consultation(engine, phones, expert_id)
        if keep:
            await _panel_demo(engine, base, token, expert_id)
            _print_access(info, base, token, dsn)
            await _wait_for_ctrl_c()
        return 0 if state == inbound_state == "completed" else 1
    finally:
        if engine is not None:
            await engine.close()
        await phones.aclose()
        smtp.stop()
        if not keep:
            await asyncio.to_thread(box.down)
        await asyncio.to_thread(cluster.stop)


class _Mailbox:
    """A real SMTP server's handler (aiosmtpd) that keeps the first message."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.text = ""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        body = message.get_body(preferencelist=("plain",))
        content = body.get_content() if body is not None else ""
        self.text = f"To: {message['To']}\nSubject: {message['Subject']}\n\n{content}"
        self.arrived.set()
        return "250 OK"


async def _inbound_consultation(engine: Engine, phones: PhoneBook, expert_id: int) -> str:
    """A client calls the service number, types the expert's code and holds until bridged."""
    print()
    print(f"a client calls {SERVICE_NUMBER} from {INBOUND_CALLER} and types {expert_id}# ...")
    caller = await phones.call(
        SERVICE_NUMBER,
        from_number=INBOUND_CALLER.lstrip("+"),
        keys=(Keys(f"{expert_id}#", after_ms=2000),),
        hangup_after_ms=25000,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    request_id = None
    while request_id is None and loop.time() < deadline:
        request_id = await engine.pool.fetchval("SELECT request_id FROM inbound_calls")
        await asyncio.sleep(0.2)
    if request_id is None:
        print("the caller never joined the waiting list")
        await caller.stop()
        return "no request"
    state = await _wait_final(engine, int(request_id), timeout=90)
    await caller.finished(30)
    print(f"request {request_id} (called in): {state}")
    for line in await transcript(engine.pool, int(request_id)):
        print("  " + line)
    return state


def _tcp_port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _consultation(base: str, token: str) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        expert: dict[str, Any] = {
            "alias": "Anna",
            "phone": EXPERT_PHONE,
            "rate_per_minute": "1.50",
            "email": "anna@example.org",
        }
        async with http.post(f"{base}/api/v1/experts", json=expert) as resp:
            expert_id = (await resp.json())["id"]
        body = {"client_phone": CLIENT_PHONE, "client_alias": "Marco"}
        async with http.post(f"{base}/api/v1/experts/{expert_id}/requests", json=body) as resp:
            created = await resp.json()
        print(f"POST /api/v1/experts/{expert_id}/requests -> {resp.status} {created}")
        return int(expert_id), int(created["id"])


async def _panel_demo(engine: Engine, base: str, token: str, anna: int) -> None:
    """Sign-ins for the panel, and something to look at: Anna on a pause with two clients
    waiting; Sofia (Cartomancy) reachable on the softphone account operator1."""
    assert engine.pool is not None
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        sofia_body = {
            "alias": "Sofia",
            "phone": SOFTPHONE_EXPERT,
            "rate_per_minute": "2.10",
            "category": "cartomancy",
            "email": "sofia@example.org",
            "language": "it",
        }
        async with http.post(f"{base}/api/v1/experts", json=sofia_body) as resp:
            sofia = int((await resp.json())["id"])
        await http.post(f"{base}/api/v1/experts/{anna}/pause")
        for phone, alias in (("+393330000301", "Giulia"), ("+393330000302", "Paolo")):
            body = {"client_phone": phone, "client_alias": alias, "client_email": "c@example.org"}
            await http.post(f"{base}/api/v1/experts/{anna}/requests", json=body)
    for email, password in DEMO_LOGINS.items():
        expert_id = {"anna": anna, "sofia": sofia}.get(email.split("@")[0])
        role = "expert" if expert_id else "admin"
        await accounts.create(
            engine.pool, email=email, password=password, role=role, expert_id=expert_id
        )
    print()
    print(f"Control panel: {base}/login   (demo sign-ins, for this demo only)")
    for email, password in DEMO_LOGINS.items():
        print(f"  {email:<20} {password}")
    print("Sofia's phone is the softphone account operator1; a client on operator2 asks with:")
    print(
        f"  curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json'"
        f' -d \'{{"client_phone": "{SOFTPHONE_CLIENT}", "client_alias": "Luca"}}\''
        f" {base}/api/v1/experts/{sofia}/requests"
    )


async def _wait_final(engine: Engine, request_id: int, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state = ""
    while loop.time() < deadline:
        view = await waiting.get(engine.pool, request_id)
        state = view.state.value
        if view.state.is_final:
            return state
        await asyncio.sleep(0.2)
    return f"{state} (timed out)"


def _print_access(info: Any, base: str, token: str, dsn: str) -> None:
    print()
    print("KEEP=1: the engine and PostgreSQL run until Ctrl-C; the sandbox Asterisk keeps")
    print("running after that, until `.venv/bin/ivr-engine sandbox down`.")
    print(f"  HTTP API     {base}   (Authorization: Bearer {token})")
    print(f"  PostgreSQL   {dsn}")
    print(f"  ARI          {info.ari_url}  user {info.ari_user}")
    print(f"  AMI          {info.ami_host}:{info.ami_port}  user {info.ami_user}")
    print(f"  SIP          127.0.0.1:{info.sip_port}  softphones: {', '.join(info.operators)}")
    print("  secrets      ~/.cache/ivr-engine/sandbox-secrets.json")


async def _wait_for_ctrl_c() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
