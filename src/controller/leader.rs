//! Leader election with a `coordination.k8s.io` Lease in the operator's namespace
//! (kube-lease-manager: server-side apply on the Lease, so two replicas cannot both lock it).
//!
//! Every replica watches and caches; only the holder of the Lease runs the controllers. A
//! replica that loses the Lease after holding it stops at once (the process exits and its
//! Deployment restarts it as a standby), as controller-runtime does: a replica that might no
//! longer lead must not write.

use super::{Error, RunConfig};
use crate::telemetry::Metrics;
use kube_lease_manager::LeaseManagerBuilder;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{error, info};

/// The state of this replica's candidacy.
pub struct Leadership {
    state: Option<watch::Receiver<bool>>,
    identity: String,
    metrics: Arc<Metrics>,
    _task: Option<tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>>,
}

/// Starts campaigning for the Lease (or, without leader election, leads at once).
pub async fn elect(client: &kube::Client, config: &RunConfig, metrics: &Arc<Metrics>) -> Result<Leadership, Error> {
    let Some(le) = &config.leader_election else {
        metrics.set_leader(&config.identity, true);
        return Ok(Leadership {
            state: None,
            identity: config.identity.clone(),
            metrics: metrics.clone(),
            _task: None,
        });
    };
    metrics.set_leader(&config.identity, false);
    // Renew a third of the duration before it runs out.
    let grace = (le.duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &le.lease)
        .with_namespace(&config.operator_namespace)
        .with_identity(&config.identity)
        .with_duration(le.duration_seconds)
        .with_grace(grace)
        .with_field_manager(format!("trustwatch-leader-{}", config.identity))
        .build()
        .await
        .map_err(|e| {
            Error::Leader(format!(
                "cannot use Lease {}/{} ({e}); the operator needs get, create and patch on leases in its namespace (config/rbac)",
                config.operator_namespace, le.lease
            ))
        })?;
    let (state, task) = manager.watch().await;
    info!(lease = %le.lease, namespace = %config.operator_namespace, identity = %config.identity, "campaigning for leadership");
    Ok(Leadership {
        state: Some(state),
        identity: config.identity.clone(),
        metrics: metrics.clone(),
        _task: Some(task),
    })
}

impl Leadership {
    /// Waits until this replica holds the Lease. False when the election ended (shutdown).
    pub async fn wait_until_leading(&mut self) -> bool {
        let Some(rx) = &mut self.state else { return true };
        loop {
            if *rx.borrow_and_update() {
                info!(identity = %self.identity, "leading: starting the controllers");
                self.metrics.set_leader(&self.identity, true);
                return true;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return false },
                _ = shutdown_signal() => return false,
            }
        }
    }

    /// Gives the Lease up (graceful shutdown): a standby takes over at once.
    pub async fn release(self) {
        let Leadership { state, _task: task, identity, .. } = self;
        drop(state);
        if let Some(task) = task {
            match tokio::time::timeout(std::time::Duration::from_secs(5), task).await {
                Ok(Ok(Ok(_))) => info!(identity = %identity, "released the leader Lease"),
                Ok(Ok(Err(e))) => {
                    tracing::warn!(identity = %identity, error = %e, "cannot release the leader Lease; it expires by itself")
                }
                _ => tracing::warn!(identity = %identity, "releasing the leader Lease timed out; it expires by itself"),
            }
        }
    }

    /// Resolves when the Lease is lost after it was held: an error for the caller to exit with.
    pub async fn lost(&mut self) -> Result<(), Error> {
        let Some(rx) = &mut self.state else { return std::future::pending().await };
        loop {
            if rx.changed().await.is_err() {
                return Err(Error::Leader("the leader election task ended".into()));
            }
            if !*rx.borrow_and_update() {
                self.metrics.set_leader(&self.identity, false);
                error!(identity = %self.identity, "lost the leader Lease; stopping so that only the leader writes");
                return Err(Error::Leader("lost the leader Lease".into()));
            }
        }
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
