//! host capability: the services of the host itself. The clock and operator ([`Services`]:
//! [`SystemServices`] for real runs, [`fake::FakeServices`] with a virtual clock), run-scoped
//! records ([`RunRecords`]), and the WIT glue (log, progress and notices go to the run's reporter).

pub mod fake;
mod glue;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bindings::Error;

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

/// Run-scoped key/value records a later rollback reads; kept in a JSON file when it has one
/// (rewritten atomically on every change), otherwise in memory.
#[derive(Clone, Default)]
pub struct RunRecords {
    inner: Arc<Mutex<BTreeMap<String, String>>>,
    file: Option<PathBuf>,
}

pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Keys, and bytes of all values together, one run's records may hold.
pub const MAX_RECORDS: usize = 4096;
pub const MAX_RECORDS_TOTAL_BYTES: usize = 64 << 20;
/// Keys the host keeps for itself; a plugin may read them, never write them.
pub const HOST_KEY_PREFIX: &str = "opshost.";

impl RunRecords {
    pub fn in_memory() -> Self {
        Self::default()
    }
    pub fn at(file: PathBuf) -> anyhow::Result<Self> {
        let map = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("run records {} are unreadable: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(anyhow::anyhow!("reading run records {}: {e}", file.display())),
        };
        Ok(RunRecords { inner: Arc::new(Mutex::new(map)), file: Some(file) })
    }
    /// A plugin's record: not under the host's own keys.
    pub fn set(&self, key: &str, value: &str) -> Result<(), Error> {
        if key.starts_with(HOST_KEY_PREFIX) {
            return Err(Error::InvalidInput(format!("record {key:?}: keys starting with {HOST_KEY_PREFIX} are the host's own; choose another key")));
        }
        self.set_host(key, value)
    }

    /// Any record, the host's own included.
    pub fn set_host(&self, key: &str, value: &str) -> Result<(), Error> {
        if key.is_empty() || key.len() > 256 || value.len() > MAX_RECORD_BYTES {
            return Err(Error::InvalidInput(format!("record {key:?}: keys are 1-256 bytes, values at most {MAX_RECORD_BYTES} bytes")));
        }
        let mut map = self.inner.lock().unwrap();
        let others: usize = map.iter().filter(|(k, _)| k.as_str() != key).map(|(k, v)| k.len() + v.len()).sum();
        if (!map.contains_key(key) && map.len() >= MAX_RECORDS) || others + key.len() + value.len() > MAX_RECORDS_TOTAL_BYTES {
            return Err(Error::Denied(format!("record {key:?}: a run keeps at most {MAX_RECORDS} records of {} MiB together", MAX_RECORDS_TOTAL_BYTES >> 20)));
        }
        map.insert(key.to_string(), value.to_string());
        if let Some(file) = &self.file {
            let tmp = file.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&serde_json::to_vec_pretty(&*map).expect("string map"))?;
                f.sync_all()?;
                std::fs::rename(&tmp, file)
            };
            write().map_err(|e| Error::Failed(format!("writing run records {}: {e}", file.display())))?;
        }
        Ok(())
    }
    pub fn get(&self, key: &str) -> Option<String> {
        self.inner.lock().unwrap().get(key).cloned()
    }
    pub fn all(&self) -> BTreeMap<String, String> {
        self.inner.lock().unwrap().clone()
    }
}
