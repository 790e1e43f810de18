//! FakeServices: a virtual clock that `sleep` advances at once, and scripted operator answers.

use super::Services;
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Milliseconds since the epoch, moved only by sleeps and by fake work that takes time.
#[derive(Clone)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    pub fn starting_at(ms: u64) -> Self {
        VirtualClock(Arc::new(AtomicU64::new(ms)))
    }
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

pub struct FakeServices {
    pub clock: VirtualClock,
    /// What the operator answers to every question.
    pub confirm_answer: bool,
}

#[async_trait]
impl Services for FakeServices {
    fn now_ms(&self) -> u64 {
        self.clock.now()
    }
    async fn sleep(&self, ms: u64) {
        self.clock.advance(ms);
    }
    async fn confirm(&self, _question: &str) -> bool {
        self.confirm_answer
    }
}
