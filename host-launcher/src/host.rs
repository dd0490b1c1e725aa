//! Facts about the host the launcher runs on.

use spacecore_abi::layout::{MAX_MEMORY, MAX_VCPUS};

/// The limits a spec is validated against: what this host and this launcher can ever give.
pub fn limits() -> hac::HostLimits {
    let host_memory = meminfo_kib("MemTotal:").map_or(MAX_MEMORY, |kib| kib * 1024);
    hac::HostLimits { max_vcpus: MAX_VCPUS, max_memory_bytes: host_memory.min(MAX_MEMORY) }
}

/// A `KEY: N kB` value from `/proc/meminfo`.
fn meminfo_kib(key: &str) -> Option<u64> {
    field_kib(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

/// This process's resident set size in KiB (`VmRSS`). `/proc/self/status` is opened once and
/// read again from its start each time, so that a confined launcher, which can open no file,
/// still knows it.
pub fn rss_kib() -> Option<u64> {
    use std::os::unix::fs::FileExt;
    static STATUS: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let status = STATUS.get_or_init(|| std::fs::File::open("/proc/self/status").ok()).as_ref()?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while len < buf.len() {
        match status.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    field_kib(std::str::from_utf8(&buf[..len]).ok()?, "VmRSS:")
}

fn field_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "Name:\thac\nVmRSS:\t    2048 kB\nVmHWM:\t 4096 kB\n";
        assert_eq!(field_kib(text, "VmRSS:"), Some(2048));
        assert_eq!(field_kib(text, "VmSwap:"), None);
    }

    #[test]
    fn the_spec_and_the_abi_agree_on_the_limits() {
        assert_eq!(hac::MIN_MEMORY, spacecore_abi::layout::MIN_MEMORY);
        assert!(limits().max_vcpus <= MAX_VCPUS && limits().max_memory_bytes <= MAX_MEMORY);
    }

    #[test]
    fn this_host_has_memory_and_rss() {
        assert!(limits().max_memory_bytes > 0);
        assert!(rss_kib().unwrap() > 0);
    }
}
