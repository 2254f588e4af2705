//! The operator under test: installed from config/default (with `TRUSTWATCH_IMAGE` when set),
//! and a teardown that removes what the suite created, printing diagnostics first when a test
//! failed.

use crate::cluster::{Cluster, eventually, step};
use crate::gate::{IMAGE_VAR, KEEP_VAR};
use crate::{notary_server, scenario};
use std::time::Duration;

pub const NAMESPACE: &str = "trustwatch-system";
pub const DEPLOYMENT: &str = "trustwatch";
pub const CONTAINER: &str = "manager";
pub const CRDS: &[&str] =
    &["trustroots.trustwatch.dev", "imagetrustpolicies.trustwatch.dev", "imagetrustreports.trustwatch.dev"];

fn config_default() -> String {
    format!("{}/config/default", env!("CARGO_MANIFEST_DIR"))
}

/// How the operator came to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// The suite applied config/default: it deletes it again.
    Installed,
    /// trustwatch was already installed: it is left in place (updated to `TRUSTWATCH_IMAGE`
    /// when that is set).
    Existing,
}

/// Installs CRDs, RBAC and the manager (`kubectl apply -k config/default`), sets the
/// manager image to `TRUSTWATCH_IMAGE` when given, and waits for the rollout.
pub fn install(cluster: &Cluster) -> Install {
    let image = std::env::var(IMAGE_VAR).ok().filter(|i| !i.trim().is_empty());
    let existed = cluster.get(Some(NAMESPACE), "deployment", DEPLOYMENT).unwrap_or_else(|e| panic!("{e}")).is_some();
    if existed && image.is_none() {
        step(&format!("trustwatch is already installed in {NAMESPACE}: testing it as it is"));
    } else {
        step(&format!("kubectl apply -k {}", config_default()));
        cluster.kubectl(&["apply", "-k", &config_default()]);
        for crd in CRDS {
            eventually(&format!("CRD {crd} to be established"), Duration::from_secs(60), || {
                let c = cluster.get(None, "crd", crd)?.ok_or("not created yet")?;
                let established = c["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Established" && c["status"] == "True");
                if established { Ok(()) } else { Err(format!("conditions: {}", c["status"]["conditions"])) }
            });
        }
        match &image {
            Some(img) => {
                step(&format!("manager image: {img} (from {IMAGE_VAR})"));
                let set = format!("{CONTAINER}={img}");
                cluster.kubectl(&["-n", NAMESPACE, "set", "image", &format!("deployment/{DEPLOYMENT}"), &set]);
            }
            None => step(&format!(
                "manager image: the one in config/manager ({IMAGE_VAR} is not set; \
                 the rollout fails if the cluster cannot pull it)"
            )),
        }
    }
    step(&format!("waiting for deployment {NAMESPACE}/{DEPLOYMENT} to roll out"));
    cluster.wait_for_rollout(NAMESPACE, DEPLOYMENT, Duration::from_secs(240));
    if existed { Install::Existing } else { Install::Installed }
}

/// Removes what the suite created when dropped, even after a panic; after a failure it first
/// prints what the operator logged and what the cluster holds. `TRUSTWATCH_E2E_KEEP=1`
/// leaves everything in place.
pub struct Teardown<'a> {
    cluster: &'a Cluster,
    pub install: Option<Install>,
}

impl<'a> Teardown<'a> {
    /// Starts clean: removes what an earlier, interrupted or kept run left behind.
    pub fn begin(cluster: &'a Cluster) -> Teardown<'a> {
        let teardown = Teardown { cluster, install: None };
        step("removing leftovers of earlier runs, if any");
        teardown.remove_scenario();
        teardown
    }

    fn remove_scenario(&self) {
        let c = self.cluster;
        // Without the CRDs there is nothing of ours to delete; the errors say so, ignore them.
        let _ = c.delete(None, &["imagetrustpolicy", scenario::POLICY]);
        let _ = c.delete(None, &["trustroot", scenario::TRUST_ROOT]);
        for ns in [scenario::APPS_NAMESPACE, notary_server::NAMESPACE] {
            if let Err(e) = c.delete(None, &["namespace", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }

    fn diagnostics(&self) {
        let c = self.cluster;
        let show = |title: &str, args: &[&str]| {
            let out = c.try_kubectl(args).unwrap_or_else(|e| e);
            eprintln!("----- {title} -----\n{out}");
        };
        eprintln!("===== e2e failed: state of context {} =====", c.context());
        show("operator logs", &["-n", NAMESPACE, "logs", &format!("deployment/{DEPLOYMENT}"), "--tail=200"]);
        show("operator pods", &["-n", NAMESPACE, "get", "pods", "-o", "wide"]);
        show("trust root", &["get", "trustroot", scenario::TRUST_ROOT, "-o", "yaml"]);
        show("policy", &["get", "imagetrustpolicy", scenario::POLICY, "-o", "yaml"]);
        let apps = scenario::APPS_NAMESPACE;
        show(
            "workloads",
            &["-n", apps, "get", "pods,imagetrustreports,networkpolicies", "-o", "wide", "--show-labels"],
        );
        show("reports", &["-n", apps, "get", "imagetrustreports", "-o", "yaml"]);
        show("events", &["-n", apps, "get", "events", "--sort-by=.lastTimestamp"]);
        show("notary-server logs", &["-n", notary_server::NAMESPACE, "logs", "deployment/notary", "--tail=100"]);
    }
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.diagnostics();
        }
        if std::env::var(KEEP_VAR).is_ok_and(|v| v == "1") {
            step(&format!("{KEEP_VAR}=1: leaving the namespaces, the TrustRoot, the policy and the operator in place"));
            return;
        }
        step("cleaning up");
        self.remove_scenario();
        if self.install == Some(Install::Installed) {
            step(&format!("kubectl delete -k {}", config_default()));
            if let Err(e) = self.cluster.delete(None, &["-k", &config_default()]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
