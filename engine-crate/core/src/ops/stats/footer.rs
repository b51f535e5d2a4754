//! What a Parquet footer's row-group statistics settle about a leaf column,
//! so that its pages need not be read: a column null in every row, or one
//! holding a single value throughout.
//!
//! Only statistics known to be exact count: a null count in every row group,
//! and bounds flagged exact, or of a fixed-width type in the current format
//! (such bounds are never truncated). Byte arrays without the flag may be
//! truncated; floats leave NaN out of their bounds; unsigned, decimal and
//! INT96 bounds follow an order other than their values'. Columns of those
//! types are always read.

use arrow_array::{Array, ArrayRef};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::basic::Type as PhysicalType;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use super::column::ColumnAcc;

/// A leaf column whose every statistic the footer gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Null in every row.
    AllNull,
    /// `value` in every row that is not null.
    Constant { value: String, nulls: u64 },
}

impl Settled {
    /// Adds the column's `rows` to `acc` as reading them would.
    pub fn add_to(&self, acc: &mut ColumnAcc, rows: u64) {
        match self {
            Settled::AllNull => acc.add_repeated(b"", rows),
            Settled::Constant { value, nulls } => {
                acc.add_repeated(b"", *nulls);
                acc.add_repeated(value.as_bytes(), rows - nulls);
            }
        }
        acc.flush();
    }
}

/// Whether bounds of `data_type` are ordered as its values and rendered one
/// text per value.
fn has_value_order(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Date32
    )
}

/// Whether a row group's bounds are the true minimum and maximum.
fn bounds_exact(stats: &Statistics) -> bool {
    let fixed_width = matches!(stats.physical_type(), PhysicalType::BOOLEAN | PhysicalType::INT32 | PhysicalType::INT64);
    (stats.min_is_exact() && stats.max_is_exact())
        || (fixed_width && !stats.is_min_max_deprecated() && stats.min_bytes_opt().is_some() && stats.max_bytes_opt().is_some())
}

/// Row group `group`'s bound in `bounds` as the text the data path gives it.
fn bound_text(bounds: &ArrayRef, group: usize) -> Option<String> {
    if bounds.is_null(group) {
        return None;
    }
    let shown = ArrayFormatter::try_new(bounds.as_ref(), &FormatOptions::default()).ok()?;
    Some(shown.value(group).to_string())
}

/// What the footer of `meta` settles about Parquet leaf column `leaf`, read
/// as `field`; `None` when some of its statistics need the data.
pub fn settle(meta: &ParquetMetaData, leaf: usize, field: &Field) -> Option<Settled> {
    let schema = meta.file_metadata().schema_descr();
    if !has_value_order(field.data_type()) || schema.column(leaf).physical_type() == PhysicalType::INT96 {
        return None;
    }
    let groups = meta.row_groups();
    let converter = StatisticsConverter::from_column_index(leaf, field, schema).ok()?.with_missing_null_counts_as_zero(false);
    let mins = converter.row_group_mins(groups).ok()?;
    let maxes = converter.row_group_maxes(groups).ok()?;
    let mut nulls = 0;
    let mut value: Option<String> = None;
    for (g, group) in groups.iter().enumerate() {
        let stats = group.column(leaf).statistics()?;
        let group_nulls = stats.null_count_opt()?;
        nulls += group_nulls;
        if group_nulls == group.num_rows().max(0) as u64 {
            continue;
        }
        if !bounds_exact(stats) {
            return None;
        }
        let (min, max) = (bound_text(&mins, g)?, bound_text(&maxes, g)?);
        if min != max || value.as_ref().is_some_and(|v| *v != min) {
            return None;
        }
        value = Some(min);
    }
    Some(match value {
        None => Settled::AllNull,
        Some(value) => Settled::Constant { value, nulls },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use arrow_schema::Schema;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    /// The footer of a file holding `column` as `c`, in row groups of two rows.
    fn footer_of(column: ArrayRef, props: WriterProperties) -> (ParquetMetaData, Field) {
        let field = Field::new("c", column.data_type().clone(), true);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field.clone()])), vec![column]).unwrap();
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let meta = ArrowReaderMetadata::load(&Bytes::from(buf), ArrowReaderOptions::default()).unwrap();
        (meta.metadata().as_ref().clone(), field)
    }

    fn settled(column: ArrayRef, props: WriterProperties) -> Option<Settled> {
        let (meta, field) = footer_of(column, props);
        settle(&meta, 0, &field)
    }

    fn groups_of_two() -> parquet::file::properties::WriterPropertiesBuilder {
        WriterProperties::builder().set_max_row_group_row_count(Some(2))
    }

    #[test]
    fn a_constant_column_with_nulls_is_settled() {
        let column = Arc::new(Int64Array::from(vec![Some(7), None, Some(7), Some(7), None]));
        assert_eq!(settled(column, groups_of_two().build()), Some(Settled::Constant { value: "7".into(), nulls: 2 }));
    }

    #[test]
    fn an_all_null_column_is_settled() {
        let column = Arc::new(StringArray::from(vec![None::<&str>; 5]));
        assert_eq!(settled(column, groups_of_two().build()), Some(Settled::AllNull));
    }

    #[test]
    fn values_differing_between_or_within_row_groups_need_the_data() {
        let across = Arc::new(Int64Array::from(vec![1, 1, 2, 2]));
        assert_eq!(settled(across, groups_of_two().build()), None);
        let within = Arc::new(Int64Array::from(vec![1, 2]));
        assert_eq!(settled(within, groups_of_two().build()), None);
    }

    #[test]
    fn truncated_or_missing_statistics_need_the_data() {
        let long = "x".repeat(100);
        let column: ArrayRef = Arc::new(StringArray::from(vec![long.as_str(); 4]));
        let exact = settled(column.clone(), groups_of_two().set_statistics_truncate_length(None).build());
        assert_eq!(exact, Some(Settled::Constant { value: long, nulls: 0 }));
        let truncated = groups_of_two().set_statistics_truncate_length(Some(8)).build();
        assert_eq!(settled(column.clone(), truncated), None);
        let none = groups_of_two().set_statistics_enabled(EnabledStatistics::None).build();
        assert_eq!(settled(column, none), None);
    }
}
