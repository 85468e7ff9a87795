package claimgate.peer.kstreams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

/** The field rules claimgate's record/ modules apply, as the peer applies them. */
class TextTest {
    @Test
    void times_round_trip_and_refuse_what_claimgate_refuses() throws Exception {
        for (String t : new String[] {"2026-04-02 10:31:00", "1900-01-01 00:00:00", "2199-12-31 23:59:59", "2024-02-29 12:00:00"}) {
            assertEquals(t, Text.formatTime(Text.parseTime(t)));
        }
        assertEquals("2026-04-02 00:00:00", Text.formatTime(Text.parseTime("2026-04-02")));
        assertEquals(Text.parseTime("2026-04-03"), Text.parseTime("2026-04-02 00:00:00") + 86_400);
        for (String bad : new String[] {"2026-02-29", "2026-04-02 24:00:00", "1899-12-31", "2026-04-02T10:31:00", "2026-4-02"}) {
            assertThrows(Text.BadTime.class, () -> Text.parseTime(bad), bad);
        }
    }

    @Test
    void amounts_are_exact_to_the_fen() throws Exception {
        assertEquals(12650, Text.parseAmount("126.5"));
        assertEquals("126.50", Text.formatAmount(Text.parseAmount("126.5")));
        assertEquals("0.00", Text.formatAmount(Text.parseAmount("-0.00")));
        assertEquals("-3.07", Text.formatAmount(Text.parseAmount("-003.07")));
        assertEquals("7.10", Text.formatAmount(Text.parseAmount("+7.1")));
        for (String bad : new String[] {"1.234", "1e3", ".5", "5.", "", "-", "1234567890123456"}) {
            assertThrows(Text.BadAmount.class, () -> Text.parseAmount(bad), bad);
        }
    }

    @Test
    void codes_and_medical_types() {
        assertEquals(null, Text.checkInstitution("H11010500001"));
        assertEquals("not an institution code (`H` or `P`, then 11 digits)", Text.checkInstitution("h11010500001"));
        assertEquals(true, Text.isNational("HY110105000123"));
        assertEquals(false, Text.isNational("0457"));
        assertEquals("longer than 30 characters", Text.checkCode("x".repeat(31)));
        assertEquals("characters outside printable ASCII", Text.checkCode("张三"));
        assertEquals(14, Text.medType("14.0"));
        assertEquals(-1, Text.medType("14."));
        assertEquals(1, Text.medType("01"));
    }

    @Test
    void utf8_is_checked_as_rust_checks_it() {
        assertEquals(-1, Text.invalidUtf8("就诊 ok".getBytes(StandardCharsets.UTF_8)));
        assertEquals(2, Text.invalidUtf8(new byte[] {'a', 'b', (byte) 0xff}));
        assertEquals(0, Text.invalidUtf8(new byte[] {(byte) 0xed, (byte) 0xa0, (byte) 0x80}), "a surrogate");
        assertEquals(0, Text.invalidUtf8(new byte[] {(byte) 0xc0, (byte) 0x80}), "an overlong NUL");
        assertEquals(1, Text.invalidUtf8(new byte[] {'a', (byte) 0xe5, (byte) 0xb0}), "cut short");
    }
}
