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
    let registry = crate::support::Registry::with_basic_auth("ci", "pull-secret-password");
    let digest = registry.push_image("shop/private", "v1", "private v1").digest;
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

#[tokio::test(flavor = "multi_thread")]
async fn notation_signed_workloads_agree_with_notation_verify_and_a_revoked_certificate_reads_signer_revoked() {
    use crate::support::notation::{HttpPeer, LeafKey, Pki, Signer, Validity, Verifier};
    let ns = "tw-notation";
    let mut w = World::new(ns).await;
    // A CA whose intermediate publishes a CRL; two signing leaves, one revoked afterwards.
    let crl = HttpPeer::start(None);
    let pki = Pki::new("Acme", Some(crl.url("/int.crl")));
    let release = pki.issue_leaf("release", LeafKey::Ec("P-256"), Validity::Days(30));
    let legacy = pki.issue_leaf("legacy", LeafKey::Rsa(2048), Validity::Days(30));
    let signer = Signer::new();
    let at = |w: &World, repo: &str| format!("{}@{}", w.repo(repo), w.registry.resolve(repo, "v1").unwrap().digest);
    w.push("shop/pay", "v1", "pay v1");
    signer.use_key("release", &release.key, &release.chain);
    signer.sign(&at(&w, "shop/pay"), "cose", &[]);
    w.push("shop/old", "v1", "old v1");
    signer.use_key("legacy", &legacy.key, &legacy.chain);
    signer.sign(&at(&w, "shop/old"), "jws", &[]);
    crl.put("/int.crl", pki.crl_der());
    w.push("shop/plain", "v1", "never signed");
    w.push_signed("shop/dct", "v1", "dct v1");

    // The same trust policy for `notation verify` and for the TrustRoot; the CA certificate
    // comes from a ConfigMap of the operator's namespace.
    let identity = "x509.subject: C=US, ST=WA, O=Acme, OU=Builds";
    let reference = Verifier::new(
        &json!({"version": "1.0", "trustPolicies": [{"name": "acme", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": [identity]}]})
        .to_string(),
    );
    reference.add_cert("ca", "acme", &pki.root_pem());
    let cm = format!("{ns}-acme-ca");
    w.apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": cm, "namespace": "trustwatch-system"}, "data": {"root.pem": pki.root_pem()}}));
    let notation_name = format!("{}-notation", w.name);
    w.apply(&json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": notation_name, "labels": {INSTANCE_LABEL: w.name}},
        "spec": {"notation": {"trustStores": {"ca": [{"name": "acme", "configMapKeyRef": {"name": cm, "key": "root.pem"}}]},
                              "trustedIdentities": [identity]},
                 "registry": {"plainHTTP": true}, "refreshInterval": "10s"}}));
    w.apply(&w.trust_root(json!({})));
    let rules = json!({"images": [{"pattern": format!("{}/**", w.registry.host()),
        "trustRoots": [w.name, notation_name], "require": "AnyOf"}]});
    w.apply(&w.policy("notation-anyof", rules.clone()));
    let mut all_of = rules;
    all_of["images"][0]["require"] = json!("AllOf");
    w.apply(&w.policy("notation-allof", all_of));
    w.start_kubelet();
    for app in ["pay", "old", "plain", "dct"] {
        w.apply(&deployment(ns, app, &format!("{}:v1", w.repo(&format!("shop/{app}"))), 1));
    }
    let _op = w.operator();

    use trustwatch::crd::MigrationState::*;
    // Verified while its certificate is good; the CA then revokes it (keyCompromise) and
    // publishes a new CRL: the running workload turns SignerRevoked within the refresh interval.
    w.report_verdict(ns, "deployment-old-notation-anyof", "Verified").await;
    pki.revoke(&legacy);
    crl.put("/int.crl", pki.crl_der());
    for (app, verdict, notation_verdict, migration, notation_agrees) in [
        ("pay", "Verified", "Verified", SuccessorVerified, true),
        ("old", "SignerRevoked", "SignerRevoked", SuccessorFailing, false),
        ("plain", "Unsigned", "Unsigned", NotaryV1Only, false),
        ("dct", "Verified", "Unsigned", NotaryV1Only, false),
    ] {
        let r = w.report_verdict(ns, &format!("deployment-{app}-notation-anyof"), verdict).await;
        let e = entry(&r);
        assert_eq!(e.migration, Some(migration), "{app}: {e:?}");
        let n = e.trust_roots.iter().find(|t| t.format.to_string() == "Notation").expect("a Notation result");
        assert_eq!(n.verdict.to_string(), notation_verdict, "{app}: {n:?}");
        // trustwatch and `notation verify` agree on every image.
        let out = reference.notation_verify(&at(&w, &format!("shop/{app}")));
        assert_eq!(out.success(), notation_agrees, "{app}: notation verify said {}{}", out.stdout, out.stderr);
        assert_eq!(n.verdict.is_trusted(), out.success(), "{app}: trustwatch {n:?}, notation verify {}", out.stderr);
    }
    // AllOf: the Notation-only image also needs Notary v1, which never signed it.
    for (app, verdict, migration) in [
        ("pay", "Unsigned", SuccessorVerified),
        ("old", "SignerRevoked", SuccessorFailing),
        ("dct", "Unsigned", NotaryV1Only),
    ] {
        let r = w.report_verdict(ns, &format!("deployment-{app}-notation-allof"), verdict).await;
        assert_eq!(r.status.unwrap().migration, Some(migration), "{app}: the workload's migration under AllOf");
    }
    let old = entry(&w.reports(ns).await["deployment-old-notation-anyof"]);
    assert_eq!(old.reason, "CertificateRevoked", "{old:?}");
    assert!(crl.requests().iter().any(|r| r == "GET /int.crl"), "the CRL was read: {:?}", crl.requests());

    // The TrustRoot lists its trust store certificates with their expiry.
    let status = eventually("the Notation TrustRoot is Ready", REACT, || async {
        let s = w.cp.kubectl(&["get", "troot", &notation_name, "-o", "json"]).map_err(|e| e.to_string())?;
        let s: Value = serde_json::from_str(&s).map_err(|e| e.to_string())?;
        if condition(&s["status"], "Ready").is_some_and(|(st, _)| st == "True") { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    let certs = status["status"]["certificates"].as_array().expect("certificates listed");
    assert_eq!(certs.len(), 1, "{status}");
    assert_eq!(certs[0]["store"], "ca/acme", "{status}");
    assert!(certs[0]["notAfter"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{status}");
    let out = w.cp.kubectl(&["get", "troot", &notation_name]).unwrap();
    assert!(out.contains("Notation"), "{out}");
    w.cleanup().await;
}
