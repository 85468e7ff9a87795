package claimgate.peer.kstreams;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.StateRestoreListener;

/**
 * BENCHMARK PEER entry point: parses the command line, starts the Kafka Streams application, writes
 * the ready file once it is RUNNING (global tables restored, claim partitions assigned), and on
 * SIGTERM closes it (commit, flush) and prints its statistics as one JSON line on stdout.
 *
 * <p>The command line follows the quixstreams peer's ({@code ../run_peer.sh}), so the load test starts
 * either the same way. See README.md.
 */
public final class Main {
    private Main() {}

    private static void log(String s) {
        System.err.println("kstreams-peer: " + s);
    }

    private static final String USAGE = String.join("\n",
        "usage: run.sh [options]",
        "  --brokers HOST:PORT        bootstrap servers (default 127.0.0.1:9092)",
        "  --group NAME               application.id: consumer group, internal names (default claimgate-kstreams-peer)",
        "  --profile NAME|FILE        national-2024 (default) | huaian-2020 | lanzhou-2014 | a TOML file",
        "  --profile-dir DIR          where the shipped profiles are (run.sh gives <repo>/profiles)",
        "  --claims-topic, --accepted-topic, --rejected-topic, --dlq-topic,",
        "  --practitioners-topic, --institutions-topic   topic names (defaults as service.md)",
        "  --guarantee G              at_least_once (default) | exactly_once_v2",
        "  --threads N                num.stream.threads (default 1)",
        "  --state-dir DIR            state.dir (default <tmp>/claimgate-kstreams-peer)",
        "  --store KIND               rocksdb (default, Kafka Streams' default) | in-memory: the global tables' store",
        "  --config K=V               any Kafka Streams property (repeatable; prefixes such as producer. work)",
        "  --consumer-config K=V      a consumer property (librdkafka's fetch.wait.max.ms is read as fetch.max.wait.ms)",
        "  --producer-config K=V      a producer property",
        "  --ready-file FILE          created once the application is RUNNING",
        "  --stats-file FILE          the exit statistics (one JSON object) also go there",
        "  --max-messages N           stop after N claim lines decided",
        "  --pass-through             baseline: claims copied unchanged to --accepted-topic, no tables, no decision");

    /** librdkafka property names the load test uses, as the Java clients name them. */
    private static String javaName(String k) {
        switch (k) {
            case "fetch.wait.max.ms": return ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG;
            case "queued.min.messages": return null;
            case "batch.num.messages": return null;
            default: return k;
        }
    }

    public static void main(String[] args) throws Exception {
        long startedMs = ManagementFactory.getRuntimeMXBean().getStartTime();
        Map<String, String> opt = new LinkedHashMap<>();
        List<String[]> config = new ArrayList<>();
        boolean passThrough = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help") || a.equals("-h")) {
                System.out.println(USAGE);
                return;
            }
            if (a.equals("--pass-through")) {
                passThrough = true;
                continue;
            }
            if (!a.startsWith("--") || i + 1 >= args.length) {
                System.err.println("kstreams-peer: unknown or incomplete argument `" + a + "`\n" + USAGE);
                System.exit(2);
            }
            String v = args[++i];
            switch (a) {
                case "--config":
                case "--consumer-config":
                case "--producer-config": {
                    int eq = v.indexOf('=');
                    if (eq <= 0) {
                        System.err.println("kstreams-peer: " + a + " " + v + ": expected K=V");
                        System.exit(2);
                    }
                    String k = v.substring(0, eq);
                    if (a.equals("--consumer-config")) {
                        k = javaName(k);
                        if (k == null) {
                            continue;
                        }
                        k = StreamsConfig.consumerPrefix(k);
                    } else if (a.equals("--producer-config")) {
                        k = StreamsConfig.producerPrefix(k);
                    }
                    config.add(new String[] {k, v.substring(eq + 1)});
                    break;
                }
                default:
                    opt.put(a.substring(2), v);
            }
        }
        String brokers = opt.getOrDefault("brokers", "127.0.0.1:9092");
        String app = opt.getOrDefault("group", "claimgate-kstreams-peer");
        ClaimsTopology.Topics topics = new ClaimsTopology.Topics(
            opt.getOrDefault("claims-topic", "claims"),
            opt.getOrDefault("accepted-topic", "claims.accepted"),
            opt.getOrDefault("rejected-topic", "claims.rejected"),
            opt.getOrDefault("dlq-topic", "claims.dlq"),
            opt.getOrDefault("practitioners-topic", "practitioners"),
            opt.getOrDefault("institutions-topic", "institutions"));
        String guarantee = opt.getOrDefault("guarantee", StreamsConfig.AT_LEAST_ONCE);
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            System.err.println("kstreams-peer: --guarantee must be at_least_once or exactly_once_v2");
            System.exit(2);
        }
        ClaimsTopology.Store store = ClaimsTopology.Store.valueOf(
            opt.getOrDefault("store", "rocksdb").toUpperCase(Locale.ROOT).replace('-', '_'));
        String profileArg = opt.getOrDefault("profile", "national-2024");
        Path profileFile = profileArg.endsWith(".toml") || profileArg.contains("/")
            ? Path.of(profileArg)
            : Path.of(opt.getOrDefault("profile-dir", "profiles"), profileArg + ".toml");
        Profile profile = Profile.load(profileFile);
        long maxMessages = Long.parseLong(opt.getOrDefault("max-messages", "0"));

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, opt.getOrDefault("threads", "1"));
        p.put(StreamsConfig.STATE_DIR_CONFIG,
            opt.getOrDefault("state-dir", Path.of(System.getProperty("java.io.tmpdir"), "claimgate-kstreams-peer").toString()));
        // The producer as claimgate's (src/io/kafka/pipeline/delivery.rs): linger 5 ms, lz4. Kafka
        // Streams' own default linger is 100 ms, which would put 100 ms under every latency at a low rate.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), "5");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
        for (String[] kv : config) {
            p.put(kv[0], kv[1]);
        }

        ClaimsTopology.Counts counts = new ClaimsTopology.Counts();
        Topology topology = ClaimsTopology.build(topics, profile, store, passThrough, counts);
        KafkaStreams streams = new KafkaStreams(topology, p);
        AtomicLong readyMs = new AtomicLong();
        AtomicLong restored = new AtomicLong();
        AtomicLong restoreStartMs = new AtomicLong();
        AtomicLong restoreEndMs = new AtomicLong();
        CountDownLatch done = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean();
        String readyFile = opt.get("ready-file");
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                restoreStartMs.compareAndSet(0, System.currentTimeMillis());
                log("restoring " + store + " from " + tp + ": offsets " + start + " to " + end);
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long end, long n) {
                restored.addAndGet(n);
            }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long n) {
                restoreEndMs.set(System.currentTimeMillis());
                log("restored " + store + ": " + n + " records");
            }
        });
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && readyMs.get() == 0) {
                readyMs.set(System.currentTimeMillis());
                log(String.format(Locale.ROOT, "ready: RUNNING %.1f s after the JVM started", (readyMs.get() - startedMs) / 1000.0));
                if (readyFile != null) {
                    try {
                        Files.writeString(Path.of(readyFile), "ready\n");
                    } catch (IOException e) {
                        log("cannot write the ready file: " + e);
                    }
                }
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            log("stopping on an error: " + e);
            failed.set(true);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Thread hook = new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            String stats = stats(counts, startedMs, readyMs.get(), restored.get(), restoreStartMs.get(), restoreEndMs.get(),
                guarantee, store);
            System.out.println(stats);
            System.out.flush();
            String statsFile = opt.get("stats-file");
            if (statsFile != null) {
                try {
                    Files.writeString(Path.of(statsFile), stats + "\n", StandardCharsets.UTF_8);
                } catch (IOException e) {
                    log("cannot write the stats file: " + e);
                }
            }
        }, "shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        log("starting " + app + " (" + guarantee + ", " + store + " store" + (passThrough ? ", pass-through" : "") + ") on " + brokers);
        streams.start();
        if (maxMessages > 0) {
            while (counts.total() < maxMessages && done.getCount() > 0) {
                Thread.sleep(20);
            }
            System.exit(failed.get() ? 1 : 0);
        }
        done.await();
        System.exit(failed.get() ? 1 : 0);
    }

    private static String stats(ClaimsTopology.Counts c, long startedMs, long readyMs, long restored, long restoreStart,
                                long restoreEnd, String guarantee, ClaimsTopology.Store store) {
        long n = c.total();
        double seconds = (c.lastMs.get() - c.firstMs.get()) / 1000.0;
        return String.format(Locale.ROOT,
            "{\"messages\":%d,\"accepted\":%d,\"rejected\":%d,\"dead_letters\":%d,\"msgs_per_s\":%.1f,"
                + "\"seconds\":%.3f,\"ready_s\":%.3f,\"global_restored\":%d,\"global_restore_s\":%.3f,"
                + "\"invalid_status_reads\":%d,\"guarantee\":\"%s\",\"store\":\"%s\"}",
            n, c.accepted.get(), c.rejected.get(), c.deadLetters.get(), seconds > 0 ? n / seconds : 0.0, seconds,
            readyMs > 0 ? (readyMs - startedMs) / 1000.0 : -1.0, restored,
            restoreEnd > restoreStart && restoreStart > 0 ? (restoreEnd - restoreStart) / 1000.0 : 0.0,
            Status.INVALID.get(), guarantee, store.name().toLowerCase(Locale.ROOT));
    }
}
