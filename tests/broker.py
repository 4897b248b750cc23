"""A real Eclipse Mosquitto for the tests: started on a free loopback port with a generated config."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed (apt-get install mosquitto)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """``start()``/``stop()`` (restartable on the same port); ``users={"name": "password"}`` turns auth on."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None) -> None:
        self.folder = folder
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        # Persistence keeps the listeners' sessions (subscriptions, queued QoS 1 messages) over a restart.
        conf = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {folder}/",
                "log_dest stderr", "log_type error"]
        if tls:  # a TLS listener with the server certificate of ``make_tls_files``
            conf += [f"cafile {tls['ca']}", f"certfile {tls['server']}", f"keyfile {tls['server_key']}"]
        if os.geteuid() == 0:  # as root mosquitto would switch to its own user, who cannot read the temp folder
            conf.append("user root")
        if users:
            pw = folder / "passwd"
            pw.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), name, password], check=True,
                               capture_output=True)
            conf += ["allow_anonymous false", f"password_file {pw}"]
        else:
            conf.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n")

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[:300]}")
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def url(self, prefix: str = "test", user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{cred}127.0.0.1:{self.port}/{prefix}"


class Listener:
    """Subscribes (QoS 1) and keeps every message as (topic, payload, retain); reconnects on its own."""

    def __init__(self, broker: Mosquitto, topic: str = "#", user: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{broker.port}",
                                  clean_session=False)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload.decode(), bool(m.retain)))
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "listener could not subscribe"

    def events(self, kind: str | None = None) -> list[dict]:
        return [json.loads(p) for t, p, _ in list(self.messages)
                if not t.endswith("/status") and (kind is None or t.endswith("/" + kind))]

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI), plus an unrelated CA."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    for ca in ("ca", "other_ca"):
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.pem")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.pem")
    return {k: folder / f"{k}.pem" for k in ("ca", "other_ca", "server")} | {"server_key": folder / "server.key"}
