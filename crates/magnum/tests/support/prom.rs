//! A strict reader of Prometheus' text exposition format (version 0.0.4),
//! for the tests of `GET /metrics`: it panics on anything the format does
//! not allow, and checks what it says of families and histograms.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a scrape, checked.
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// The value of the one sample `name` whose labels include `labels`;
    /// `None` when there is none, a panic when several match.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        t => t
            .parse()
            .unwrap_or_else(|_| panic!("bad value {t:?} in {line:?}")),
    }
}

/// Labels from just after `{`; the rest of the line after `}`.
fn labels<'a>(mut rest: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut out = BTreeMap::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (out, r);
        }
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("label without = in {line:?}"));
        let name = &rest[..eq];
        assert!(
            valid_label_name(name),
            "bad label name {name:?} in {line:?}"
        );
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, '"')) => v.push('"'),
                    Some((_, 'n')) => v.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => panic!("unterminated label value in {line:?}"),
                Some((_, c)) => v.push(c),
            }
        };
        assert!(
            out.insert(name.to_string(), v).is_none(),
            "label {name} twice in {line:?}"
        );
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            assert!(rest.starts_with('}'), "expected , or }} in {line:?}");
        }
    }
}

/// The family a sample belongs to: its name less a histogram's suffix.
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base;
            }
        }
    }
    name
}

/// Parse and check a scrape: every line is a comment, `# HELP`, `# TYPE`
/// or a sample; each family is typed once, before its samples, which come
/// together; histogram buckets are cumulative, end with `+Inf` and match
/// their `_count`.
pub fn parse(text: &str) -> Scrape {
    assert!(text.ends_with('\n'), "a scrape ends with a newline");
    let mut samples = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut done_families: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().unwrap_or_default();
                    let kind = words.next().unwrap_or_default();
                    assert!(valid_metric_name(name), "bad name in {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad type in {line:?}"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "{name} typed twice"
                    );
                    assert!(
                        !samples
                            .iter()
                            .any(|s: &Sample| family(&s.name, &types) == name),
                        "{name} typed after its samples"
                    );
                }
                Some("HELP") => {
                    let name = words.next().unwrap_or_default();
                    assert!(valid_metric_name(name), "bad name in {line:?}");
                }
                _ => {}
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => panic!("sample without a value: {line:?}"),
        };
        assert!(valid_metric_name(name), "bad metric name in {line:?}");
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(r) => labels(r, line),
            None => (BTreeMap::new(), rest),
        };
        let mut fields = rest.split_ascii_whitespace();
        let v = value(
            fields
                .next()
                .unwrap_or_else(|| panic!("no value in {line:?}")),
            line,
        );
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
        }
        assert!(fields.next().is_none(), "trailing text in {line:?}");
        let fam = family(name, &types).to_string();
        assert!(types.contains_key(&fam), "{name} has no # TYPE before it");
        if current.as_deref() != Some(fam.as_str()) {
            assert!(
                !done_families.contains(&fam),
                "samples of {fam} are not together"
            );
            if let Some(c) = current.take() {
                done_families.push(c);
            }
            current = Some(fam.clone());
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: v,
        });
    }
    check_histograms(&samples, &types);
    Scrape { samples, types }
}

/// A histogram series' labels, `le` left out.
type SeriesKey = Vec<(String, String)>;

fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) {
    for (fam, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        // Series by their labels less `le`.
        let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<SeriesKey, f64> = BTreeMap::new();
        for s in samples {
            let mut key: SeriesKey = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            if s.name == format!("{fam}_bucket") {
                let le = s
                    .labels
                    .get("le")
                    .unwrap_or_else(|| panic!("{fam} bucket without le: {s:?}"));
                series
                    .entry(key)
                    .or_default()
                    .push((value(le, le), s.value));
            } else if s.name == format!("{fam}_count") {
                counts.insert(key, s.value);
            }
        }
        for (key, buckets) in &series {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for b in buckets {
                assert!(b.0 > last.0, "{fam} {key:?}: buckets out of order");
                assert!(b.1 >= last.1, "{fam} {key:?}: buckets not cumulative");
                last = *b;
            }
            assert_eq!(last.0, f64::INFINITY, "{fam} {key:?}: no +Inf bucket");
            assert_eq!(
                Some(&last.1),
                counts.get(key),
                "{fam} {key:?}: +Inf bucket and _count differ"
            );
        }
    }
}

/// Whether `s` holds something shaped like a UUID (8-4-4-4-12 hex digits,
/// or 32 hex digits in a row).
pub fn has_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |c: &u8| c.is_ascii_hexdigit();
    (0..b.len()).any(|i| {
        let dashed = b.len() >= i + 36
            && b[i..i + 36].iter().enumerate().all(|(j, c)| {
                if [8, 13, 18, 23].contains(&j) {
                    *c == b'-'
                } else {
                    hex(c)
                }
            });
        let plain = b.len() >= i + 32 && b[i..i + 32].iter().all(hex);
        dashed || plain
    })
}
