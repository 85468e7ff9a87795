package claimgate.peer.kstreams;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The topology on Kafka Streams' test driver: routing by verdict, dead letters, headers passed on, a
 * status change taking effect, the emergency chain. The decisions themselves are checked against
 * claimgate line by line in the repository's {@code tests/kstreams_peer.rs}.
 */
class ClaimsTopologyTest {
    private static final ClaimsTopology.Topics T =
        new ClaimsTopology.Topics("claims", "accepted", "rejected", "dlq", "practitioners", "institutions");

    @TempDir
    Path state;

    private TopologyTestDriver driver;
    private TestInputTopic<byte[], byte[]> claims;
    private TestInputTopic<String, String> practitioners;
    private TestInputTopic<String, String> institutions;
    private TestOutputTopic<byte[], byte[]> accepted;
    private TestOutputTopic<byte[], byte[]> rejected;
    private TestOutputTopic<byte[], byte[]> dlq;

    @BeforeEach
    void start() throws Exception {
        Profile profile = Profile.load(Path.of("../../../profiles/national-2024.toml"));
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, "test");
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        p.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
        driver = new TopologyTestDriver(
            ClaimsTopology.build(T, profile, ClaimsTopology.Store.IN_MEMORY, false, new ClaimsTopology.Counts()), p);
        ByteArraySerializer b = new ByteArraySerializer();
        StringSerializer s = new StringSerializer();
        ByteArrayDeserializer d = new ByteArrayDeserializer();
        claims = driver.createInputTopic(T.claims(), b, b);
        practitioners = driver.createInputTopic(T.practitioners(), s, s);
        institutions = driver.createInputTopic(T.institutions(), s, s);
        accepted = driver.createOutputTopic(T.accepted(), d, d);
        rejected = driver.createOutputTopic(T.rejected(), d, d);
        dlq = driver.createOutputTopic(T.dlq(), d, d);
    }

    @AfterEach
    void stop() {
        driver.close();
    }

    private static String line(String sn, String inst, String dr, String extra) {
        return "{\"feedetl_sn\":\"" + sn + "\",\"fixmedins_code\":\"" + inst + "\",\"mdtrt_id\":\"M1\",\"psn_no\":\"P1\","
            + "\"med_type\":\"11\",\"fee_ocur_time\":\"2026-04-02 10:31:00\",\"bilg_dr_codg\":\"" + dr + "\","
            + "\"bilg_dept_codg\":\"A03\",\"det_item_fee_sumamt\":\"126.50\"" + extra + "}";
    }

    private static String person(String code, String inst, String periods, int version) {
        return "{\"code\":\"" + code + "\",\"registrations\":[{\"institution\":\"" + inst + "\",\"from\":\"2020-01-01\","
            + "\"until\":null}],\"periods\":[" + periods + "],\"version\":" + version + "}";
    }

    private void send(String value, String header) {
        RecordHeaders h = new RecordHeaders();
        h.add("claimgate-loadtest", header.getBytes(StandardCharsets.UTF_8));
        claims.pipeInput(new TestRecord<>("H11010500001|M1".getBytes(StandardCharsets.UTF_8),
            value.getBytes(StandardCharsets.UTF_8), h));
    }

    private static String text(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    @Test
    void routes_by_verdict_and_passes_key_and_headers_on() {
        practitioners.pipeInput("D110105000123", person("D110105000123", "H11010500001", "", 3));
        send(line("F1", "H11010500001", "D110105000123", ""), "one");
        send(line("F2", "H11010500001", "D110105000999", ""), "two");
        send("{\"feedetl_sn\":", "three");

        TestRecord<byte[], byte[]> ok = accepted.readRecord();
        assertTrue(text(ok.value()).contains("\"reason\":\"OK\""), text(ok.value()));
        assertTrue(text(ok.value()).contains("\"practitioner_version\":3"), text(ok.value()));
        assertArrayEquals("H11010500001|M1".getBytes(StandardCharsets.UTF_8), ok.key());
        assertEquals("one", text(ok.headers().lastHeader("claimgate-loadtest").value()));

        TestRecord<byte[], byte[]> no = rejected.readRecord();
        assertTrue(text(no.value()).contains("\"reason\":\"PRACTITIONER_UNREGISTERED\""), text(no.value()));
        assertEquals("two", text(no.headers().lastHeader("claimgate-loadtest").value()));

        TestRecord<byte[], byte[]> dead = dlq.readRecord();
        assertTrue(text(dead.value()).contains("\"source\":\"claims/0@2\""), text(dead.value()));
        assertEquals("three", text(dead.headers().lastHeader("claimgate-loadtest").value()));
        assertTrue(accepted.isEmpty() && rejected.isEmpty() && dlq.isEmpty());
    }

    @Test
    void a_status_change_takes_effect_for_the_next_line() {
        String susp = "{\"status\":\"suspended\",\"from\":\"2026-03-20\",\"until\":\"2026-06-20\"}";
        practitioners.pipeInput("D110105000123", person("D110105000123", "H11010500001", "", 1));
        send(line("F1", "H11010500001", "D110105000123", ""), "a");
        practitioners.pipeInput("D110105000123", person("D110105000123", "H11010500001", susp, 2));
        send(line("F2", "H11010500001", "D110105000123", ""), "b");
        practitioners.pipeInput("D110105000123", (String) null);
        send(line("F3", "H11010500001", "D110105000123", ""), "c");
        assertEquals(1, accepted.readValuesToList().size());
        List<byte[]> r = rejected.readValuesToList();
        assertTrue(text(r.get(0)).contains("PRACTITIONER_SUSPENDED") && text(r.get(0)).contains("\"practitioner_version\":2"));
        assertTrue(text(r.get(1)).contains("PRACTITIONER_UNREGISTERED") && text(r.get(1)).contains("\"practitioner_version\":null"));
    }

    @Test
    void emergency_chain_terminated_is_never_passed_as_not_registered_here() {
        String term = "{\"status\":\"terminated\",\"from\":\"2026-01-01\",\"until\":null}";
        String susp = "{\"status\":\"suspended\",\"from\":\"2026-01-01\",\"until\":null}";
        practitioners.pipeInput("D110105000001", person("D110105000001", "H11010500009", term, 1));
        practitioners.pipeInput("D110105000002", person("D110105000002", "H11010500009", susp, 1));
        institutions.pipeInput("H11010500001",
            "{\"code\":\"H11010500001\",\"periods\":[{\"status\":\"suspended\",\"from\":\"2026-01-01\",\"until\":null,"
                + "\"departments\":null}],\"version\":4}");
        send(line("F1", "H11010500001", "D110105000001", ",\"er_flag\":\"1\""), "a");
        send(line("F2", "H11010500001", "D110105000002", ",\"adm_way\":1"), "b");
        String r = text(rejected.readValue());
        assertTrue(r.contains("\"reason\":\"PRACTITIONER_TERMINATED\"") && r.contains("\"institution_version\":4"), r);
        String a = text(accepted.readValue());
        assertTrue(a.contains("\"reason\":\"EMERGENCY_OVERRIDE\",\"overridden\":\"INSTITUTION_SUSPENDED\""), a);
    }
}
