//! The operations. Each op module owns its options, its partial body and its
//! per-file processing; [`Operation`] is the small interface the run driver
//! in [`crate::job`] needs.

pub mod checksum;
pub mod convert;
pub mod count;
pub mod grep;
pub mod options;
pub mod stats;

use crate::codec::Input;
use crate::control::Control;
use crate::error::{EngineError, FileError};
use crate::partial::Body;
use crate::FileTask;

/// Names of the supported ops.
pub const OPS: &[&str] = &["stats", "count", "checksum", "grep", "convert"];

/// One configured operation.
pub trait Operation: Send + Sync + 'static {
    type Body: Body;
    const NAME: &'static str;

    /// The empty (identity) body.
    fn empty(&self) -> Self::Body;

    /// Processes one file, adding its contribution to `acc`. The driver has
    /// opened it (see [`crate::io::Inputs`]) and looked for a codec; ops read
    /// it only through `input`, a compressed one through
    /// [`crate::codec::for_each_block`].
    /// A problem with the file is returned as `Ok(Err(..))` and must leave
    /// `acc` without any contribution from that file. `Err(..)` stops the run
    /// (cancellation).
    fn process_file(
        &self,
        task: &FileTask,
        input: &Input,
        ctl: &Control,
        acc: &mut Self::Body,
    ) -> Result<Result<(), FileError>, EngineError>;

    /// Work done once before the files (for example creating an output directory).
    fn prepare(&self) -> Result<(), EngineError> {
        Ok(())
    }
}
