//! Every folder ctseg keeps files in, derived in one place.
//!
//! The root is `$XDG_CACHE_HOME/ctseg`, else `~/.cache/ctseg`, else `ctseg` in the
//! system temp folder. Each folder below it can be moved on its own:
//!
//! | folder | default | override |
//! | --- | --- | --- |
//! | preprocessed training slices | `<root>/slices` | `CTSEG_CACHE_DIR` |
//! | GPU kernels and autotune results | `<root>/kernels` | `CTSEG_KERNEL_CACHE` |
//! | recovery files of unsaved edits | `<root>/recovery` | `CTSEG_RECOVERY_DIR` |
//! | the sample phantom dataset | `<root>/phantoms` | – |
//! | the bundled sample CT (s0001) | `<root>/sample/s0001` | – |
//! | corrected cases added to a training set | `<root>/corrections` | – |
//!
//! Overriding one folder never moves another (before, `CTSEG_CACHE_DIR=/x/cache`
//! also moved recovery files to `/x/recovery`).

use std::path::PathBuf;

/// The folder all of ctseg's default folders live under.
pub fn root_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("ctseg");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache").join("ctseg");
    }
    std::env::temp_dir().join("ctseg")
}

fn override_or(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var).filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => root_dir().join(default),
    }
}

/// Preprocessed training slices: `$CTSEG_CACHE_DIR`, else `<root>/slices`.
pub fn slice_cache_dir() -> PathBuf {
    override_or("CTSEG_CACHE_DIR", "slices")
}

/// Compiled GPU kernels and autotune results: `$CTSEG_KERNEL_CACHE`, else
/// `<root>/kernels`.
pub fn kernel_cache_dir() -> PathBuf {
    override_or("CTSEG_KERNEL_CACHE", "kernels")
}

/// Recovery files of unsaved edits: `$CTSEG_RECOVERY_DIR`, else `<root>/recovery`.
pub fn recovery_dir() -> PathBuf {
    override_or("CTSEG_RECOVERY_DIR", "recovery")
}

/// The default dataset that corrected cases are added to: `<root>/corrections`.
pub fn corrections_dir() -> PathBuf {
    root_dir().join("corrections")
}

/// The sample phantom dataset the Training tab writes: `<root>/phantoms`.
pub fn sample_phantoms_dir() -> PathBuf {
    root_dir().join("phantoms")
}

/// Where the bundled sample CT and its segmentations are unpacked:
/// `<root>/sample/s0001`.
pub fn sample_dir() -> PathBuf {
    root_dir().join("sample").join("s0001")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_is_under_the_root_by_default() {
        let root = root_dir();
        // The variables may be set in the environment that runs the tests; only
        // the folders they do not override must sit under the root.
        if std::env::var_os("CTSEG_CACHE_DIR").is_none() {
            assert_eq!(slice_cache_dir(), root.join("slices"));
        }
        if std::env::var_os("CTSEG_RECOVERY_DIR").is_none() {
            assert_eq!(recovery_dir(), root.join("recovery"));
        }
        if std::env::var_os("CTSEG_KERNEL_CACHE").is_none() {
            assert_eq!(kernel_cache_dir(), root.join("kernels"));
        }
        assert_eq!(sample_phantoms_dir(), root.join("phantoms"));
        assert_eq!(corrections_dir(), root.join("corrections"));
        assert_eq!(root.file_name().and_then(|n| n.to_str()), Some("ctseg"));
    }
}
