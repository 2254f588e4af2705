//! Several signature formats in one policy, on the real control plane: workloads signed with
//! Notary v1 and cosign, AnyOf and AllOf policies, and the migration view.

use crate::harness::*;
use crate::support::oci::Cosign;
use crate::world::*;
use serde_json::{Value, json};

fn cosign_root(w: &World, name: &str, public_pem: &str) -> Value {
    json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": name, "labels": {INSTANCE_LABEL: w.name}},
        "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public_pem}]},
                 "registry": {"plainHTTP": true}, "refreshInterval": "10s"}})
}

fn entry(w: &trustwatch::crd::ImageTrustReport) -> trustwatch::crd::ContainerVerification {
    w.status.clone().unwrap().containers[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn notary_and_cosign_under_any_of_and_all_of_with_the_migration_view() {
    let ns = "tw-formats";
    let mut w = World::new(ns).await;
    let cosign = Cosign::new();
    let (key, public) = cosign.generate_key_pair("release");
    let (other_key, _) = cosign.generate_key_pair("someone-else");
    let by_digest = |w: &World, repo: &str| {
        let d = w.registry.resolve(repo, "v1").unwrap().digest;
        format!("{}@{d}", w.repo(repo))
    };
    // Signed with both; with Notary v1 only; with Notary v1 and a cosign key nobody trusts.
    w.push_signed("shop/both", "v1", "both v1");
    cosign.sign(&by_digest(&w, "shop/both"), &key, &[], &[]);
    w.push_signed("shop/dct", "v1", "dct v1");
    w.push_signed("shop/bad", "v1", "bad v1");
    cosign.sign(&by_digest(&w, "shop/bad"), &other_key, &[], &[]);
    // Signed with cosign only.
    w.push("shop/new", "v1", "new v1");
    cosign.sign(&by_digest(&w, "shop/new"), &key, &[], &[]);

    w.apply(&w.trust_root(json!({})));
    let cosign_name = format!("{}-cosign", w.name);
    w.apply(&cosign_root(&w, &cosign_name, &public));
    let rule = |require: &str| json!({"images": [{"pattern": format!("{}/**", w.registry.host()), "trustRoots": [w.name, cosign_name], "require": require}]});
    w.apply(&w.policy("anyof", rule("AnyOf")));
    w.apply(&w.policy("allof", rule("AllOf")));
    w.start_kubelet();
    for app in ["both", "dct", "bad", "new"] {
        w.apply(&deployment(ns, app, &format!("{}:v1", w.repo(&format!("shop/{app}"))), 1));
    }
    let _op = w.operator();

    use trustwatch::crd::MigrationState::*;
    for (app, any_of, all_of, migration) in [
        ("both", "Verified", "Verified", SuccessorVerified),
        ("dct", "Verified", "Unsigned", NotaryV1Only),
        ("bad", "Verified", "SignerMissing", SuccessorFailing),
        ("new", "Verified", "Unsigned", SuccessorVerified),
    ] {
        let r = w.report_verdict(ns, &format!("deployment-{app}-anyof"), any_of).await;
        let e = entry(&r);
        assert_eq!(e.migration, Some(migration), "{app}: {e:?}");
        assert_eq!(e.trust_roots.len(), 2, "every trust root's result is listed: {e:?}");
        w.report_verdict(ns, &format!("deployment-{app}-allof"), all_of).await;
    }
    // "DCT: Verified, cosign: Unsigned" for the image signed with Notary v1 alone.
    let e = entry(&w.reports(ns).await["deployment-dct-anyof"]);
    let said: Vec<(String, String)> =
        e.trust_roots.iter().map(|r| (r.format.to_string(), r.verdict.to_string())).collect();
    assert_eq!(said, vec![("NotaryV1".into(), "Verified".into()), ("Cosign".into(), "Unsigned".into())]);
    let e = entry(&w.reports(ns).await["deployment-both-anyof"]);
    assert_eq!(e.format.map(|f| f.to_string()).as_deref(), Some("NotaryV1"), "the first trusted answer decides");
    assert!(e.trust_roots.iter().any(|r| r.format.to_string() == "Cosign" && r.verdict.to_string() == "Verified"));

    // The policy status counts the migration.
    let status = eventually("the migration counts in the AnyOf policy", REACT, || async {
        let s = w.policy_status("anyof").await.ok_or("no status")?;
        if s["summary"]["successorVerified"] == 2 { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    assert_eq!(status["summary"]["notaryV1Only"], 1, "{status}");
    assert_eq!(status["summary"]["successorFailing"], 1, "{status}");
    let out = w.cp.kubectl(&["get", "troot", &cosign_name]).unwrap();
    assert!(out.contains("KIND") && out.contains("Cosign"), "{out}");
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_registry_is_read_with_the_pods_own_pull_secrets_once_allowed() {
    let ns = "tw-pull";
    let w = World::new(ns).await;
    let registry = AuthRegistry::start("ci", "pull-secret-password");
    let digest = registry.push("shop/private", "v1", "private v1");
    let cosign = Cosign::new();
    let (key, public) = cosign.generate_key_pair("release");
    let docker_dir = cosign.dir().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(docker_dir.join("config.json"), registry.docker_config()).unwrap();
    let image = format!("{}/shop/private@{digest}", registry.host());
    cosign.sign(&image, &key, &[], &[("DOCKER_CONFIG", docker_dir.to_str().unwrap())]);

    let root = format!("{ns}-cosign");
    let mut tr = cosign_root(&w, &root, &public);
    tr["spec"]["registry"]["usePodPullSecrets"] = json!(true);
    w.apply(&tr);
    w.apply(&w.policy("pull", json!({"images": [{"pattern": format!("{}/**", registry.host()), "trustRoot": root}]})));
    w.apply(&json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": ns}, "stringData": {".dockerconfigjson": registry.docker_config()}}));
    // Pinned by digest: the kubelet played here cannot pull from the private registry.
    let mut with_secret = bare_pod(ns, "with-secret", &format!("{}/shop/private:v1@{digest}", registry.host()));
    with_secret["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    w.apply(&with_secret);
    w.apply(&bare_pod(ns, "anonymous", &format!("{}/shop/private:v1@{digest}", registry.host())));
    let _op = w.operator();

    // The default RBAC reads no Secret outside the operator's namespace: the report says why.
    let r = w.report_verdict(ns, "pod-with-secret-pull", "TrustDataUnavailable").await;
    let e = entry(&r);
    assert_eq!(e.reason, "PullSecretUnreadable", "{e:?}");
    assert!(e.message.contains("config/components/pod-pull-secrets"), "{}", e.message);

    // The opt-in component is added: the pod's own credentials open the registry.
    let role = repo_root().join("config/components/pod-pull-secrets/role.yaml");
    w.cp.kubectl(&["apply", "-f", role.to_str().unwrap()]).unwrap();
    w.cp.kubectl(&["annotate", "--overwrite", "itp", "pull", "trustwatch.dev/recheck=with-rbac"]).unwrap();
    eventually("verified with the pod's pull secret", REACT, || async {
        // The credential cache lives a minute: recheck until it has expired.
        let _ = w.cp.kubectl(&[
            "annotate",
            "--overwrite",
            "itp",
            "pull",
            &format!("trustwatch.dev/recheck={}", now_rfc3339()),
        ]);
        let r = w.reports(ns).await.remove("pod-with-secret-pull").ok_or("no report")?;
        let v = entry(&r).verdict.to_string();
        if v == "Verified" { Ok(()) } else { Err(format!("{:?}", entry(&r))) }
    })
    .await;
    // A pod without credentials is not verified with someone else's: the registry refuses it.
    let r = w.report_verdict(ns, "pod-anonymous-pull", "TrustDataUnavailable").await;
    assert_ne!(entry(&r).reason, "PullSecretUnreadable", "{:?}", entry(&r));
    let _ = w.cp.kubectl(&["delete", "-f", role.to_str().unwrap()]);
    w.cleanup().await;
}
