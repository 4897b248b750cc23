"""MQTT output against a real Mosquitto on loopback: round trip, reconnection with queue, last will,
refused credentials, bad URLs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from broker import Listener, Mosquitto, make_tls_files, needs_mosquitto
from edgeag.errors import BadInputError

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'edgeag[mqtt]')")

from edgeag.edge.mqtt import MqttPublisher, parse_mqtt_url  # noqa: E402


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def test_parse_mqtt_urls(tmp_path, monkeypatch):
    t = parse_mqtt_url("mqtt://ann:s%40cret@broker.local:1884/shop/1")
    assert (t.host, t.port, t.prefix, t.username, t.password, t.tls) == ("broker.local", 1884, "shop/1", "ann",
                                                                         "s@cret", False)
    assert parse_mqtt_url("mqtts://h/p").port == 8883
    monkeypatch.setenv("EDGEAG_MQTT_PASSWORD", "from-env")
    assert parse_mqtt_url("mqtt://ann@h/p").password == "from-env"
    assert parse_mqtt_url("mqtt://ann:in-url@h/p").password == "in-url"
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert parse_mqtt_url(f"mqtts://h/p?ca={ca}").ca == str(ca)
    for bad in ("http://h/p", "mqtt://h", "mqtt:///p", "mqtt://h:99999/p", "mqtt://h/a/#", "mqtt://h/p?ca=x",
                "mqtts://h/p?ca=/no/such.pem", "mqtts://h/p?foo=1", "not a url"):
        with pytest.raises(BadInputError):
            parse_mqtt_url(bad)


@needs_mosquitto
def test_round_trip_status_and_order(broker):
    listener = Listener(broker)
    pub = MqttPublisher(parse_mqtt_url(broker.url("shop")), "cam1")
    pub.start()
    for i in range(20):
        pub.publish("visits", {"type": "visit", "i": i})
    pub.publish("aggregates", {"type": "aggregate", "i": 20})
    assert pub.close() == 0
    assert listener.wait_for(lambda l: len(l.events()) == 21 and l.messages[-1][1] == "offline")
    listener.close()
    assert [e["i"] for e in listener.events("visits")] == list(range(20))
    assert [e["i"] for e in listener.events("aggregates")] == [20]
    status = [(p, r) for t, p, r in listener.messages if t == "shop/cam1/status"]
    assert status[0][0] == "online" and status[-1][0] == "offline"
    # a newcomer gets the retained status
    late = Listener(broker, "shop/+/status")
    assert late.wait_for(lambda l: l.messages) and late.messages[0][1:] == ("offline", True)
    late.close()


@needs_mosquitto
def test_broker_away_queue_keeps_everything_in_order(broker):
    listener = Listener(broker)
    pub = MqttPublisher(parse_mqtt_url(broker.url()), "cam", max_backoff_s=1.0)
    pub.start()
    n = 0
    for _ in range(10):
        pub.publish("visits", {"i": n})
        n += 1
    assert listener.wait_for(lambda l: len(l.events()) == 10)
    broker.stop()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:  # the producer keeps going: publish() only queues
        pub.publish("visits", {"i": n})
        n += 1
        time.sleep(0.02)
    assert pub.pending() > 0
    broker.start()
    for _ in range(10):
        pub.publish("aggregates", {"i": n})
        n += 1
    assert pub.close(timeout_s=30) == 0
    assert listener.wait_for(lambda l: len({e["i"] for e in l.events()}) == n, timeout=30)
    listener.close()
    got = [e["i"] for e in listener.events()]
    unique = list(dict.fromkeys(got))  # QoS 1: a message in flight at the cut may come twice
    assert unique == list(range(n)) and pub.dropped_total == 0


@needs_mosquitto
def test_queue_bound_drops_oldest_and_counts(broker, tmp_path):
    broker.stop()
    warnings = []
    pub = MqttPublisher(parse_mqtt_url(broker.url()), "cam", max_queue=5, warn=warnings.append)
    pub.start()  # broker away: a warning, no error
    assert any("not reachable" in w for w in warnings)
    for i in range(8):
        pub.publish("visits", {"i": i})
    assert pub.take_dropped() == 3 and pub.take_dropped() == 0 and pub.pending() == 5
    assert any("dropped" in w for w in warnings)
    pub.close(timeout_s=0.5)


@needs_mosquitto
def test_spool_keeps_overflow_and_leftovers_for_the_next_run(broker, tmp_path):
    broker.stop()
    spool = tmp_path / "spool"
    pub = MqttPublisher(parse_mqtt_url(broker.url()), "cam", max_queue=3, spool_dir=spool)
    pub.start()
    for i in range(10):
        pub.publish("visits", {"i": i})
    assert pub.take_dropped() == 0
    assert pub.close(timeout_s=0.5) == 10 and (spool / "cam.jsonl").is_file()
    broker.start()
    listener = Listener(broker)
    pub2 = MqttPublisher(parse_mqtt_url(broker.url()), "cam", max_queue=3, spool_dir=spool)
    pub2.start()
    pub2.publish("visits", {"i": 10})
    assert pub2.close(timeout_s=20) == 0
    assert listener.wait_for(lambda l: len(l.events()) >= 11)
    listener.close()
    assert list(dict.fromkeys(e["i"] for e in listener.events())) == list(range(11))
    assert not (spool / "cam.jsonl").exists()


@needs_mosquitto
def test_last_will_says_offline_when_the_process_dies(broker):
    listener = Listener(broker, "lw/+/status")
    code = textwrap.dedent(f"""
        import os, time
        from edgeag.edge.mqtt import MqttPublisher, parse_mqtt_url
        p = MqttPublisher(parse_mqtt_url({broker.url('lw')!r}), "dying")
        p.start()
        time.sleep(0.5)
        os._exit(0)   # no clean disconnect: the broker sends the will
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert listener.wait_for(lambda l: [p for _, p, _ in l.messages] == ["online", "offline"])
    listener.close()


@needs_mosquitto
def test_refused_credentials_and_unknown_host_fail_at_start(tmp_path):
    b = Mosquitto(tmp_path, users={"edge": "right"}).start()
    try:
        with pytest.raises(BadInputError, match="refused the credentials"):
            MqttPublisher(parse_mqtt_url(b.url(user="edge", password="wrong")), "cam").start()
        with pytest.raises(BadInputError, match="refused"):
            MqttPublisher(parse_mqtt_url(b.url()), "cam").start()  # anonymous not allowed
        good = MqttPublisher(parse_mqtt_url(b.url(user="edge", password="right")), "cam")
        good.start()
        assert good.close() == 0
    finally:
        b.stop()
    with pytest.raises(BadInputError, match="unknown host"):
        MqttPublisher(parse_mqtt_url("mqtt://no-such-host.invalid/p"), "cam").start()


@needs_mosquitto
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_mqtts_with_a_private_ca(tmp_path):
    files = make_tls_files(tmp_path)
    b = Mosquitto(tmp_path, tls=files).start()
    try:
        pub = MqttPublisher(parse_mqtt_url(b.url("tls") + f"?ca={files['ca']}"), "cam")
        pub.start()
        pub.publish("visits", {"i": 1})
        assert pub.close() == 0 and pub.delivered == 1
        with pytest.raises(BadInputError, match="TLS"):  # a server certificate from another CA
            MqttPublisher(parse_mqtt_url(b.url("tls") + f"?ca={files['other_ca']}"), "cam").start()
    finally:
        b.stop()
