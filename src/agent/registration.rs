//! Registration back-off (docs/recovery-rules.md R13), as a plain state machine: the first attempt
//! comes after `uniform[0, factor]`; each retry after `uniform[0, m]`, with `m` starting
//! at twice the factor, doubling, and capped at [`REGISTER_RETRY_INTERVAL_MAX`].

use std::time::Duration;

use crate::os::Random;

pub use crate::domain::intervals::REGISTER_RETRY_INTERVAL_MAX;

/// The back-off of one registration attempt series.
#[derive(Clone, Debug)]
pub struct Backoff {
    factor: Duration,
    max: Duration,
}

impl Backoff {
    /// A fresh series for `--registration_backoff_factor`.
    pub fn new(factor: Duration) -> Backoff {
        Backoff {
            factor,
            max: factor * 2,
        }
    }

    /// The delay before the first attempt.
    pub fn first(&mut self, random: &dyn Random) -> Duration {
        self.max = self.factor * 2;
        random.duration_up_to(self.factor)
    }

    /// The delay before the next retry; the bound doubles each time.
    pub fn next(&mut self, random: &dyn Random) -> Duration {
        let delay = random.duration_up_to(self.max);
        self.max = (self.max * 2)
            .min(REGISTER_RETRY_INTERVAL_MAX)
            .max(self.factor);
        delay
    }

    /// The current bound of the next retry.
    pub fn bound(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Fixed(Cell<u64>);
    impl Random for Fixed {
        fn fill(&self, buffer: &mut [u8]) {
            let value = self.0.get();
            self.0
                .set(value.wrapping_mul(6364136223846793005).wrapping_add(1));
            for (i, b) in buffer.iter_mut().enumerate() {
                *b = (value >> ((i % 8) * 8)) as u8;
            }
        }
    }

    #[test]
    fn doubles_to_the_cap_and_stays_within_bounds() {
        let random = Fixed(Cell::new(42));
        let mut backoff = Backoff::new(Duration::from_secs(1));
        assert!(backoff.first(&random) <= Duration::from_secs(1));
        let mut bounds = Vec::new();
        for _ in 0..8 {
            let bound = backoff.bound();
            bounds.push(bound.as_secs());
            assert!(backoff.next(&random) <= bound);
        }
        assert_eq!(bounds, vec![2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
