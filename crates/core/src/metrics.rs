//! The process's metrics, rendered in Prometheus' text format (served at
//! `GET /metrics` on the `[metrics] listen` address by the binary).
//!
//! Everything here is counted with atomics in fixed tables made at compile
//! time: a request, an operation or a driver call costs a hash of its
//! labels, a probe of the table and a few atomic additions, without a lock
//! or an allocation (the first time a label set is seen, its key is
//! stored). Label values come from bounded sets only (route templates,
//! method names, status codes, driver calls), never from ids; a table that
//! fills up counts the rest under the label value `other`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds of the histogram buckets, in microseconds (1 ms to 5 min).
const BOUNDS_US: [u64; 17] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// The labels of one series: a name (route template, method, call) and,
/// for requests, the HTTP method (an index into [`HTTP_METHODS`]) and code.
struct Key {
    name: Box<str>,
    method: u8,
    code: u16,
}

impl Key {
    fn is(&self, name: &str, method: u8, code: u16) -> bool {
        self.code == code && self.method == method && &*self.name == name
    }
}

/// One series: a counter (or the count of a histogram), a histogram's sum
/// and buckets (each bucket counts only its own range; the rendering adds
/// them up), and a gauge.
struct Slot {
    key: OnceLock<Key>,
    count: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; BOUNDS_US.len()],
    gauge: AtomicI64,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            key: OnceLock::new(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; BOUNDS_US.len()],
            gauge: AtomicI64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        if let Some(i) = BOUNDS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }
}

/// A fixed, lock-free table of series keyed by their labels (open
/// addressing; a key, once stored in a slot, stays there).
pub struct Table<const N: usize> {
    slots: [Slot; N],
    overflow: Slot,
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Table<N> {
    pub const fn new() -> Self {
        Table {
            slots: [const { Slot::new() }; N],
            overflow: Slot::new(),
        }
    }

    fn slot(&self, name: &str, method: u8, code: u16) -> &Slot {
        // FNV-1a over the labels.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes().chain([method]).chain(code.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let start = (h % N as u64) as usize;
        for i in 0..N {
            let slot = &self.slots[(start + i) % N];
            let key = match slot.key.get() {
                Some(k) => k,
                None => slot.key.get_or_init(|| Key {
                    name: name.into(),
                    method,
                    code,
                }),
            };
            if key.is(name, method, code) {
                return slot;
            }
        }
        let _ = self.overflow.key.get_or_init(|| Key {
            name: "other".into(),
            method: 0,
            code: 0,
        });
        &self.overflow
    }

    /// The series in use, in their table's order.
    fn series(&self) -> impl Iterator<Item = (&Key, &Slot)> {
        self.slots
            .iter()
            .chain([&self.overflow])
            .filter_map(|s| s.key.get().map(|k| (k, s)))
    }
}

/// The HTTP methods requests are counted under; anything else is `other`.
const HTTP_METHODS: [&str; 8] = [
    "other", "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS",
];

static HTTP: Table<512> = Table::new();
static OPS_QUEUED: Table<32> = Table::new();
static OPS_STARTED: Table<32> = Table::new();
static OPS_RUNNING: Table<32> = Table::new();
static OPS_RETRIED: Table<32> = Table::new();
static OPS_FAILED: Table<32> = Table::new();
static OPS_DONE: Table<32> = Table::new();
static SYNC: Slot = Slot::new();
static DRIVER: Table<64> = Table::new();

/// One API request answered: its route template (`/v1/clusters/{ident}`;
/// `unmatched` when no route took it), HTTP method, status and time taken.
pub fn http_request(route: &str, method: &str, code: u16, took: Duration) {
    let m = HTTP_METHODS.iter().position(|x| *x == method).unwrap_or(0) as u8;
    HTTP.slot(route, m, code).observe(took);
}

/// An operation queued by this process (an API request, or a cast from
/// upstream's API adopted by the conductor).
pub fn operation_queued(method: &str) {
    OPS_QUEUED.slot(method, 0, 0).count.fetch_add(1, Relaxed);
}

/// An attempt at an operation starts in this process: counted, and
/// counted as running until the returned guard is dropped.
pub fn operation_started(method: &str) -> Running {
    OPS_STARTED.slot(method, 0, 0).count.fetch_add(1, Relaxed);
    let slot = OPS_RUNNING.slot(method, 0, 0);
    slot.gauge.fetch_add(1, Relaxed);
    Running(&slot.gauge)
}

/// An attempt counted as running while it lives.
pub struct Running(&'static AtomicI64);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// An attempt ended keeping its operation for a later retry.
pub fn operation_retried(method: &str) {
    OPS_RETRIED.slot(method, 0, 0).count.fetch_add(1, Relaxed);
}

/// An operation ended in failure (the driver's, or refused).
pub fn operation_failed(method: &str) {
    OPS_FAILED.slot(method, 0, 0).count.fetch_add(1, Relaxed);
}

/// An operation's attempt ended and retired it successfully.
pub fn operation_done(method: &str) {
    OPS_DONE.slot(method, 0, 0).count.fetch_add(1, Relaxed);
}

/// One status sync cycle took `took`.
pub fn status_sync(took: Duration) {
    SYNC.observe(took);
}

/// One driver call (`create`, `status`, …) took `took`.
pub fn driver_call(call: &'static str, took: Duration) {
    DRIVER.slot(call, 0, 0).observe(took);
}

/// The last status sync cycles: (count, total seconds).
pub fn status_sync_summary() -> (u64, f64) {
    (
        SYNC.count.load(Relaxed),
        SYNC.sum_us.load(Relaxed) as f64 / 1e6,
    )
}

/// A label value with `\`, `"` and newlines escaped.
fn escaped(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The labels of a series as `a="x",b="y"` (no braces).
type Labeler = fn(&Key) -> String;

fn name_label(label: &'static str) -> impl Fn(&Key) -> String {
    move |k: &Key| format!("{label}=\"{}\"", escaped(&k.name))
}

fn http_labels(k: &Key) -> String {
    format!(
        "route=\"{}\",method=\"{}\",code=\"{}\"",
        escaped(&k.name),
        HTTP_METHODS.get(usize::from(k.method)).unwrap_or(&"other"),
        k.code
    )
}

fn counter<const N: usize>(
    out: &mut String,
    t: &Table<N>,
    name: &str,
    help: &str,
    labels: &dyn Fn(&Key) -> String,
) {
    header(out, name, "counter", help);
    for (k, s) in t.series() {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(k), s.count.load(Relaxed));
    }
}

fn gauge_family<const N: usize>(
    out: &mut String,
    t: &Table<N>,
    name: &str,
    help: &str,
    labels: &dyn Fn(&Key) -> String,
) {
    header(out, name, "gauge", help);
    for (k, s) in t.series() {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(k), s.gauge.load(Relaxed));
    }
}

fn histogram_series(out: &mut String, name: &str, labels: &str, s: &Slot) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (b, bound) in s.buckets.iter().zip(BOUNDS_US) {
        cumulative += b.load(Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}",
            bound as f64 / 1e6
        );
    }
    // Read after the buckets: never fewer than they hold.
    let count = s.count.load(Relaxed).max(cumulative);
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(
        out,
        "{name}_sum{} {}",
        braces(labels),
        s.sum_us.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

fn histogram<const N: usize>(
    out: &mut String,
    t: &Table<N>,
    name: &str,
    help: &str,
    labels: &dyn Fn(&Key) -> String,
) {
    header(out, name, "histogram", help);
    for (k, s) in t.series() {
        histogram_series(out, name, &labels(k), s);
    }
}

/// Every metric this module holds, in the text format.
pub fn render(out: &mut String) {
    let http: Labeler = http_labels;
    counter(
        out,
        &HTTP,
        "magnum_http_requests_total",
        "API requests answered, by route template, method and status code.",
        &http,
    );
    histogram(
        out,
        &HTTP,
        "magnum_http_request_duration_seconds",
        "Time from a request's arrival to its answer, by route template, method and status code.",
        &http,
    );
    let method = name_label("method");
    counter(
        out,
        &OPS_QUEUED,
        "magnum_operations_queued_total",
        "Cluster operations this process queued, by RPC method.",
        &method,
    );
    counter(
        out,
        &OPS_STARTED,
        "magnum_operation_attempts_total",
        "Attempts at queued operations this conductor started, by RPC method.",
        &method,
    );
    gauge_family(
        out,
        &OPS_RUNNING,
        "magnum_operations_running",
        "Attempts at operations running in this conductor now, by RPC method.",
        &method,
    );
    counter(
        out,
        &OPS_RETRIED,
        "magnum_operations_retried_total",
        "Attempts that ended keeping their operation for a retry (cloud, database or certificate store unreachable), by RPC method.",
        &method,
    );
    counter(
        out,
        &OPS_FAILED,
        "magnum_operations_failed_total",
        "Operations that ended in failure (the driver's, or refused), by RPC method.",
        &method,
    );
    counter(
        out,
        &OPS_DONE,
        "magnum_operations_done_total",
        "Operations whose attempt succeeded, by RPC method.",
        &method,
    );
    header(
        out,
        "magnum_status_sync_duration_seconds",
        "histogram",
        "Time one status sync cycle of this conductor took.",
    );
    histogram_series(out, "magnum_status_sync_duration_seconds", "", &SYNC);
    histogram(
        out,
        &DRIVER,
        "magnum_driver_call_duration_seconds",
        "Time cluster driver calls took, by call.",
        &name_label("call"),
    );
}

/// A gauge without labels, in the text format.
pub fn render_gauge(out: &mut String, name: &str, help: &str, value: f64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_keep_series_apart_and_overflow_to_other() {
        let t: Table<4> = Table::new();
        t.slot("/a", 1, 200).count.fetch_add(1, Relaxed);
        t.slot("/a", 1, 200).count.fetch_add(1, Relaxed);
        t.slot("/a", 1, 404).count.fetch_add(1, Relaxed);
        t.slot("/b", 2, 200).count.fetch_add(1, Relaxed);
        t.slot("/c", 2, 200).count.fetch_add(1, Relaxed);
        t.slot("/d", 2, 200).count.fetch_add(1, Relaxed);
        let seen: Vec<(String, u16, u64)> = t
            .series()
            .map(|(k, s)| (k.name.to_string(), k.code, s.count.load(Relaxed)))
            .collect();
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert!(seen.contains(&("/a".into(), 200, 2)));
        assert!(seen.contains(&("/a".into(), 404, 1)));
        assert!(seen.contains(&("other".into(), 0, 1)));
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let s = Slot::new();
        s.observe(Duration::from_micros(500));
        s.observe(Duration::from_millis(30));
        s.observe(Duration::from_secs(1000));
        let mut out = String::new();
        histogram_series(&mut out, "x", "a=\"1\"", &s);
        assert!(out.contains("x_bucket{a=\"1\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"1\",le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"1\",le=\"300\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"1\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"1\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"1\"} 1000.0305\n"), "{out}");
        assert_eq!(escaped("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
