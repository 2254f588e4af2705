//! The operator on a real control plane: etcd, kube-apiserver and kube-controller-manager
//! built from their Go modules (`hack/control-plane.sh`), one per test binary. The operator
//! is a child process (`trustwatch run`) authorized by `config/rbac` alone; it talks to a real
//! notary-server and a real docker-registry; the tests play scheduler and kubelet.
//!
//! Runs in `make test`, every time. A missing control-plane binary is built on first use
//! (minutes, once per version); a build that fails fails the tests.

#[path = "../support/mod.rs"]
mod support;

mod harness;
mod world;

mod admission;
mod admission_replicas;
mod crds;
mod formats;
mod guardrails;
mod lifecycle;
mod operations;
mod policy_reports;
mod verdicts;
