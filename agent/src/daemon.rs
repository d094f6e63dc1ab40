//! The long-running agent, the one-shot run, and logging.
//!
//! The daemon scans at start and then at every slot of the cron schedule
//! (plus this host's splay). Scans run on a blocking thread; a sender task
//! delivers the spool whenever something is pending, backing off
//! exponentially with full jitter after failures. SIGTERM or SIGINT stops
//! the schedule, lets a delivery in flight finish for up to 10 s, and the
//! process exits 0. Every write is crash-safe, so being killed at any
//! point loses nothing either (docs/agent.md).

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::config::{AgentConfig, LogFormat};
use crate::run::{Produced, RunError, enrolled, produce};
use crate::send::{CollectorClient, SendError, deliver_until};
use crate::spool::Spool;
use crate::state::{Enrollment, StateDir, StateError, StateLock, machine_id_sha256};

/// How long an in-flight delivery may go on after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often an agent that is not enrolled looks for enrollment.json by
/// default (`enroll_poll_seconds` in agent.toml).
pub const ENROLLMENT_POLL: Duration =
    Duration::from_secs(crate::config::DEFAULT_ENROLL_POLL_SECONDS);
/// How long the daemon waits for the state directory's lock (an
/// `annexa enroll` holds it for a moment) before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Longest single sleep while waiting for a slot: the wall clock is
/// re-read at least this often, so a clock step or a suspended machine
/// delays a scan by at most this much.
const MAX_NAP: Duration = Duration::from_secs(60);

/// What [`run_once`] did.
#[derive(Debug)]
pub struct OnceOutcome {
    /// The envelope produced.
    pub produced: Produced,
    /// Envelopes acknowledged by the collector in this run.
    pub delivered: usize,
    /// Envelopes still in the spool afterwards.
    pub pending: usize,
    /// Why delivery stopped, if it failed.
    pub delivery_error: Option<SendError>,
}

/// Produces one envelope and, if `send`, delivers everything pending.
///
/// Delivery failures are not errors here: they leave envelopes spooled,
/// which `pending` and `delivery_error` report (the CLI exits 1). Errors
/// are what prevented producing (not enrolled, configuration, state).
pub async fn run_once(config: &AgentConfig, send: bool) -> Result<OnceOutcome, RunError> {
    config.validate()?;
    let state = StateDir::open(&config.state_dir)?;
    let _lock = state.try_lock()?;
    enrolled(&state)?;
    // Before the scan: an unusable pinned CA should not cost a scan.
    let client = if send {
        Some(CollectorClient::for_state(config, &state)?)
    } else {
        None
    };
    let (c, s) = (config.clone(), state.clone());
    let produced = tokio::task::spawn_blocking(move || produce(&c, &s))
        .await
        .map_err(|e| RunError::Task(e.to_string()))??;
    let mut delivered = 0;
    let mut delivery_error = None;
    // A failure is the caller's to report (the CLI prints it and exits 1).
    if let Some(client) = client
        && let Err(e) = deliver_until(&client, &state, None, &mut delivered).await
    {
        delivery_error = Some(e);
    }
    let pending = Spool::open(state.spool_dir())?.pending()?.len();
    Ok(OnceOutcome {
        produced,
        delivered,
        pending,
        delivery_error,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
    }
}

/// Runs the agent until `shutdown` resolves. Returns `Ok` after a graceful
/// shutdown; errors are what prevents the agent from running at all (the
/// configuration, the state directory, the pinned CA).
pub async fn run_daemon<F>(config: AgentConfig, shutdown: F) -> Result<(), RunError>
where
    F: Future<Output = ()> + Send + 'static,
{
    config.validate()?;
    let schedule = config.parsed_schedule()?;
    let state = StateDir::open(&config.state_dir)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        info!("stopping: no further scans; letting a delivery in flight finish");
        let _ = stop_tx.send(true);
        // Keep the sender alive so receivers never see it closed.
        std::future::pending::<()>().await;
    });
    let mut stop = stop_rx.clone();

    let poll = Duration::from_secs(config.enroll_poll_seconds.max(1));
    let Some(enrollment) = wait_for_enrollment(&state, poll, &mut stop).await? else {
        return Ok(());
    };
    let Some(lock) = wait_for_lock(&state, &mut stop).await? else {
        return Ok(());
    };
    let lock = Arc::new(lock);
    let client = CollectorClient::for_state(&config, &state)?;
    let splay = config.splay(&machine_id_sha256(), enrollment.agent_id.as_str());
    info!(
        agent_id = %enrollment.agent_id,
        server = %client.server(),
        schedule = %config.schedule,
        splay_seconds = splay.as_secs(),
        state_dir = %state.root().display(),
        "annexa agent {} running",
        crate::VERSION
    );

    // Settle the chain head before the sender may deliver (and remove) a
    // spooled envelope that chain.json does not record yet: afterwards that
    // envelope could no longer be adopted and its number would be reused.
    crate::run::recover_chain(&state, &Spool::open(state.spool_dir())?)?;

    let wake = Arc::new(Notify::new());
    let sender = tokio::spawn(sender_loop(
        client,
        state.clone(),
        config.retry_max_seconds,
        wake.clone(),
        stop_rx.clone(),
    ));

    loop {
        let (c, s) = (config.clone(), state.clone());
        // The scan holds the state lock too: if shutdown abandons it, the
        // lock is released only when its last write is done, so no other
        // producer can take the chain over in between.
        let held = lock.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _held = held;
            produce(&c, &s)
        });
        tokio::select! {
            r = job => match r {
                Ok(Ok(_)) => wake.notify_one(),
                Ok(Err(e)) => error!(error = %e, "scan not recorded; trying again at the next slot"),
                Err(e) => error!(error = %e, "the scan task failed; trying again at the next slot"),
            },
            // A scan in progress is abandoned: every write is atomic and a
            // spooled-but-unrecorded envelope is adopted on the next start.
            _ = stopped(&mut stop) => break,
        }
        let Some(next) = next_run(&schedule, splay, Utc::now()) else {
            warn!(schedule = %config.schedule, "the schedule never fires again; no more scans");
            stopped(&mut stop).await;
            break;
        };
        info!(next = %next.to_rfc3339(), "next scan at {}", next.to_rfc3339());
        if !sleep_until(next, &mut stop).await {
            break;
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), sender).await {
        Ok(_) => info!("stopped"),
        Err(_) => warn!("the sender did not stop in time; exiting anyway (envelopes stay spooled)"),
    }
    Ok(())
}

/// Resolves once `stop` is true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            // No one can ask us to stop any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Waits (logging once how to enroll) until the agent is enrolled; `None`
/// if asked to stop first.
async fn wait_for_enrollment(
    state: &StateDir,
    poll: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Enrollment>, RunError> {
    let mut told = false;
    loop {
        if let Some(e) = state.enrollment()? {
            return Ok(Some(e));
        }
        if !told {
            warn!(
                path = %state.enrollment_path().display(),
                "not enrolled: {} does not exist. Enroll this host with `annexa enroll --server \
                 https://HOST:PORT --token-file TOKEN_FILE --ca FILE` (or --ca-fingerprint SHA256:…); \
                 checking again every {} s",
                state.enrollment_path().display(),
                poll.as_secs()
            );
            told = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stopped(stop) => return Ok(None),
        }
    }
}

/// Takes the state directory's lock, waiting a little for an enrollment
/// in progress to release it; `None` if asked to stop first.
async fn wait_for_lock(
    state: &StateDir,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<StateLock>, RunError> {
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        match state.try_lock() {
            Ok(lock) => return Ok(Some(lock)),
            Err(StateError::Locked { .. }) if tokio::time::Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped(stop) => return Ok(None),
        }
    }
}

/// Sleeps until a wall-clock time; `false` if asked to stop first.
async fn sleep_until(when: DateTime<Utc>, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let left = (when - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(MAX_NAP)) => {}
            _ = stopped(stop) => return false,
        }
    }
}

/// The first slot after `now`: the first schedule time `t` with
/// `t + splay > now`, plus the splay.
pub fn next_run(
    schedule: &cron::Schedule,
    splay: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let splay = chrono::Duration::from_std(splay).ok()?;
    let from = now.checked_sub_signed(splay)?;
    schedule.after(&from).next()?.checked_add_signed(splay)
}

/// The ceiling of the `attempt`-th retry delay (0-based): 1 s doubling,
/// at most `max_seconds`.
pub fn backoff_cap(attempt: u32, max_seconds: u64) -> Duration {
    let secs = 1u64
        .checked_shl(attempt.min(63))
        .unwrap_or(u64::MAX)
        .min(max_seconds.max(1));
    Duration::from_secs(secs)
}

/// A retry delay with full jitter: uniform in `[0, cap]`, so agents that
/// lost the collector at the same moment do not come back in step.
pub fn backoff_delay(attempt: u32, max_seconds: u64) -> Duration {
    let cap_ms = backoff_cap(attempt, max_seconds).as_millis() as u64;
    Duration::from_millis(rand::random_range(0..=cap_ms))
}

/// Delivers whenever something is pending, until stopped.
async fn sender_loop(
    client: CollectorClient,
    state: StateDir,
    retry_max_seconds: u64,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let pending = match Spool::open(state.spool_dir()).and_then(|s| s.pending()) {
            Ok(p) => p.len(),
            Err(e) => {
                error!(error = %e, "cannot read the spool");
                0
            }
        };
        if pending == 0 {
            tokio::select! {
                _ = wake.notified() => continue,
                _ = stopped(&mut stop) => break,
            }
        }
        let watch_stop = stop.clone();
        let mut delivered = 0;
        let result = {
            let delivery = deliver_until(&client, &state, Some(&watch_stop), &mut delivered);
            tokio::pin!(delivery);
            tokio::select! {
                r = &mut delivery => r,
                _ = stopped(&mut stop) => {
                    match tokio::time::timeout(SHUTDOWN_GRACE, &mut delivery).await {
                        Ok(Err(e)) => warn!(error = %e, "delivery failed while stopping"),
                        Ok(Ok(())) => {}
                        Err(_) => warn!(
                            "a delivery was still in flight {} s after the stop signal; the \
                             envelope stays spooled and is sent again on the next start",
                            SHUTDOWN_GRACE.as_secs()
                        ),
                    }
                    break;
                }
            }
        };
        match result {
            Ok(()) => attempt = 0,
            Err(e) => {
                // A refusal will not cure itself in a second: retry it at
                // the slowest pace; network trouble backs off from 1 s.
                let delay = if e.is_transient() {
                    backoff_delay(attempt, retry_max_seconds)
                } else {
                    Duration::from_secs(retry_max_seconds)
                };
                attempt = attempt.saturating_add(1);
                warn!(
                    error = %e,
                    delivered,
                    retry_in_ms = delay.as_millis() as u64,
                    "delivery failed: {e}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(&mut stop) => break,
                }
            }
        }
    }
}

/// Installs the log subscriber: `format` lines on standard error, colour
/// only on a terminal, level from `ANNEXA_LOG` (default `info`). Does
/// nothing if a subscriber is already installed (an embedding program's).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANNEXA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    #[test]
    fn the_next_slot_is_the_schedule_plus_the_splay() {
        let hourly = cron::Schedule::from_str("0 0 * * * *").unwrap();
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap();
        let splay = Duration::from_secs(120);
        assert_eq!(next_run(&hourly, splay, at(9, 30, 0)), Some(at(10, 2, 0)));
        // Between a schedule time and its splayed slot: that slot is next.
        assert_eq!(next_run(&hourly, splay, at(10, 1, 0)), Some(at(10, 2, 0)));
        // Right at the slot (a scan just ran): the following one.
        assert_eq!(next_run(&hourly, splay, at(10, 2, 0)), Some(at(11, 2, 0)));
        assert_eq!(
            next_run(&hourly, Duration::ZERO, at(10, 0, 0)),
            Some(at(11, 0, 0))
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_to_the_ceiling() {
        let caps: Vec<u64> = (0..12).map(|a| backoff_cap(a, 300).as_secs()).collect();
        assert_eq!(caps, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff_cap(200, 300).as_secs(), 300);
        for a in 0..20 {
            assert!(backoff_delay(a, 5) <= Duration::from_secs(5));
        }
    }
}
