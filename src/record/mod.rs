//! The words of the domain: codes, Beijing time, money, the claim line, status records, local-id
//! mappings, the decision and the dead letter (records.md), and the late status change (`retro`).
//!
//! Everything here is parsed once at the edge into a typed value; inside claimgate a
//! [`PractitionerKey`] or an [`Amount`] is always well formed. Nothing here does I/O.

mod claim;
mod code;
mod decision;
pub mod json;
mod mapping;
mod money;
pub mod retro;
mod role;
mod status;
mod time;

pub use claim::{Claim, Malformed, MedType};
pub use code::{
    CodeError, InstitutionCode, MAX_CODE_LEN, PractitionerCode, PractitionerKey, PractitionerKind, check_department,
    fmt_national,
};
pub use decision::{DeadLetter, DecisionRecord, Outcome, Reason, Stamp, Verdict, write_decision};
pub use mapping::{MappingPeriod, MappingPeriodText, MappingRecord, MappingText};
pub use money::{Amount, AmountError};
pub use retro::{RetroChange, RetroKind};
pub use role::Role;
pub use status::{
    InstitutionPeriod, InstitutionPeriodText, InstitutionRecord, InstitutionText, Interval, Period, PeriodText,
    PractitionerRecord, PractitionerRow, PractitionerText, RecordError, Registration, RegistrationText, Status,
};
pub use time::{BjTime, DAY, TimeError};
