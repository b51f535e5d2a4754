//! Mergeable summaries used per column: distinct counts (HyperLogLog),
//! quantiles (DDSketch) and frequent values (bounded counter table).
//!
//! Each merge is exactly associative and commutative on the summary state,
//! except the frequent-values table once it has evicted entries (see [`TopK`]).

use hashbrown::HashTable;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ops::checksum::hex;

// ---------------------------------------------------------------------------
// HyperLogLog

/// Register index bits: 2^14 registers, ~0.8% standard error.
const HLL_P: u32 = 14;
const HLL_M: usize = 1 << HLL_P;
/// Up to this many distinct hashes are kept exactly (and counted exactly).
const HLL_SPARSE_MAX: usize = 2048;

/// Distinct values a new table has room for before it grows: most small
/// files have fewer per column, and growing a table step by step from empty
/// was a fifth of the time of profiling many small files.
const FIRST_VALUES: usize = 32;

/// Distinct-count sketch over 64-bit hashes. Small sets are kept as the
/// exact set of hashes; larger ones as HyperLogLog registers. Either way the
/// state depends only on the set of hashes added, so merging is exactly
/// associative and commutative.
#[derive(Debug, Clone, Default)]
pub struct Hll {
    sparse: HashTable<u64>,
    dense: Option<Box<[u8]>>,
}

impl PartialEq for Hll {
    fn eq(&self, other: &Self) -> bool {
        self.dense == other.dense
            && self.sparse.len() == other.sparse.len()
            && self.sparse.iter().all(|&h| other.sparse.find(h, |&x| x == h).is_some())
    }
}

impl Hll {
    /// An empty set with room for its first values.
    pub fn new() -> Self {
        Hll { sparse: HashTable::with_capacity(FIRST_VALUES), dense: None }
    }

    #[inline]
    pub fn add(&mut self, h: u64) {
        match &mut self.dense {
            Some(regs) => Self::set(regs, h),
            None => {
                if self.sparse.find(h, |&x| x == h).is_none() {
                    self.sparse.insert_unique(h, h, |&x| x);
                    if self.sparse.len() > HLL_SPARSE_MAX {
                        self.densify();
                    }
                }
            }
        }
    }

    #[inline]
    fn set(regs: &mut [u8], h: u64) {
        let idx = (h >> (64 - HLL_P)) as usize;
        let rank = ((h << HLL_P) | (1 << (HLL_P - 1))).leading_zeros() as u8 + 1;
        if regs[idx] < rank {
            regs[idx] = rank;
        }
    }

    /// Switches the exact set to registers.
    fn densify(&mut self) {
        let mut regs = vec![0u8; HLL_M].into_boxed_slice();
        for &h in self.sparse.iter() {
            Self::set(&mut regs, h);
        }
        self.sparse = HashTable::new();
        self.dense = Some(regs);
    }

    /// The exact set, sorted (empty once dense).
    fn sorted(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.sparse.iter().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn merge(&mut self, mut other: Hll) {
        match (&mut self.dense, other.dense.take()) {
            (Some(a), Some(b)) => {
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = (*x).max(*y);
                }
            }
            (Some(a), None) => {
                for &h in other.sparse.iter() {
                    Self::set(a, h);
                }
            }
            (None, Some(mut b)) => {
                for &h in self.sparse.iter() {
                    Self::set(&mut b, h);
                }
                self.sparse = HashTable::new();
                self.dense = Some(b);
            }
            (None, None) => {
                if other.sparse.len() > self.sparse.len() {
                    std::mem::swap(&mut self.sparse, &mut other.sparse);
                }
                for &h in other.sparse.iter() {
                    self.add(h);
                }
            }
        }
    }

    pub fn estimate(&self) -> u64 {
        match &self.dense {
            None => self.sparse.len() as u64,
            Some(regs) => {
                let m = HLL_M as f64;
                let mut sum = 0.0;
                let mut zeros = 0usize;
                for &r in regs.iter() {
                    sum += 1.0 / (1u64 << r) as f64;
                    zeros += (r == 0) as usize;
                }
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let raw = alpha * m * m / sum;
                let est = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
                est.round() as u64
            }
        }
    }
}

impl Serialize for Hll {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.dense {
            Some(regs) => s.serialize_str(&format!("d:{}", hex(regs))),
            None => {
                let bytes: Vec<u8> = self.sorted().iter().flat_map(|h| h.to_be_bytes()).collect();
                s.serialize_str(&format!("s:{}", hex(&bytes)))
            }
        }
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let v = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.as_bytes().chunks(2).map(|p| Some(v(p[0])? << 4 | v(p[1])?)).collect()
}

impl<'de> Deserialize<'de> for Hll {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || D::Error::custom("invalid distinct-count sketch");
        let (kind, body) = s.split_at_checked(2).ok_or_else(bad)?;
        let bytes = unhex(body).ok_or_else(bad)?;
        match kind {
            "d:" if bytes.len() == HLL_M => Ok(Hll { sparse: HashTable::new(), dense: Some(bytes.into_boxed_slice()) }),
            "s:" if bytes.len() % 8 == 0 => {
                let mut h = Hll::default();
                for c in bytes.chunks(8) {
                    h.add(u64::from_be_bytes(c.try_into().unwrap()));
                }
                Ok(h)
            }
            _ => Err(bad()),
        }
    }
}

// ---------------------------------------------------------------------------
// DDSketch

/// Relative accuracy of quantile estimates.
pub const DD_ALPHA: f64 = 0.01;
/// Magnitudes below this are counted as zero.
const DD_MIN: f64 = 1e-12;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Bins {
    offset: i32,
    counts: Vec<u64>,
}

impl Bins {
    #[inline]
    fn add(&mut self, key: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(0);
        }
        if key < self.offset {
            let grow = (self.offset - key) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = key;
        }
        let i = (key - self.offset) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
    }

    fn merge(&mut self, other: &Bins) {
        for (i, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                self.add(other.offset + i as i32, c);
            }
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Drops leading/trailing empty bins so equal contents compare equal.
    fn trim(&mut self) {
        let first = self.counts.iter().position(|&c| c > 0);
        match first {
            None => *self = Bins::default(),
            Some(f) => {
                let last = self.counts.iter().rposition(|&c| c > 0).unwrap();
                self.counts.truncate(last + 1);
                self.counts.drain(..f);
                self.offset += f as i32;
            }
        }
    }
}

/// DDSketch with relative accuracy [`DD_ALPHA`] and unbounded bins: merging
/// adds bin counts, so it is exactly associative and commutative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DdSketch {
    zeros: u64,
    pos: Bins,
    neg: Bins,
}

fn gamma() -> f64 {
    (1.0 + DD_ALPHA) / (1.0 - DD_ALPHA)
}

#[inline]
fn inv_ln_gamma() -> f64 {
    1.0 / gamma().ln()
}

/// Where a value goes in a [`DdSketch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DdKey {
    /// Not counted (infinite or NaN).
    #[default]
    Skip,
    Zero,
    Pos(i32),
    Neg(i32),
}

/// `ln(c)` and `1 / c` at the centres `c` of 128 equal parts of [1, 2).
fn ln_table() -> &'static [(f64, f64, f64); 128] {
    static T: std::sync::OnceLock<[(f64, f64, f64); 128]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [(0.0, 0.0, 0.0); 128];
        for (i, e) in t.iter_mut().enumerate() {
            let c = 1.0 + (i as f64 + 0.5) / 128.0;
            *e = (c, 1.0 / c, c.ln());
        }
        t
    })
}

/// `ceil(y)` for `|y| < 2^31` without a libm call.
#[inline]
fn ceil_i32(y: f64) -> i32 {
    let t = y as i32;
    if (t as f64) < y {
        t + 1
    } else {
        t
    }
}

impl DdSketch {
    /// The bin of `x`: `ceil(ln|x| / ln(gamma))`. A table plus a short series
    /// gives `ln` to ~1e-12; when the result is not within 1e-7 of a bin
    /// boundary its ceiling equals that of the exact formula, otherwise the
    /// exact formula decides.
    #[inline]
    pub fn key(x: f64) -> DdKey {
        let a = x.abs();
        if a < DD_MIN {
            return DdKey::Zero;
        }
        if !a.is_finite() {
            return DdKey::Skip;
        }
        let bits = a.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
        let mant = bits & ((1u64 << 52) - 1);
        let (c, inv_c, ln_c) = ln_table()[(mant >> 45) as usize];
        let m = f64::from_bits(mant | (1023u64 << 52));
        let r = (m - c) * inv_c;
        let series = r - r * r * (0.5 - r * (1.0 / 3.0 - r * 0.25));
        let y = (e as f64 * std::f64::consts::LN_2 + ln_c + series) * inv_ln_gamma();
        let t = y as i32;
        let d = y - t as f64;
        let key = if d.abs() > 1e-7 && d.abs() < 1.0 - 1e-7 {
            if d > 0.0 {
                t + 1
            } else {
                t
            }
        } else {
            ceil_i32(a.ln() * inv_ln_gamma())
        };
        if x > 0.0 {
            DdKey::Pos(key)
        } else {
            DdKey::Neg(key)
        }
    }

    #[inline]
    pub fn add_key(&mut self, k: DdKey) {
        match k {
            DdKey::Skip => {}
            DdKey::Zero => self.zeros += 1,
            DdKey::Pos(k) => self.pos.add(k, 1),
            DdKey::Neg(k) => self.neg.add(k, 1),
        }
    }

    #[inline]
    pub fn add(&mut self, x: f64) {
        self.add_key(Self::key(x));
    }

    pub fn merge(&mut self, other: &DdSketch) {
        self.zeros += other.zeros;
        self.pos.merge(&other.pos);
        self.neg.merge(&other.neg);
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.pos.total() + self.neg.total()
    }

    pub fn normalized(&self) -> DdSketch {
        let mut c = self.clone();
        c.pos.trim();
        c.neg.trim();
        c
    }

    fn value(key: i32) -> f64 {
        let g = gamma();
        2.0 * g.powi(key) / (g + 1.0)
    }

    /// Quantile `q` in [0, 1] (nearest-rank on `q * (n - 1)`), or None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).round() as u64;
        let mut seen = 0u64;
        for (i, &c) in self.neg.counts.iter().enumerate().rev() {
            seen += c;
            if seen > rank {
                return Some(-Self::value(self.neg.offset + i as i32));
            }
        }
        seen += self.zeros;
        if seen > rank {
            return Some(0.0);
        }
        for (i, &c) in self.pos.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Some(Self::value(self.pos.offset + i as i32));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Frequent values

/// Facts about a value that a caller derives from its bytes alone and keeps
/// next to its count, so that a repeated value is not examined again.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memo {
    /// 0 = not filled in yet; otherwise caller-defined.
    pub tag: u8,
    pub key: DdKey,
    pub bits: u64,
}

/// Whether two byte strings of the same length are equal, without a call
/// to `memcmp` for the short ones: a value found in the frequent-values table
/// is compared with the field every time it repeats, fields are mostly under
/// 16 bytes, and the call cost more than the comparison (7 % of `stats`).
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert_eq!(n, b.len());
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        // Two loads that overlap in the middle cover every byte.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    off: u32,
    len: u32,
    count: u64,
    memo: Memo,
}

/// Frequent values: a counter table holding up to `4 * capacity` distinct
/// values. When it fills up, only the `capacity` most frequent values (ties
/// by value hash) are kept. Counts are exact for every value as long as the table
/// never evicted anything (at most `4 * capacity` distinct values seen by a
/// partial), and [`TopK::entries`] orders by count, then value, so the
/// result does not depend on merge order; after evictions, a value's count
/// misses the occurrences seen before it was last evicted, so heavy hitters
/// stay exact in practice and rarer values are approximate. Values live in
/// one byte arena (no allocation per field).
///
/// Once the table has evicted, a value first sighted through
/// [`TopK::insert_new`] waits on probation (its hash in a small
/// direct-mapped array) and enters the table, counted twice, when it is seen
/// again before another value takes its place there. A column of unique
/// values then costs one array write per value instead of a table insert and
/// its share of the pruning, which was the largest cost of `stats` on such
/// columns. Values seen once after the first eviction are not counted (the
/// pruning would have dropped them anyway), and a value whose place on
/// probation is taken before its second sighting misses the first.
#[derive(Debug, Clone, Default)]
pub struct TopK {
    capacity: usize,
    table: HashTable<Slot>,
    arena: Vec<u8>,
    /// Hashes of values sighted once since the first eviction; empty before it.
    probation: Vec<u64>,
}

impl TopK {
    pub fn new(capacity: usize) -> Self {
        let first = if capacity == 0 { 0 } else { FIRST_VALUES };
        TopK { capacity, table: HashTable::with_capacity(first), arena: Vec::with_capacity(first * 16), probation: Vec::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    pub fn add(&mut self, hash: u64, value: &[u8]) {
        self.add_n(hash, value, 1, Memo::default());
    }

    /// Counts one more occurrence of a value already in the table and
    /// returns its memo; `None` (nothing counted) when it is not there.
    #[inline]
    pub fn bump(&mut self, hash: u64, value: &[u8]) -> Option<&mut Memo> {
        if self.capacity == 0 {
            return None;
        }
        let arena = &self.arena;
        let s = self.table.find_mut(hash, |s| {
            s.hash == hash && s.len as usize == value.len() && same_bytes(&arena[s.off as usize..(s.off + s.len) as usize], value)
        })?;
        s.count += 1;
        Some(&mut s.memo)
    }

    /// Counts one sighting of a value known not to be in the table (see the
    /// type's note on probation).
    #[inline]
    pub fn insert_new(&mut self, hash: u64, value: &[u8], memo: Memo) {
        if self.capacity == 0 {
            return;
        }
        if self.probation.is_empty() {
            self.insert(hash, value, 1, memo);
            return;
        }
        let mask = self.probation.len() - 1;
        let waiting = &mut self.probation[hash as usize & mask];
        if *waiting != hash {
            *waiting = hash;
            return;
        }
        *waiting = 0;
        self.insert(hash, value, 2, memo);
    }

    /// Adds a value known not to be in the table with `n` occurrences.
    #[inline]
    fn insert(&mut self, hash: u64, value: &[u8], n: u64, memo: Memo) {
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(value);
        self.table.insert_unique(hash, Slot { hash, off, len: value.len() as u32, count: n, memo }, |s| s.hash);
        if self.table.len() > 4 * self.capacity {
            self.prune(self.capacity);
            if self.probation.is_empty() {
                self.probation = vec![0; (4 * self.capacity).next_power_of_two()];
            }
        }
    }

    #[inline]
    pub fn add_n(&mut self, hash: u64, value: &[u8], n: u64, memo: Memo) {
        if self.capacity == 0 {
            return;
        }
        let arena = &self.arena;
        if let Some(s) = self.table.find_mut(hash, |s| {
            s.hash == hash && s.len as usize == value.len() && same_bytes(&arena[s.off as usize..(s.off + s.len) as usize], value)
        }) {
            s.count += n;
            if s.memo.tag == 0 {
                s.memo = memo;
            }
            return;
        }
        self.insert(hash, value, n, memo);
    }

    fn value(&self, s: &Slot) -> &[u8] {
        &self.arena[s.off as usize..(s.off + s.len) as usize]
    }

    /// Entries sorted by count (descending), then value.
    pub fn entries(&self) -> Vec<(&[u8], u64)> {
        let mut v: Vec<(&[u8], u64)> = self.table.iter().map(|s| (self.value(s), s.count)).collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }

    /// Keeps the `keep` most frequent values; ties broken by hash
    /// (deterministic, and cheaper than comparing values).
    fn prune(&mut self, keep: usize) {
        if self.table.len() > keep {
            let order = |a: &(u64, u64), b: &(u64, u64)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
            let mut keys: Vec<(u64, u64)> = self.table.iter().map(|s| (s.count, s.hash)).collect();
            if keep == 0 {
                self.table.clear();
            } else {
                let (_, &mut cut, _) = keys.select_nth_unstable_by(keep - 1, order);
                // Equal (count, hash) pairs would be a 64-bit hash collision;
                // such values stay or go together.
                self.table.retain(|s| order(&(s.count, s.hash), &cut) != std::cmp::Ordering::Greater);
            }
        }
        let mut new_arena = Vec::with_capacity(self.arena.len() / 2);
        for s in self.table.iter_mut() {
            let off = new_arena.len() as u32;
            new_arena.extend_from_slice(&self.arena[s.off as usize..(s.off + s.len) as usize]);
            s.off = off;
        }
        self.arena = new_arena;
    }

    pub fn merge(&mut self, other: &TopK) {
        for s in other.table.iter() {
            self.add_n(s.hash, other.value(s), s.count, s.memo);
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct TopKRepr {
    capacity: usize,
    values: Vec<(String, u64)>,
}

impl Serialize for TopK {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let values = self.entries().into_iter().map(|(v, c)| (String::from_utf8_lossy(v).into_owned(), c)).collect();
        TopKRepr { capacity: self.capacity, values }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopK {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = TopKRepr::deserialize(d)?;
        let mut t = TopK::new(r.capacity);
        for (v, c) in r.values {
            t.add_n(xxhash_rust::xxh3::xxh3_64(v.as_bytes()), v.as_bytes(), c, Memo::default());
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn hll_exact_then_approximate() {
        let mut h = Hll::default();
        for i in 0..1000u64 {
            h.add(xxh3_64(&i.to_le_bytes()));
            h.add(xxh3_64(&i.to_le_bytes()));
        }
        assert_eq!(h.estimate(), 1000);
        for i in 0..100_000u64 {
            h.add(xxh3_64(&i.to_le_bytes()));
        }
        let e = h.estimate() as f64;
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.03, "{e}");
        let back: Hll = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back.estimate(), h.estimate());
    }

    #[test]
    fn ddsketch_relative_error() {
        let mut d = DdSketch::default();
        for i in 1..=10_000 {
            d.add(i as f64);
        }
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let exact = 1.0 + q * 9999.0;
            let got = d.quantile(q).unwrap();
            assert!((got - exact).abs() / exact <= 0.021, "{q} {got} {exact}");
        }
        let mut n = DdSketch::default();
        for x in [-5.0, 0.0, 3.0] {
            n.add(x);
        }
        assert!(n.quantile(0.0).unwrap() < -4.9);
        assert_eq!(n.quantile(0.5).unwrap(), 0.0);
    }

    #[test]
    fn ddsketch_key_matches_exact_formula() {
        let exact = |x: f64| {
            let a = x.abs();
            if a < DD_MIN {
                return DdKey::Zero;
            }
            let k = (a.ln() * inv_ln_gamma()).ceil() as i32;
            if x > 0.0 { DdKey::Pos(k) } else { DdKey::Neg(k) }
        };
        let mut x = 1.0e-12f64;
        while x < 1e300 {
            for y in [x, -x, x * (1.0 + 1e-15), x.next_up(), x.next_down()] {
                assert_eq!(DdSketch::key(y), exact(y), "{y:e}");
            }
            x *= 1.000_37;
        }
        // Values at and next to every bin boundary.
        for k in -1300..36_000 {
            let b = gamma().powi(k);
            if !(DD_MIN..1e308).contains(&b) {
                continue;
            }
            for y in [b, b.next_up(), b.next_down(), b.next_up().next_up(), b.next_down().next_down()] {
                assert_eq!(DdSketch::key(y), exact(y), "{y:e}");
            }
        }
        for i in 0..200_000i64 {
            for y in [i as f64, i as f64 / 100.0, (i * 7919) as f64 * 1.37] {
                if y != 0.0 {
                    assert_eq!(DdSketch::key(y), exact(y), "{y:e}");
                }
            }
        }
        assert_eq!(DdSketch::key(0.0), DdKey::Zero);
        assert_eq!(DdSketch::key(f64::NAN), DdKey::Skip);
        assert_eq!(DdSketch::key(f64::NEG_INFINITY), DdKey::Skip);
    }

    #[test]
    fn same_bytes_agrees_with_slice_equality_at_every_length() {
        let a: Vec<u8> = (0..40u8).collect();
        for n in 0..40 {
            assert!(same_bytes(&a[..n], &a[..n]));
            for flip in 0..n {
                let mut b = a[..n].to_vec();
                b[flip] ^= 0x20;
                assert!(!same_bytes(&a[..n], &b), "length {n}, byte {flip}");
            }
        }
    }

    #[test]
    fn topk_counts_and_evicts() {
        let mut t = TopK::new(4);
        for i in 0..100u64 {
            let v = format!("v{}", i % 3);
            t.add(xxh3_64(v.as_bytes()), v.as_bytes());
            let u = format!("u{i}");
            t.add(xxh3_64(u.as_bytes()), u.as_bytes());
        }
        let e = t.entries();
        assert_eq!(e[0], (&b"v0"[..], 34));
        assert!(t.len() <= 16);
    }

    #[test]
    fn topk_keeps_unique_values_on_probation_after_the_first_eviction() {
        let mut t = TopK::new(4);
        let see = |t: &mut TopK, v: &str| {
            let h = xxh3_64(v.as_bytes());
            if t.bump(h, v.as_bytes()).is_none() {
                t.insert_new(h, v.as_bytes(), Memo::default());
            }
        };
        for i in 0..17 {
            see(&mut t, &format!("u{i}"));
        }
        // The 17th distinct value made the table evict down to 4.
        assert_eq!(t.len(), 4);
        for i in 17..10_000 {
            see(&mut t, &format!("u{i}"));
        }
        assert_eq!(t.len(), 4, "unique values seen once stay out of the table");
        // A value that starts to repeat after the eviction enters on its
        // second sighting, counted twice, unless a unique value took its
        // place on probation in between (1 in 16 here).
        for i in 0..200 {
            see(&mut t, "late");
            see(&mut t, &format!("w{i}"));
        }
        let late = t.entries().into_iter().find(|(v, _)| *v == b"late").map(|(_, c)| c);
        assert!(matches!(late, Some(190..=200)), "{late:?}");
        assert_eq!(t.entries()[0].0, b"late");
    }
}
