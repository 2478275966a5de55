"""Fan-out: each consumer behind its own bounded queue, on its own thread."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import pytest

from gateway.media.packet import Packet, SessionInfo, Track
from gateway.stream import Stream

TB = Fraction(1, 90000)
FPS = 25
GOP = 10
TRACK = Track(index=0, kind="video", codec="h264", time_base=TB)
BIG = 10**12


def session(number: int = 1) -> SessionInfo:
    return SessionInfo(camera_id="cam", session=number, tracks=(TRACK,))


def frame(n: int, *, t0: float = 1000.0) -> Packet:
    """Video frame ``n`` of a 25 fps stream with a keyframe every GOP frames.

    ``received`` is synthetic (t0 + n / 25), so queue age limits do not depend on the machine.
    """
    return Packet(
        track=0,
        data=n.to_bytes(4, "big") * 4,
        pts=n * 3600,
        dts=n * 3600,
        duration=3600,
        time_base=TB,
        keyframe=n % GOP == 0,
        is_video=True,
        received=t0 + n / FPS,
    )


def number(packet: Packet) -> int:
    return int.from_bytes(packet.data[:4], "big")


@dataclass
class Recorder:
    """Records every call; optional hooks make it slow, blocking or failing."""

    name: str = "recorder"
    delay: float = 0.0
    gate: threading.Event | None = None
    fail: Callable[[Packet], bool] | None = None
    events: list[tuple[str, object]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)

    def on_session_start(self, info: SessionInfo) -> None:
        self.events.append(("start", info))

    def on_packet(self, packet: Packet) -> None:
        if self.gate is not None:
            self.gate.wait()
        if self.delay:
            time.sleep(self.delay)
        self.events.append(("packet", number(packet)))
        if self.fail is not None and self.fail(packet):
            raise RuntimeError(f"consumer failed on packet {number(packet)}")

    def on_session_end(self, reason: str) -> None:
        self.events.append(("end", reason))

    def on_tick(self) -> None:
        pass

    def on_close(self) -> None:
        self.events.append(("close", None))
        self.closed.set()

    @property
    def packets(self) -> list[int]:
        return [v for kind, v in self.events if kind == "packet" and isinstance(v, int)]


@pytest.fixture
def stream() -> Iterator[Stream]:
    s = Stream("cam")
    yield s
    s.close(timeout=2.0)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def assert_whole_gops(received: list[int]) -> None:
    """Every delivered frame follows its GOP's keyframe and its predecessors without a hole."""
    assert received, "nothing delivered"
    assert received[0] % GOP == 0, f"started at frame {received[0]}, not a keyframe"
    for before, after in itertools.pairwise(received):
        if after % GOP != 0:
            assert after == before + 1, f"frame {after} delivered after {before}: hole in a GOP"
        else:
            assert after > before


def test_every_reader_gets_start_packets_end_in_order(stream: Stream) -> None:
    consumers = [Recorder(name=f"c{i}") for i in range(3)]
    for c in consumers:
        stream.add_reader(c, max_seconds=BIG, max_bytes=BIG)
    info = session()

    stream.start_session(info)
    for n in range(3 * GOP):
        stream.publish(frame(n))
    stream.end_session("camera lost")

    wait_for(lambda: all(("end", "camera lost") in c.events for c in consumers))
    for c in consumers:
        assert c.events == [
            ("start", info),
            *[("packet", n) for n in range(3 * GOP)],
            ("end", "camera lost"),
        ]


def test_session_starts_at_the_first_keyframe(stream: Stream) -> None:
    consumer = Recorder()
    stream.add_reader(consumer, max_seconds=BIG, max_bytes=BIG)

    stream.start_session(session())
    for n in range(GOP - 3, 2 * GOP):  # the camera's first frames are the tail of a GOP
        stream.publish(frame(n))
    stream.end_session("done")

    wait_for(lambda: ("end", "done") in consumer.events)
    assert consumer.packets == list(range(GOP, 2 * GOP))


def test_slow_consumer_drops_whole_gops_without_slowing_the_others(stream: Stream) -> None:
    slow = Recorder(name="slow", delay=0.004)
    fast = Recorder(name="fast")
    stuck = Recorder(name="stuck", gate=threading.Event())  # never returns until the end
    slow_reader = stream.add_reader(slow, max_seconds=0.2, max_bytes=BIG)
    fast_reader = stream.add_reader(fast, max_seconds=BIG, max_bytes=BIG)
    stuck_reader = stream.add_reader(stuck, max_seconds=0.2, max_bytes=BIG)

    stream.start_session(session())
    burst = 20 * GOP
    publish_times = []
    for n in range(burst):  # four times faster than the slow consumer
        t = time.perf_counter()
        stream.publish(frame(n))
        publish_times.append(time.perf_counter() - t)
        time.sleep(0.001)

    assert slow_reader.stats.dropped_frames > 0
    assert stuck_reader.stats.dropped_frames > burst - GOP
    assert max(publish_times) < 0.05

    # Afterwards the source runs at a pace the slow consumer can follow: it catches up.
    wait_for(lambda: slow_reader.stats.queued_bytes == 0)
    total = burst + 3 * GOP
    for n in range(burst, total):
        stream.publish(frame(n))
        time.sleep(0.008)
    wait_for(lambda: fast_reader.stats.delivered == total)
    wait_for(lambda: slow_reader.stats.delivered + slow_reader.stats.dropped_frames == total)

    assert fast.packets == list(range(total))
    assert fast_reader.stats.dropped_frames == 0
    assert_whole_gops(slow.packets)
    assert slow.packets[-2 * GOP :] == list(range(total - 2 * GOP, total))
    assert slow_reader.stats.dropped_frames == total - len(slow.packets)

    assert stuck.gate is not None
    stuck.gate.set()
    wait_for(lambda: stuck_reader.stats.queued_bytes == 0)
    assert_whole_gops(stuck.packets)


def test_a_full_queue_by_bytes_also_drops_to_the_next_keyframe(stream: Stream) -> None:
    gate = threading.Event()
    consumer = Recorder(gate=gate)
    size = len(frame(0).data)
    reader = stream.add_reader(consumer, max_seconds=BIG, max_bytes=5 * size)

    stream.start_session(session())
    for n in range(3 * GOP):
        stream.publish(frame(n))
    gate.set()
    for n in range(3 * GOP, 5 * GOP):
        wait_for(lambda: reader.stats.queued_bytes == 0)
        stream.publish(frame(n))
    wait_for(lambda: consumer.packets[-1:] == [5 * GOP - 1])

    assert reader.stats.dropped_frames > 0
    assert_whole_gops(consumer.packets)
    assert consumer.packets[-2 * GOP :] == list(range(3 * GOP, 5 * GOP))


def test_failing_consumer_keeps_running_and_counts_errors(stream: Stream) -> None:
    flaky = Recorder(name="flaky", fail=lambda p: number(p) % 2 == 1)
    reader = stream.add_reader(flaky, max_seconds=BIG, max_bytes=BIG)

    stream.start_session(session())
    for n in range(GOP):
        stream.publish(frame(n))
    stream.end_session("done")

    wait_for(lambda: ("end", "done") in flaky.events)
    assert reader.alive
    assert reader.stats.errors == GOP // 2
    assert flaky.packets == list(range(GOP))  # every packet was still offered to it
    assert reader.stats.delivered == GOP - GOP // 2


def test_reader_joining_mid_session_starts_at_next_keyframe(stream: Stream) -> None:
    info = session(7)
    stream.start_session(info)
    for n in range(GOP + 4):  # one GOP and a bit, before anyone listens
        stream.publish(frame(n))

    late = Recorder(name="late")
    reader = stream.add_reader(late, max_seconds=BIG, max_bytes=BIG)
    for n in range(GOP + 4, 3 * GOP):
        stream.publish(frame(n))
    stream.end_session("done")

    wait_for(lambda: ("end", "done") in late.events)
    assert late.events[0] == ("start", info)
    assert late.packets == list(range(2 * GOP, 3 * GOP))
    assert reader.stats.dropped_frames == 0
    assert reader.stats.dropped_packets == 0


def test_new_session_makes_every_reader_wait_for_its_keyframe(stream: Stream) -> None:
    consumer = Recorder()
    reader = stream.add_reader(consumer, max_seconds=BIG, max_bytes=BIG)
    stream.start_session(session(1))
    for n in range(GOP + 3):
        stream.publish(frame(n))
    stream.end_session("camera lost")

    stream.start_session(session(2))
    for n in range(5, 2 * GOP):  # reconnected mid-GOP
        stream.publish(frame(n, t0=2000.0))
    stream.end_session("done")

    wait_for(lambda: ("end", "done") in consumer.events)
    starts = [i for i, (kind, _) in enumerate(consumer.events) if kind == "start"]
    second = consumer.events[starts[1] + 1 :]
    assert [v for kind, v in second if kind == "packet"] == list(range(GOP, 2 * GOP))
    assert reader.stats.dropped_frames == 0


def test_close_drains_queued_packets_then_closes(stream: Stream) -> None:
    slow = Recorder(delay=0.005)
    stream.add_reader(slow, max_seconds=BIG, max_bytes=BIG)
    stream.start_session(session())
    for n in range(4 * GOP):
        stream.publish(frame(n))

    started = time.monotonic()
    finished = stream.close(timeout=5.0)

    assert finished
    assert time.monotonic() - started < 5.0
    assert slow.packets == list(range(4 * GOP))
    assert slow.events[-2:] == [("end", "stopping"), ("close", None)]
    assert stream.readers == ()


def test_close_gives_up_on_a_stuck_consumer_after_the_timeout(stream: Stream) -> None:
    gate = threading.Event()
    stuck = Recorder(gate=gate)
    stream.add_reader(stuck, max_seconds=BIG, max_bytes=BIG)
    stream.start_session(session())
    stream.publish(frame(0))

    started = time.monotonic()
    finished = stream.close(timeout=0.3)
    elapsed = time.monotonic() - started
    gate.set()

    assert not finished
    assert 0.25 <= elapsed < 1.0
    assert stuck.closed.wait(2.0)  # once unblocked, it still drains and closes


def test_removed_reader_is_closed_and_gets_nothing_more(stream: Stream) -> None:
    consumer = Recorder()
    reader = stream.add_reader(consumer, max_seconds=BIG, max_bytes=BIG)
    stream.start_session(session())
    stream.publish(frame(0))
    wait_for(lambda: consumer.packets == [0])

    stream.remove_reader(reader)
    assert consumer.closed.wait(2.0)
    stream.publish(frame(1))

    assert reader.join(2.0)
    assert consumer.packets == [0]
    assert consumer.events[-1] == ("close", None)


def test_inline_consumer_takes_packets_on_the_source_thread_in_order(stream: Stream) -> None:
    """A consumer that can handle a packet at once (the forwarder, when its socket has room)
    gets it on the source thread; when it declines, or is busy on its own thread, the packet
    is queued instead. Either way every packet arrives once, in order, one call at a time."""
    consumer = Recorder(name="forwarder")
    inline_threads: set[int] = set()
    inside = threading.Lock()
    declined = {3, 4, 12}  # e.g. the socket had no room for these

    def try_now(packet: Packet) -> bool:
        assert inside.acquire(blocking=False), "called while the consumer was busy"
        try:
            if number(packet) in declined:
                return False
            inline_threads.add(threading.get_ident())
            consumer.events.append(("packet", number(packet)))
            return True
        finally:
            inside.release()

    slow_on_packet = consumer.on_packet

    def on_packet(packet: Packet) -> None:
        assert inside.acquire(blocking=False), "called during an inline call"
        try:
            time.sleep(0.01)  # busy long enough for the next packets to find it so
            slow_on_packet(packet)
        finally:
            inside.release()

    consumer.on_packet = on_packet  # type: ignore[method-assign]
    reader = stream.add_reader(consumer, max_seconds=BIG, max_bytes=BIG, inline=try_now)
    stream.start_session(session())
    wait_for(lambda: ("start", session()) in consumer.events)
    for n in range(3 * GOP):
        stream.publish(frame(n))
        time.sleep(0.002)
    wait_for(lambda: len(consumer.packets) == 3 * GOP)

    assert consumer.packets == list(range(3 * GOP))
    assert inline_threads == {threading.get_ident()}, "inline calls run on the source thread"
    assert reader.stats.delivered == 3 * GOP
    assert reader.stats.dropped_frames == 0
