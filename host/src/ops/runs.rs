//! Runs on a real deployment: each upgrade gets an id and a folder under the state dir with its
//! metadata (plugin hash, versions, status), its records (what rollback reads) and its call
//! transcript; one lock per product stops a second run on the same deployment.

use crate::text::stamp;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Upgrading,
    Upgraded,
    UpgradeFailed,
    /// The upgrade stopped in a wait that timed out, after its last change (the new version did
    /// not come up in time): `resume` waits again, `rollback` undoes it.
    UpgradeTimedOut,
    RollingBack,
    RolledBack,
    RollbackFailed,
}

impl RunStatus {
    pub fn words(self) -> &'static str {
        match self {
            RunStatus::Upgrading => "upgrading (or the host stopped during the upgrade)",
            RunStatus::Upgraded => "upgraded",
            RunStatus::UpgradeFailed => "upgrade failed",
            RunStatus::UpgradeTimedOut => "upgrade timed out waiting for the new version (resumable)",
            RunStatus::RollingBack => "rolling back (or the host stopped during the rollback)",
            RunStatus::RolledBack => "rolled back",
            RunStatus::RollbackFailed => "rollback failed",
        }
    }
    /// The deployment is mid-way: nothing new may start until it is rolled back.
    pub fn unsettled(self) -> bool {
        !matches!(self, RunStatus::Upgraded | RunStatus::RolledBack)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    pub id: String,
    /// Product section in the site config.
    pub product: String,
    pub source: String,
    pub target: String,
    pub plugin: String,
    pub plugin_hash: String,
    pub site_config: String,
    pub started_ms: u64,
    pub status: RunStatus,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    /// Set when the run is one hop of a multi-hop route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteRef>,
}

/// The route a run belongs to: its id (the first hop's run id) and where it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRef {
    pub id: String,
    pub source: String,
    pub target: String,
}

pub struct Runs {
    pub dir: PathBuf,
}

impl Runs {
    pub fn new(state_dir: &Path) -> Self {
        Runs { dir: state_dir.join("runs") }
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A fresh run folder with its metadata written.
    pub fn create(&self, mut meta: RunMeta) -> Result<RunMeta> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let base = format!("{}-{}", meta.product, stamp(meta.started_ms));
        let mut id = base.clone();
        let mut n = 1;
        while self.run_dir(&id).exists() {
            n += 1;
            id = format!("{base}-{n}");
        }
        meta.id = id;
        // Records, journals and transcripts hold the containers' options, passwords in their
        // environment included (rollback re-creates containers from them): owner only.
        std::fs::create_dir_all(self.run_dir(&meta.id))?;
        owner_only(&self.dir)?;
        owner_only(&self.run_dir(&meta.id))?;
        self.save(&meta)?;
        Ok(meta)
    }

    pub fn save(&self, meta: &RunMeta) -> Result<()> {
        let path = self.run_dir(&meta.id).join("run.json");
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(meta)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    pub fn load(&self, id: &str) -> Result<RunMeta> {
        let path = self.run_dir(id).join("run.json");
        let bytes = std::fs::read(&path).with_context(|| format!("no run {id} in {} (opshost runs list shows them)", self.dir.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is unreadable", path.display()))
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<RunMeta>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(out) };
        for e in entries.flatten() {
            if let Some(id) = e.file_name().to_str() {
                if let Ok(m) = self.load(id) {
                    out.push(m);
                }
            }
        }
        // Runs begun in the same millisecond are numbered in order (`…-2`, …, `…-10`): a longer
        // id of the same stamp is a later one.
        out.sort_by_key(|m| (m.started_ms, m.id.len(), m.id.clone()));
        Ok(out)
    }

    /// The product's runs, oldest first.
    pub fn history(&self, product: &str) -> Result<Vec<RunMeta>> {
        Ok(self.list()?.into_iter().filter(|m| m.product == product).collect())
    }
}

/// Restrict a directory to its owner (0700).
pub fn owner_only(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("restricting {} to its owner", dir.display()))
}

/// The run the deployment stands on: the newest one not rolled back (runs stack up; rolling one
/// back uncovers the one below).
pub fn top(history: &[RunMeta]) -> Option<&RunMeta> {
    history.iter().rev().find(|m| m.status != RunStatus::RolledBack)
}

/// The version a product is at: the target of the run it stands on; when every run was rolled
/// back, the first run's source; with no runs, the site config's.
pub fn current_version(configured: &str, history: &[RunMeta]) -> String {
    match (top(history), history.first()) {
        (Some(m), _) if m.status == RunStatus::Upgraded => m.target.clone(),
        (Some(m), _) => m.source.clone(),
        (None, Some(first)) => first.source.clone(),
        (None, None) => configured.to_string(),
    }
}

/// What `rollback` without `--run` undoes, newest first: the run on top and, when it is a hop of
/// a route, the route's other hops below it that are not rolled back yet.
pub fn to_unwind(history: &[RunMeta]) -> Vec<RunMeta> {
    let Some(top) = top(history) else { return Vec::new() };
    match &top.route {
        None => vec![top.clone()],
        Some(r) => history.iter().rev().filter(|m| m.status != RunStatus::RolledBack && m.route.as_ref().is_some_and(|x| x.id == r.id)).cloned().collect(),
    }
}

/// Runs newer than `id` that still stand (not rolled back): they must be undone first.
pub fn standing_above<'a>(history: &'a [RunMeta], id: &str) -> Vec<&'a RunMeta> {
    let Some(at) = history.iter().position(|m| m.id == id) else { return Vec::new() };
    history[at + 1..].iter().filter(|m| m.status != RunStatus::RolledBack).collect()
}

/// A per-product lock: an exclusive lock (flock) on `<product>.lock` in the state dir, held for
/// the command's life. The kernel releases it when the process ends, however it ends (crash,
/// kill -9, reboot), so there is never a stale lock to remove by hand. The file names the pid.
pub struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    pub fn take(state_dir: &Path, product: &str) -> Result<Lock> {
        std::fs::create_dir_all(state_dir).with_context(|| format!("creating state dir {}", state_dir.display()))?;
        let path = state_dir.join(format!("{product}.lock"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                writeln!(&file, "{}", std::process::id())?;
                Ok(Lock(file))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!(
                    "another opshost (pid {}) is working on {product}: wait for it to finish; its lock on {} goes when it exits",
                    pid.trim(),
                    path.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(stamp(1_795_418_439_000), "20261123-072039");
        assert_eq!(stamp(951_782_400_000), "20000229-000000");
    }

    fn run(id: &str, source: &str, target: &str, status: RunStatus, route: Option<&str>) -> RunMeta {
        RunMeta {
            id: id.into(),
            product: "oms".into(),
            source: source.into(),
            target: target.into(),
            plugin: format!("oms-{target}"),
            plugin_hash: String::new(),
            site_config: String::new(),
            started_ms: 0,
            status,
            finished_ms: None,
            error: None,
            route: route.map(|r| RouteRef { id: r.into(), source: "3.2.2".into(), target: "3.3.1".into() }),
        }
    }

    #[test]
    fn the_version_follows_the_stack_of_runs() {
        use RunStatus::*;
        assert_eq!(current_version("3.2.2", &[]), "3.2.2");
        let a = run("a", "3.2.2", "3.3.0", Upgraded, Some("a"));
        let b = run("b", "3.3.0", "3.3.1", Upgraded, Some("a"));
        assert_eq!(current_version("3.2.2", &[a.clone(), b.clone()]), "3.3.1");
        let b_rb = RunMeta { status: RolledBack, ..b.clone() };
        assert_eq!(current_version("3.2.2", &[a.clone(), b_rb.clone()]), "3.3.0");
        let a_rb = RunMeta { status: RolledBack, ..a.clone() };
        assert_eq!(current_version("3.2.2", &[a_rb.clone(), b_rb.clone()]), "3.2.2");
        // A retry after a rollback stands on its own.
        let c = run("c", "3.2.2", "3.3.0", Upgraded, None);
        assert_eq!(current_version("3.2.2", &[a_rb, b_rb, c]), "3.3.0");
        // A failed hop: the deployment is between versions; upgrade refuses, rollback unwinds.
        let b_failed = RunMeta { status: UpgradeFailed, ..b };
        assert_eq!(top(&[a.clone(), b_failed.clone()]).unwrap().id, "b");
    }

    #[test]
    fn rollback_unwinds_the_route_newest_first() {
        use RunStatus::*;
        let old = run("old", "3.1.0", "3.2.2", Upgraded, None);
        let a = run("a", "3.2.2", "3.3.0", Upgraded, Some("a"));
        let b = run("b", "3.3.0", "3.3.1", UpgradeFailed, Some("a"));
        let h = vec![old.clone(), a.clone(), b.clone()];
        let ids: Vec<String> = to_unwind(&h).into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["b", "a"], "the route only, not the run before it");
        let h2 = vec![old.clone(), a.clone(), RunMeta { status: RolledBack, ..b }];
        assert_eq!(to_unwind(&h2).into_iter().map(|m| m.id).collect::<Vec<_>>(), ["a"]);
        assert_eq!(standing_above(&h, "a").iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(standing_above(&h2, "a").is_empty());
        assert_eq!(to_unwind(&[old]).into_iter().map(|m| m.id).collect::<Vec<_>>(), ["old"]);
    }

    #[test]
    fn runs_begun_in_the_same_millisecond_list_in_the_order_they_were_made() {
        let d = tempfile::tempdir().unwrap();
        let runs = Runs::new(d.path());
        let made: Vec<String> = (0..12).map(|_| runs.create(run("", "3.2.2", "3.3.0", RunStatus::Upgrading, None)).unwrap().id).collect();
        assert_eq!(made[1], format!("{}-2", made[0]));
        assert_eq!(made[11], format!("{}-12", made[0]));
        let listed: Vec<String> = runs.list().unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(listed, made);
    }

    #[test]
    fn run_folders_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let runs = Runs::new(d.path());
        let m = runs.create(run("", "3.2.2", "3.3.0", RunStatus::Upgrading, None)).unwrap();
        for dir in [runs.dir.clone(), runs.run_dir(&m.id)] {
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "{}", dir.display());
        }
    }

    #[test]
    fn a_second_lock_on_the_same_product_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let l = Lock::take(d.path(), "oms").unwrap();
        let e = Lock::take(d.path(), "oms").err().unwrap().to_string();
        assert!(e.contains("another opshost"), "{e}");
        Lock::take(d.path(), "odc").unwrap();
        drop(l);
        Lock::take(d.path(), "oms").unwrap();
        // A lock file left by a process that died holds no lock.
        std::fs::write(d.path().join("x.lock"), "4000000000\n").unwrap();
        Lock::take(d.path(), "x").unwrap();
        // Nor does one whose holder was killed: the kernel released it.
        // (flock -o: the lock stays with flock itself, not with the sleep it runs.)
        let mut child = std::process::Command::new("flock").arg("-o").arg(d.path().join("y.lock")).arg("sleep").arg("30").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(Lock::take(d.path(), "y").is_err(), "flock(1) holds y.lock");
        child.kill().unwrap();
        child.wait().unwrap();
        Lock::take(d.path(), "y").unwrap();
    }
}
