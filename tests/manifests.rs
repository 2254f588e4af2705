//! The shipped manifests hold the operator to least privilege: non-root, read-only root
//! filesystem, no capabilities, seccomp RuntimeDefault, two replicas under leader election.

use serde_json::Value;

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    trustwatch::audit::parse_documents(&text).unwrap()
}

#[test]
fn the_deployment_runs_non_root_read_only_without_capabilities_under_seccomp() {
    let docs = docs("config/manager/manager.yaml");
    let d = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["serviceAccountName"], "trustwatch");
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null(), "{pod}");
    let containers = pod["containers"].as_array().unwrap();
    assert!(!containers.is_empty());
    for c in containers {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]), "{}", c["name"]);
        assert!(sc["capabilities"]["add"].is_null(), "{}", c["name"]);
        assert!(sc["privileged"].is_null() || sc["privileged"] == false);
        assert!(!c["resources"]["limits"]["memory"].is_null(), "a memory limit");
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(!args.contains(&"--no-leader-election"), "leader election stays on with two replicas");
        let env: Vec<&str> = c["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"), "the Lease identity and namespace");
    }
    assert_eq!(d["spec"]["replicas"], 2, "a leader and a standby");
    let ns = docs.iter().find(|d| d["kind"] == "Namespace").expect("the namespace");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
}
