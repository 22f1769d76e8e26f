//! Message data on the command line: read from an argument (any bytes, not
//! only UTF-8), from stdin (`-`) or from a file (`--file`); and written out
//! raw, byte for byte, for piping.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use clap::Args;

/// Where a message's data comes from.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data: the argument's bytes exactly as given (any bytes, not only
    /// UTF-8), or - to read it from stdin (default: empty).
    #[arg(value_name = "DATA")]
    data: Option<OsString>,
    /// Read the data from this file instead (binary-safe).
    #[arg(long, value_name = "PATH", conflicts_with = "data")]
    file: Option<PathBuf>,
}

impl DataArgs {
    /// The data's bytes; the error says what could not be read.
    pub fn read(self) -> Result<Vec<u8>, String> {
        if let Some(path) = self.file {
            return std::fs::read(&path)
                .map_err(|e| format!("cannot read --file {}: {e}", path.display()));
        }
        match self.data {
            None => Ok(Vec::new()),
            Some(d) if d == "-" => {
                let mut buf = Vec::new();
                io::stdin()
                    .lock()
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("cannot read the data from stdin: {e}"))?;
                Ok(buf)
            }
            Some(d) => Ok(d.into_vec()),
        }
    }
}

/// Writes `data` to stdout exactly (no newline added) and flushes.
pub fn write_raw(data: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}
