//! CPUs usable by this process.

/// Number of CPUs this process may use. The standard library honours the
/// scheduler affinity mask and the cgroup CPU quota (v2 `cpu.max`, v1
/// `cpu.cfs_quota_us`/`cpu.cfs_period_us`), rounding the quota up.
pub fn threads_available() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
