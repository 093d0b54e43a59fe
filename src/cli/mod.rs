//! The `oneshot` command's subcommands, one module per family.

pub mod bench;
pub mod eval;
pub mod score;
pub mod train;

/// Any error a command reports, printed with its causes.
pub type AnyError = Box<dyn std::error::Error>;
