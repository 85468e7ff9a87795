package claimgate.peer.kstreams;

/** The reason of a decision (rules.md, "Order of checks"); the failing ones in check order. */
enum Reason {
    OK,
    EMERGENCY_OVERRIDE,
    INSTITUTION_TERMINATED,
    INSTITUTION_SUSPENDED,
    DEPARTMENT_SUSPENDED,
    PRACTITIONER_UNREGISTERED,
    PRACTITIONER_NOT_REGISTERED_HERE,
    PRACTITIONER_TERMINATED,
    PRACTITIONER_SUSPENDED;

    /** A failed check (not OK, not EMERGENCY_OVERRIDE). */
    boolean isCheck() {
        return ordinal() >= INSTITUTION_TERMINATED.ordinal();
    }

    /** A check of the person (4-7), whose decision names the person's code field (`role`). */
    boolean isPerson() {
        return ordinal() >= PRACTITIONER_UNREGISTERED.ordinal();
    }

    /** The reason of that name, or null. */
    static Reason byName(String name) {
        for (Reason r : values()) {
            if (r.name().equals(name)) {
                return r;
            }
        }
        return null;
    }
}
