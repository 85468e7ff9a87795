//! The C allocator's settings that decide what the stream holds in memory (glibc only; elsewhere
//! these do nothing).

/// Large arrays straight from the kernel, and back to it when freed (glibc only).
///
/// glibc serves an allocation from its heap instead of a mapping of its own once a mapping of that
/// size has been freed (its dynamic mmap threshold, up to 32 MiB). The stream's base table is 64
/// shards of 4-10 MiB arrays, rebuilt one at a time: served from the heap, a freed old shard leaves a
/// hole the heap does not return, so a fold of the delta kept its old shards resident after all —
/// 155 B a code at the fold's peak against 115 B with a fixed 256 KiB threshold (BENCHMARKS.md). A
/// threshold set by the operator (`MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`) is left alone.
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() && std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        }
    }
}

/// Gives the free pages inside the allocator's arenas back to the kernel, and logs what it gave.
///
/// librdkafka allocates every fetched message, and the status decoder every record, on their own
/// threads; glibc gives each such thread an arena of its own (64 MiB at a time) and keeps an arena's
/// free pages resident after a burst. After reading 12 million status records that was about 290 MiB
/// of free memory held resident (1 256 MiB at rest against 969 MiB after `malloc_trim`, BENCHMARKS.md)
/// — a quarter of what the process held. Called after the bursts: the status topics read at start-up
/// and each fold of the delta. It walks the arenas' free chunks (milliseconds; a thread allocating in
/// an arena meanwhile waits for it), so it is not called on the latency path.
pub fn give_back_free_memory(after: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = rss_bytes();
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only returns free memory of the allocator's own to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::info!(
            event = "memory_returned",
            after,
            rss_mib_before = before >> 20,
            rss_mib = rss_bytes() >> 20,
            seconds = started.elapsed().as_secs_f64(),
            "free allocator pages given back to the kernel"
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = after;
}

/// Resident memory of this process, in bytes (0 if it cannot be read).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    // SAFETY: sysconf only reads a system constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    statm.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0) * page
}
