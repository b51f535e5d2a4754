use super::*;
use proptest::prelude::*;
use serde_json::Value;
use std::io::Write;

fn op(chunk: u64, header: bool) -> StatsOp {
    op_with(chunk, &format!(r#"{{"header": {header}}}"#))
}

fn op_with(chunk: u64, options: &str) -> StatsOp {
    let mut o = StatsOp::from_options(options).unwrap();
    o.chunk = chunk;
    o
}

fn write_tmp(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> FileTask {
    let p = dir.path().join(name);
    std::fs::File::create(&p).unwrap().write_all(data).unwrap();
    FileTask::new(p.to_str().unwrap(), data.len() as u64)
}

fn run(op: &StatsOp, files: &[FileTask]) -> crate::partial::Partial<StatsBody> {
    let ctl = Control::default();
    crate::job::run_partial(op, files, &crate::io::Inputs::default(), &ctl).unwrap()
}

/// Equal JSON, with floats compared to a relative tolerance.
fn approx_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300) || x == y
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| approx_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w)))
        }
        _ => a == b,
    }
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..1000).prop_map(|i| i.to_string()),
        (-100.0f64..100.0).prop_map(|x| format!("{x:.3}")),
        Just(String::new()),
        Just("true".to_string()),
        "[a-c]{1,3}",
        Just("\"quoted, with comma\"".to_string()),
        Just("\"multi\nline \"\"q\"\"\"".to_string()),
        Just("\"\r\n\"".to_string()),
    ]
}

fn csv_text() -> impl Strategy<Value = String> {
    csv_rows(0)
}

/// Like [`csv_text`], with rows up to `spread` fields narrower or wider.
fn csv_rows(spread: usize) -> impl Strategy<Value = String> {
    (1usize..5).prop_flat_map(move |w| {
        let widths = w.saturating_sub(spread).max(1)..=w + spread;
        prop::collection::vec(prop::collection::vec(field(), widths), 0..40).prop_map(move |rows| {
            let mut s: String = (1..=w).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
            s.push('\n');
            for r in rows {
                s.push_str(&r.join(","));
                s.push_str(if r.len() % 2 == 0 { "\r\n" } else { "\n" });
            }
            s
        })
    })
}

#[test]
fn basic_profile() {
    let d = tempfile::tempdir().unwrap();
    let f = write_tmp(&d, "a.csv", b"\xEF\xBB\xBFid,x,name,flag,day\r\n1,2.5,ann,true,2024-01-02\r\n2,,bob,FALSE,2024-01-03\r\n3,4.5,\"c,d\",true,\r\n");
    let p = run(&op(CHUNK, true), &[f]);
    let r = p.finalize();
    let cols = r["result"]["columns"].as_array().unwrap();
    assert_eq!(r["result"]["rows"], 3);
    let types: Vec<&str> = cols.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["int", "float", "string", "bool", "date"]);
    assert_eq!(cols[0]["name"], "id");
    assert_eq!(cols[0]["mean"], 2.0);
    assert_eq!(cols[0]["stddev"], 1.0);
    assert_eq!(cols[1]["nulls"], 1);
    assert_eq!(cols[1]["min"], 2.5);
    assert_eq!(cols[2]["max"], "c,d");
    assert_eq!(cols[4]["count"], 2);
    assert_eq!(cols[0]["distinct"], 3);
}

#[test]
fn bad_files_become_errors() {
    let d = tempfile::tempdir().unwrap();
    let ragged = write_tmp(&d, "r.csv", b"a,b\n1,2\n3\n4,5\n");
    let utf = write_tmp(&d, "u.csv", b"a,b\n1,2\n\xff,3\n");
    let unterminated = write_tmp(&d, "q.csv", b"a,b\n1,2\n\"x,3\n4,5\n");
    let good = write_tmp(&d, "g.csv", b"a,b\n1,2\n");
    let empty = write_tmp(&d, "e.csv", b"");
    let p = run(&op_with(CHUNK, r#"{"bad_rows": "fail"}"#), &[ragged, utf, unterminated, good, empty]);
    let lines: Vec<(String, Option<u64>)> =
        p.errors.iter().map(|e| (e.path.rsplit('/').next().unwrap().to_string(), e.line)).collect();
    assert_eq!(lines, vec![("q.csv".into(), Some(3)), ("r.csv".into(), Some(3)), ("u.csv".into(), Some(3))]);
    assert_eq!(p.body.rows, 1);
    assert_eq!(p.files, 5);
}

#[test]
fn ragged_error_found_across_chunks() {
    let d = tempfile::tempdir().unwrap();
    let mut data = String::from("a,b\n");
    for i in 0..200 {
        data.push_str(&format!("{i},{i}\n"));
    }
    data.push_str("oops\n");
    let f = write_tmp(&d, "r.csv", data.as_bytes());
    let p = run(&op_with(64, r#"{"bad_rows": "fail"}"#), &[f]);
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].line, Some(202));
    assert_eq!(p.errors[0].reason, "ragged row: expected 2 fields, found 1");
    assert_eq!(p.body.rows, 0);
}

const RAGGED: &[u8] = b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n\n\"x\ny\",1,2\n10,11,12,13,14\n15\n16,17,18\n";

/// Rows, nulls of column `c`, and listed bad rows (line, reason) under `options`.
fn ragged_profile(options: &str) -> (u64, Value, Vec<(u64, String)>) {
    let d = tempfile::tempdir().unwrap();
    let p = run(&op_with(CHUNK, options), &[write_tmp(&d, "r.csv", RAGGED)]);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let r = p.finalize();
    let listed = p.body.bad_rows.rows.iter().map(|e| (e.line.unwrap(), e.reason.clone())).collect();
    (p.body.rows, r["result"]["columns"][2]["nulls"].clone(), listed)
}

#[test]
fn skip_leaves_out_and_lists_rows_of_another_width() {
    let (rows, nulls, listed) = ragged_profile("{}");
    assert_eq!((rows, nulls), (3, json!(0)));
    let lines: Vec<u64> = listed.iter().map(|r| r.0).collect();
    assert_eq!(lines, vec![3, 4, 8, 9]);
    assert_eq!(listed[1].1, "expected 3 fields, found 4");
}

#[test]
fn pad_fills_short_rows_and_cuts_long_ones() {
    let (rows, nulls, listed) = ragged_profile(r#"{"bad_rows": "pad"}"#);
    assert_eq!((rows, nulls), (7, json!(2)));
    let reasons: Vec<&str> = listed.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "expected 3 fields, found 2; padded with nulls",
            "expected 3 fields, found 4; truncated",
            "expected 3 fields, found 5; truncated",
            "expected 3 fields, found 1; padded with nulls",
        ]
    );
}

#[test]
fn truncate_cuts_long_rows_and_skips_short_ones() {
    let (rows, nulls, listed) = ragged_profile(r#"{"bad_rows": "truncate"}"#);
    assert_eq!((rows, nulls), (5, json!(0)));
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0], (3, "expected 3 fields, found 2".to_string()));
}

#[test]
fn the_cap_limits_the_list_not_the_count() {
    let d = tempfile::tempdir().unwrap();
    let p = run(&op_with(8, r#"{"max_bad_rows": 2}"#), &[write_tmp(&d, "r.csv", RAGGED)]);
    assert_eq!(p.body.bad_rows.total, 4);
    assert_eq!(p.body.bad_rows.rows.iter().map(|e| e.line.unwrap()).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(p.body.rows, 3);
}

#[test]
fn fail_makes_the_file_an_error() {
    let d = tempfile::tempdir().unwrap();
    let p = run(&op_with(CHUNK, r#"{"bad_rows": "fail"}"#), &[write_tmp(&d, "r.csv", RAGGED)]);
    assert_eq!(p.errors.len(), 1);
    assert_eq!((p.errors[0].line, p.errors[0].reason.as_str()), (Some(3), "ragged row: expected 3 fields, found 2"));
    assert_eq!((p.body.rows, p.body.bad_rows.total), (0, 0));
}

#[test]
fn unknown_policy_is_refused() {
    let e = StatsOp::from_options(r#"{"bad_rows": "drop"}"#).unwrap_err().to_string();
    assert!(e.contains("stats.bad_rows"), "{e}");
    assert!(StatsOp::from_options(r#"{"max_bad_rows": 100001}"#).is_err());
}

fn policy() -> impl Strategy<Value = String> {
    (prop_oneof![Just("skip"), Just("pad"), Just("truncate"), Just("fail")], 0usize..4)
        .prop_map(|(p, max)| format!(r#"{{"bad_rows": "{p}", "max_bad_rows": {max}}}"#))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn split_equals_unsplit(text in csv_text(), chunk in 1u64..300) {
        let d = tempfile::tempdir().unwrap();
        let f = write_tmp(&d, "x.csv", text.as_bytes());
        let whole = run(&op(1 << 30, true), std::slice::from_ref(&f)).finalize();
        let split = run(&op(chunk, true), &[f]).finalize();
        prop_assert!(approx_eq(&whole, &split), "{}\n{}", whole, split);
    }

    #[test]
    fn split_equals_unsplit_with_bad_rows(text in csv_rows(1), chunk in 1u64..300, options in policy()) {
        let d = tempfile::tempdir().unwrap();
        let f = write_tmp(&d, "x.csv", text.as_bytes());
        let whole = run(&op_with(1 << 30, &options), std::slice::from_ref(&f)).finalize();
        let split = run(&op_with(chunk, &options), &[f]).finalize();
        prop_assert!(approx_eq(&whole, &split), "{}\n{}", whole, split);
    }

    #[test]
    fn merge_laws(a in csv_rows(1), b in csv_rows(1), c in csv_rows(1), options in policy()) {
        let d = tempfile::tempdir().unwrap();
        let o = op_with(1 << 20, &options);
        let pa = run(&o, &[write_tmp(&d, "a.csv", a.as_bytes())]);
        let pb = run(&o, &[write_tmp(&d, "b.csv", b.as_bytes())]);
        let pc = run(&o, &[write_tmp(&d, "c.csv", c.as_bytes())]);
        // through JSON, as the runner does
        let rt = |p: &crate::partial::Partial<StatsBody>| crate::partial::Partial::<StatsBody>::from_json("stats", &p.to_json().unwrap()).unwrap();
        let left = rt(&pa).merge(rt(&pb)).unwrap().merge(rt(&pc)).unwrap().finalize();
        let right = rt(&pa).merge(rt(&pb).merge(rt(&pc)).unwrap()).unwrap().finalize();
        let swapped = rt(&pc).merge(rt(&pa)).unwrap().merge(rt(&pb)).unwrap().finalize();
        let together = run(&o, &[write_tmp(&d, "a.csv", a.as_bytes()), write_tmp(&d, "b.csv", b.as_bytes()), write_tmp(&d, "c.csv", c.as_bytes())]).finalize();
        prop_assert!(approx_eq(&left, &right), "{}\n{}", left, right);
        prop_assert!(approx_eq(&left, &swapped), "{}\n{}", left, swapped);
        prop_assert!(approx_eq(&left, &together), "{}\n{}", left, together);
    }
}

/// Rows of `{i};'x\'{i};\ny'`: the quote, escape and delimiter all matter.
fn dialect_rows(rows: usize, comment_every: usize) -> String {
    let mut data = String::from("id;note\n");
    for i in 0..rows {
        data.push_str(&format!("{i};'x\\'{i};\ny'\n"));
        if comment_every > 0 && i % comment_every == 0 {
            data.push_str("#c'\n");
        }
    }
    data
}

fn ids_and_rows(r: &Value) -> (Value, Value, Value) {
    let id = &r["result"]["columns"][0];
    (r["result"]["rows"].clone(), id["name"].clone(), id["max"].clone())
}

#[test]
fn quote_bytes_align_parallel_chunks() {
    let d = tempfile::tempdir().unwrap();
    let data = dialect_rows(3000, 0).replace("\\'", "''");
    let task = write_tmp(&d, "q.csv", data.as_bytes());
    let r = run(&op_with(4096, r#"{"delimiter": ";", "quote": "'"}"#), &[task]).finalize();
    assert_eq!(ids_and_rows(&r), (3000.into(), "id".into(), 2999.into()));
    assert_eq!(r["result"]["badRows"]["total"], 0);
}

#[test]
fn escapes_comments_preamble_and_footer_are_exact_in_plain_and_gzip_files() {
    let d = tempfile::tempdir().unwrap();
    let data = format!("preamble with an 'odd quote\n\n{}total;3000\nend 'odd\n", dialect_rows(3000, 7));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data.as_bytes()).unwrap();
    let files = [write_tmp(&d, "d.csv", data.as_bytes()), write_tmp(&d, "d.csv.gz", &gz.finish().unwrap())];
    let options = r##"{"delimiter": ";", "quote": "'", "escape": "\\", "comment": "#", "skip_rows": 2, "footer_rows": 2, "bad_rows": "fail"}"##;
    for task in files {
        let r = run(&op_with(4096, options), std::slice::from_ref(&task)).finalize();
        assert_eq!(ids_and_rows(&r), (3000.into(), "id".into(), 2999.into()), "{}", task.path);
        assert_eq!(r["errors"], serde_json::json!([]));
    }
}

#[test]
fn several_header_rows_join_their_names() {
    let d = tempfile::tempdir().unwrap();
    let task = write_tmp(&d, "h.csv", b"sales,,cost\nq1,q2,\n1,2,3\n");
    let r = run(&op_with(CHUNK, r#"{"header_rows": 2}"#), &[task]).finalize();
    let names: Vec<&str> = r["result"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["sales.q1", "q2", "cost"]);
    assert_eq!(r["result"]["rows"], 1);
}

#[test]
fn sniffed_dialects_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let task = write_tmp(&d, "s.csv", b"1|'a|b'\n2|'c'\n3|d\n");
    let r = run(&op_with(CHUNK, r#"{"delimiter": "auto", "quote": "auto", "header_rows": "auto"}"#), &[task.clone()]).finalize();
    assert_eq!(r["result"]["rows"], 3);
    assert_eq!(r["result"]["dialects"], serde_json::json!([{"path": task.path, "delimiter": "|", "quote": "'", "headerRows": 0}]));
}

#[test]
fn dialect_options_are_checked() {
    for (options, message) in [
        (r#"{"quote": ";", "delimiter": ";"}"#, "stats.quote: must differ from the delimiter"),
        (r#"{"comment": "\n"}"#, "stats.comment: must not be a line end"),
        (r#"{"header": true, "header_rows": 2}"#, "stats.header_rows: give header_rows or header, not both"),
        (r#"{"escape": "ab"}"#, "stats.escape: expected a single one-byte character"),
        (r#"{"footer_rows": -1}"#, "stats.footer_rows: expected an integer"),
    ] {
        let e = StatsOp::from_options(options).unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
    }
}
