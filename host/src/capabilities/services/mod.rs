//! host capability: the services of the host itself. The clock and operator ([`Services`]:
//! [`SystemServices`] for real runs, [`fake::FakeServices`] with a virtual clock), run-scoped
//! records ([`RunRecords`], in [`records`]), and the WIT glue (log, progress and notices go to the run's reporter).

pub mod fake;
mod glue;
mod records;

pub use records::{RunRecords, HOST_KEY_PREFIX, MAX_RECORDS, MAX_RECORDS_TOTAL_BYTES, MAX_RECORD_BYTES, RECORDS_FILE};

use async_trait::async_trait;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock and the operator.
#[async_trait]
pub trait Services: Send + Sync {
    fn now_ms(&self) -> u64;
    async fn sleep(&self, ms: u64);
    /// Ask the operator; false means do not proceed.
    async fn confirm(&self, question: &str) -> bool;
}

/// The machine's clock; `--yes` or a terminal answers questions.
pub struct SystemServices {
    pub assume_yes: bool,
}

#[async_trait]
impl Services for SystemServices {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await
    }
    async fn confirm(&self, question: &str) -> bool {
        if self.assume_yes {
            return true;
        }
        if !std::io::stdin().is_terminal() {
            eprintln!("{question} -> no (not interactive: pass --yes to answer yes)");
            return false;
        }
        let question = question.to_string();
        tokio::task::spawn_blocking(move || {
            eprint!("{question} [y/N] ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
        })
        .await
        .unwrap_or(false)
    }
}
