//! One queue of jobs shared out over a few connections, each taking the next job when done with
//! its last, as myloader's threads take tables: the dump's table definitions, the restore's
//! definitions and its held-back keys.

use crate::bindings::Error;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// Run every job of `jobs` with `run` on one of `workers` (a connection and what it keeps from
/// one job to the next), side by side; `run` takes the worker and gives it back with the job's
/// result. After the first failure no more jobs are handed out, and that failure is the result;
/// otherwise the workers come back in their order.
pub(super) async fn share_out<W, J, Fut>(workers: Vec<W>, jobs: impl IntoIterator<Item = J>, run: impl Fn(W, J) -> Fut) -> Result<Vec<W>, Error>
where
    Fut: Future<Output = (W, Result<(), Error>)>,
{
    let queue = Mutex::new(jobs.into_iter());
    let failed = AtomicBool::new(false);
    let next = || if failed.load(Relaxed) { None } else { queue.lock().unwrap().next() };
    let runners = workers.into_iter().map(|mut w| async {
        while let Some(job) = next() {
            let (back, done) = run(w, job).await;
            w = back;
            if let Err(e) = done {
                failed.store(true, Relaxed);
                return Err(e);
            }
        }
        Ok(w)
    });
    futures_util::future::join_all(runners).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::errors::failed;

    #[tokio::test]
    async fn every_job_runs_once_and_each_worker_keeps_its_own() {
        let workers = share_out(vec![Vec::new(), Vec::new()], 0..10, |mut w: Vec<u32>, j| async move {
            w.push(j);
            tokio::task::yield_now().await;
            (w, Ok(()))
        })
        .await
        .unwrap();
        assert_eq!(workers.len(), 2);
        assert!(workers.iter().all(|w| !w.is_empty()), "both workers took jobs: {workers:?}");
        let mut all: Vec<u32> = workers.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn after_a_failure_no_job_is_handed_out() {
        let ran = Mutex::new(Vec::new());
        let ran_ref = &ran;
        let r = share_out(vec![(), ()], 0..100, |w, j| async move {
            ran_ref.lock().unwrap().push(j);
            tokio::task::yield_now().await;
            (w, if j == 3 { Err(failed(format!("job {j} failed"))) } else { Ok(()) })
        })
        .await;
        assert!(matches!(&r, Err(e) if e.message() == "job 3 failed"), "{r:?}");
        let ran = ran.into_inner().unwrap();
        assert!(ran.len() < 10, "jobs went on after the failure: {ran:?}");
    }
}
