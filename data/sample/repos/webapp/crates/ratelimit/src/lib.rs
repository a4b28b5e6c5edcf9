//! A token-bucket rate limiter.

use std::time::{Duration, Instant};

/// Allows `capacity` requests at once, refilled at `rate` tokens per second.
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(capacity: u32, rate: f64) -> Self {
        Self { capacity: capacity as f64, tokens: capacity as f64, rate, last: Instant::now() }
    }

    /// Takes one token if available; returns how long to wait otherwise.
    pub fn try_acquire(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}
