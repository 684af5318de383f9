from __future__ import annotations

import socket
import threading
import time

import polars as pl

from tests.conftest import free_port
from tickwise.sources.simulator import NS, Simulator
from tickwise.sources.socket_feed import FeedClient, FeedServer, ticks_to_lines


def collect_client(url: str, stop: threading.Event) -> tuple[FeedClient, list[pl.DataFrame], list[pl.DataFrame]]:
    ticks, dead = [], []
    client = FeedClient(url, lambda t, d: (ticks.append(t), dead.append(d)), batch_ms=20, max_backoff_s=0.3)
    threading.Thread(target=client.run, args=(stop,), daemon=True).start()
    return client, ticks, dead


def wait_until(pred, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_feed_server_streams_every_tick_to_two_clients() -> None:
    sim = Simulator(["AAPL", "MSFT"], tick_rate=2000, seed=3, start_ns=1_700_000_000 * NS)
    frames = [sim.generate(NS // 10) for _ in range(30)]
    expected = pl.concat(frames)
    gate = threading.Event()

    def batches():
        gate.wait(10)
        yield from frames

    stop = threading.Event()
    server = FeedServer(batches(), host="127.0.0.1", port=free_port())
    threading.Thread(target=server.run, args=(stop,), daemon=True).start()
    assert server.ready.wait(10)
    url = f"tcp://127.0.0.1:{server.port}"
    got = [collect_client(url, stop), collect_client(url, stop)]
    wait_until(lambda: len(server.clients) == 2)
    gate.set()
    try:
        for _, ticks, dead in got:
            wait_until(lambda t=ticks: sum(f.height for f in t) == expected.height)
            assert pl.concat(ticks).equals(expected.select(pl.all()))
            assert sum(d.height for d in dead) == 0
    finally:
        stop.set()


def test_feed_client_sends_garbage_to_deadletter_and_keeps_going() -> None:
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    stop = threading.Event()
    _, ticks, dead = collect_client(f"tcp://127.0.0.1:{port}", stop)
    conn, _ = listener.accept()
    good = ticks_to_lines(pl.DataFrame({"symbol": ["A", "B"], "ts_event": [1, 2], "price": [1.0, 2.0],
                                        "size": [1.0, 1.0], "id": ["1", "2"]}))
    conn.sendall(good[: len(good) // 2])  # a line split across packets
    time.sleep(0.05)
    conn.sendall(good[len(good) // 2:] + b"\x00\xff garbage bytes\n{\"symbol\": 5}\nnot json at all\n")
    conn.sendall(b'{"symbol":"C","ts":3,"price":3.0,"size":1}\n')
    try:
        wait_until(lambda: sum(t.height for t in ticks) == 3 and sum(d.height for d in dead) == 3)
        assert pl.concat(ticks)["symbol"].to_list() == ["A", "B", "C"]
        reasons = pl.concat(dead)["reason"].str.split(":").list.first().unique().to_list()
        assert reasons == ["malformed"]
    finally:
        stop.set()
        conn.close()
        listener.close()


def test_feed_client_reconnects_with_backoff_when_server_goes_away() -> None:
    port = free_port()
    stop = threading.Event()
    client, ticks, _ = collect_client(f"tcp://127.0.0.1:{port}", stop)
    line = b'{"symbol":"A","ts":1,"price":1.0,"size":1}\n'
    try:
        time.sleep(0.3)  # nothing listens yet: the client retries
        for _ in range(2):
            listener = socket.create_server(("127.0.0.1", port))
            conn, _ = listener.accept()
            conn.sendall(line)
            before = sum(t.height for t in ticks)
            wait_until(lambda b=before: sum(t.height for t in ticks) == b + 1)
            conn.close()
            listener.close()
        wait_until(lambda: client.connects == 2)
    finally:
        stop.set()
