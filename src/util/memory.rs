//! How much memory the machine has free, to refuse work that would not fit.

/// Bytes of memory available to a new allocation (Linux: `MemAvailable` in
/// /proc/meminfo); None where that cannot be read.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The memory available, in bytes, when `bytes` would not fit in it; None when it
/// would, or when the machine does not say.
pub fn short_of_memory(bytes: f64) -> Option<f64> {
    let available = available_memory()? as f64;
    (bytes >= available).then_some(available)
}
