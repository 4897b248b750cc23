"""MQTT output for audience events: a background publisher that never slows the frame loop.

``publish()`` only appends to a bounded in-memory queue. One thread owns the paho client: it connects
(with back-off when the broker is away), sends one QoS 1 message at a time and takes the next only once
the broker acknowledged it, so delivery is in order and at least once (a message in flight when the
connection drops is sent again, marked duplicate; readers de-duplicate). When the queue is full the oldest
message is dropped and counted, or, with a spool folder, messages go to a file there and come back in
order; whatever is still queued at the end goes to the spool too, for the next run to send first.

Topics: ``PREFIX/DEVICE/visits``, ``PREFIX/DEVICE/aggregates`` (QoS 1) and a retained
``PREFIX/DEVICE/status`` ("online", or "offline" on a clean exit and as the broker-sent last will).

paho-mqtt is the ``edgeag[mqtt]`` extra and is imported only here.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from edgeag.errors import BadInputError

_DOWN, _CONNECTING, _UP = 0, 1, 2
_AUTH_REFUSED = (4, 5, 134, 135)  # v3.1.1 bad user name or password / not authorised; v5 equivalents


@dataclass(frozen=True)
class MqttTarget:
    """Where and how to connect, parsed from ``mqtt[s]://[user:pass@]host[:port]/PREFIX[?ca=&cert=&key=]``."""

    host: str
    port: int
    prefix: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


def parse_mqtt_url(url: str, option: str = "--mqtt") -> MqttTarget:
    """Parse and check an MQTT URL; BadInputError (exit 2) with one line saying what is wrong.

    A user without a password in the URL takes it from $EDGEAG_MQTT_PASSWORD.
    """
    bad = f"{option}: expected mqtt://[user:pass@]host[:port]/PREFIX (or mqtts://), got {url!r}"
    try:
        u = urlsplit(url.strip())
        port = u.port
    except ValueError:
        raise BadInputError(bad) from None
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise BadInputError(bad)
    prefix = u.path.strip("/")
    if not prefix or any(c in prefix for c in "+#") or "//" in prefix or "#" in url:
        raise BadInputError(f"{option}: the URL needs a topic prefix without + or #, e.g. mqtt://host/shop1; "
                            f"got {url!r}")
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    unknown = set(q) - {"ca", "cert", "key"}
    if unknown:
        raise BadInputError(f"{option}: unknown URL parameter(s) {', '.join(sorted(unknown))} (ca, cert, key)")
    tls = u.scheme == "mqtts"
    if q and not tls:
        raise BadInputError(f"{option}: ca/cert/key need mqtts://")
    for k in ("ca", "cert", "key"):
        if k in q and not Path(q[k]).is_file():
            raise BadInputError(f"{option}: {k} file not found: {q[k]}")
    if ("cert" in q) != ("key" in q):
        raise BadInputError(f"{option}: give both cert and key for a client certificate")
    password = unquote(u.password) if u.password is not None else None
    if u.username and password is None:  # kept out of the URL, which other users see in the process list
        password = os.environ.get("EDGEAG_MQTT_PASSWORD")
    return MqttTarget(u.hostname, port or (8883 if tls else 1883), prefix,
                      unquote(u.username) if u.username else None, password,
                      tls, q.get("ca"), q.get("cert"), q.get("key"))


def make_client(target: MqttTarget, client_id: str):
    """A paho client configured for ``target`` (credentials, TLS); not connected."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise BadInputError("--mqtt needs paho-mqtt: pip install 'edgeag[mqtt]'") from None
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if target.username is not None:
        c.username_pw_set(target.username, target.password)
    if target.tls:
        c.tls_set(ca_certs=target.ca, certfile=target.cert, keyfile=target.key)
    return c


def connect_once(client, target: MqttTarget, timeout: float = 5.0) -> str | None:
    """Connect synchronously (before any thread uses ``client``).

    Returns None when connected, or why the broker is unreachable (the caller may queue and retry).
    Raises BadInputError for what retrying cannot fix: unknown host, refused credentials, bad TLS.
    """
    import ssl

    try:
        socket.getaddrinfo(target.host, target.port)
    except socket.gaierror:
        raise BadInputError(f"--mqtt: unknown host {target.host!r}") from None
    result: list = []
    client.on_connect = lambda c, u, flags, rc, props: result.append(rc)
    client.connect_async(target.host, target.port, keepalive=30)
    try:
        client.reconnect()
    except ssl.SSLError as exc:
        raise BadInputError(f"--mqtt: TLS handshake with {target.host}:{target.port} failed: "
                            f"{exc.reason or exc}") from None
    except OSError as exc:
        return exc.strerror or str(exc)
    deadline = time.monotonic() + timeout
    while not result and time.monotonic() < deadline:
        if client.loop(timeout=0.1) != 0 and not result:
            return "connection lost before the broker answered"
    if not result:
        return "no answer from the broker"
    rc = result[0]
    if rc.is_failure:
        if rc.value in _AUTH_REFUSED:
            raise BadInputError(f"--mqtt: {target.host}:{target.port} refused the credentials ({rc})")
        raise BadInputError(f"--mqtt: {target.host}:{target.port} refused the connection ({rc})")
    return None


class MqttPublisher:
    """Publishes events for one device from a background thread (see the module docstring).

    Args:
        target: from ``parse_mqtt_url``.
        device: the device name in the topics.
        max_queue: messages held in memory while the broker is away.
        spool_dir: folder for messages beyond ``max_queue`` and those left at exit (None: drop the oldest).
        warn: where messages go (stderr in the CLI); called from the publisher thread too.
    """

    def __init__(self, target: MqttTarget, device: str, *, max_queue: int = 10000,
                 spool_dir: str | Path | None = None, warn: Callable[[str], None] | None = None,
                 max_backoff_s: float = 10.0) -> None:
        if not device or any(c in device for c in "/+#"):
            raise BadInputError(f"--device: a name without / + or #, got {device!r}")
        self.target = target
        self.device = device
        self.base = f"{target.prefix}/{device}"
        self.max_queue = max_queue
        self.max_backoff_s = max_backoff_s
        self.warn = warn or (lambda msg: None)
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._dropped = 0  # since the last take_dropped()
        self.dropped_total = 0
        self.delivered = 0
        self._spool = _Spool(Path(spool_dir), device) if spool_dir else None
        self._state = _DOWN
        self._inflight = None  # the message sent and not yet acknowledged (owned by the thread)
        self._client = make_client(target, f"edgeag-{device}-{uuid.uuid4().hex[:8]}")
        self._client.will_set(f"{self.base}/status", "offline", qos=1, retain=True)
        self._thread = threading.Thread(target=self._run, name="edgeag-mqtt", daemon=True)

    def start(self) -> None:
        """Connect once (exit-2 errors surface here), then hand the client to the background thread."""
        why = connect_once(self._client, self.target)
        if why is None:
            self._on_up()
        else:
            self.warn(f"MQTT broker {self.target.host}:{self.target.port} not reachable ({why}): "
                      "queueing, retrying in the background")
        c = self._client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self._thread.start()

    def publish(self, kind: str, event: dict) -> None:
        """Queue one event for ``PREFIX/DEVICE/kind``; never blocks on the network."""
        item = (f"{self.base}/{kind}", json.dumps(event, separators=(",", ":")))
        with self._lock:
            if self._spool is not None and (self._spool.count or len(self._queue) >= self.max_queue):
                self._spool.append([item])
            else:
                if len(self._queue) >= self.max_queue:
                    self._queue.popleft()
                    self._dropped += 1
                    self.dropped_total += 1
                    if self.dropped_total in (1, 10, 100) or self.dropped_total % 1000 == 0:
                        self.warn(f"MQTT queue full ({self.max_queue}): {self.dropped_total} message(s) dropped")
                self._queue.append(item)
        self._wake.set()

    def take_dropped(self) -> int:
        """Messages dropped since the last call (for the next aggregate)."""
        with self._lock:
            n, self._dropped = self._dropped, 0
        return n

    def pending(self) -> int:
        """Messages not yet delivered (queued, spooled or in flight)."""
        with self._lock:
            return len(self._queue) + (self._spool.count if self._spool else 0) + (self._inflight is not None)

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is queued (up to ``timeout_s``), say offline, disconnect. Returns messages not sent
        (kept in the spool folder if there is one, else lost; the caller says so)."""
        if not self._thread.is_alive():
            return self.pending()
        if self.pending():
            self.warn(f"MQTT: delivering {self.pending()} queued message(s) (up to {timeout_s:g} s)")
        self._deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s + 5)
        left = self.pending()
        with self._lock:
            if self._inflight is not None:  # not acknowledged: it may or may not have arrived, so keep it
                self._queue.appendleft(self._inflight)
                self._inflight = None
            if self._spool is not None and self._queue:
                self._spool.prepend(list(self._queue))
                self._queue.clear()
        return left

    # -- the publisher thread ------------------------------------------------------------------------

    def _on_up(self) -> None:
        self._state = _UP
        self._client.publish(f"{self.base}/status", "online", qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            self._state = _DOWN
            self.warn(f"MQTT broker refused the connection ({rc}); retrying")
            return
        self._on_up()

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        self._state = _DOWN

    def _next(self):
        """Take the oldest queued message (refilling from the spool); None when there is none."""
        with self._lock:
            if not self._queue and self._spool is not None and self._spool.count:
                self._queue.extend(self._spool.take(self.max_queue))
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        c = self._client
        backoff, next_try, connecting_since, info = 0.5, 0.0, 0.0, None
        while True:
            now = time.monotonic()
            if self._stop.is_set() and (now > self._deadline or (self._inflight is None and not self.pending())):
                break
            if self._state == _DOWN:
                if now < next_try:
                    self._wake.wait(min(next_try - now, 0.2))
                    self._wake.clear()
                    continue
                try:
                    c.reconnect()  # a message in flight at the cut is sent again once connected
                    self._state, connecting_since = _CONNECTING, now
                except OSError:
                    pass
                next_try, backoff = now + backoff, min(backoff * 2, self.max_backoff_s)
                continue
            if c.loop(timeout=0.02) != 0 or (self._state == _CONNECTING and now - connecting_since > 10):
                self._state = _DOWN
                continue
            if self._state != _UP:
                continue
            backoff = 0.5
            if self._inflight is None and (item := self._next()) is not None:
                self._inflight, info = item, c.publish(item[0], item[1], qos=1)
            if self._inflight is not None and info.is_published():
                self._inflight = None
                self.delivered += 1
            elif self._inflight is None:
                self._wake.wait(0.05)
                self._wake.clear()
        self._say_offline()

    def _say_offline(self) -> None:
        c = self._client
        if self._state != _UP:
            return
        info = c.publish(f"{self.base}/status", "offline", qos=1, retain=True)
        end = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < end and c.loop(timeout=0.05) == 0:
            pass
        c.disconnect()
        c.loop(timeout=0.05)


class _Spool:
    """Messages kept in ``DIR/DEVICE.jsonl`` (oldest first), used under the publisher's lock."""

    def __init__(self, folder: Path, device: str) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"--mqtt-spool: cannot create {folder}: {exc.strerror}") from None
        self.path = folder / f"{device}.jsonl"
        self.count = sum(1 for _ in self.path.open()) if self.path.is_file() else 0

    def append(self, items: list) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(it) + "\n" for it in items)
        self.count += len(items)

    def prepend(self, items: list) -> None:
        rest = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        self._write([json.dumps(it) + "\n" for it in items], rest)

    def take(self, n: int) -> list:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True) if self.path.is_file() else []
        self._write([], "".join(lines[n:]))
        return [tuple(json.loads(line)) for line in lines[:n] if line.strip()]

    def _write(self, first: list, rest: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(first)
            f.write(rest)
        os.replace(tmp, self.path)
        self.count = len(first) + rest.count("\n")
        if not self.count:
            self.path.unlink(missing_ok=True)
