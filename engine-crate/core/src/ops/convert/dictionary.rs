//! Which columns of a Parquet file get dictionary encoding.
//!
//! A dictionary pays off only when a column repeats its values: for
//! near-unique columns (ids, amounts, free text) the writer would hash every
//! value, fill a dictionary page up to its size limit and then fall back to
//! plain pages anyway, and the indices compress worse than the plain values.
//! The decision is taken once per file, from the values of its first row
//! group, by counting distinct values until the count shows the column is
//! not repetitive.

use std::hash::Hash;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use hashbrown::HashSet;

/// A column is dictionary-encoded when its distinct values are at most this
/// fraction (1 / N) of its non-null values.
const MAX_DISTINCT_SHARE: usize = 10;

/// Whether dictionary encoding pays off for a column holding these values.
pub fn pays_off(values: &ArrayRef) -> bool {
    let limit = (values.len() - values.null_count()) / MAX_DISTINCT_SHARE;
    match values.data_type() {
        DataType::Int64 => few_distinct(values.as_primitive::<Int64Type>().iter().flatten(), limit),
        DataType::Float64 => few_distinct(values.as_primitive::<Float64Type>().iter().flatten().map(f64::to_bits), limit),
        DataType::Date32 => few_distinct(values.as_primitive::<Date32Type>().iter().flatten(), limit),
        DataType::Utf8 => few_distinct(values.as_string::<i32>().iter().flatten(), limit),
        // Booleans are bit-packed; a dictionary never helps them.
        _ => false,
    }
}

/// Whether `values` hold at most `limit` distinct values; stops counting as
/// soon as they do not.
fn few_distinct<T: Hash + Eq>(values: impl Iterator<Item = T>, limit: usize) -> bool {
    let mut seen = HashSet::with_capacity(limit.min(1 << 16) + 1);
    for v in values {
        if seen.insert(v) && seen.len() > limit {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn repetitive_columns_get_a_dictionary_and_unique_ones_do_not() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
        let small: ArrayRef = Arc::new(Int64Array::from_iter_values((0..1000).map(|i| i % 100)));
        let words: ArrayRef = Arc::new(StringArray::from_iter_values((0..1000).map(|i| ["a", "b", "c"][i % 3])));
        let text: ArrayRef = Arc::new(StringArray::from_iter_values((0..1000).map(|i| format!("note {i}"))));
        let floats: ArrayRef = Arc::new(Float64Array::from_iter((0..1000).map(|i| (i % 7 != 0).then_some(i as f64 / 8.0))));
        let flags: ArrayRef = Arc::new(BooleanArray::from_iter((0..1000).map(|i| Some(i % 2 == 0))));
        assert!(!pays_off(&ids));
        assert!(pays_off(&small));
        assert!(pays_off(&words));
        assert!(!pays_off(&text));
        assert!(!pays_off(&floats));
        assert!(!pays_off(&flags));
    }

    #[test]
    fn nulls_do_not_count_as_values() {
        let mostly_null: ArrayRef = Arc::new(Int64Array::from_iter((0..1000).map(|i| (i < 20).then_some(i % 2))));
        assert!(pays_off(&mostly_null));
    }
}
