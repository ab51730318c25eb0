//! How much memory the machine can give, so that a volume too large for it is
//! refused with a message before allocating, instead of the process being killed
//! (Linux overcommits: an allocation succeeds and the kernel kills the process
//! later). `CTSEG_MEMORY_CHECK=off` turns the check off, e.g. where swap makes
//! more room than `MemAvailable` counts.

use std::path::Path;

use crate::error::{Error, Result};

/// Memory the kernel reports available to a new allocation (`MemAvailable` in
/// `/proc/meminfo`), or `None` where that is not known (other systems).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Whether the check is on (`CTSEG_MEMORY_CHECK` unset or anything but `off`/`0`).
fn check_enabled() -> bool {
    !matches!(
        std::env::var("CTSEG_MEMORY_CHECK").as_deref(),
        Ok("off" | "0" | "false" | "no")
    )
}

/// Bytes as a short figure: `812 MiB`, `6.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

/// An error naming `path` when `bytes` (for `what`) exceed the available memory.
pub fn check_fits(path: &Path, bytes: u64, what: &str) -> Result<()> {
    if !check_enabled() {
        return Ok(());
    }
    match available_bytes() {
        Some(available) if bytes > available => Err(Error::format(
            path,
            format!(
                "{what} needs {} of memory, more than the {} this machine has available; free memory, use a machine with more, or set CTSEG_MEMORY_CHECK=off to try anyway",
                human_bytes(bytes),
                human_bytes(available)
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed_and_sizes_are_short() {
        let text = "MemTotal:       16318412 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(12_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(5 << 20), "5 MiB");
    }

    #[test]
    fn an_absurd_request_is_refused_with_the_figures() {
        if available_bytes().is_none() || !check_enabled() {
            eprintln!("skipped: no MemAvailable here, or the check is off");
            return;
        }
        let e = check_fits(Path::new("big.nii.gz"), u64::MAX / 2, "the CT")
            .expect_err("too big")
            .to_string();
        assert!(
            e.contains("big.nii.gz") && e.contains("the CT needs"),
            "{e}"
        );
        check_fits(Path::new("small.nii.gz"), 1 << 20, "the CT").expect("fits");
    }
}
