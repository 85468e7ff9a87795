//! The persons responsible for a line (rules.md, "Regions, roles, enforcement"): the code fields a
//! profile may check besides the billing practitioner's, read by the claim parser as sent and checked
//! only when the deciding profile asks for them.

use std::borrow::Cow;

use super::claim::{Claim, Malformed, trim_cow};
use super::code::PractitionerKey;
use super::json::{Value, unescape};

/// A code field that names a person responsible for the line (rules.md, "Regions, roles, enforcement"):
/// the billing practitioner, the practitioner who carried the order out, or a retail pharmacy's
/// pharmacist. A profile lists which of them it checks; the decision names the field (`role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `bilg_dr_codg`: the billing practitioner (开单医生); required on every line.
    Billing,
    /// `orders_dr_code`: the practitioner who carried the order out (受单医生), fee-detail interfaces
    /// 2204 / 2301; optional.
    Orders,
    /// `phar_prac_cert_no`: the pharmacist of a retail-pharmacy sale (药师), as the national pharmacy
    /// interfaces name the field; optional. Regions that adopted national codes carry the pharmacist's
    /// national code in it.
    Pharmacist,
}

impl Role {
    /// Every role, in the order of their fields.
    pub const ALL: [Role; 3] = [Role::Billing, Role::Orders, Role::Pharmacist];

    /// The code field, as records and decisions name it.
    pub fn field(self) -> &'static str {
        match self {
            Role::Billing => "bilg_dr_codg",
            Role::Orders => "orders_dr_code",
            Role::Pharmacist => "phar_prac_cert_no",
        }
    }

    /// The role of a field name.
    pub fn from_field(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.field() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field())
    }
}

/// An optional person code field as the line carried it. It is checked only when the deciding profile
/// lists the role (a region's profile decides which persons it checks), so a malformed value in a field
/// nobody checks does not make the line a dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PersonField<'a> {
    /// Absent, `null` or `""`.
    Absent,
    /// A string or number, trimmed; not yet validated as a code.
    Text(Cow<'a, str>),
    /// An object, array or boolean.
    NotText,
}

/// An optional person code field, kept unchecked (see [`PersonField`]).
pub(super) fn person_field(raw: Option<Value<'_>>) -> PersonField<'_> {
    match raw {
        None | Some(Value::Null) => PersonField::Absent,
        Some(Value::Str { raw, escaped }) => {
            let s = trim_cow(unescape(raw, escaped));
            // An empty optional field is absent: exports write "" for "not given".
            if s.is_empty() { PersonField::Absent } else { PersonField::Text(s) }
        }
        Some(Value::Num(n)) => PersonField::Text(Cow::Borrowed(n)),
        Some(Value::Bool | Value::Compound) => PersonField::NotText,
    }
}

impl Claim<'_> {
    fn other(&self, role: Role) -> &PersonField<'_> {
        match role {
            Role::Billing | Role::Orders => &self.others[0],
            Role::Pharmacist => &self.others[1],
        }
    }

    /// The code a role's field carries, as sent (trimmed); `None` when the field is absent. A field that
    /// is not a string or a number gives its raw kind's absence here: [`Claim::check_role`] refuses it.
    pub fn code(&self, role: Role) -> Option<&str> {
        if role == Role::Billing {
            return Some(&self.bilg_dr_codg);
        }
        match self.other(role) {
            PersonField::Text(s) => Some(s),
            PersonField::Absent | PersonField::NotText => None,
        }
    }

    /// A role's code as a lookup key: `None` when the field is absent, an error when it is present and
    /// not a code (rules.md: a present, malformed person field makes the line a dead letter).
    #[inline]
    pub fn person(&self, role: Role) -> Option<Result<PractitionerKey<'_>, Malformed>> {
        if role == Role::Billing {
            return Some(Ok(self.practitioner()));
        }
        let field = role.field();
        match self.other(role) {
            PersonField::Absent => None,
            PersonField::NotText => {
                Some(Err(Malformed::at(field, format!("field `{field}`: expected a string or a number"))))
            }
            PersonField::Text(s) => Some(PractitionerKey::parse(s).map_err(|e| Malformed::code(field, e))),
        }
    }

    /// Checks a role's field: absent, or a well-formed code.
    pub fn check_role(&self, role: Role) -> Result<(), Malformed> {
        match self.person(role) {
            Some(Err(m)) => Err(m),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A good line with one more member (raw JSON text), or the line itself.
    fn line(extra: &str) -> String {
        let base = r#"{"feedetl_sn":"F1","fixmedins_code":"H11010500001","mdtrt_id":"M01","psn_no":"P1","med_type":"11","fee_ocur_time":"2026-04-02 10:31:00","bilg_dr_codg":"D110105000123","det_item_fee_sumamt":"1.00""#;
        if extra.is_empty() { format!("{base}}}") } else { format!("{base},{extra}}}") }
    }

    fn parse(json: &str) -> Claim<'_> {
        Claim::parse(json.as_bytes()).unwrap()
    }

    /// rules.md, "Roles": the other persons' fields are read as sent and checked only when a profile
    /// asks (an absent one is not checked; a present, malformed one is refused with its field).
    #[test]
    fn person_fields_are_read_and_checked_on_request_rules_md_roles() {
        let json = line(r#""orders_dr_code":" D110105000124\t""#);
        let c = parse(&json);
        assert_eq!(c.code(Role::Orders), Some("D110105000124"));
        assert_eq!(c.person(Role::Orders), Some(Ok(PractitionerKey::parse("D110105000124").unwrap())));
        assert_eq!(c.code(Role::Billing), Some("D110105000123"));
        assert_eq!(c.code(Role::Pharmacist), None);
        assert!(c.person(Role::Pharmacist).is_none());
        for absent in ["null", r#""""#, r#"" ""#] {
            let json = line(&format!(r#""phar_prac_cert_no":{absent}"#));
            let c = parse(&json);
            assert!(c.person(Role::Pharmacist).is_none() && c.check_role(Role::Pharmacist).is_ok(), "{absent}");
        }
        let json = line(r#""phar_prac_cert_no":4570"#);
        assert_eq!(parse(&json).person(Role::Pharmacist), Some(Ok(PractitionerKey::Legacy("4570"))));
        for (bad, needle) in
            [(r#""张三""#, "printable ASCII"), ("[1]", "string or a number"), ("false", "string or a number")]
        {
            // The line parses: nobody has asked for the field yet.
            let json = line(&format!(r#""orders_dr_code":{bad}"#));
            let m = parse(&json).check_role(Role::Orders).unwrap_err();
            assert_eq!(m.field, Some("orders_dr_code"));
            assert!(m.message.contains(needle), "{bad}: {m}");
        }
        let dup = line(r#""orders_dr_code":"D000000000001","orders_dr_code":"x""#);
        assert_eq!(Claim::parse(dup.as_bytes()).unwrap_err().field, Some("orders_dr_code"));
        assert_eq!(Role::from_field("orders_dr_code"), Some(Role::Orders));
        assert_eq!(Role::from_field("x"), None);
        assert_eq!(parse(&line("")).code(Role::Orders), None);
    }
}
