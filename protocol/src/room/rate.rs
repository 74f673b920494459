//! A token bucket on the clock the host passes in.

use crate::wire::Millis;

/// Allows `burst` actions at once and `per_second` sustained. Time only ever comes from the
/// caller; a clock that goes backwards adds nothing.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Thousandths of a token, so that refill is exact integer arithmetic.
    milli_tokens: u64,
    capacity: u64,
    per_second: u64,
    last: Millis,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(burst: u32, per_second: u32, now: Millis) -> Self {
        let capacity = u64::from(burst.max(1)) * 1000;
        Self {
            milli_tokens: capacity,
            capacity,
            per_second: u64::from(per_second),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Millis) -> bool {
        if now > self.last {
            let elapsed = u64::try_from(now - self.last).unwrap_or(u64::MAX);
            let added = elapsed.saturating_mul(self.per_second);
            self.milli_tokens = self.milli_tokens.saturating_add(added).min(self.capacity);
            self.last = now;
        }
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_sustained_rate() {
        let mut bucket = TokenBucket::new(3, 2, 1_000);
        assert!((0..3).all(|_| bucket.try_take(1_000)));
        assert!(!bucket.try_take(1_000));
        assert!(
            !bucket.try_take(1_499),
            "half a second at 2/s is less than one token... almost"
        );
        assert!(bucket.try_take(1_500));
        assert!(!bucket.try_take(1_500));
        // A long pause refills only up to the burst.
        assert!((0..3).all(|_| bucket.try_take(100_000)));
        assert!(!bucket.try_take(100_000));
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let mut bucket = TokenBucket::new(1, 1, 10_000);
        assert!(bucket.try_take(10_000));
        assert!(!bucket.try_take(0));
        assert!(!bucket.try_take(10_999));
        assert!(bucket.try_take(11_000));
    }
}
