//! The file list of a DICOM series folder: searched recursively without ever
//! leaving the folder, never opening FIFOs, sockets or devices, skipping unreadable
//! entries with a warning, and bounded in depth and file count.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Deepest folder level below the series folder that is searched.
pub(super) const MAX_SCAN_DEPTH: usize = 8;
/// Most files one series folder scan lists.
pub(super) const MAX_SCAN_FILES: usize = 200_000;

/// What a folder scan found, and what it left out and why.
#[derive(Debug, Default)]
pub(super) struct FolderScan {
    /// Regular files inside the folder.
    pub(super) files: Vec<PathBuf>,
    /// Entries left out (unreadable, not a regular file, a link leaving the folder).
    pub(super) skipped: Vec<String>,
    /// Whether folders deeper than [`MAX_SCAN_DEPTH`] were not searched.
    pub(super) too_deep: bool,
    /// Whether the scan stopped at [`MAX_SCAN_FILES`].
    pub(super) too_many: bool,
}

impl FolderScan {
    /// Warning lines for what was left out (one line per kind of problem).
    pub(super) fn warnings(&self, dir: &Path) -> Vec<String> {
        let mut w = Vec::new();
        if !self.skipped.is_empty() {
            let shown: Vec<&str> = self.skipped.iter().take(3).map(String::as_str).collect();
            w.push(format!(
                "{}: skipped {} entr{} ({}{})",
                dir.display(),
                self.skipped.len(),
                if self.skipped.len() == 1 { "y" } else { "ies" },
                shown.join("; "),
                if self.skipped.len() > 3 { "; …" } else { "" }
            ));
        }
        if self.too_deep {
            w.push(format!(
                "{}: folders more than {MAX_SCAN_DEPTH} levels down were not searched",
                dir.display()
            ));
        }
        if self.too_many {
            w.push(format!(
                "{}: the scan stopped after {MAX_SCAN_FILES} files",
                dir.display()
            ));
        }
        w
    }
}

/// List the regular files under `root`, never leaving it: symbolic links are
/// followed only when their target lies inside `root`; FIFOs, sockets and devices
/// are never opened; unreadable entries below `root` are skipped (and listed).
pub(super) fn scan_folder(root: &Path) -> Result<FolderScan> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let mut scan = FolderScan::default();
    // The folder itself must be readable; below it, unreadable entries are skipped.
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    collect_entries(&canonical_root, root, entries, &mut scan, 0);
    Ok(scan)
}

fn collect_files(root: &Path, dir: &Path, scan: &mut FolderScan, depth: usize) {
    if depth > MAX_SCAN_DEPTH {
        scan.too_deep = true;
        return;
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => collect_entries(root, dir, entries, scan, depth),
        Err(e) => scan.skipped.push(format!("{}: {e}", dir.display())),
    }
}

fn collect_entries(
    root: &Path,
    dir: &Path,
    entries: std::fs::ReadDir,
    scan: &mut FolderScan,
    depth: usize,
) {
    for entry in entries {
        if scan.files.len() >= MAX_SCAN_FILES {
            scan.too_many = true;
            return;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                scan.skipped.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.eq_ignore_ascii_case("DICOMDIR") {
            continue;
        }
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link {
            match std::fs::canonicalize(&path) {
                Ok(target) if target.starts_with(root) => {}
                Ok(_) => {
                    scan.skipped.push(format!(
                        "{}: a link leading out of the folder",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    scan.skipped.push(format!(
                        "{}: a broken or looping link ({e})",
                        path.display()
                    ));
                    continue;
                }
            }
        }
        // Follows a link (inside the folder) to what it points at.
        let file_type = match std::fs::metadata(&path) {
            Ok(m) => m.file_type(),
            Err(e) => {
                scan.skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if file_type.is_dir() {
            collect_files(root, &path, scan, depth + 1);
        } else if file_type.is_file() {
            scan.files.push(path);
        } else {
            scan.skipped.push(format!(
                "{}: not a regular file (a FIFO, socket or device)",
                path.display()
            ));
        }
    }
}
