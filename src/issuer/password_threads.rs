//! Password checks on a few threads of their own.
//!
//! argon2id works in 19 MiB of memory per hash (its memory cost). On tokio's blocking pool,
//! which grows to 512 threads, a burst of sign-ins — or of failed ones: an unknown user costs a
//! dummy hash as well — ran that many hashes at once, and the allocator kept each thread's
//! copies afterwards: a two-core gatehouse went from 14 MiB to 465 MiB resident after 40
//! sign-ins. One thread per core, each reusing its working memory (`credentials`), bounds that
//! to 19 MiB per core and loses no throughput: more hashes at once than cores would only queue
//! for the CPU.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on one of the password threads and returns its result; `None` if the threads
/// are gone. Work whose caller has given up by the time a thread is free is skipped.
pub(super) async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if !reply.is_closed() {
            let _ = reply.send(work());
        }
    });
    threads()?.send(job).ok()?;
    answer.await.ok()
}

/// The queue of the password threads, started on first use.
fn threads() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (queue, jobs) = mpsc::channel::<Job>();
            let jobs = Arc::new(Mutex::new(jobs));
            let count = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            let mut started = 0;
            for index in 0..count {
                let jobs = Arc::clone(&jobs);
                let spawned = std::thread::Builder::new()
                    .name(format!("gatehouse-password-{index}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only while waiting for a job, never while hashing.
                            let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    });
                if spawned.is_ok() {
                    started += 1;
                }
            }
            (started > 0).then_some(queue)
        })
        .as_ref()
}
