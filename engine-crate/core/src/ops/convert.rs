//! placeholder
use serde::{Deserialize, Serialize};
use serde_json::Value;
use super::Operation;
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::partial::Body;
use crate::FileTask;
#[derive(Debug, Clone)]
pub struct ConvertOp;
impl ConvertOp { pub fn from_options(_t: &str) -> Result<Self, EngineError> { Err(EngineError::Invalid("not yet".into())) } }
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ConvertBody {}
impl Body for ConvertBody { fn merge(&mut self, _o: Self) -> Result<(), String> { Ok(()) } fn result(&self) -> Value { Value::Null } }
impl Operation for ConvertOp { type Body = ConvertBody; const NAME: &'static str = "convert";
 fn empty(&self) -> ConvertBody { ConvertBody {} }
 fn process_file(&self, _t: &FileTask, _c: &Control, _a: &mut ConvertBody) -> Result<Result<(), FileError>, EngineError> { Ok(Ok(())) } }
