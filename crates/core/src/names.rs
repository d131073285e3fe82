//! Human-readable names for resources created without one, in upstream's
//! shape: a Greek letter and a number, such as `zeta-22`.

use rand::Rng;

const LETTERS: [&str; 24] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

/// A random `letter-number` name, such as `beta-7`.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let letter = LETTERS[rng.random_range(0..LETTERS.len())];
    format!("{letter}-{}", rng.random_range(1..=24))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_have_letter_and_number() {
        for _ in 0..50 {
            let name = super::generate();
            let (letter, number) = name.split_once('-').unwrap();
            assert!(super::LETTERS.contains(&letter));
            let n: u32 = number.parse().unwrap();
            assert!((1..=24).contains(&n));
        }
    }
}
