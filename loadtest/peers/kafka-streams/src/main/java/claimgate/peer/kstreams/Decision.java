package claimgate.peer.kstreams;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * The decision (rules.md): the order of checks with the emergency exception, as claimgate's
 * {@code src/decide.rs} takes it, and the decision record (records.md, "Decision — output") in the
 * field order claimgate writes.
 */
record Decision(
    ClaimLine claim,
    boolean accept,
    Reason reason,
    Reason overridden,
    String rule,
    String profile,
    Long practitionerVersion,
    Long institutionVersion) {

    /**
     * Decides one line against the records the joins found ({@code null}: not in the table). The first
     * failed check decides unless the line is an emergency and the profile lets emergencies pass it;
     * then it is recorded as overridden and the later checks still run (checks 6-7 read the person's
     * periods even after 4-5 failed), and the first failure that cannot be overridden rejects.
     */
    static Decision decide(ClaimLine c, Status.Institution inst, Status.Practitioner person, Profile profile) {
        long t = c.feeOcurTime();
        boolean emergency = c.erFlag() || c.admViaEmergency() || profile.emergencyMedTypes.contains(c.medType());
        Long iv = inst == null ? null : inst.version();
        if (!c.national() && profile.legacyUnregistered) {
            person = null;
        }
        Long pv = person == null ? null : person.version();
        Reason overridden = null;

        // Checks 1-3. An institution unknown to the table is designated and normal.
        if (inst != null) {
            int whole = 0; // 0 normal, 1 suspended, 2 terminated
            boolean department = false;
            for (Status.Period p : inst.periods()) {
                if (!p.during().contains(t)) {
                    continue;
                }
                if (p.departments() == null) {
                    if (whole != 2) {
                        whole = p.terminated() ? 2 : 1;
                    }
                } else if (c.bilgDeptCodg() != null && p.departments().contains(c.bilgDeptCodg())) {
                    // A department period of either status stops the department: DEPARTMENT_SUSPENDED.
                    department = true;
                }
            }
            boolean[] failed = {whole == 2, whole == 1, department};
            Reason[] reasons = {Reason.INSTITUTION_TERMINATED, Reason.INSTITUTION_SUSPENDED, Reason.DEPARTMENT_SUSPENDED};
            for (int k = 0; k < 3; k++) {
                if (failed[k]) {
                    if (emergency && profile.overridable.contains(reasons[k])) {
                        overridden = overridden == null ? reasons[k] : overridden;
                    } else {
                        return reject(c, reasons[k], profile, pv, iv);
                    }
                }
            }
        }

        // Checks 4-7: the person's periods are read whatever the registration checks found.
        boolean anywhere = person != null && person.registeredAnywhere(t);
        boolean here = anywhere && person.registeredAt(c.fixmedinsCode(), t);
        int status = person == null ? 0 : person.statusAt(t);
        boolean[] failed = {!anywhere, !here, status == 2, status == 1};
        Reason[] reasons = {
            Reason.PRACTITIONER_UNREGISTERED, Reason.PRACTITIONER_NOT_REGISTERED_HERE,
            Reason.PRACTITIONER_TERMINATED, Reason.PRACTITIONER_SUSPENDED,
        };
        for (int k = 0; k < 4; k++) {
            if (failed[k]) {
                if (emergency && profile.overridable.contains(reasons[k])) {
                    overridden = overridden == null ? reasons[k] : overridden;
                } else {
                    return reject(c, reasons[k], profile, pv, iv);
                }
            }
        }
        if (overridden == null) {
            return new Decision(c, true, Reason.OK, null, profile.rule(Reason.OK), profile.name, pv, iv);
        }
        return new Decision(c, true, Reason.EMERGENCY_OVERRIDE, overridden, profile.overrideRule(overridden),
            profile.name, pv, iv);
    }

    private static Decision reject(ClaimLine c, Reason r, Profile profile, Long pv, Long iv) {
        return new Decision(c, false, r, null, profile.rule(r), profile.name, pv, iv);
    }

    private static final DateTimeFormatter DECIDED_AT =
        DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS").withZone(ZoneOffset.ofHours(8));

    /** The last millisecond formatted, and its text (one formatting per millisecond, not per line). */
    private static final class Stamp {
        final long ms;
        final String text;

        Stamp(long ms, String text) {
            this.ms = ms;
            this.text = text;
        }
    }

    private static volatile Stamp last = new Stamp(-1, "");

    /** Now as {@code yyyy-MM-dd HH:mm:ss.SSS}, Beijing time. */
    static String now() {
        long ms = System.currentTimeMillis();
        Stamp s = last;
        if (s.ms != ms) {
            s = new Stamp(ms, DECIDED_AT.format(Instant.ofEpochMilli(ms)));
            last = s;
        }
        return s.text;
    }

    /** The decision record, compact JSON, fields in records.md's order; {@code table_epoch} is 0 (no snapshots). */
    byte[] toJson(String decidedAt) {
        ClaimLine c = claim;
        StringBuilder o = new StringBuilder(400);
        o.append("{\"feedetl_sn\":");
        Text.jsonString(o, c.feedetlSn());
        o.append(",\"fixmedins_code\":\"").append(c.fixmedinsCode());
        o.append("\",\"mdtrt_id\":");
        Text.jsonString(o, c.mdtrtId());
        o.append(",\"bilg_dr_codg\":");
        Text.jsonString(o, c.bilgDrCodg());
        o.append(",\"fee_ocur_time\":\"").append(Text.formatTime(c.feeOcurTime()));
        o.append("\",\"det_item_fee_sumamt\":\"").append(Text.formatAmount(c.amountFen()));
        o.append("\",\"med_type\":\"").append(c.medType() < 10 ? "0" : "").append(c.medType());
        o.append("\",\"verdict\":\"").append(accept ? "accept" : "reject");
        o.append("\",\"reason\":\"").append(reason.name());
        o.append("\",\"overridden\":");
        if (overridden == null) {
            o.append("null");
        } else {
            o.append('"').append(overridden.name()).append('"');
        }
        // national-2024 checks one person (the billing practitioner) and warns of nothing (rules.md,
        // "Regions, roles, enforcement"): `role` names that field when the reason, or the reason
        // overridden, concerns the person; null when it concerns the institution or nothing failed.
        boolean person = reason.isPerson() || (overridden != null && overridden.isPerson());
        o.append(",\"would_reject\":null,\"role\":").append(person ? "\"bilg_dr_codg\"" : "null");
        o.append(",\"rule\":");
        Text.jsonString(o, rule);
        o.append(",\"profile\":");
        Text.jsonString(o, profile);
        o.append(",\"practitioner_version\":").append(practitionerVersion == null ? "null" : practitionerVersion.toString());
        o.append(",\"institution_version\":").append(institutionVersion == null ? "null" : institutionVersion.toString());
        o.append(",\"table_epoch\":0,\"decided_at\":");
        Text.jsonString(o, decidedAt);
        o.append('}');
        return Text.utf8(o);
    }

    /** The dead-letter record (records.md, "Dead letter — output"). */
    static byte[] deadLetter(ClaimLine.Malformed m, String source, byte[] raw, String receivedAt) {
        StringBuilder o = new StringBuilder(raw.length + 200);
        o.append("{\"error\":");
        Text.jsonString(o, m.getMessage());
        o.append(",\"field\":");
        if (m.field == null) {
            o.append("null");
        } else {
            Text.jsonString(o, m.field);
        }
        o.append(",\"source\":");
        Text.jsonString(o, source);
        if (Text.invalidUtf8(raw) < 0) {
            o.append(",\"raw\":");
            Text.jsonString(o, new String(raw, java.nio.charset.StandardCharsets.UTF_8));
            o.append(",\"raw_base64\":null");
        } else {
            o.append(",\"raw\":null,\"raw_base64\":\"").append(java.util.Base64.getEncoder().encodeToString(raw)).append('"');
        }
        o.append(",\"received_at\":");
        Text.jsonString(o, receivedAt);
        o.append('}');
        return Text.utf8(o);
    }
}
