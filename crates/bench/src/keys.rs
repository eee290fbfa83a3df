//! Seeded choice of which session a transaction touches: uniform, or
//! zipfian (a few sessions hot, most cold), reproducible from `--seed`.

use std::sync::Arc;

/// A small, fast, seedable generator (SplitMix64). Not for secrets: it
/// only spreads load.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift: bias below 2^-64 per draw, fine here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// How popular each session is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Popularity {
    Uniform,
    /// Rank r is chosen with weight 1 / r^s.
    Zipf(f64),
}

impl std::str::FromStr for Popularity {
    type Err = String;

    /// `uniform`, `zipf` (s = 0.99, as YCSB) or `zipf:S`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "zipf" => Ok(Self::Zipf(0.99)),
            _ => match s.strip_prefix("zipf:").map(str::parse::<f64>) {
                Some(Ok(v)) if v > 0.0 && v.is_finite() => Ok(Self::Zipf(v)),
                _ => Err(format!(
                    "popularity is uniform, zipf or zipf:S (S > 0), not {s:?}"
                )),
            },
        }
    }
}

/// Picks session numbers in [0, n). Cheap to clone (the zipf table is
/// shared).
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform(u64),
    /// Cumulative weights of ranks 0..n, normalised to end at 1.
    Zipf(Arc<[f64]>),
}

impl KeyChooser {
    pub fn new(n: u64, popularity: Popularity) -> Self {
        let n = n.max(1);
        match popularity {
            Popularity::Uniform => Self::Uniform(n),
            Popularity::Zipf(s) => {
                let mut acc = 0.0;
                let mut cdf: Vec<f64> = (1..=n)
                    .map(|r| {
                        acc += 1.0 / (r as f64).powf(s);
                        acc
                    })
                    .collect();
                for c in &mut cdf {
                    *c /= acc;
                }
                Self::Zipf(cdf.into())
            }
        }
    }

    pub fn pick(&self, rng: &mut Rng) -> u64 {
        match self {
            Self::Uniform(n) => rng.below(*n),
            Self::Zipf(cdf) => {
                let u = rng.next_f64();
                let i = cdf.partition_point(|&c| c <= u);
                i.min(cdf.len() - 1) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_keys() {
        let k = KeyChooser::new(1000, Popularity::Zipf(0.99));
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| k.pick(&mut a)).collect();
        let ys: Vec<u64> = (0..100).map(|_| k.pick(&mut b)).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::new(8);
        let zs: Vec<u64> = (0..100).map(|_| k.pick(&mut c)).collect();
        assert_ne!(xs, zs);
    }

    #[test]
    fn uniform_covers_the_range_evenly() {
        let k = KeyChooser::new(10, Popularity::Uniform);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[k.pick(&mut rng) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn zipf_rank_frequencies_follow_the_power_law() {
        let s = 1.0;
        let k = KeyChooser::new(100, Popularity::Zipf(s));
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 100];
        for _ in 0..200_000 {
            counts[k.pick(&mut rng) as usize] += 1;
        }
        // Rank 1 is picked twice as often as rank 2, four times rank 4.
        let r12 = f64::from(counts[0]) / f64::from(counts[1]);
        let r14 = f64::from(counts[0]) / f64::from(counts[3]);
        assert!((1.85..2.15).contains(&r12), "{r12}");
        assert!((3.6..4.4).contains(&r14), "{r14}");
        assert!(counts[99] > 0);
    }

    #[test]
    fn popularity_parses() {
        assert_eq!("uniform".parse(), Ok(Popularity::Uniform));
        assert_eq!("zipf".parse(), Ok(Popularity::Zipf(0.99)));
        assert_eq!("zipf:1.2".parse(), Ok(Popularity::Zipf(1.2)));
        assert!("zipf:-1".parse::<Popularity>().is_err());
        assert!("hot".parse::<Popularity>().is_err());
    }
}
