//! Latency summaries and `/proc` sampling.

use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram records exactly (longer values saturate at it).
pub const MAX_TRACKED: Duration = Duration::from_secs(3600);

/// A nanosecond histogram with 3 significant digits, tracking up to [`MAX_TRACKED`].
pub fn new_histogram() -> Result<Histogram<u64>> {
    let high = u64::try_from(MAX_TRACKED.as_nanos()).context("histogram bound")?;
    Histogram::new_with_bounds(1, high, 3).context("creating a latency histogram")
}

/// Records a duration, saturating at the histogram's bound.
pub fn record(hist: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
    hist.saturating_record(ns);
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// One reading of a process's CPU time and memory from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub vm_hwm_kib: u64,
    /// Current resident set size (VmRSS), KiB.
    pub vm_rss_kib: u64,
}

/// Resets the peak resident set size (VmHWM) of `pid` to its current RSS by writing `5` to
/// `/proc/<pid>/clear_refs` (Linux 4.0 and later, proc(5)), so a later VmHWM is the peak since
/// now. False when the kernel or the permissions do not allow it (VmHWM is then the peak since
/// the process started).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

impl ProcSample {
    pub fn read(pid: u32) -> Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let cpu_ticks =
            parse_stat_cpu_ticks(&stat).with_context(|| format!("/proc/{pid}/stat: unexpected format"))?;
        let vm_hwm_kib =
            parse_status_kib(&status, "VmHWM:").with_context(|| format!("/proc/{pid}/status: no VmHWM"))?;
        let vm_rss_kib =
            parse_status_kib(&status, "VmRSS:").with_context(|| format!("/proc/{pid}/status: no VmRSS"))?;
        Ok(Self { cpu_ticks, vm_hwm_kib, vm_rss_kib })
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state): utime is field 14, the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// The KiB value of a `Name:   123 kB` line of `/proc/<pid>/status`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_ascii_whitespace().next()?.parse().ok()
}

/// Clock ticks per second (`AT_CLKTCK` from `/proc/self/auxv`; 100 when unreadable, the
/// value on every mainstream Linux build).
pub fn clock_ticks_per_second() -> u64 {
    std::fs::read("/proc/self/auxv").ok().and_then(|b| parse_auxv_clktck(&b)).unwrap_or(100)
}

/// `AT_CLKTCK` (type 17) from a native-endian 64-bit auxiliary vector.
pub fn parse_auxv_clktck(auxv: &[u8]) -> Option<u64> {
    const AT_NULL: u64 = 0;
    const AT_CLKTCK: u64 = 17;
    for pair in auxv.chunks_exact(16) {
        let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
        let value = u64::from_ne_bytes(pair[8..].try_into().ok()?);
        match key {
            AT_NULL => return None,
            AT_CLKTCK => return Some(value).filter(|v| *v > 0),
            _ => {}
        }
    }
    None
}

/// Busy and total jiffies of all CPUs, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
}

impl MachineCpu {
    pub fn read() -> Option<Self> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Share of all CPUs that was busy between `self` and a later sample, in percent.
    pub fn busy_percent_until(&self, later: &Self) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        (total > 0).then(|| 100.0 * busy as f64 / total as f64)
    }
}

/// Parses the aggregate `cpu` line: idle and iowait are idle, the rest busy (guest time is
/// already counted in user).
pub fn parse_proc_stat(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_ascii_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Some(MachineCpu { busy: total - idle, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles() {
        let mut h = new_histogram().unwrap();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.0, "{s:?}");
        assert!((s.mean_us - 500.5).abs() < 1.0, "{s:?}");
        assert_eq!(LatencySummary::from_histogram(&new_histogram().unwrap()).count, 0);
    }

    #[test]
    fn record_saturates() {
        let mut h = new_histogram().unwrap();
        record(&mut h, Duration::from_secs(100_000));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn parses_proc_stat_with_odd_command_names() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 \
                    12345 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_status() {
        let status = "Name:\tformaops\nVmPeak:\t  300000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(51234));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(40000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_own_process() {
        let s = ProcSample::read(std::process::id()).unwrap();
        assert!(s.vm_hwm_kib >= s.vm_rss_kib.min(s.vm_hwm_kib));
        assert!(s.vm_hwm_kib > 0);
        assert!(clock_ticks_per_second() > 0);
        assert!(ProcSample::read(u32::MAX).is_err());
        assert!(!reset_peak_rss(u32::MAX));
        // The owner may reset its own peak: VmHWM falls back to (about) the current RSS.
        let big = vec![1u8; 64 << 20];
        assert!(ProcSample::read(std::process::id()).unwrap().vm_hwm_kib >= 64 << 10);
        drop(std::hint::black_box(big));
        assert!(reset_peak_rss(std::process::id()));
        let after = ProcSample::read(std::process::id()).unwrap();
        assert!(after.vm_hwm_kib < after.vm_rss_kib + (32 << 10), "{after:?}");
    }

    #[test]
    fn parses_auxv() {
        let mut v = Vec::new();
        for (k, val) in [(6u64, 4096u64), (17, 250), (0, 0)] {
            v.extend_from_slice(&k.to_ne_bytes());
            v.extend_from_slice(&val.to_ne_bytes());
        }
        assert_eq!(parse_auxv_clktck(&v), Some(250));
        assert_eq!(parse_auxv_clktck(&v[..16]), None);
    }

    #[test]
    fn machine_cpu() {
        let a = parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n").unwrap();
        let b = parse_proc_stat("cpu  200 0 100 850 50 0 0 0 0 0\n").unwrap();
        assert_eq!(a, MachineCpu { busy: 150, total: 1000 });
        let pct = a.busy_percent_until(&b).unwrap();
        assert!((pct - 75.0).abs() < 1e-9, "{pct}");
        assert!(MachineCpu::read().is_some());
    }
}
