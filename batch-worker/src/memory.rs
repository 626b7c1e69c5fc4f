//! The allocator setting that keeps the process's memory at its live buffers, called first by
//! both binaries. The pipeline's large buffers (1 MiB chunks, 16 MiB parts) are allocated and
//! freed on many threads; glibc raises its mmap threshold each time such a buffer is freed, after
//! which they come from per-thread arenas that keep freed memory: a 640 MiB raw archive peaked at
//! 233 MiB of RSS that way, and at 72 MiB with the threshold fixed (cli/tests/segments.rs).

/// Buffers of this size or more are mapped on their own and returned to the system when freed.
/// Setting it also turns off glibc's dynamic adjustment of the threshold.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Fixes glibc's mmap threshold. Call before the runtime starts its threads.
pub fn bound_allocator() {
    // SAFETY: mallopt only changes the allocator's parameters; called before other threads exist.
    let applied = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if applied != 1 {
        tracing::warn!("mallopt(M_MMAP_THRESHOLD) failed: memory may exceed its bound");
    }
}
