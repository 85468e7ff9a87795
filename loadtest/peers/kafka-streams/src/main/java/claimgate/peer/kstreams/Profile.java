package claimgate.peer.kstreams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;

/**
 * A policy profile (rules.md, "Policy profiles"), read from the same TOML file claimgate ships
 * ({@code profiles/national-2024.toml}): the emergency medical types, the reasons an emergency may
 * pass, how legacy codes are treated, and the article each decision cites.
 */
final class Profile {
    final String name;
    final Set<Integer> emergencyMedTypes;
    final Set<Reason> overridable;
    /** {@code legacy_codes = "unregistered"}: a code not of a national form is not looked up. */
    final boolean legacyUnregistered;
    private final Map<Reason, String> rules;
    private final Map<Reason, String> overrideRules;

    private Profile(String name, Set<Integer> emergency, Set<Reason> overridable, boolean legacyUnregistered,
                    Map<Reason, String> rules, Map<Reason, String> overrideRules) {
        this.name = name;
        this.emergencyMedTypes = emergency;
        this.overridable = overridable;
        this.legacyUnregistered = legacyUnregistered;
        this.rules = rules;
        this.overrideRules = overrideRules;
    }

    /** The article a decision with this reason cites. */
    String rule(Reason r) {
        return rules.get(r);
    }

    /** The article an EMERGENCY_OVERRIDE of this reason cites. */
    String overrideRule(Reason r) {
        return overrideRules.get(r);
    }

    /** Reads a profile file; every setting it uses is checked. */
    static Profile load(Path file) throws IOException {
        JsonNode t = new TomlMapper().readTree(Files.readAllBytes(file));
        String name = text(t, "name", file);
        Set<Integer> emergency = new HashSet<>();
        for (JsonNode m : array(t, "emergency_med_types", file)) {
            int mt = Text.medType(Text.trim(m.asText()));
            if (!m.isTextual() || mt < 0) {
                throw new IOException(file + ": emergency_med_types: `" + m.asText() + "` is not a medical-type code");
            }
            emergency.add(mt);
        }
        Set<Reason> overridable = EnumSet.noneOf(Reason.class);
        for (JsonNode r : array(t, "emergency_overrides", file)) {
            Reason reason = Reason.byName(r.asText());
            if (reason == null || !reason.isCheck()) {
                throw new IOException(file + ": emergency_overrides: `" + r.asText() + "` is not a failed check");
            }
            overridable.add(reason);
        }
        String legacy = text(t, "legacy_codes", file);
        if (!legacy.equals("lookup") && !legacy.equals("unregistered")) {
            throw new IOException(file + ": legacy_codes must be `lookup` or `unregistered`");
        }
        Map<Reason, String> rules = new EnumMap<>(Reason.class);
        Map<Reason, String> overrideRules = new EnumMap<>(Reason.class);
        for (Reason r : Reason.values()) {
            JsonNode v = t.path("rules").path(r.name());
            if (r != Reason.EMERGENCY_OVERRIDE) {
                if (!v.isTextual() || v.asText().isBlank()) {
                    throw new IOException(file + ": rules." + r.name() + " missing");
                }
                rules.put(r, v.asText());
            }
            JsonNode o = t.path("override_rules").path(r.name());
            if (overridable.contains(r)) {
                if (!o.isTextual() || o.asText().isBlank()) {
                    throw new IOException(file + ": override_rules." + r.name() + " missing");
                }
                overrideRules.put(r, o.asText());
            }
        }
        return new Profile(name, Set.copyOf(emergency), overridable, legacy.equals("unregistered"), rules, overrideRules);
    }

    private static String text(JsonNode t, String key, Path file) throws IOException {
        JsonNode v = t.get(key);
        if (v == null || !v.isTextual()) {
            throw new IOException(file + ": `" + key + "` missing or not a string");
        }
        return v.asText();
    }

    private static JsonNode array(JsonNode t, String key, Path file) throws IOException {
        JsonNode v = t.get(key);
        if (v == null || !v.isArray()) {
            throw new IOException(file + ": `" + key + "` missing or not an array");
        }
        return v;
    }
}
