package claimgate.peer.kstreams;

import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The job, the way a Kafka Streams developer writes it: the two status topics as GlobalKTables (every
 * instance holds all of both, as claimgate does), a KStream of claim lines parsed (check 0) and
 * {@code split()} into dead letters and well-formed lines; the well-formed ones {@code leftJoin}ed to
 * the institutions, then to the practitioners, decided, and {@code split()} by verdict into the
 * accepted and rejected topics. The status applies as of each line's {@code fee_ocur_time}: the
 * record holds its periods and registrations, so the latest record of each code is all a lookup
 * needs (no versioned store). Keys and headers pass through: every output carries its input's key
 * and headers (the load test's stamp among them).
 */
final class ClaimsTopology {
    private ClaimsTopology() {}

    /** The six topic names. */
    record Topics(String claims, String accepted, String rejected, String dlq, String practitioners, String institutions) {}

    /** Counters for the exit statistics. */
    static final class Counts {
        final AtomicLong accepted = new AtomicLong();
        final AtomicLong rejected = new AtomicLong();
        final AtomicLong deadLetters = new AtomicLong();
        /** Wall-clock ms of the first and the latest line decided. */
        final AtomicLong firstMs = new AtomicLong();
        final AtomicLong lastMs = new AtomicLong();

        void seen() {
            long now = System.currentTimeMillis();
            firstMs.compareAndSet(0, now);
            lastMs.set(now);
        }

        long total() {
            return accepted.get() + rejected.get() + deadLetters.get();
        }
    }

    /** A parsed line: the claim, or the dead-letter record that replaces it. */
    record Parsed(ClaimLine claim, byte[] deadLetter) {}

    /** A claim and its institution's record (null: not in the table), between the two joins. */
    record WithInstitution(ClaimLine claim, Status.Institution institution) {}

    /** Check 0, with the line's topic, partition and offset for the dead letter's {@code source}. */
    static final class Parse implements FixedKeyProcessor<byte[], byte[], Parsed> {
        private FixedKeyProcessorContext<byte[], Parsed> context;

        @Override
        public void init(FixedKeyProcessorContext<byte[], Parsed> context) {
            this.context = context;
        }

        @Override
        public void process(FixedKeyRecord<byte[], byte[]> record) {
            byte[] raw = record.value() == null ? new byte[0] : record.value();
            Parsed out;
            try {
                out = new Parsed(ClaimLine.parse(raw), null);
            } catch (ClaimLine.Malformed m) {
                String source = context.recordMetadata()
                    .map(RecordMetadata::topic)
                    .orElse("?") + "/" + context.recordMetadata().map(RecordMetadata::partition).orElse(-1)
                    + "@" + context.recordMetadata().map(RecordMetadata::offset).orElse(-1L);
                out = new Parsed(null, Decision.deadLetter(m, source, raw, Decision.now()));
            }
            context.forward(record.withValue(out));
        }
    }

    /** Where the status tables live: RocksDB (Kafka Streams' default) or the heap. */
    enum Store { ROCKSDB, IN_MEMORY }

    private static <V> Materialized<String, V, KeyValueStore<Bytes, byte[]>> store(
            String name, Store kind, org.apache.kafka.common.serialization.Serde<V> serde) {
        KeyValueBytesStoreSupplier supplier = kind == Store.IN_MEMORY
            ? Stores.inMemoryKeyValueStore(name)
            : Stores.persistentKeyValueStore(name);
        return Materialized.<String, V>as(supplier).withKeySerde(Serdes.String()).withValueSerde(serde);
    }

    /** Builds the topology. {@code passThrough}: claims copied to the accepted topic undecided (the baseline). */
    static Topology build(Topics t, Profile profile, Store kind, boolean passThrough, Counts counts) {
        StreamsBuilder b = new StreamsBuilder();
        KStream<byte[], byte[]> claims =
            b.stream(t.claims(), Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()).withName("claims"));
        if (passThrough) {
            claims.peek((k, v) -> {
                counts.accepted.incrementAndGet();
                counts.seen();
            }).to(t.accepted(), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
            return b.build();
        }
        GlobalKTable<String, Status.Institution> institutions = b.globalTable(t.institutions(),
            Consumed.with(Serdes.String(), Status.institutionSerde()).withName("institutions"),
            store("institutions-store", kind, Status.institutionSerde()));
        GlobalKTable<String, Status.Practitioner> practitioners = b.globalTable(t.practitioners(),
            Consumed.with(Serdes.String(), Status.practitionerSerde()).withName("practitioners"),
            store("practitioners-store", kind, Status.practitionerSerde()));

        Map<String, KStream<byte[], Parsed>> lines = claims
            .processValues(Parse::new, Named.as("parse"))
            .split(Named.as("line-"))
            .branch((k, p) -> p.deadLetter() != null, Branched.as("malformed"))
            .defaultBranch(Branched.as("well-formed"));

        lines.get("line-malformed")
            .mapValues(p -> {
                counts.deadLetters.incrementAndGet();
                counts.seen();
                return p.deadLetter();
            }, Named.as("dead-letter"))
            .to(t.dlq(), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()).withName("dlq"));

        // A legacy code under `legacy_codes = "unregistered"` is not looked up: a null join key, which
        // a left join passes on with no record (KIP-962).
        KStream<byte[], Decision> decided = lines.get("line-well-formed")
            .leftJoin(institutions, (k, p) -> p.claim().fixmedinsCode(),
                (p, inst) -> new WithInstitution(p.claim(), inst), Named.as("join-institution"))
            .leftJoin(practitioners,
                (k, w) -> !w.claim().national() && profile.legacyUnregistered ? null : w.claim().bilgDrCodg(),
                (w, person) -> Decision.decide(w.claim(), w.institution(), person, profile),
                Named.as("join-practitioner"));

        decided.split(Named.as("verdict-"))
            .branch((k, d) -> d.accept(), Branched.withConsumer(s -> s
                .mapValues(d -> {
                    counts.accepted.incrementAndGet();
                    counts.seen();
                    return d.toJson(Decision.now());
                }, Named.as("accepted-json"))
                .to(t.accepted(), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()).withName("accepted")), "accept"))
            .defaultBranch(Branched.withConsumer(s -> s
                .mapValues(d -> {
                    counts.rejected.incrementAndGet();
                    counts.seen();
                    return d.toJson(Decision.now());
                }, Named.as("rejected-json"))
                .to(t.rejected(), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()).withName("rejected")), "reject"));
        return b.build();
    }
}
