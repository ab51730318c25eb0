//! How the process's heap treats the big buffers of CPU training and inference.
//!
//! A training step on the CPU allocates and frees the same set of large tensors
//! (activations of 8–60 MB, their gradients, the loss terms) over and over. glibc's
//! malloc serves every block above its mmap threshold (at most 32 MB) with a fresh
//! `mmap` and hands freed memory at the top of the heap back to the kernel, so each
//! step pays again for page faults and for the kernel zeroing those pages: 940 000
//! page faults in a `ctseg bench` run and ~8 % of the step's samples (measured
//! 2026-12-01, 2 threads, batch 2). With mmap off and the trim threshold out of reach
//! the freed blocks stay in the heap and the next step reuses them: 220 000 faults,
//! the same peak RSS (0.9 GB), the step 5–15 % faster.

/// Keeps freed heap memory in the process for reuse instead of returning it to the
/// kernel (glibc: no `mmap` for large blocks, no trimming). For the commands that
/// repeat the same large allocations (`train`, `bench`, `predict`); the peak
/// resident size stays what it was, but it is not given back until the process
/// ends. Does nothing on other C libraries; a refusal by malloc is logged.
pub fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's tuning parameters; it is called
        // before this process starts its worker threads.
        let settings = [
            (libc::M_MMAP_MAX, 0, "M_MMAP_MAX"),
            (libc::M_TRIM_THRESHOLD, libc::c_int::MAX, "M_TRIM_THRESHOLD"),
        ];
        for (param, value, name) in settings {
            if unsafe { libc::mallopt(param, value) } == 0 {
                log::warn!("malloc refused {name} = {value}; freed memory goes back to the kernel");
            }
        }
    }
}
