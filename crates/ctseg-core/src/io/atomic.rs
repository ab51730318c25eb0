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
    // A replaced file keeps its mode; a new one gets the usual 0666 minus the umask
    // (tempfile's own default, 0600, would hide results from colleagues).
    let existing = std::fs::metadata(path).ok().map(|m| m.permissions());
    // No dots before `suffix`: writers that fix up extensions keep the name intact.
    let mut builder = tempfile::Builder::new();
    builder.prefix(".ctseg-tmp-").suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    write(tmp.path())?;
    if let Some(permissions) = existing {
        std::fs::set_permissions(tmp.path(), permissions).map_err(|e| Error::io(tmp.path(), e))?;
    }
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn new_files_follow_the_umask_and_replaced_files_keep_their_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        // What the process's umask gives a plain new file.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").expect("write");
        let usual = mode(&plain);
        let path = dir.path().join("out.txt");
        let write = |text: &'static [u8]| {
            atomic_write(&path, ".txt", |tmp| {
                std::fs::write(tmp, text).map_err(|e| Error::io(tmp, e))
            })
        };
        write(b"one").expect("first write");
        assert_eq!(mode(&path), usual, "a new file gets 0666 minus the umask");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write(b"two").expect("replace");
        assert_eq!(mode(&path), 0o640, "a replaced file keeps its mode");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
    }
}
