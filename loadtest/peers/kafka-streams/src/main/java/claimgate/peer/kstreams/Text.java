package claimgate.peer.kstreams;

import java.nio.charset.StandardCharsets;

/**
 * The field rules of records.md that every record shares, as claimgate applies them
 * ({@code src/record/code.rs}, {@code time.rs}, {@code money.rs}): trimming, codes, Beijing time,
 * amounts, medical types, and JSON string writing.
 */
final class Text {
    private Text() {}

    /** Seconds since 1970-01-01 00:00:00 Beijing wall-clock time of an open-ended {@code until}. */
    static final long OPEN_END = Long.MAX_VALUE;

    /** Surrounding spaces, tabs, CR and LF removed (records.md: exports pad fields with a tab). */
    static String trim(String s) {
        int a = 0;
        int b = s.length();
        while (a < b && isPad(s.charAt(a))) {
            a++;
        }
        while (b > a && isPad(s.charAt(b - 1))) {
            b--;
        }
        return a == 0 && b == s.length() ? s : s.substring(a, b);
    }

    private static boolean isPad(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
    }

    /** Length of the UTF-8 encoding. */
    static int utf8Length(String s) {
        int n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                n += 1;
            } else if (c < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }

    /** code.rs check_code: 1 to 30 printable ASCII characters; null if the text is a code, else why not. */
    static String checkCode(String text) {
        if (text.isEmpty()) {
            return "empty";
        }
        if (utf8Length(text) > 30) {
            return "longer than 30 characters";
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                return "characters outside printable ASCII";
            }
        }
        return null;
    }

    /** InstitutionCode::parse: null if {@code text} is an institution code, else why not. */
    static String checkInstitution(String text) {
        String e = checkCode(text);
        if (e != null) {
            return e;
        }
        char k = text.charAt(0);
        if ((k != 'H' && k != 'P') || text.length() != 12 || !digits(text, 1, 12)) {
            return "not an institution code (`H` or `P`, then 11 digits)";
        }
        return null;
    }

    /** PractitionerKey: true if a (valid) practitioner code has a national form (D, N, HY, HJ + 12 digits). */
    static boolean isNational(String code) {
        int at;
        if (code.startsWith("D") || code.startsWith("N")) {
            at = 1;
        } else if (code.startsWith("HY") || code.startsWith("HJ")) {
            at = 2;
        } else {
            return false;
        }
        return code.length() == at + 12 && digits(code, at, code.length());
    }

    private static boolean digits(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                return false;
            }
        }
        return true;
    }

    /** MedType::parse: digits (at most 9), optionally with a zero fraction ({@code "14.0"}); -1 if not. */
    static int medType(String text) {
        String whole = text;
        int dot = text.indexOf('.');
        if (dot >= 0) {
            String frac = text.substring(dot + 1);
            if (frac.isEmpty()) {
                return -1;
            }
            for (int i = 0; i < frac.length(); i++) {
                if (frac.charAt(i) != '0') {
                    return -1;
                }
            }
            whole = text.substring(0, dot);
        }
        if (whole.isEmpty() || whole.length() > 9 || !digits(whole, 0, whole.length())) {
            return -1;
        }
        return Integer.parseInt(whole);
    }

    /** A time text that is not {@code yyyy-MM-dd HH:mm:ss} or {@code yyyy-MM-dd}. */
    static final class BadTime extends Exception {
        private static final long serialVersionUID = 1L;

        BadTime(String message) {
            super(message, null, false, false);
        }
    }

    private static final String FORMAT = "expected `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`";
    private static final String RANGE = "no such date or time of day";

    /** BjTime::parse: seconds since 1970-01-01 00:00:00 Beijing time. */
    static long parseTime(String t) throws BadTime {
        int n = t.length();
        if (n != 10 && n != 19) {
            throw new BadTime(FORMAT);
        }
        if (t.charAt(4) != '-' || t.charAt(7) != '-') {
            throw new BadTime(FORMAT);
        }
        int year = num(t, 0, 4);
        int month = num(t, 5, 7);
        int day = num(t, 8, 10);
        if (year < 1900 || year > 2199 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
            throw new BadTime(RANGE);
        }
        long date = daysFromCivil(year, month, day) * 86_400L;
        if (n == 10) {
            return date;
        }
        if (t.charAt(10) != ' ' || t.charAt(13) != ':' || t.charAt(16) != ':') {
            throw new BadTime(FORMAT);
        }
        int h = num(t, 11, 13);
        int m = num(t, 14, 16);
        int s = num(t, 17, 19);
        if (h > 23 || m > 59 || s > 59) {
            throw new BadTime(RANGE);
        }
        return date + h * 3600L + m * 60L + s;
    }

    private static int num(String t, int from, int to) throws BadTime {
        int v = 0;
        for (int i = from; i < to; i++) {
            char c = t.charAt(i);
            if (c < '0' || c > '9') {
                throw new BadTime(FORMAT);
            }
            v = v * 10 + (c - '0');
        }
        return v;
    }

    private static int daysInMonth(int y, int m) {
        switch (m) {
            case 2:
                return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28;
            case 4:
            case 6:
            case 9:
            case 11:
                return 30;
            default:
                return 31;
        }
    }

    private static long daysFromCivil(long y, int m, int d) {
        y = m <= 2 ? y - 1 : y;
        long era = Math.floorDiv(y, 400);
        long yoe = y - era * 400;
        long doy = (153L * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146_097 + doe - 719_468;
    }

    /** {@code yyyy-MM-dd HH:mm:ss} of a parsed time (as claimgate writes it back). */
    static String formatTime(long secs) {
        long days = Math.floorDiv(secs, 86_400L);
        long rem = Math.floorMod(secs, 86_400L);
        java.time.LocalDate d = java.time.LocalDate.ofEpochDay(days);
        // By hand: String.format parses its pattern on every call, a hot spot at tens of thousands a second.
        char[] c = new char[19];
        digits(c, 0, d.getYear(), 4);
        c[4] = '-';
        digits(c, 5, d.getMonthValue(), 2);
        c[7] = '-';
        digits(c, 8, d.getDayOfMonth(), 2);
        c[10] = ' ';
        digits(c, 11, (int) (rem / 3600), 2);
        c[13] = ':';
        digits(c, 14, (int) (rem % 3600 / 60), 2);
        c[16] = ':';
        digits(c, 17, (int) (rem % 60), 2);
        return new String(c);
    }

    private static void digits(char[] c, int at, int v, int width) {
        for (int i = at + width - 1; i >= at; i--) {
            c[i] = (char) ('0' + v % 10);
            v /= 10;
        }
    }

    /** An amount that is not a plain decimal with at most 2 decimals. */
    static final class BadAmount extends Exception {
        private static final long serialVersionUID = 1L;

        BadAmount(String message) {
            super(message, null, false, false);
        }
    }

    /** Amount::parse: the amount in fen. */
    static long parseAmount(String text) throws BadAmount {
        int i = 0;
        boolean neg = false;
        if (!text.isEmpty() && (text.charAt(0) == '-' || text.charAt(0) == '+')) {
            neg = text.charAt(0) == '-';
            i = 1;
        }
        String rest = text.substring(i);
        int dot = rest.indexOf('.');
        String whole = dot >= 0 ? rest.substring(0, dot) : rest;
        String frac = dot >= 0 ? rest.substring(dot + 1) : "";
        if (whole.isEmpty() || !digits(whole, 0, whole.length())) {
            throw new BadAmount("not a decimal number");
        }
        if (!digits(frac, 0, frac.length()) || (frac.isEmpty() && rest.endsWith("."))) {
            throw new BadAmount("not a decimal number");
        }
        if (frac.length() > 2) {
            throw new BadAmount("more than 2 decimals");
        }
        int nz = 0;
        while (nz < whole.length() - 1 && whole.charAt(nz) == '0') {
            nz++;
        }
        whole = whole.substring(nz);
        if (whole.length() > 15) {
            throw new BadAmount("too large");
        }
        long fen = Long.parseLong(whole) * 100;
        if (frac.length() >= 1) {
            fen += (frac.charAt(0) - '0') * 10L;
        }
        if (frac.length() == 2) {
            fen += frac.charAt(1) - '0';
        }
        return neg ? -fen : fen;
    }

    /** The amount with two decimals, as claimgate's Display writes it. */
    static String formatAmount(long fen) {
        long abs = Math.abs(fen);
        long cents = abs % 100;
        return (fen < 0 ? "-" : "") + (abs / 100) + "." + (cents < 10 ? "0" : "") + cents;
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    /** Appends {@code s} as a JSON string, escaping what claimgate's write_str escapes. */
    static void jsonString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                default:
                    if (c < 0x20) {
                        out.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xf]);
                    } else {
                        out.append(c);
                    }
            }
        }
        out.append('"');
    }

    /** UTF-8 bytes of a built record. */
    static byte[] utf8(CharSequence s) {
        return s.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** Index of the first byte that is not valid UTF-8 (Rust's from_utf8 rules), or -1. */
    static int invalidUtf8(byte[] b) {
        int i = 0;
        int n = b.length;
        while (i < n) {
            int c = b[i] & 0xff;
            if (c < 0x80) {
                i++;
                continue;
            }
            int need;
            int min;
            if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
                min = 0x80;
            } else if (c >= 0xe0 && c <= 0xef) {
                need = 2;
                min = 0x800;
            } else if (c >= 0xf0 && c <= 0xf4) {
                need = 3;
                min = 0x10000;
            } else {
                return i;
            }
            if (i + need >= n) {
                return i;
            }
            int cp = c & (0x3f >> need);
            for (int k = 1; k <= need; k++) {
                int cc = b[i + k] & 0xff;
                if ((cc & 0xc0) != 0x80) {
                    return i;
                }
                cp = (cp << 6) | (cc & 0x3f);
            }
            if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                return i;
            }
            i += need + 1;
        }
        return -1;
    }
}
