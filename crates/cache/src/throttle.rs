//! Token buckets for MAX_UPDATES_PER_SECOND and MAX_CREATES_PER_MINUTE.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A token bucket refilled continuously at `rate` tokens per `per`, holding at most one period's worth.
#[derive(Debug)]
pub struct TokenBucket {
    /// Tokens per second; `None` means unlimited.
    rate: Option<f64>,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket allowing `limit` events per `per`; `None` (carbon's `inf`) never throttles.
    pub fn new(limit: Option<f64>, per: Duration) -> Self {
        let rate = limit
            .filter(|l| l.is_finite() && *l >= 0.0)
            .map(|l| l / per.as_secs_f64());
        let capacity = limit.filter(|l| l.is_finite()).unwrap_or(0.0).max(1.0);
        TokenBucket {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Whether this bucket limits anything.
    pub fn is_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// Takes a token if one is there; otherwise says how long until one will be.
    pub fn try_take(&self) -> Result<(), Duration> {
        let Some(rate) = self.rate else { return Ok(()) };
        let mut state = self.state.lock();
        let now = Instant::now();
        let (tokens, last) = *state;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(self.capacity);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            let wait = if rate > 0.0 { (1.0 - tokens) / rate } else { 1.0 };
            Err(Duration::from_secs_f64(wait.min(60.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let b = TokenBucket::new(None, Duration::from_secs(1));
        assert!(!b.is_limited());
        for _ in 0..10_000 {
            assert_eq!(b.try_take(), Ok(()));
        }
    }

    #[test]
    fn limited_allows_a_burst_then_waits() {
        let b = TokenBucket::new(Some(5.0), Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(b.try_take(), Ok(()));
        }
        let wait = b.try_take().unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(12),
            "{wait:?}"
        );
    }
}
