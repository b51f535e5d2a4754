//! Parquet for `stats`: every leaf column by its path (`a.b` inside a
//! struct), lists and maps summarised by their length, as NDJSON arrays are.
//!
//! Values reach the column accumulators as the text a CSV cell would hold
//! (dates as `YYYY-MM-DD`, numbers as written), so a column gets the same
//! statistics from either format; a null, or a field of a null struct, is
//! a null. Distinct counts, quantiles and top values need every value, so
//! the data is read (row groups in parallel, joined in file order), except
//! for columns the footer's statistics settle ([`super::footer`]): those
//! are left out of the read, and a file made only of them reads no page.
//! The row count comes from the footer.

use crate::blob::{Blob, Stream};

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatchReader};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, FieldRef, Fields};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::schema::types::SchemaDescriptor;
use rayon::prelude::*;

use super::column::ColumnAcc;
use super::footer::{settle, Settled};
use super::StatsOp;
use crate::codec::Input;
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::io::read_range_into;
use crate::FileTask;

/// Rows per record batch read from a row group.
const BATCH_ROWS: usize = 16 * 1024;

/// A Parquet input read with positioned reads: row groups are read by
/// several threads at once, which must not share a file offset.
#[derive(Clone)]
pub struct Positioned(Blob);

impl Positioned {
    /// The input with its length as it is now (a file's footer is found from its end).
    pub fn new(blob: &Blob) -> std::io::Result<Positioned> {
        blob.size()?;
        Ok(Positioned(blob.clone()))
    }
}

impl Length for Positioned {
    fn len(&self) -> u64 {
        self.0.size().unwrap_or(0)
    }
}

impl ChunkReader for Positioned {
    type T = Stream;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Stream> {
        Ok(self.0.stream(start..u64::MAX))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut buf = Vec::with_capacity(length);
        let n = read_range_into(&self.0, start, length, &mut buf).map_err(|e| ParquetError::External(Box::new(e)))?;
        if n < length {
            return Err(ParquetError::EOF(format!("expected {length} bytes at {start}, found {n}")));
        }
        Ok(Bytes::from(buf))
    }
}

/// One file's rows and columns, in schema order; a column is `true` when
/// its footer settled it.
#[derive(Debug)]
pub struct ParquetFile {
    pub rows: u64,
    pub columns: Vec<(String, ColumnAcc, bool)>,
}

/// A column of the result: an Arrow field below its enclosing structs.
struct Leaf {
    /// Field names from the schema's root.
    path: Vec<String>,
    field: FieldRef,
}

impl Leaf {
    fn name(&self) -> String {
        self.path.join(".")
    }

    /// The Parquet leaf column holding it, when it is one value per row
    /// (a list or map spans several, repeated).
    fn parquet_column(&self, schema: &SchemaDescriptor) -> Option<usize> {
        schema.columns().iter().position(|c| c.max_rep_level() == 0 && c.path().parts() == self.path.as_slice())
    }
}

/// The leaves of a schema, structs flattened.
fn leaves(prefix: &[String], fields: &Fields, out: &mut Vec<Leaf>) {
    for f in fields {
        let mut path = prefix.to_vec();
        path.push(f.name().clone());
        match f.data_type() {
            DataType::Struct(children) => leaves(&path, children, out),
            _ => out.push(Leaf { path, field: f.clone() }),
        }
    }
}

/// Whether row `i` is null in `array` or in a struct holding it.
fn is_null(array: &dyn Array, parent: Option<&arrow_array::BooleanArray>, i: usize) -> bool {
    array.is_null(i) || parent.is_some_and(|p| !p.value(i))
}

/// Adds the rows of `arrays` (columns of one batch, in schema order) to the
/// accumulators of their leaves, from `accs[*next]` on.
fn add_arrays(
    arrays: &[ArrayRef],
    valid: Option<&arrow_array::BooleanArray>,
    accs: &mut [ColumnAcc],
    next: &mut usize,
    text: &mut String,
) -> Result<(), String> {
    use std::fmt::Write;
    for array in arrays {
        if let DataType::Struct(_) = array.data_type() {
            let s = array.as_struct();
            // A child's row is valid only where every enclosing struct's is.
            let mine: arrow_array::BooleanArray =
                (0..s.len()).map(|i| Some(!is_null(s, valid, i))).collect();
            add_arrays(s.columns(), Some(&mine), accs, next, text)?;
            continue;
        }
        let acc = &mut accs[*next];
        *next += 1;
        let n = array.len();
        match array.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                for i in 0..n {
                    if is_null(array.as_ref(), valid, i) {
                        acc.add(b"");
                    } else {
                        let v = match array.data_type() {
                            DataType::Utf8 => array.as_string::<i32>().value(i),
                            DataType::LargeUtf8 => array.as_string::<i64>().value(i),
                            _ => array.as_string_view().value(i),
                        };
                        acc.add(v.as_bytes());
                    }
                }
            }
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) | DataType::Map(..) => {
                for i in 0..n {
                    if is_null(array.as_ref(), valid, i) {
                        acc.add(b"");
                        continue;
                    }
                    let len = match array.data_type() {
                        DataType::List(_) => array.as_list::<i32>().value_length(i) as usize,
                        DataType::LargeList(_) => array.as_list::<i64>().value_length(i) as usize,
                        DataType::FixedSizeList(_, len) => *len as usize,
                        _ => array.as_map().value_length(i) as usize,
                    };
                    text.clear();
                    let _ = write!(text, "{len}");
                    acc.add(text.as_bytes());
                }
            }
            _ => {
                let options = FormatOptions::default();
                let shown = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| e.to_string())?;
                for i in 0..n {
                    if is_null(array.as_ref(), valid, i) {
                        acc.add(b"");
                    } else {
                        text.clear();
                        let _ = write!(text, "{}", shown.value(i));
                        acc.add(text.as_bytes());
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads the `width` leaves in `mask` of one row group into fresh accumulators.
fn read_row_group(op: &StatsOp, file: &Positioned, meta: &ArrowReaderMetadata, mask: &ProjectionMask, group: usize, width: usize) -> Result<Vec<ColumnAcc>, String> {
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), meta.clone())
        .with_row_groups(vec![group])
        .with_projection(mask.clone())
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("parquet: {e}"))?;
    let mut found = Vec::new();
    leaves(&[], reader.schema().fields(), &mut found);
    if found.len() != width {
        return Err(format!("parquet: {} columns read where {width} were asked for", found.len()));
    }
    let mut accs: Vec<ColumnAcc> = (0..width).map(|_| op.new_column()).collect();
    let mut text = String::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("parquet: {e}"))?;
        add_arrays(batch.columns(), None, &mut accs, &mut 0, &mut text)?;
    }
    for a in &mut accs {
        a.flush();
    }
    Ok(accs)
}

/// Profiles a Parquet file's columns.
pub fn parse_file(op: &StatsOp, task: &FileTask, input: &Input, ctl: &Control) -> Result<Result<ParquetFile, FileError>, EngineError> {
    let fail = |reason: String| Ok(Err(FileError::new(&task.path, None, reason)));
    if let Some(codec) = input.codec {
        return fail(format!("a Parquet file compressed whole ({}) is not read: Parquet compresses its own pages", codec.name()));
    }
    let file = match Positioned::new(&input.blob) {
        Ok(f) => f,
        Err(e) => return Ok(Err(FileError::io(&task.path, &e))),
    };
    let meta = match ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()) {
        Ok(m) => m,
        Err(e) => return fail(format!("parquet: {e}")),
    };
    let mut schema_leaves = Vec::new();
    leaves(&[], meta.schema().fields(), &mut schema_leaves);
    let parquet_schema = meta.metadata().file_metadata().schema_descr();
    let rows = meta.metadata().file_metadata().num_rows().max(0) as u64;
    let settled: Vec<Option<(usize, Settled)>> = schema_leaves
        .iter()
        .map(|l| l.parquet_column(parquet_schema).and_then(|c| Some((c, settle(meta.metadata(), c, &l.field)?))))
        .collect();
    let left_out: Vec<usize> = settled.iter().flatten().map(|(c, _)| *c).collect();
    let mask = ProjectionMask::leaves(parquet_schema, (0..parquet_schema.num_columns()).filter(|c| !left_out.contains(c)));
    // Positions in `schema_leaves` of the leaves read, in schema order.
    let read_leaves: Vec<usize> = (0..schema_leaves.len()).filter(|&i| settled[i].is_none()).collect();
    let groups = if read_leaves.is_empty() { 0 } else { meta.metadata().num_row_groups() };
    let read: Vec<Result<Vec<ColumnAcc>, String>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            if ctl.is_cancelled() {
                return Err("cancelled".into());
            }
            let accs = read_row_group(op, &file, &meta, &mask, g, read_leaves.len());
            if !op.types_only {
                let chunks = meta.metadata().row_group(g).columns().iter().enumerate();
                ctl.add_bytes(chunks.filter(|(c, _)| mask.leaf_included(*c)).map(|(_, chunk)| chunk.compressed_size().max(0) as u64).sum());
            }
            accs
        })
        .collect();
    ctl.check()?;
    let mut columns: Vec<ColumnAcc> = (0..schema_leaves.len()).map(|_| op.new_column()).collect();
    for (acc, known) in columns.iter_mut().zip(&settled) {
        if let Some((_, s)) = known {
            s.add_to(acc, rows);
        }
    }
    for group in read {
        match group {
            Ok(accs) => read_leaves.iter().zip(accs).for_each(|(&i, b)| columns[i].merge(b)),
            Err(e) => return fail(e),
        }
    }
    let columns = schema_leaves.iter().zip(columns).zip(&settled).map(|((l, acc), s)| (l.name(), acc, s.is_some())).collect();
    Ok(Ok(ParquetFile { rows, columns }))
}
