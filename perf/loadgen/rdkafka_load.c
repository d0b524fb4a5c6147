/* rdkafka_load: a librdkafka load generator for broker benchmarks (any Kafka-compatible
 * broker). Until the bundled bench harness exists, this is the fastest client we can run here.
 *
 *   rdkafka_load produce  BROKER TOPIC COUNT SIZE [ACKS]   throughput, all delivered
 *   rdkafka_load consume  BROKER TOPIC COUNT              throughput, from the beginning
 *   rdkafka_load create   BROKER TOPIC PARTITIONS SEGMENT_BYTES
 *        creates the topic (replication factor 1) with that segment.bytes (Admin API)
 *   rdkafka_load latency  BROKER TOPIC RATE_MSGS SECONDS SIZE
 *        produces at a fixed rate (timestamps in the payload) while consuming the topic from
 *        its end, and prints end-to-end latency percentiles (send -> receive, microseconds)
 *        and publish latency percentiles from librdkafka's delivery reports (due time ->
 *        report; reports are served when the loop polls, at least once a millisecond).
 *
 * Env: LINGER_MS (default 5); COMPRESSION (the producer's compression.codec, default none);
 * TEXT_PAYLOAD=1 (produce: each message is a different window of log-like text, compressible
 * as application logs are, instead of one repeated byte).
 *
 * Output: one line of key=value pairs, easy to parse. Exit status 0 on success.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CPU seconds this process used (all threads, user + system). */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "rdkafka_load: %s: %s\n", what, detail);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die(k, err);
}

static long delivered, failed;
/* Latency mode: publish latency per delivered message (due time in the payload -> report). */
static int64_t *publish_lat;
static long publish_lat_n, publish_lat_cap;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) failed++;
    else delivered++;
    if (!m->err && publish_lat && publish_lat_n < publish_lat_cap && m->len >= 16 &&
        !memcmp((const char *)m->payload + 8, "rdkload!", 8)) {
        int64_t due;
        memcpy(&due, m->payload, sizeof due);
        publish_lat[publish_lat_n++] = now_us() - due;
    }
}

static rd_kafka_t *producer(const char *broker, const char *acks) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", broker);
    set(conf, "acks", acks);
    set(conf, "linger.ms", getenv("LINGER_MS") ? getenv("LINGER_MS") : "5");
    set(conf, "batch.size", "1000000");
    set(conf, "queue.buffering.max.messages", "1000000");
    set(conf, "queue.buffering.max.kbytes", "1048576");
    set(conf, "enable.idempotence", "false");
    if (getenv("COMPRESSION")) set(conf, "compression.codec", getenv("COMPRESSION"));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("producer", err);
    return rk;
}

static rd_kafka_t *consumer(const char *broker) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", broker);
    set(conf, "group.id", "rdkafka-load");
    set(conf, "enable.auto.commit", "false");
    set(conf, "fetch.wait.max.ms", "100");
    set(conf, "fetch.min.bytes", "1");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Assigns every partition of the topic at `offset` (RD_KAFKA_OFFSET_BEGINNING or _END). */
static void assign_all(rd_kafka_t *rk, const char *topic, int64_t offset) {
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1)
        die("metadata", topic);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset = offset;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    if (rd_kafka_assign(rk, parts)) die("assign", topic);
    rd_kafka_topic_partition_list_destroy(parts);
}

static int produce_one(rd_kafka_t *rk, const char *topic, const void *buf, size_t size) {
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)buf, size),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 1);
    }
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: rdkafka_load produce|consume|latency BROKER TOPIC ...\n");
        return 2;
    }
    const char *mode = argv[1], *broker = argv[2], *topic = argv[3];
    if (!strcmp(mode, "create") && argc >= 6) {
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        set(conf, "bootstrap.servers", broker);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (!rk) die("rd_kafka_new", err);
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, atoi(argv[4]), 1, err, sizeof err);
        if (!nt) die("NewTopic", err);
        if (rd_kafka_NewTopic_set_config(nt, "segment.bytes", argv[5])) die("segment.bytes", argv[5]);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        if (!ev) die("CreateTopics", "no answer in 30 s");
        if (rd_kafka_event_error(ev)) die("CreateTopics", rd_kafka_event_error_string(ev));
        size_t n;
        const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++)
            if (rd_kafka_topic_result_error(res[i])) die("CreateTopics", rd_kafka_topic_result_error_string(res[i]));
        printf("mode=create topic=%s partitions=%s segment_bytes=%s\n", topic, argv[4], argv[5]);
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_destroy(rk);
        return 0;
    }
    if (!strcmp(mode, "produce") && argc >= 6) {
        long count = atol(argv[4]);
        size_t size = (size_t)atol(argv[5]);
        rd_kafka_t *rk = producer(broker, argc > 6 ? argv[6] : "all");
        char *buf = malloc(size);
        memset(buf, 'r', size);
        /* Log-like text, 1 MiB of it, read through windows that move with each message. */
        size_t text_len = 1 << 20;
        char *text = NULL;
        if (getenv("TEXT_PAYLOAD")) {
            text = malloc(text_len + size);
            size_t at = 0;
            for (long n = 0; at < text_len + size; n++) {
                char line[160];
                int w = snprintf(line, sizeof line,
                                 "2026-12-05T13:%02ld:%02ld.%06ld INFO api request id=%ld user=u%ld path=/v1/items/%ld "
                                 "status=%d took=%ldms\n",
                                 (n / 60) % 60, n % 60, (n * 7919) % 1000000, n, n % 977, (n * 31) % 100003,
                                 n % 17 ? 200 : 404, (n * 13) % 250);
                for (int k = 0; k < w && at < text_len + size; k++) text[at++] = line[k];
            }
        }
        double cpu0 = cpu_seconds();
        int64_t start = now_us();
        for (long i = 0; i < count; i++) {
            produce_one(rk, topic, text ? text + (size_t)(i * 7919) % text_len : buf, size);
            rd_kafka_poll(rk, 0);
        }
        rd_kafka_flush(rk, 60000);
        double secs = (now_us() - start) / 1e6;
        printf("mode=produce messages=%ld delivered=%ld failed=%ld seconds=%.3f MBps=%.1f msgps=%.0f client_cpu=%.0f%%\n",
               count, delivered, failed, secs, count * (double)size / secs / 1e6, count / secs,
               100 * (cpu_seconds() - cpu0) / secs);
        rd_kafka_destroy(rk);
        return failed ? 1 : 0;
    }
    if (!strcmp(mode, "consume")) {
        long want = atol(argv[4]), got = 0;
        double bytes = 0, cpu0 = 0;
        rd_kafka_t *rk = consumer(broker);
        assign_all(rk, topic, RD_KAFKA_OFFSET_BEGINNING);
        int64_t start = 0, deadline = now_us() + 120000000;
        while (got < want && now_us() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (!m) continue;
            if (!m->err) {
                if (!got) {
                    start = now_us();
                    cpu0 = cpu_seconds();
                }
                got++;
                bytes += m->len;
            }
            rd_kafka_message_destroy(m);
        }
        double secs = (now_us() - start) / 1e6;
        printf("mode=consume messages=%ld seconds=%.3f MBps=%.1f msgps=%.0f client_cpu=%.0f%%\n", got, secs,
               bytes / secs / 1e6, got / secs, 100 * (cpu_seconds() - cpu0) / secs);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return got == want ? 0 : 1;
    }
    if (!strcmp(mode, "latency") && argc >= 7) {
        long rate = atol(argv[4]);
        double seconds = atof(argv[5]);
        size_t size = (size_t)atol(argv[6]);
        if (size < 16) size = 16;
        long total = (long)(rate * seconds);
        int64_t *lat = calloc((size_t)total, sizeof *lat);
        publish_lat = calloc((size_t)total, sizeof *publish_lat);
        publish_lat_cap = total;
        rd_kafka_t *p = producer(broker, "all");
        /* A first message creates the topic when the broker auto-creates topics. */
        produce_one(p, topic, "warm-up", 7);
        rd_kafka_flush(p, 10000);
        rd_kafka_t *c = consumer(broker);
        assign_all(c, topic, RD_KAFKA_OFFSET_END);
        for (int i = 0; i < 20; i++) { /* let the consumer reach the end before producing */
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
            if (m) rd_kafka_message_destroy(m);
        }
        long idle_wait_us = getenv("IDLE_WAIT_US") ? atol(getenv("IDLE_WAIT_US")) : 1000;
        char *buf = malloc(size);
        memset(buf, 'l', size);
        memcpy(buf + 8, "rdkload!", 8); /* marks measured messages (not the warm-up one) */
        long sent = 0, got = 0;
        int64_t start = now_us(), end = start + (int64_t)(seconds * 1e6);
        while (got < total && now_us() < end + 10000000) {
            int64_t t = now_us();
            /* Fixed-rate schedule: send everything due by now (no coordinated omission on the send side). */
            while (sent < total && start + (int64_t)(sent * 1e6 / rate) <= t) {
                int64_t due = start + (int64_t)(sent * 1e6 / rate);
                memcpy(buf, &due, sizeof due);
                produce_one(p, topic, buf, size);
                sent++;
            }
            rd_kafka_poll(p, 0);
            rd_kafka_message_t *m;
            /* When idle, wait at most 1 ms for a message instead of spinning a core; with
             * IDLE_WAIT_US below 1000, poll without waiting and sleep that long instead (the
             * loop then sends and serves delivery reports closer to their time). */
            int wait_ms = idle_wait_us >= 1000 ? 1 : 0;
            int idle = 1;
            while ((m = rd_kafka_consumer_poll(c, wait_ms))) {
                wait_ms = 0;
                idle = 0;
                if (!m->err && m->len >= sizeof(int64_t) && got < total) {
                    int64_t due;
                    memcpy(&due, m->payload, sizeof due);
                    lat[got++] = now_us() - due;
                }
                rd_kafka_message_destroy(m);
            }
            if (idle && idle_wait_us < 1000) {
                struct timespec ts = {0, idle_wait_us * 1000};
                nanosleep(&ts, NULL);
            }
        }
        rd_kafka_flush(p, 10000);
        qsort(lat, (size_t)got, sizeof *lat, cmp64);
        long pn = publish_lat_n;
        qsort(publish_lat, (size_t)pn, sizeof *publish_lat, cmp64);
#define PCT(q) (got ? lat[(long)((got - 1) * (q))] : -1)
#define PPCT(q) (pn ? publish_lat[(long)((pn - 1) * (q))] : -1)
        printf("mode=latency rate=%ld size=%zu sent=%ld received=%ld MBps=%.1f p50_us=%ld p90_us=%ld p99_us=%ld "
               "p999_us=%ld max_us=%ld pub_samples=%ld pub_p50_us=%ld pub_p90_us=%ld pub_p99_us=%ld pub_p999_us=%ld "
               "pub_max_us=%ld\n",
               rate, size, sent, got, rate * (double)size / 1e6, (long)PCT(0.5), (long)PCT(0.9), (long)PCT(0.99),
               (long)PCT(0.999), (long)(got ? lat[got - 1] : -1), pn, (long)PPCT(0.5), (long)PPCT(0.9),
               (long)PPCT(0.99), (long)PPCT(0.999), (long)(pn ? publish_lat[pn - 1] : -1));
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        rd_kafka_destroy(p);
        return got == total ? 0 : 1;
    }
    fprintf(stderr, "rdkafka_load: unknown mode or missing arguments\n");
    return 2;
}
