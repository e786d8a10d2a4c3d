//! Health checks of the real servers, with keepalived's semantics: a server that fails `fall`
//! probes in a row is quiesced (effective weight 0: no new connections, existing ones go on,
//! as keepalived's `inhibit_on_failure` does to IPVS); `rise` successes give it its weight back
//! (or the weight its exec checker or agent asks for); a service whose live weight falls below
//! its quorum sends new connections to its sorry server.
//!
//! All probes run as tasks of one tokio runtime on one thread (`rvs-health`), never a thread per
//! check: 1,000 servers probed every second are 1,000 small tasks. Results go to a single
//! consumer, which applies them to the control state in batches (one table publication per
//! batch, at most every 50 ms), and which follows the control state's check list, starting,
//! stopping and restarting probes as services and servers change.

pub mod probe;
pub mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::control::{ControlState, RealKey};
use probe::Target;
use state::Outcome;

/// The running health checker.
pub struct Health {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Health {
    pub fn start(state: Arc<Mutex<ControlState>>) -> Result<Health> {
        let stop = Arc::new(AtomicBool::new(false));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the health checker's runtime")?;
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("rvs-health".into())
                .spawn(move || rt.block_on(run(state, stop)))?
        };
        Ok(Health { stop, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

struct Running {
    target: Target,
    task: tokio::task::JoinHandle<()>,
}

async fn run(state: Arc<Mutex<ControlState>>, stop: Arc<AtomicBool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(RealKey, Outcome)>();
    let mut running: HashMap<RealKey, Running> = HashMap::new();
    let mut generation = u64::MAX;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut batch = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            Some(r) = rx.recv() => {
                batch.push(r);
                while let Ok(r) = rx.try_recv() {
                    batch.push(r);
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let targets = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            for (key, outcome) in batch.drain(..) {
                st.health_result(&key, &outcome, now);
            }
            st.publish_if_changed();
            (st.check_generation() != generation).then(|| {
                generation = st.check_generation();
                st.check_targets()
            })
        };
        if let Some(targets) = targets {
            reconcile(&mut running, targets, &tx);
        }
    }
    for (_, r) in running {
        r.task.abort();
    }
}

/// Starts probes for new targets, restarts changed ones, stops those gone.
fn reconcile(
    running: &mut HashMap<RealKey, Running>,
    targets: Vec<(RealKey, Target)>,
    tx: &mpsc::UnboundedSender<(RealKey, Outcome)>,
) {
    let wanted: HashMap<RealKey, Target> = targets.into_iter().collect();
    running.retain(|k, r| {
        let keep = wanted.get(k) == Some(&r.target);
        if !keep {
            r.task.abort();
        }
        keep
    });
    for (key, target) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        let task = tokio::spawn(check_loop(key, target.clone(), tx.clone()));
        running.insert(key, Running { target, task });
    }
}

async fn check_loop(key: RealKey, target: Target, tx: mpsc::UnboundedSender<(RealKey, Outcome)>) {
    tokio::time::sleep(probe::first_delay(&target)).await;
    let mut every = tokio::time::interval(target.check.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let outcome = probe::probe(&target).await;
        if tx.send((key, outcome)).is_err() {
            return;
        }
    }
}
