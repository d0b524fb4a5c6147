"""Idempotent producers: confluent-kafka with enable.idempotence=true writes every message
exactly once and in order, through broker crashes (kill -9) and through a proxy that loses
Produce responses after the broker appended; raw requests check the protocol's answers
(original offsets for a retried batch, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH,
producer ids never reused across restarts)."""

import threading
import time

import helpers
import kwire
from conftest import free_port
from proxy import ResponseDroppingProxy

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def idempotent_producer(bootstrap: str, **extra):
    conf = {"enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500, "retry.backoff.ms": 50}
    conf.update(extra)
    return helpers.producer(bootstrap, **conf)


class NumberedProducer:
    """Produces b"0", b"1", ... (message n to partition n % partitions) from its own thread and
    records every delivery report."""

    def __init__(self, producer, topic: str, count: int, partitions: int):
        self.producer, self.topic, self.count, self.partitions = producer, topic, count, partitions
        self.acked: dict[int, tuple[int, int]] = {}
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _delivered(self, err, msg):
        if helpers.is_ok(err):
            self.acked[int(msg.value())] = (msg.partition(), msg.offset())
        else:
            self.errors.append(str(err))

    def _run(self):
        for n in range(self.count):
            while True:
                try:
                    self.producer.produce(self.topic, value=str(n).encode(), partition=n % self.partitions,
                                          on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
        self.producer.flush(180)

    def join(self, timeout_s: float):
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"producing did not finish: {len(self.acked)} of {self.count} acked"


def assert_exactly_once_in_order(bootstrap: str, topic: str, partitions: int, count: int,
                                 acked: dict[int, tuple[int, int]]) -> None:
    got = helpers.consume_all(bootstrap, topic, partitions, timeout_s=120)
    seen: dict[int, tuple[int, int]] = {}
    for p, msgs in got.items():
        numbers = [int(m.value()) for m in msgs]
        duplicates = len(numbers) - len(set(numbers))
        assert duplicates == 0, f"{topic}[{p}]: {duplicates} messages written more than once"
        assert numbers == sorted(numbers), f"{topic}[{p}]: messages out of order"
        assert all(n % partitions == p for n in numbers), f"{topic}[{p}]: a message of another partition"
        for m in msgs:
            seen[int(m.value())] = (p, m.offset())
    missing = [n for n in acked if n not in seen]
    assert not missing, f"{len(missing)} acknowledged messages are missing, e.g. {missing[:5]}"
    moved = [n for n, where in acked.items() if seen[n] != where]
    assert not moved, f"{len(moved)} messages are not at the offset acknowledged, e.g. {moved[:3]}"
    assert len(seen) == count, f"{len(seen)} distinct messages in the topic, {count} produced"


def test_exactly_once_in_order_through_two_kill9_restarts(broker):
    topic, partitions, count = helpers.topic_name("idem-crash"), 4, 200_000
    helpers.create_topic(broker.bootstrap, topic, partitions)
    producer = idempotent_producer(broker.bootstrap)
    run = NumberedProducer(producer, topic, count, partitions)
    for threshold in (count // 4, count // 2):
        helpers.wait_for(lambda: len(run.acked) >= threshold, 120, f"{threshold} acknowledged messages")
        broker.kill9()
        time.sleep(0.5)
        broker.start()
    run.join(240)
    assert not run.errors, f"{len(run.errors)} deliveries failed, e.g. {run.errors[:3]}"
    assert len(run.acked) == count
    assert_exactly_once_in_order(broker.bootstrap, topic, partitions, count, run.acked)
    # The producer kept its producer id across both crashes: the broker knew its sequences.
    assert "OUT_OF_ORDER" not in broker.log_text()


def test_lost_produce_responses_are_retried_without_duplicates(broker_factory):
    proxy_port = free_port()
    broker = broker_factory("--advertised-listener", f"127.0.0.1:{proxy_port}")
    proxy = ResponseDroppingProxy(proxy_port, ("127.0.0.1", broker.port), every=5, drops_max=20)
    try:
        topic, partitions, count = helpers.topic_name("idem-proxy"), 3, 30_000
        helpers.create_topic(broker.bootstrap, topic, partitions)
        # Small batches, so that there are many requests whose responses can be lost.
        producer = idempotent_producer(f"127.0.0.1:{proxy_port}", **{"batch.num.messages": 50, "linger.ms": 1})
        run = NumberedProducer(producer, topic, count, partitions)
        run.join(180)
        assert not run.errors, f"{len(run.errors)} deliveries failed, e.g. {run.errors[:3]}"
        assert proxy.drops >= 10, f"only {proxy.drops} responses were dropped"
        # The client really did send batches again after losing their responses.
        assert proxy.retried_batches() >= 5, f"only {proxy.retried_batches()} batches were sent twice"
        assert_exactly_once_in_order(f"127.0.0.1:{proxy_port}", topic, partitions, count, run.acked)
    finally:
        proxy.stop()


def test_without_idempotence_the_proxy_does_cause_duplicates(broker_factory):
    """The control for the test above: the same lost responses, no idempotence, duplicates."""
    proxy_port = free_port()
    broker = broker_factory("--advertised-listener", f"127.0.0.1:{proxy_port}")
    proxy = ResponseDroppingProxy(proxy_port, ("127.0.0.1", broker.port), every=7, drops_max=10)
    try:
        topic = helpers.topic_name("plain-proxy")
        helpers.create_topic(broker.bootstrap, topic, 1)
        producer = helpers.producer(f"127.0.0.1:{proxy_port}", **{
            "message.timeout.ms": 60_000, "max.in.flight.requests.per.connection": 1,
            "batch.num.messages": 50, "linger.ms": 1})
        run = NumberedProducer(producer, topic, 5_000, 1)
        run.join(120)
        assert proxy.drops >= 5
        got = helpers.consume_all(f"127.0.0.1:{proxy_port}", topic, 1)
        numbers = [int(m.value()) for m in got[0]]
        assert len(numbers) > len(set(numbers)), "lost responses caused no duplicate: the proxy test proves nothing"
    finally:
        proxy.stop()


def test_sequence_errors_fencing_and_ids_over_the_wire(broker):
    topic = helpers.topic_name("idem-raw")
    helpers.create_topic(broker.bootstrap, topic, 1)
    with kwire.connect(broker.bootstrap) as sock:
        error, pid, epoch = kwire.init_producer_id_v1(sock)
        assert (error, epoch) == (0, 0) and pid >= 0
        error, other, _ = kwire.init_producer_id_v1(sock)
        assert error == 0 and other != pid
        error, _, _ = kwire.init_producer_id_v1(sock, transactional_id="txn-1")
        assert error == TRANSACTIONAL_ID_AUTHORIZATION_FAILED

        def batch(seq, n=3, epoch=0, producer_id=pid):
            return kwire.record_batch([f"{seq}-{i}".encode() for i in range(n)], producer=(producer_id, epoch, seq))

        assert kwire.produce_v8(sock, topic, 0, batch(0))[:2] == (0, 0)
        assert kwire.produce_v8(sock, topic, 0, batch(3))[:2] == (0, 3)
        # A retry gets the original offset and writes nothing.
        assert kwire.produce_v8(sock, topic, 0, batch(0))[:2] == (0, 0)
        # A gap is refused, with the reason.
        error, _, message = kwire.produce_v8(sock, topic, 0, batch(9))
        assert error == OUT_OF_ORDER_SEQUENCE_NUMBER and "expected 6" in message, message
        assert kwire.produce_v8(sock, topic, 0, batch(6))[:2] == (0, 6)
    # The state survives a crash: a retry after kill -9 still gets its original offset.
    broker.kill9()
    broker.start()
    with kwire.connect(broker.bootstrap) as sock:
        assert kwire.produce_v8(sock, topic, 0, batch(6))[:2] == (0, 6)
        assert kwire.produce_v8(sock, topic, 0, batch(9))[:2] == (0, 9)
        # A new epoch starts over at 0 and fences the old one.
        assert kwire.produce_v8(sock, topic, 0, batch(0, epoch=1))[:2] == (0, 12)
        error, _, message = kwire.produce_v8(sock, topic, 0, batch(12))
        assert error == INVALID_PRODUCER_EPOCH, message
        # Producer ids are never handed out twice, crash or not.
        error, after_crash, _ = kwire.init_producer_id_v1(sock)
        assert error == 0 and after_crash > max(pid, other)
    broker.restart()
    with kwire.connect(broker.bootstrap) as sock:
        error, after_restart, _ = kwire.init_producer_id_v1(sock)
        assert error == 0 and after_restart > after_crash
        assert kwire.produce_v8(sock, topic, 0, batch(0, epoch=1))[:2] == (0, 12)
    got = helpers.consume_all(broker.bootstrap, topic, 1)
    assert len(got[0]) == 15


def test_idempotent_kafka_python(broker):
    """Another client's idempotent producer: kafka-python (its own implementation, not librdkafka)."""
    from kafka import KafkaProducer
    topic = helpers.topic_name("idem-kp")
    helpers.create_topic(broker.bootstrap, topic, 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    try:
        futures = [producer.send(topic, value=str(n).encode(), partition=n % 2) for n in range(2000)]
        producer.flush(60)
        acked = {n: (f.get(timeout=30).partition, f.get(timeout=30).offset) for n, f in enumerate(futures)}
    finally:
        producer.close(5)
    assert_exactly_once_in_order(broker.bootstrap, topic, 2, 2000, acked)
