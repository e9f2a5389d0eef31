//! Output: human lines or JSON Lines on stdout, one error line on stderr.
//!
//! (being written)

/// Where a tool writes its results.
pub struct Out {
    /// `--json`: one JSON object per line.
    pub json: bool,
}
