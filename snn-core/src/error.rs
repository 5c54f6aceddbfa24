//! The typed error of the library crates. The CLI prints it as one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The OS error is part of this line and deliberately not a `source`:
    // the CLI prints the whole chain (`{:#}`), which would repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("parameter `{name}`: {msg}")]
    Param { name: String, msg: String },
    #[error("invalid value for `{field}`: {msg}")]
    Invalid { field: String, msg: String },
    #[error("shape mismatch in {what}: {msg}")]
    Shape { what: String, msg: String },
    #[error("device: {0}")]
    Device(String),
    /// Training stopped on request (SIGINT / SIGTERM) after writing a
    /// checkpoint; the message says how to resume.
    #[error("{0}")]
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            msg: msg.into(),
        }
    }

    pub fn shape(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            what: what.into(),
            msg: msg.into(),
        }
    }
}
