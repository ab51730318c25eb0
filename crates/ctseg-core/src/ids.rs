//! Stable identifiers: an FNV-1a hash that does not change between Rust releases
//! (unlike std's hasher), and folder-safe names for subjects, cache and recovery files.

/// 64-bit FNV-1a over byte strings (with a separator between parts): a stable hash
/// for cache keys, seeds and file names.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_OFFSET, |h, part| {
        fnv_step(part.iter().fold(h, |h, &b| fnv_step(h, b)), 0xff)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_step(h: u64, byte: u8) -> u64 {
    (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
}

/// 64-bit FNV-1a of one byte string (no separator): the hash recovery file names
/// have always used, kept so existing recovery files are still found.
pub fn fnv1a_plain(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| fnv_step(h, b))
}

/// `name` with every character other than ASCII letters, digits, `-` and `_`
/// replaced by `_`, so it can be used as (part of) a file or folder name.
pub fn folder_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_safe_replaces_separators_and_dots() {
        assert_eq!(folder_safe("a/b c.nii-x_1"), "a_b_c_nii-x_1");
        assert_eq!(folder_safe("ü"), "_");
    }

    #[test]
    fn fnv_is_stable() {
        // Published FNV-1a test vector for "a".
        assert_eq!(fnv1a_plain(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }
}
