//! A log-linear latency histogram in the manner of HdrHistogram: values
//! below 128 are counted exactly, and every power-of-two range above is cut
//! into 64 equal slots, so a recorded value is known to within 1/64 (1.6 %)
//! at any magnitude. Fixed size, no allocation on `record`, and histograms of
//! different connections merge by adding counts.

/// Values below this are counted exactly.
const EXACT: u64 = 128;
/// Slots per power of two above `EXACT`.
const HALF: usize = 64;
/// Largest power of two covered: 2^40 ns is over 18 minutes.
const TOP_BIT: u32 = 40;
/// The exact slots, 64 per power of two up to 2^40, and one for beyond.
const SLOTS: usize = EXACT as usize + (TOP_BIT as usize - 7) * HALF + 1;

/// Counts of values (nanoseconds, in practice).
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

/// The slot a value falls in.
fn slot(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    if msb >= TOP_BIT {
        return SLOTS - 1;
    }
    // v >> shift keeps the top 7 bits: in [64, 128).
    let shift = msb - 6;
    EXACT as usize + (shift as usize - 1) * HALF + ((v >> shift) as usize - HALF)
}

/// The largest value that falls in a slot.
fn slot_high(i: usize) -> u64 {
    if i < EXACT as usize {
        return i as u64;
    }
    let above = i - EXACT as usize;
    let shift = (above / HALF + 1) as u32;
    let top = (above % HALF + HALF) as u64;
    ((top + 1) << shift) - 1
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: vec![0; SLOTS].into_boxed_slice(),
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Counts one value. Values beyond 2^40 count in the last slot (and
    /// still set `max` exactly).
    pub fn record(&mut self, v: u64) {
        self.counts[slot(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest value recorded, exactly.
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0–1.0): the smallest v such that at
    /// least q of all values are ≤ v, reported as the top of its slot (so
    /// never under-stated) but never above the largest value recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return slot_high(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_contiguous_and_ordered() {
        // Every slot's range starts right after the previous one ends.
        let mut expected_low = 0u64;
        for i in 0..SLOTS - 1 {
            assert_eq!(slot(expected_low), i, "low end of slot {i}");
            let high = slot_high(i);
            assert_eq!(slot(high), i, "high end of slot {i}");
            expected_low = high + 1;
        }
        assert_eq!(expected_low, 1 << TOP_BIT);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..128 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 63);
        assert_eq!(h.quantile(1.0), 127);
        assert_eq!(h.quantile(0.0), 0);
        assert_eq!(h.count(), 128);
        assert!((h.mean() - 63.5).abs() < 1e-9);
    }

    #[test]
    fn large_values_are_within_one_sixty_fourth() {
        for v in [1_000u64, 37_123, 999_999, 12_345_678_901, (1 << 40) - 1] {
            let mut h = Histogram::new();
            h.record(1);
            h.record(v);
            h.record(u64::MAX / 2); // beyond the range: last slot
            let got = h.quantile(0.5);
            assert!(got >= v, "{got} < {v}");
            assert!(
                (got - v) as f64 <= v as f64 / 64.0,
                "{got} too far from {v}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1 µs .. 100 ms in ns
        }
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!(
                got >= want && got <= want * (1.0 + 1.0 / 64.0),
                "q{q}: {got} vs {want}"
            );
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 100_000_000);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..10_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x % 10_000_000;
            if i.is_multiple_of(3) {
                a.record(v)
            } else {
                b.record(v)
            }
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!((a.min(), a.max()), (all.min(), all.max()));
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
    }

    #[test]
    fn empty_histogram_answers_zero() {
        let h = Histogram::new();
        assert_eq!(
            (h.count(), h.quantile(0.99), h.min(), h.max()),
            (0, 0, 0, 0)
        );
        assert_eq!(h.mean(), 0.0);
    }
}
