"""The panel through a real nginx with the shipped locations (deploy/nginx/), Host left at
nginx's default: sign in, submit a form, follow the live page.

nginx (Debian's package, installed by scripts/install-system-deps.sh) runs with its own
config and prefix directory on a free loopback port, and is stopped by its PID."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from ivr_engine.engine import Engine
from tests.browser.conftest import TOKEN, Site, shot
from tests.conftest import asterisk_away

pytestmark = pytest.mark.browser

NGINX = "/usr/sbin/nginx"
LOCATIONS = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "ivr-engine-locations.conf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(prefix: Path, listen: int, engine_port: int) -> str:
    user = "user root root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream ivr_engine {{ server 127.0.0.1:{engine_port}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{listen};
        include {LOCATIONS};
    }}
}}
"""


async def _wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        assert process.returncode is None, "nginx exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


@pytest.fixture
async def proxied(dsn: str, browser: Browser, tmp_path: Path) -> AsyncIterator[tuple[Site, Path]]:
    if shutil.which(NGINX) is None:
        pytest.fail(f"{NGINX} is missing: run `make system-deps` (Debian nginx)")
    listen = _free_port()
    settings = asterisk_away(dsn, TOKEN).model_copy(
        update={
            "public_url": f"http://127.0.0.1:{listen}",
            "trusted_proxies": (ip_network("127.0.0.1/32"),),
        }
    )
    engine = Engine(settings)
    await engine.start()
    assert engine.http_port is not None
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(_config(prefix, listen, engine.http_port))
    nginx = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    site = Site(engine, browser, TOKEN)
    try:
        await _wait_listening(listen, nginx)
        site.base = f"http://127.0.0.1:{listen}"
        yield site, prefix
    finally:
        await site.close()
        if nginx.returncode is None:
            nginx.send_signal(signal.SIGQUIT)  # graceful stop, by PID
            try:
                await asyncio.wait_for(nginx.wait(), 10)
            except TimeoutError:
                nginx.kill()
                await nginx.wait()
        await engine.close()


async def test_panel_works_through_nginx(proxied: tuple[Site, Path]) -> None:
    site, prefix = proxied
    expert_id = await site.expert("+390600000901", "anna@example.org")  # the API, via nginx
    page = await site.sign_in("anna@example.org")  # a POST form: CSRF checked on Origin
    assert page.url == site.base + "/panel"
    await expect(page.locator("#live-calls")).to_have_attribute("data-live", "open")

    request_id = await site.request(expert_id, "+393330000902", alias="Marco")
    row = page.locator(f"tr[data-request-id='{request_id}']")
    await expect(row).to_contain_text("Marco")  # the event stream came through nginx

    await page.goto(site.base + "/panel/availability")
    await page.locator("#pause").click()  # another form
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "paused")
    status, body = await site.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert status == 200 and body["reason"] == "paused"
    await shot(page, "behind-nginx")

    access = (prefix / "access.log").read_text()
    assert '"POST /login HTTP/1.1" 303' in access and "/panel/availability" in access
    status, _ = await site.api("GET", "/metrics")
    assert status == 404  # the example keeps the figures off the public side
