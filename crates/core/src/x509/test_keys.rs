//! RSA keys for the test suite only (feature `test-key-pool`, which the
//! test build's `fake-driver` turns on; a build without it never contains
//! this module): a pool of primes generated once per machine and kept in a
//! file, and keys made from pairs of them, so a cluster's four keys cost
//! microseconds instead of seconds each. 32 keys' primes give 64 primes
//! and 2,016 distinct keys; a process takes pairs in turn from a random
//! start, so no two keys one process makes repeat before 2,016 of them.
//!
//! The file is `$MAGNUM_TEST_KEY_POOL/rsa-<bits>.primes` (default
//! `~/.cache/magnum-rs/test-keys`), one prime in hex a line; a process
//! that finds it missing makes it, others wait for it. `MAGNUM_TEST_KEY_POOL=off`
//! makes fresh keys as a release build does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey};

/// Keys whose primes make a pool.
const KEYS: usize = 32;

struct Pool {
    primes: Vec<BigUint>,
    next: AtomicUsize,
}

fn dir() -> Option<PathBuf> {
    match std::env::var_os("MAGNUM_TEST_KEY_POOL") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => {
            let home = std::env::var_os("HOME")?;
            Some(PathBuf::from(home).join(".cache/magnum-rs/test-keys"))
        }
    }
}

fn parse(text: &str, bits: usize) -> Option<Vec<BigUint>> {
    let primes: Vec<BigUint> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| BigUint::parse_bytes(l.trim().as_bytes(), 16))
        .collect::<Option<_>>()?;
    (primes.len() == 2 * KEYS && primes.iter().all(|p| p.bits() == bits / 2)).then_some(primes)
}

/// Make the pool's primes: `KEYS` keys generated as a release build does,
/// on every core.
fn generate(bits: usize) -> Option<Vec<BigUint>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = KEYS.div_ceil(threads);
    let keys: Vec<RsaPrivateKey> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = per.min(KEYS.saturating_sub(t * per));
                s.spawn(move || {
                    let mut rng = rsa::rand_core::OsRng;
                    (0..n)
                        .map(|_| RsaPrivateKey::new(&mut rng, bits))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().ok()?.ok()?);
        }
        Some(all)
    })?;
    Some(
        keys.iter()
            .flat_map(|k| k.primes().iter().cloned())
            .collect(),
    )
}

/// The pool's primes: read from the file, or made and written there (one
/// process makes them; the others wait for the file).
fn load(bits: usize) -> Option<Vec<BigUint>> {
    let dir = dir()?;
    let file = dir.join(format!("rsa-{bits}.primes"));
    let lock = dir.join(format!("rsa-{bits}.lock"));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(p) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| parse(&t, bits))
        {
            return Some(p);
        }
        std::fs::create_dir_all(&dir).ok()?;
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(300));
        if stale {
            let _ = std::fs::remove_file(&lock);
        }
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .is_ok()
        {
            let primes = generate(bits);
            if let Some(p) = &primes {
                let text: String = p
                    .iter()
                    .map(|p| format!("{}\n", p.to_str_radix(16)))
                    .collect();
                let tmp = dir.join(format!("rsa-{bits}.primes.{}", std::process::id()));
                if std::fs::write(&tmp, text).is_ok() {
                    let _ = std::fs::rename(&tmp, &file);
                }
            }
            let _ = std::fs::remove_file(&lock);
            return primes;
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pool(bits: usize) -> Option<&'static Pool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Option<&'static Pool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *pools.entry(bits).or_insert_with(|| {
        let primes = load(bits)?;
        tracing::warn!("RSA keys come from the test key pool (a test build)");
        let pool = Pool {
            next: AtomicUsize::new(rand::random::<u32>() as usize),
            primes,
        };
        Some(&*Box::leak(Box::new(pool)))
    })
}

/// A key of `bits` bits from the pool; None when there is no pool (then
/// the caller makes a fresh one).
pub(super) fn take(bits: usize) -> Option<RsaPrivateKey> {
    if bits < 512 || bits & 1 == 1 {
        return None;
    }
    let pool = pool(bits)?;
    let n = pool.primes.len();
    let pairs = n * (n - 1) / 2;
    for _ in 0..pairs {
        let mut k = pool.next.fetch_add(1, Ordering::Relaxed) % pairs;
        // The k-th pair (i, j), i < j.
        let mut i = 0;
        while k >= n - 1 - i {
            k -= n - 1 - i;
            i += 1;
        }
        let j = i + 1 + k;
        let key = RsaPrivateKey::from_p_q(
            pool.primes[i].clone(),
            pool.primes[j].clone(),
            BigUint::from(65_537u32),
        );
        if let Ok(key) = key {
            if key.n().bits() == bits {
                return Some(key);
            }
        }
    }
    None
}
