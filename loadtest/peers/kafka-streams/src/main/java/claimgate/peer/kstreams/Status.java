package claimgate.peer.kstreams;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The status records (records.md, "Practitioner record", "Institution record") as the two
 * GlobalKTables hold them, and their serdes.
 *
 * <p>A GlobalKTable keeps the topic's bytes in its store (on restoration it copies them without
 * deserializing), so every lookup deserializes the JSON record again: the value types keep their
 * bytes, which is also what their serializer writes back. A record that claimgate would refuse
 * (bad JSON, a bad code, an empty interval) deserializes to null, which the join sees as "not in the
 * table" — claimgate instead keeps the record it held before. And a GlobalKTable keeps the latest
 * record by offset: a record whose {@code version} is lower than the one held replaces it, where
 * claimgate ignores it as stale. Every writer of the status topics writes the held version + 1
 * (records.md), so on the load test's data both read the same table.
 */
final class Status {
    private Status() {}

    /** Records refused by the deserializers (each refusal is counted every time it is read). */
    static final AtomicLong INVALID = new AtomicLong();

    /** {@code [from, until)}, seconds of Beijing time; {@code until} {@link Text#OPEN_END} when open. */
    record Interval(long from, long until) {
        boolean contains(long t) {
            return from <= t && t < until;
        }
    }

    record Registration(String institution, Interval during) {}

    record Period(boolean terminated, Interval during, List<String> departments) {}

    /** A validated practitioner record. */
    record Practitioner(String code, List<Registration> registrations, List<Period> periods, long version, byte[] raw) {
        boolean registeredAnywhere(long t) {
            for (Registration r : registrations) {
                if (r.during.contains(t)) {
                    return true;
                }
            }
            return false;
        }

        boolean registeredAt(String institution, long t) {
            for (Registration r : registrations) {
                if (r.during.contains(t) && r.institution.equals(institution)) {
                    return true;
                }
            }
            return false;
        }

        /** 0 normal, 1 suspended, 2 terminated (terminated wins over suspended). */
        int statusAt(long t) {
            int s = 0;
            for (Period p : periods) {
                if (p.during.contains(t)) {
                    if (p.terminated) {
                        return 2;
                    }
                    s = 1;
                }
            }
            return s;
        }
    }

    /** A validated institution record. */
    record Institution(String code, List<Period> periods, long version, byte[] raw) {}

    // ---- the JSON shapes (unknown fields ignored, as serde does) ----

    @JsonIgnoreProperties(ignoreUnknown = true)
    record RegistrationJson(String institution, String from, String until) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    record PeriodJson(String status, String from, String until, List<String> departments) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    record PractitionerJson(String code, List<RegistrationJson> registrations, List<PeriodJson> periods, Long version) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    record InstitutionJson(String code, List<PeriodJson> periods, Long version) {}

    private static final ObjectMapper MAPPER = JsonMapper.builder()
        .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
        .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
        .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
        .build();

    /** Why a record was refused. */
    static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;

        Refused(String message) {
            super(message, null, false, false);
        }
    }

    private static Interval interval(String from, String until, String at) throws Refused {
        if (from == null) {
            throw new Refused(at + ".from: missing");
        }
        long f;
        long u;
        try {
            f = Text.parseTime(Text.trim(from));
            u = until == null ? Text.OPEN_END : Text.parseTime(Text.trim(until));
        } catch (Text.BadTime e) {
            throw new Refused(at + ": " + e.getMessage());
        }
        if (u <= f) {
            throw new Refused(at + ": `until` must be after `from`");
        }
        return new Interval(f, u);
    }

    private static boolean terminated(String status, String at) throws Refused {
        if ("terminated".equals(status)) {
            return true;
        }
        if ("suspended".equals(status)) {
            return false;
        }
        throw new Refused(at + ".status: expected suspended or terminated");
    }

    private static long version(Long v) throws Refused {
        if (v == null || v < 0) {
            throw new Refused("version: expected an unsigned integer");
        }
        return v;
    }

    /** PractitionerRow::from_json + validate. */
    static Practitioner practitioner(byte[] bytes) throws Refused {
        PractitionerJson j;
        try {
            j = MAPPER.readValue(bytes, PractitionerJson.class);
        } catch (IOException e) {
            throw new Refused("not a practitioner record");
        }
        if (j == null || j.code == null) {
            throw new Refused("code: missing");
        }
        String code = Text.trim(j.code);
        String why = Text.checkCode(code);
        if (why != null) {
            throw new Refused("code: " + why);
        }
        List<Registration> regs = new ArrayList<>();
        if (j.registrations != null) {
            for (int i = 0; i < j.registrations.size(); i++) {
                RegistrationJson r = j.registrations.get(i);
                String at = "registrations[" + i + "]";
                String inst = r.institution == null ? "" : Text.trim(r.institution);
                String bad = Text.checkInstitution(inst);
                if (bad != null) {
                    throw new Refused(at + ".institution: " + bad);
                }
                regs.add(new Registration(inst, interval(r.from, r.until, at)));
            }
        }
        List<Period> periods = new ArrayList<>();
        if (j.periods != null) {
            for (int i = 0; i < j.periods.size(); i++) {
                PeriodJson p = j.periods.get(i);
                String at = "periods[" + i + "]";
                periods.add(new Period(terminated(p.status, at), interval(p.from, p.until, at), null));
            }
        }
        return new Practitioner(code, List.copyOf(regs), List.copyOf(periods), version(j.version), bytes);
    }

    /** InstitutionText::from_json + validate. */
    static Institution institution(byte[] bytes) throws Refused {
        InstitutionJson j;
        try {
            j = MAPPER.readValue(bytes, InstitutionJson.class);
        } catch (IOException e) {
            throw new Refused("not an institution record");
        }
        if (j == null || j.code == null) {
            throw new Refused("code: missing");
        }
        String code = Text.trim(j.code);
        String why = Text.checkInstitution(code);
        if (why != null) {
            throw new Refused("code: " + why);
        }
        List<Period> periods = new ArrayList<>();
        if (j.periods != null) {
            for (int i = 0; i < j.periods.size(); i++) {
                PeriodJson p = j.periods.get(i);
                String at = "periods[" + i + "]";
                List<String> depts = null;
                if (p.departments != null) {
                    depts = new ArrayList<>();
                    for (int k = 0; k < p.departments.size(); k++) {
                        String d = p.departments.get(k) == null ? "" : Text.trim(p.departments.get(k));
                        String bad = Text.checkCode(d);
                        if (bad != null) {
                            throw new Refused(at + ".departments[" + k + "]: " + bad);
                        }
                        depts.add(d);
                    }
                    depts = List.copyOf(depts);
                }
                periods.add(new Period(terminated(p.status, at), interval(p.from, p.until, at), depts));
            }
        }
        return new Institution(code, List.copyOf(periods), version(j.version), bytes);
    }

    /** The practitioners table's value serde: JSON in the store, a validated record out. */
    static Serde<Practitioner> practitionerSerde() {
        Serializer<Practitioner> ser = (topic, p) -> p == null ? null : p.raw();
        Deserializer<Practitioner> de = (topic, bytes) -> {
            if (bytes == null) {
                return null;
            }
            try {
                return practitioner(bytes);
            } catch (Refused e) {
                INVALID.incrementAndGet();
                return null;
            }
        };
        return Serdes.serdeFrom(ser, de);
    }

    /** The institutions table's value serde. */
    static Serde<Institution> institutionSerde() {
        Serializer<Institution> ser = (topic, i) -> i == null ? null : i.raw();
        Deserializer<Institution> de = (topic, bytes) -> {
            if (bytes == null) {
                return null;
            }
            try {
                return institution(bytes);
            } catch (Refused e) {
                INVALID.incrementAndGet();
                return null;
            }
        };
        return Serdes.serdeFrom(ser, de);
    }
}
