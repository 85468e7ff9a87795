//! Property tests ("fuzzing", issue 6) of the claim-line parser and the status records: any byte string
//! either parses to a valid claim or becomes a dead letter with a reason — never a panic, never an
//! accept of a line that records.md refuses.
//!
//! The claim-line parser is checked against an independent reading of the spec (`oracle/`, serde_json
//! plus the field rules written again): they must agree on every input, on the verdict, on the values,
//! and on the field at fault. Inputs: random bytes, JSON objects built from valid and borderline field
//! values, and byte-level mutations of both and of generated claim lines. Refused lines must make a
//! dead letter that keeps their bytes; accepted ones a decision that is valid JSON and names them.
//!
//! Status records: any bytes give a validated record or an error — and the error never repeats a value
//! of the record (a name must not reach a log).
//!
//! `CLAIMGATE_TEST_FUZZ_CASES` sets the cases per property (default 10 000; `scripts/soak.sh` runs
//! 10 million inputs in all). Inputs that once failed are replayed from `tests/fuzz_regressions/`.

mod oracle;

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

use claimgate::record::{InstitutionText, PractitionerText};
use claimgate::synth::{GenConfig, World};
use claimgate::table::PractitionerTable;

fn cases() -> u32 {
    std::env::var("CLAIMGATE_TEST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // A failing case is kept (its seed, in tests/fuzz_claims.proptest-regressions, tried first on the
        // next run: commit it); the input itself goes into tests/fuzz_regressions/ once understood.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    }
}

/// The property, for one input (`oracle/property.rs`, shared with the cargo fuzz target).
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    oracle::property::claim_line(bytes).map_err(TestCaseError::fail)
}

// --- inputs ---------------------------------------------------------------------------------------

/// A JSON string literal of `s`.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn pool(valid: &[&str], odd: &[&str]) -> BoxedStrategy<String> {
    let valid: Vec<String> = valid.iter().map(|s| s.to_string()).collect();
    let odd: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    // Mostly valid values, so that a good share of whole lines is well formed and the two readings are
    // compared value by value, not only refusal by refusal.
    prop_oneof![
        24 => proptest::sample::select(valid),
        3 => proptest::sample::select(odd),
        1 => generic_value(),
    ]
    .boxed()
}

/// Values of no particular field.
fn generic_value() -> BoxedStrategy<String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[1,{\"a\":[]}]".to_owned()),
        Just("{}".to_owned()),
        Just("\"\"".to_owned()),
        Just("\" \\t\\r\\n \"".to_owned()),
        Just("-0".to_owned()),
        Just("1e400".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::json!(f).to_string()),
        "\\PC{0,12}".prop_map(|s| q(&s)),
        "[ -~]{0,12}".prop_map(|s| q(&s)),
        proptest::collection::vec(any::<char>(), 0..6).prop_map(|c| q(&c.into_iter().collect::<String>())),
    ]
    .boxed()
}

fn field_values(field: &str) -> BoxedStrategy<String> {
    let long64 = q(&"9".repeat(64));
    let long65 = q(&"9".repeat(65));
    let long31 = q(&"D".repeat(31));
    let long30 = q(&"D".repeat(30));
    match field {
        "feedetl_sn" | "mdtrt_id" | "psn_no" => pool(
            &["\"F0001\"", "\"M01\"", "\"03964655827464886423\"", "17", "\"\\tF1\\t\"", "\"张三\"", &long64],
            &[
                &long65,
                "\"F\\u0001\"",
                "\"F\\u007f\"",
                "\"F\\u0085\"",
                "\"F\\u0000\"",
                "\"\"",
                "\" \"",
                "1.5e3",
                "{\"a\":1}",
                "[\"x\"]",
                "false",
                "null",
            ],
        ),
        "fixmedins_code" => pool(
            &["\"H11010500001\"", "\"P45012400011\"", "\" H11010500001\\t\"", "\"\\u004811010500001\""],
            &[
                "\"h11010500001\"",
                "\"H1101050000\"",
                "\"H110105000011\"",
                "\"H1101050000X\"",
                "\"X11010500001\"",
                "\"Ｈ11010500001\"",
                "11010500001",
                "\"H 1010500001\"",
                "\"\"",
            ],
        ),
        "med_type" => pool(
            &["\"11\"", "11", "\"14.0\"", "14.0", "\"9914\"", "\"13\"", "24", "\" 21 \"", "\"007\"", "\"123456789\""],
            &[
                "\"14.\"",
                "\"14.5\"",
                "14.5",
                "\"1234567890\"",
                "\"-1\"",
                "-1",
                "1e1",
                "\"1e1\"",
                "\"１１\"",
                "\"\"",
                "\".0\"",
            ],
        ),
        "fee_ocur_time" => pool(
            &[
                "\"2026-04-02 10:31:00\"",
                "\"2026-04-02\"",
                "\"2024-02-29 00:00:00\"",
                "\"1900-01-01\"",
                "\"2199-12-31 23:59:59\"",
                "\"\\t2026-04-02 10:31:00\\n\"",
            ],
            &[
                "\"2023-02-29\"",
                "\"1899-12-31\"",
                "\"2200-01-01\"",
                "\"2026-04-02 24:00:00\"",
                "\"2026-04-02 23:60:00\"",
                "\"2026-04-02 23:59:60\"",
                "\"2026-04-02T10:31:00\"",
                "\"2026-4-2\"",
                "\"2026-04-02  10:31:0\"",
                "\"2026-04-02 10:31:00.5\"",
                "\"２０２６-04-02\"",
                "\"2026-13-01\"",
                "\"2026-00-10\"",
                "\"+026-04-02\"",
                "20260402",
                "\"2026-04-02 1:31:00\"",
            ],
        ),
        "bilg_dr_codg" | "orders_dr_code" | "phar_prac_cert_no" => pool(
            &["\"D110105000123\"", "\"0457\"", "\"\\tD110105000123\\t\"", "\"HY530102000517\"", &long30, "457"],
            &[&long31, "\"张三\"", "\"D\\u007f1\"", "\"D\\u00001\"", "\"\"", "\" \"", "\"\\u0085\""],
        ),
        "bilg_dept_codg" => {
            pool(&["\"A03.06\"", "\"\"", "null", "\" A12 \"", "12"], &["\"内科\"", &long31, "\"A\\u0001\"", "[\"A\"]"])
        }
        "det_item_fee_sumamt" => pool(
            &[
                "\"126.50\"",
                "126.5",
                "\"0\"",
                "\"-3.00\"",
                "\"+3\"",
                "\"999999999999999.99\"",
                "\"007.1\"",
                "0.01",
                "\" 12.30 \"",
            ],
            &[
                "\"12.345\"",
                "\"1.\"",
                "\".5\"",
                "\"1000000000000000\"",
                "\"1e3\"",
                "1e3",
                "\"١٢\"",
                "\"1,000.00\"",
                "\"-\"",
                "\"+-1\"",
                "\"1.000\"",
                "-0.0",
                "\"NaN\"",
            ],
        ),
        _ => pool(&["\"1\"", "1", "\"1.0\"", "\"0\"", "\"2\"", "null"], &["true", "[1]", "{}", "\"1.\""]),
    }
}

/// A claim-like JSON object: each known field absent or drawn from its pool, unknown fields around, in
/// any order, sometimes with a duplicate or an escaped key, with varied white space.
fn object() -> impl Strategy<Value = Vec<u8>> {
    let fields: Vec<BoxedStrategy<Option<(String, String)>>> = oracle::FIELDS
        .iter()
        .map(|f| {
            let name = f.to_string();
            prop_oneof![1 => Just(None), 30 => field_values(f).prop_map(move |v| Some((q(&name), v)))].boxed()
        })
        .collect();
    let unknown = proptest::collection::vec(("[a-z_]{1,8}".prop_map(|k| q(&k)), generic_value()), 0..3);
    let escaped_key = proptest::sample::select(vec![
        None,
        None,
        None,
        Some(("\"fee\\u005focur_time\"".to_owned(), "\"2026-04-02\"".to_owned())),
        Some(("\"mdtrt_id\"".to_owned(), "\"DUP\"".to_owned())),
        Some(("\"bilg_dr_codg\"".to_owned(), "\"D000000000001\"".to_owned())),
        Some(("\"psn_no\"".to_owned(), "\"P2\"".to_owned())),
    ]);
    let ws = proptest::sample::select(vec!["", "", "", " ", "\n", "\t ", "\r\n"]);
    (fields, unknown, escaped_key, ws)
        .prop_flat_map(|(fields, unknown, extra, ws)| {
            let mut members: Vec<(String, String)> = fields.into_iter().flatten().collect();
            members.extend(unknown);
            members.extend(extra);
            (Just(members).prop_shuffle(), Just(ws))
        })
        .prop_map(|(members, ws)| {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}{ws}")).collect();
            format!("{ws}{{{}}}{ws}", body.join(",")).into_bytes()
        })
}

/// Up to three byte edits: replace, insert or delete.
fn mutate(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (base, proptest::collection::vec((0u8..3, any::<usize>(), any::<u8>()), 1..4)).prop_map(|(mut b, edits)| {
        for (kind, at, byte) in edits {
            let at = if b.is_empty() { 0 } else { at % (b.len() + usize::from(kind == 1)) };
            match kind {
                0 if !b.is_empty() => {
                    let i = at.min(b.len() - 1);
                    b[i] = byte;
                }
                1 => b.insert(at.min(b.len()), byte),
                2 if !b.is_empty() => {
                    b.remove(at.min(b.len() - 1));
                }
                _ => {}
            }
        }
        b
    })
}

/// Generated claim lines, realistic ones (a few malformed).
fn synth_lines() -> &'static Vec<Vec<u8>> {
    static L: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    L.get_or_init(|| {
        let w =
            World::new(GenConfig { practitioners: 500, claims: 2_000, malformed_rate: 0.02, ..GenConfig::default() });
        w.claims().map(|l| l.bytes).collect()
    })
}

fn synth_line() -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(synth_lines().clone())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_are_a_claim_or_a_dead_letter(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes)?;
    }

    #[test]
    fn built_objects_are_read_as_the_spec_reads_them(bytes in object()) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_objects_are_read_as_the_spec_reads_them(bytes in mutate(object())) {
        check(&bytes)?;
    }

    #[test]
    fn generated_claim_lines_and_their_mutations(bytes in prop_oneof![synth_line(), mutate(synth_line())]) {
        check(&bytes)?;
    }
}

// --- status records -------------------------------------------------------------------------------

/// A practitioner or institution record with a name, and borderline values in its other fields.
fn status_record() -> impl Strategy<Value = (Vec<u8>, String)> {
    let name = "[\u{4e00}-\u{4e20}]{2,3}";
    let text = prop_oneof![
        Just("\"D110105000123\"".to_owned()),
        Just("\"H11010500001\"".to_owned()),
        Just("\"2026-03-20\"".to_owned()),
        Just("\"2026-02-30\"".to_owned()),
        Just("\"suspended\"".to_owned()),
        Just("\"terminated\"".to_owned()),
        Just("null".to_owned()),
        Just("17".to_owned()),
        Just("-1".to_owned()),
        Just("[]".to_owned()),
        generic_value(),
    ];
    (name, proptest::collection::vec(text, 12), any::<bool>(), 0usize..14).prop_map(|(name, v, inst, put)| {
        // The name goes in its field, or in another field where it does not belong.
        let mut v = v;
        if put < v.len() {
            v[put] = q(&name);
        }
        let json = if inst {
            format!(
                r#"{{"code":{},"name":{},"kind":{},"periods":[{{"status":{},"from":{},"until":{},"departments":[{}],"basis":{}}}],"version":{}}}"#,
                v[0], q(&name), v[1], v[2], v[3], v[4], v[5], v[6], v[7]
            )
        } else {
            format!(
                r#"{{"code":{},"name":{},"kind":{},"registrations":[{{"institution":{},"from":{},"until":{}}}],"periods":[{{"status":{},"from":{},"until":{},"basis":{},"decision_id":{}}}],"version":{}}}"#,
                v[0], q(&name), v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]
            )
        };
        (json.into_bytes(), name)
    })
}

fn check_status(bytes: &[u8], name: Option<&str>) -> Result<(), TestCaseError> {
    match PractitionerText::from_json(bytes).and_then(|t| t.validate()) {
        Ok(rec) => {
            // A valid record round-trips and goes into a table.
            let again = rec.to_text().validate();
            prop_assert_eq!(again.as_ref(), Ok(&rec));
            prop_assert!(rec.registrations.iter().all(|r| r.during.from < r.during.until));
            prop_assert!(rec.periods.iter().all(|p| p.during.from < p.during.until));
            let mut t = PractitionerTable::with_capacity(2);
            t.upsert(&rec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.is_empty());
            if let Some(n) = name {
                prop_assert!(!msg.contains(n), "the error repeats the name: {}", msg);
            }
        }
    }
    match InstitutionText::from_json(bytes).and_then(|t| t.validate()) {
        Ok(rec) => {
            let again = rec.to_text().validate();
            prop_assert_eq!(again.as_ref(), Ok(&rec));
            prop_assert!(rec.periods.iter().all(|p| p.during.from < p.during.until));
        }
        Err(e) => {
            if let Some(n) = name {
                prop_assert!(!e.to_string().contains(n), "the error repeats the name: {}", e);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn status_records_validate_or_are_refused_without_their_values((bytes, name) in status_record()) {
        check_status(&bytes, Some(&name))?;
    }

    #[test]
    fn any_bytes_are_a_status_record_or_an_error(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        mutate(status_record().prop_map(|(b, _)| b)),
    ]) {
        check_status(&bytes, None)?;
    }
}

/// Inputs that once broke a property, kept as files (`claim-*` and `status-*`), replayed every run.
#[test]
fn committed_regression_inputs_still_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("tests/fuzz_regressions") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let r = if name.starts_with("claim-") {
            check(&bytes)
        } else if name.starts_with("status-") {
            check_status(&bytes, None)
        } else {
            continue;
        };
        if let Err(e) = r {
            panic!("{name}: {e}");
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {dir}");
}

/// How often the inputs are well formed (run by hand with --ignored --nocapture).
#[test]
#[ignore]
fn share_of_well_formed_inputs() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for (name, strategy) in [("object", object().boxed()), ("mutated", mutate(object()).boxed())] {
        let n = 5_000;
        let ok = (0..n).filter(|_| oracle::read(&strategy.new_tree(&mut runner).unwrap().current()).is_ok()).count();
        eprintln!("{name}: {ok} of {n} well formed");
    }
}
