package claimgate.peer.kstreams;

import java.io.IOException;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;

/**
 * One claim line (records.md, "Claim line — input") that passed check 0 of rules.md, or the reason it
 * did not ({@link Malformed}). Check for check as claimgate's {@code src/record/claim.rs}: the same
 * fields, in the same order, with the same rules, so that the same lines become dead letters and the
 * dead letter names the same field.
 *
 * <p>Read with Jackson's streaming parser (what a Java developer would reach for): the eleven known
 * fields are kept as text (a number keeps its literal, {@code 126.5} or {@code 1.0}), every other
 * value is walked so that it is checked but not kept. Where Jackson is laxer than claimgate's
 * RFC 8259 scanner, the difference is made up before or after it: the bytes must be UTF-8 (checked
 * first), a byte-order mark is refused (Jackson would skip it), numbers must fit a double and
 * nesting stops at 128, as serde_json's. Knowingly looser: a {@code \\uDC00} escape without its pair
 * (claimgate refuses it, Jackson reads it).
 */
record ClaimLine(
    String feedetlSn,
    String fixmedinsCode,
    String mdtrtId,
    String bilgDrCodg,
    boolean national,
    String bilgDeptCodg,
    long feeOcurTime,
    int medType,
    long amountFen,
    boolean erFlag,
    boolean admViaEmergency) {

    /** A line that cannot be decided: the field at fault (or null) and why. */
    static final class Malformed extends Exception {
        private static final long serialVersionUID = 1L;
        final String field;

        Malformed(String field, String message) {
            super(message, null, false, false);
            this.field = field;
        }
    }

    private static final JsonFactory JSON = JsonFactory.builder()
        .streamReadConstraints(StreamReadConstraints.builder()
            .maxNestingDepth(128)
            .maxNumberLength(Integer.MAX_VALUE)
            .build())
        .build();

    private static final String[] FIELDS = {
        "feedetl_sn", "fixmedins_code", "mdtrt_id", "psn_no", "med_type", "fee_ocur_time", "bilg_dr_codg",
        "bilg_dept_codg", "det_item_fee_sumamt", "er_flag", "adm_way",
    };
    private static final int FEEDETL_SN = 0;
    private static final int FIXMEDINS_CODE = 1;
    private static final int MDTRT_ID = 2;
    private static final int PSN_NO = 3;
    private static final int MED_TYPE = 4;
    private static final int FEE_OCUR_TIME = 5;
    private static final int BILG_DR_CODG = 6;
    private static final int BILG_DEPT_CODG = 7;
    private static final int DET_ITEM_FEE_SUMAMT = 8;
    private static final int ER_FLAG = 9;
    private static final int ADM_WAY = 10;

    private static int fieldIndex(String name) {
        switch (name) {
            case "feedetl_sn": return FEEDETL_SN;
            case "fixmedins_code": return FIXMEDINS_CODE;
            case "mdtrt_id": return MDTRT_ID;
            case "psn_no": return PSN_NO;
            case "med_type": return MED_TYPE;
            case "fee_ocur_time": return FEE_OCUR_TIME;
            case "bilg_dr_codg": return BILG_DR_CODG;
            case "bilg_dept_codg": return BILG_DEPT_CODG;
            case "det_item_fee_sumamt": return DET_ITEM_FEE_SUMAMT;
            case "er_flag": return ER_FLAG;
            case "adm_way": return ADM_WAY;
            default: return -1;
        }
    }

    /** What a known field held. */
    private enum Kind { ABSENT, NULL, TEXT, OTHER }

    private static Malformed syntax(String what) {
        return new Malformed(null, "not valid JSON: " + what);
    }

    /** Parses and validates one claim line (one Kafka message value). */
    static ClaimLine parse(byte[] bytes) throws Malformed {
        int bad = Text.invalidUtf8(bytes);
        if (bad >= 0) {
            throw syntax("valid UTF-8 at byte " + bad);
        }
        if (bytes.length >= 3 && (bytes[0] & 0xff) == 0xef && (bytes[1] & 0xff) == 0xbb && (bytes[2] & 0xff) == 0xbf) {
            throw syntax("an object at byte 0");
        }
        Kind[] kinds = new Kind[FIELDS.length];
        String[] texts = new String[FIELDS.length];
        java.util.Arrays.fill(kinds, Kind.ABSENT);
        try (JsonParser p = JSON.createParser(bytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw syntax("an object");
            }
            while (true) {
                JsonToken t = p.nextToken();
                if (t == JsonToken.END_OBJECT) {
                    break;
                }
                if (t != JsonToken.FIELD_NAME) {
                    throw syntax("a quoted member name");
                }
                int i = fieldIndex(p.currentName());
                JsonToken v = p.nextToken();
                Kind kind;
                String text = null;
                switch (v) {
                    case VALUE_STRING:
                        kind = Kind.TEXT;
                        text = i >= 0 ? Text.trim(p.getText()) : null;
                        break;
                    case VALUE_NUMBER_INT:
                    case VALUE_NUMBER_FLOAT:
                        kind = Kind.TEXT;
                        text = checkedNumber(p);
                        break;
                    case VALUE_NULL:
                        kind = Kind.NULL;
                        break;
                    case START_OBJECT:
                    case START_ARRAY:
                        walk(p);
                        kind = Kind.OTHER;
                        break;
                    default:
                        kind = Kind.OTHER;
                }
                if (i >= 0) {
                    if (kinds[i] != Kind.ABSENT) {
                        throw new Malformed(FIELDS[i], "duplicate field `" + FIELDS[i] + "`");
                    }
                    kinds[i] = kind;
                    texts[i] = text;
                }
            }
            if (p.nextToken() != null) {
                throw syntax("nothing after the object");
            }
        } catch (IOException e) {
            // JsonParseException, StreamConstraintsException (nesting): the line is not JSON we take.
            throw syntax(firstLine(e.getMessage()));
        }

        String feedetlSn = id(kinds, texts, FEEDETL_SN);
        String inst = required(kinds, texts, FIXMEDINS_CODE);
        String why = Text.checkInstitution(inst);
        if (why != null) {
            throw new Malformed("fixmedins_code", "field `fixmedins_code`: " + why);
        }
        String mdtrtId = id(kinds, texts, MDTRT_ID);
        id(kinds, texts, PSN_NO);
        int medType = Text.medType(required(kinds, texts, MED_TYPE));
        if (medType < 0) {
            throw new Malformed("med_type", "field `med_type`: not a medical-type code (digits)");
        }
        long time;
        try {
            time = Text.parseTime(required(kinds, texts, FEE_OCUR_TIME));
        } catch (Text.BadTime e) {
            throw new Malformed("fee_ocur_time", "field `fee_ocur_time`: " + e.getMessage());
        }
        String dr = required(kinds, texts, BILG_DR_CODG);
        why = Text.checkCode(dr);
        if (why != null) {
            throw new Malformed("bilg_dr_codg", "field `bilg_dr_codg`: " + why);
        }
        String dept = scalar(kinds, texts, BILG_DEPT_CODG);
        if (dept != null && dept.isEmpty()) {
            // An empty optional field is absent: exports write "" for "not given".
            dept = null;
        }
        if (dept != null && (why = Text.checkCode(dept)) != null) {
            throw new Malformed("bilg_dept_codg", "field `bilg_dept_codg`: " + why);
        }
        long fen;
        try {
            fen = Text.parseAmount(required(kinds, texts, DET_ITEM_FEE_SUMAMT));
        } catch (Text.BadAmount e) {
            throw new Malformed("det_item_fee_sumamt", "field `det_item_fee_sumamt`: " + e.getMessage());
        }
        boolean er = flag(kinds, texts, ER_FLAG);
        boolean adm = flag(kinds, texts, ADM_WAY);
        return new ClaimLine(feedetlSn, inst, mdtrtId, dr, Text.isNational(dr), dept, time, medType, fen, er, adm);
    }

    private static String firstLine(String m) {
        if (m == null) {
            return "unreadable";
        }
        int nl = m.indexOf('\n');
        return nl >= 0 ? m.substring(0, nl) : m;
    }

    /** A number's literal text; refused, as serde_json refuses it, if it overflows a double. */
    private static String checkedNumber(JsonParser p) throws IOException, Malformed {
        String n = p.getText();
        boolean exponent = n.indexOf('e') >= 0 || n.indexOf('E') >= 0;
        if ((exponent || n.length() > 300) && Double.isInfinite(Double.parseDouble(n))) {
            throw syntax("a number within the range of a double");
        }
        return n;
    }

    /** Walks a nested value (of an unknown field), checking its numbers. */
    private static void walk(JsonParser p) throws IOException, Malformed {
        int depth = 1;
        while (depth > 0) {
            JsonToken t = p.nextToken();
            if (t == null) {
                throw syntax("the end of a nested value");
            }
            switch (t) {
                case START_OBJECT:
                case START_ARRAY:
                    depth++;
                    break;
                case END_OBJECT:
                case END_ARRAY:
                    depth--;
                    break;
                case VALUE_NUMBER_INT:
                case VALUE_NUMBER_FLOAT:
                    checkedNumber(p);
                    break;
                default:
            }
        }
    }

    /** claim.rs scalar(): a string (trimmed) or a number (its literal); null when absent or null. */
    private static String scalar(Kind[] kinds, String[] texts, int i) throws Malformed {
        switch (kinds[i]) {
            case TEXT:
                return texts[i];
            case OTHER:
                throw new Malformed(FIELDS[i], "field `" + FIELDS[i] + "`: expected a string or a number");
            default:
                return null;
        }
    }

    private static String required(Kind[] kinds, String[] texts, int i) throws Malformed {
        String s = scalar(kinds, texts, i);
        if (s == null) {
            throw new Malformed(FIELDS[i], "missing field `" + FIELDS[i] + "`");
        }
        if (s.isEmpty()) {
            throw new Malformed(FIELDS[i], "field `" + FIELDS[i] + "` is empty");
        }
        return s;
    }

    /** Identifiers that are not codes: 1 to 64 characters, no control characters. */
    private static String id(Kind[] kinds, String[] texts, int i) throws Malformed {
        String s = required(kinds, texts, i);
        String f = FIELDS[i];
        if (s.codePointCount(0, s.length()) > 64) {
            throw new Malformed(f, "field `" + f + "` is longer than 64 characters");
        }
        for (int k = 0; k < s.length(); k++) {
            if (Character.getType(s.charAt(k)) == Character.CONTROL) {
                throw new Malformed(f, "field `" + f + "` has control characters");
            }
        }
        return s;
    }

    /** A flag is set when its value reads as the medical-type number 1 ({@code "1"}, {@code 1}, {@code "1.0"}). */
    private static boolean flag(Kind[] kinds, String[] texts, int i) throws Malformed {
        String s = scalar(kinds, texts, i);
        return s != null && Text.medType(s) == 1;
    }
}
