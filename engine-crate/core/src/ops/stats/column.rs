//! Per-column accumulator: type evidence, numeric moments, min/max and the
//! sketches. One instance per column per chunk; no allocation per field.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::sketch::{DdKey, DdSketch, Hll, Memo, TopK};

/// What a non-empty field looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Class {
    Int(i64),
    Float(f64),
    Bool,
    Date,
    Str,
}

#[inline]
fn parse_int(f: &[u8]) -> Option<i64> {
    let (neg, digits) = match f[0] {
        b'-' => (true, &f[1..]),
        b'+' => (false, &f[1..]),
        _ => (false, f),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as i64;
    }
    Some(if neg { -v } else { v })
}

#[inline]
fn is_date(f: &[u8]) -> bool {
    if f.len() != 10 || f[4] != b'-' || f[7] != b'-' {
        return false;
    }
    let num = |s: &[u8]| s.iter().try_fold(0u32, |acc, &b| if b.is_ascii_digit() { Some(acc * 10 + (b - b'0') as u32) } else { None });
    let (Some(y), Some(m), Some(d)) = (num(&f[..4]), num(&f[5..7]), num(&f[8..])) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Classifies a non-empty field. Ints: optional sign and up to 18 digits.
/// Floats: decimal or exponent notation, finite (no `inf`/`nan` words).
/// Bools: `true`/`false` in any case. Dates: valid `YYYY-MM-DD`.
#[inline]
pub fn classify(f: &[u8]) -> Class {
    let b0 = f[0];
    if b0.is_ascii_digit() || b0 == b'-' || b0 == b'+' || b0 == b'.' {
        if let Some(i) = parse_int(f) {
            return Class::Int(i);
        }
        if is_date(f) {
            return Class::Date;
        }
        let last = f[f.len() - 1];
        if last.is_ascii_digit() || last == b'.' {
            if let Ok(x) = fast_float2::parse::<f64, _>(f) {
                if x.is_finite() {
                    return Class::Float(x);
                }
            }
        }
        return Class::Str;
    }
    if (f.len() == 4 && f.eq_ignore_ascii_case(b"true")) || (f.len() == 5 && f.eq_ignore_ascii_case(b"false")) {
        return Class::Bool;
    }
    Class::Str
}

/// Parses a bool field (`true`/`false`, any case).
pub fn parse_bool(f: &[u8]) -> Option<bool> {
    if f.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if f.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// Count, mean and sum of squared deviations; merged with Chan et al.'s
/// parallel formula.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    pub fn merge(&mut self, o: &Moments) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        let nf = n as f64;
        self.mean += delta * (o.n as f64 / nf);
        self.m2 += o.m2 + delta * delta * (self.n as f64 * o.n as f64 / nf);
        self.n = n;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColumnAcc {
    pub count: u64,
    pub nulls: u64,
    pub n_int: u64,
    pub n_float: u64,
    pub n_bool: u64,
    pub n_date: u64,
    pub n_str: u64,
    pub int_min: i64,
    pub int_max: i64,
    pub float_min: f64,
    pub float_max: f64,
    pub moments: Moments,
    pub str_min: Option<String>,
    pub str_max: Option<String>,
    pub distinct: Hll,
    pub quantiles: DdSketch,
    pub top: TopK,
    /// Moments of values added since the last flush, as sums of deviations
    /// from `shift` (the first value), which is cheap and stable.
    #[serde(skip)]
    pending: Pending,
    #[serde(skip)]
    min_buf: Vec<u8>,
    #[serde(skip)]
    max_buf: Vec<u8>,
    #[serde(skip)]
    bufs_set: bool,
    /// Only gather type evidence (used for schema inference).
    #[serde(skip)]
    types_only: bool,
}

const MEMO_INT: u8 = 1;
const MEMO_FLOAT: u8 = 2;
const MEMO_BOOL: u8 = 3;
const MEMO_DATE: u8 = 4;
const MEMO_STR: u8 = 5;

#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    n: u64,
    shift: f64,
    s1: f64,
    s2: f64,
}

impl ColumnAcc {
    pub fn new(top_capacity: usize) -> Self {
        ColumnAcc { top: TopK::new(top_capacity), distinct: Hll::new(), ..Default::default() }
    }

    /// An accumulator that only counts nulls and type evidence.
    pub fn types_only() -> Self {
        ColumnAcc { types_only: true, ..Default::default() }
    }

    /// True once the values seen make the column a string column whatever comes next.
    #[inline]
    fn is_stringish(&self) -> bool {
        let kinds = (self.n_int + self.n_float > 0) as u8 + (self.n_bool > 0) as u8 + (self.n_date > 0) as u8;
        self.n_str > 0 || kinds > 1
    }

    #[inline]
    fn add_number(&mut self, x: f64, key: DdKey) {
        let p = &mut self.pending;
        if p.n == 0 {
            p.shift = x;
        }
        let d = x - p.shift;
        p.n += 1;
        p.s1 += d;
        p.s2 += d * d;
        self.quantiles.add_key(key);
    }

    /// What a value is, derived from its bytes alone.
    #[inline]
    fn memo_of(f: &[u8]) -> Memo {
        match classify(f) {
            Class::Int(i) => Memo { tag: MEMO_INT, key: DdSketch::key(i as f64), bits: i as u64 },
            Class::Float(x) => Memo { tag: MEMO_FLOAT, key: DdSketch::key(x), bits: x.to_bits() },
            Class::Bool => Memo { tag: MEMO_BOOL, ..Memo::default() },
            Class::Date => Memo { tag: MEMO_DATE, ..Memo::default() },
            Class::Str => Memo { tag: MEMO_STR, ..Memo::default() },
        }
    }

    /// Counts a value's type evidence and numeric state.
    #[inline]
    fn apply(&mut self, m: Memo) {
        if self.is_stringish() {
            self.n_str += 1;
            return;
        }
        match m.tag {
            MEMO_INT => {
                let i = m.bits as i64;
                if self.n_int == 0 {
                    self.int_min = i;
                    self.int_max = i;
                } else {
                    self.int_min = self.int_min.min(i);
                    self.int_max = self.int_max.max(i);
                }
                self.n_int += 1;
                self.add_number(i as f64, m.key);
            }
            MEMO_FLOAT => {
                let x = f64::from_bits(m.bits);
                if self.n_float == 0 {
                    self.float_min = x;
                    self.float_max = x;
                } else {
                    self.float_min = self.float_min.min(x);
                    self.float_max = self.float_max.max(x);
                }
                self.n_float += 1;
                self.add_number(x, m.key);
            }
            MEMO_BOOL => self.n_bool += 1,
            MEMO_DATE => self.n_date += 1,
            _ => self.n_str += 1,
        }
    }

    #[inline]
    pub fn add(&mut self, f: &[u8]) {
        if f.is_empty() {
            self.nulls += 1;
            return;
        }
        self.count += 1;
        if self.types_only {
            self.add_type(f);
            return;
        }
        let h = xxhash_rust::xxh3::xxh3_64(f);
        // A value already in the frequent-value table has been added to the
        // distinct sketch and compared with min/max before (or came with a
        // merged partial that accounts for it), so only its count and type
        // evidence are left to do.
        // Once a column is a string column whatever comes next, what a value
        // looks like no longer matters: it is not classified (for unique
        // strings such as timestamps that was three failed parses a value).
        let stringish = self.is_stringish();
        if let Some(m) = self.top.bump(h, f) {
            if m.tag == 0 && !stringish {
                *m = Self::memo_of(f);
            }
            let m = *m;
            self.apply(m);
            return;
        }
        self.distinct.add(h);
        self.update_min_max(f);
        let m = if stringish { Memo::default() } else { Self::memo_of(f) };
        self.top.insert_new(h, f, m);
        self.apply(m);
    }

    /// Adds the field `f` `n` times (a column's value the Parquet footer
    /// vouches for, without its pages).
    pub fn add_repeated(&mut self, f: &[u8], n: u64) {
        for _ in 0..n {
            self.add(f);
        }
    }

    #[inline]
    fn update_min_max(&mut self, f: &[u8]) {
        if !self.bufs_set {
            self.bufs_set = true;
            self.min_buf.clear();
            self.min_buf.extend_from_slice(f);
            self.max_buf.clear();
            self.max_buf.extend_from_slice(f);
            return;
        }
        // The first byte decides most comparisons without a full compare.
        let (b, lo, hi) = (f[0], self.min_buf[0], self.max_buf[0]);
        if b <= lo && (b < lo || f < &self.min_buf[..]) {
            self.min_buf.clear();
            self.min_buf.extend_from_slice(f);
        } else if b >= hi && (b > hi || f > &self.max_buf[..]) {
            self.max_buf.clear();
            self.max_buf.extend_from_slice(f);
        }
    }

    #[inline]
    fn add_type(&mut self, f: &[u8]) {
        if self.is_stringish() {
            self.n_str += 1;
            return;
        }
        match classify(f) {
            Class::Int(_) => self.n_int += 1,
            Class::Float(_) => self.n_float += 1,
            Class::Bool => self.n_bool += 1,
            Class::Date => self.n_date += 1,
            Class::Str => self.n_str += 1,
        }
    }

    /// Folds buffered per-field state into the mergeable fields.
    pub fn flush(&mut self) {
        let p = self.pending;
        if p.n > 0 {
            let n = p.n as f64;
            let mean_d = p.s1 / n;
            let m2 = (p.s2 - p.s1 * mean_d).max(0.0);
            self.moments.merge(&Moments { n: p.n, mean: p.shift + mean_d, m2 });
            self.pending = Pending::default();
        }
        if self.bufs_set {
            self.bufs_set = false;
            let v = String::from_utf8_lossy(&self.min_buf).into_owned();
            if self.str_min.as_ref().is_none_or(|m| v < *m) {
                self.str_min = Some(v);
            }
            let v = String::from_utf8_lossy(&self.max_buf).into_owned();
            if self.str_max.as_ref().is_none_or(|m| v > *m) {
                self.str_max = Some(v);
            }
            self.max_buf.clear();
        }
    }

    /// Merges another (flushed) accumulator into this one.
    pub fn merge(&mut self, mut o: ColumnAcc) {
        self.flush();
        o.flush();
        if o.n_int > 0 {
            if self.n_int == 0 {
                self.int_min = o.int_min;
                self.int_max = o.int_max;
            } else {
                self.int_min = self.int_min.min(o.int_min);
                self.int_max = self.int_max.max(o.int_max);
            }
        }
        if o.n_float > 0 {
            if self.n_float == 0 {
                self.float_min = o.float_min;
                self.float_max = o.float_max;
            } else {
                self.float_min = self.float_min.min(o.float_min);
                self.float_max = self.float_max.max(o.float_max);
            }
        }
        self.count += o.count;
        self.nulls += o.nulls;
        self.n_int += o.n_int;
        self.n_float += o.n_float;
        self.n_bool += o.n_bool;
        self.n_date += o.n_date;
        self.n_str += o.n_str;
        self.moments.merge(&o.moments);
        if let Some(v) = o.str_min {
            if self.str_min.as_ref().is_none_or(|m| v < *m) {
                self.str_min = Some(v);
            }
        }
        if let Some(v) = o.str_max {
            if self.str_max.as_ref().is_none_or(|m| v > *m) {
                self.str_max = Some(v);
            }
        }
        self.distinct.merge(o.distinct);
        self.quantiles.merge(&o.quantiles);
        self.top.merge(&o.top);
    }

    /// The inferred type name.
    pub fn type_name(&self) -> &'static str {
        let kinds = (self.n_int + self.n_float > 0) as u8 + (self.n_bool > 0) as u8 + (self.n_date > 0) as u8;
        if self.n_str > 0 || kinds != 1 {
            "string"
        } else if self.n_float > 0 {
            "float"
        } else if self.n_int > 0 {
            "int"
        } else if self.n_bool > 0 {
            "bool"
        } else {
            "date"
        }
    }

    /// The column's result object (without `name`).
    pub fn result(&self, name: &str, quantiles: &[f64], top: usize) -> Value {
        let mut c = self.clone();
        c.flush();
        let ty = c.type_name();
        let numeric = ty == "int" || ty == "float";
        let (min, max) = match ty {
            "int" => (json!(c.int_min), json!(c.int_max)),
            "float" => {
                let mut lo = if c.n_float > 0 { c.float_min } else { f64::INFINITY };
                let mut hi = if c.n_float > 0 { c.float_max } else { f64::NEG_INFINITY };
                if c.n_int > 0 {
                    lo = lo.min(c.int_min as f64);
                    hi = hi.max(c.int_max as f64);
                }
                (json!(lo), json!(hi))
            }
            _ => (json!(c.str_min), json!(c.str_max)),
        };
        let (mean, stddev) = if numeric && c.moments.n > 0 {
            let sd = if c.moments.n > 1 { json!((c.moments.m2 / (c.moments.n - 1) as f64).sqrt()) } else { Value::Null };
            (json!(c.moments.mean), sd)
        } else {
            (Value::Null, Value::Null)
        };
        let qs = if numeric && c.moments.n > 0 {
            let mut m = serde_json::Map::new();
            let (lo, hi) = (min.as_f64().unwrap_or(f64::MIN), max.as_f64().unwrap_or(f64::MAX));
            for &q in quantiles {
                let v = c.quantiles.quantile(q).map(|v| v.clamp(lo, hi));
                m.insert(quantile_key(q), json!(v));
            }
            Value::Object(m)
        } else {
            Value::Null
        };
        let tops: Vec<Value> = c
            .top
            .entries()
            .into_iter()
            .take(top)
            .map(|(v, n)| json!({"value": String::from_utf8_lossy(v), "count": n}))
            .collect();
        json!({
            "name": name,
            "type": ty,
            "count": c.count,
            "nulls": c.nulls,
            "min": if c.count > 0 { min } else { Value::Null },
            "max": if c.count > 0 { max } else { Value::Null },
            "mean": mean,
            "stddev": stddev,
            "distinct": c.distinct.estimate(),
            "quantiles": qs,
            "top": tops,
        })
    }
}

/// Formats a quantile the way Python's `str(float)` does for such values
/// (`0.5` -> "0.5", `1.0` -> "1.0").
pub fn quantile_key(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{q:.1}")
    } else {
        format!("{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_values() {
        assert_eq!(classify(b"42"), Class::Int(42));
        assert_eq!(classify(b"-7"), Class::Int(-7));
        assert_eq!(classify(b"3.5"), Class::Float(3.5));
        assert_eq!(classify(b"1e3"), Class::Float(1000.0));
        assert_eq!(classify(b"TRUE"), Class::Bool);
        assert_eq!(classify(b"2024-02-29"), Class::Date);
        assert_eq!(classify(b"2023-02-29"), Class::Str);
        assert_eq!(classify(b"-inf"), Class::Str);
        assert_eq!(classify(b"-"), Class::Str);
        assert_eq!(classify(b"12ab"), Class::Str);
        assert_eq!(classify(b"nan"), Class::Str);
    }

    #[test]
    fn moments_match_two_pass() {
        let xs: Vec<f64> = (0..1000).map(|i| 1e6 + (i as f64) * 0.37 - ((i * 7) % 13) as f64).collect();
        let mut c = ColumnAcc::new(0);
        for x in &xs {
            c.add(format!("{x}").as_bytes());
        }
        c.flush();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!((c.moments.mean - mean).abs() / mean < 1e-12);
        let got = c.moments.m2 / (c.moments.n - 1) as f64;
        assert!((got - var).abs() / var < 1e-9, "{got} {var}");
    }

    #[test]
    fn type_inference() {
        let mut c = ColumnAcc::new(4);
        for f in ["1", "2", "", "3.5"] {
            c.add(f.as_bytes());
        }
        assert_eq!(c.type_name(), "float");
        c.add(b"x");
        assert_eq!(c.type_name(), "string");
        let mut b = ColumnAcc::new(4);
        b.add(b"true");
        b.add(b"1");
        assert_eq!(b.type_name(), "string");
        assert_eq!(quantile_key(0.5), "0.5");
        assert_eq!(quantile_key(1.0), "1.0");
    }
}
