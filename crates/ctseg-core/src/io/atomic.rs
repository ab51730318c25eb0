//! Safe writes: a temporary file in the target folder, flushed, then renamed, so a
//! user's file is never left half-written.

use std::path::Path;

use crate::error::{Error, Result};

/// Write a file safely: `write` receives a temporary path in the same folder (ending
/// in `suffix`), and on success the file is flushed to disk and renamed to `path`. On
/// failure the temporary file is removed and `path` is left as it was.
pub fn atomic_write(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // No dots before `suffix`: writers that fix up extensions keep the name intact.
    let tmp = tempfile::Builder::new()
        .prefix(".ctseg-tmp-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    write(tmp.path())?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
