//! `make bench`, part 4 (issue 21): the admission webhook's latency, per signature format, under
//! 50 concurrent admissions.
//!
//! Per format (Notary v1, Notation, cosign): a real notary-server or a real registry with the
//! images signed by the real CLI (`notary`, `notation`, `cosign`), the TrustRoot and an
//! `Enforce` policy on the real control plane, and one `trustwatch run --webhook-addr` replica,
//! started fresh, so that its caches are empty. The bench then POSTs AdmissionReviews of Pods
//! to `/validate` over TLS (trusting the CA the operator made), as kube-apiserver does:
//!
//! - **cold**: 50 concurrent reviews, each for another tag of the repository, none of them
//!   verified before (the first ones also fetch the repository's trust data);
//! - **warm**: then `TRUSTWATCH_BENCH_ROUNDS` (default 10) bursts of the same 50 reviews.
//!
//! Every answer must admit (each image is signed) or the bench fails: an answer the budget cut
//! short (`AdmissionBudgetExceeded`, a warning) is counted as over budget. Latency is the time
//! from sending a review to reading its answer, on this machine (loopback, 2 cores shared with
//! the peers and the control plane). Output: a Markdown table on stdout.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/cluster/harness.rs"]
mod harness;

#[path = "../tests/cluster/world.rs"]
mod world;

use harness::{INSTANCE_LABEL, free_port};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use world::World;

const CONCURRENCY: usize = 50;

#[derive(Clone, Copy, Debug)]
enum Format {
    NotaryV1,
    Notation,
    Cosign,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::NotaryV1 => "Notary v1",
            Format::Notation => "Notation",
            Format::Cosign => "cosign",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::NotaryV1 => "notary",
            Format::Notation => "notation",
            Format::Cosign => "cosign",
        }
    }
}

/// The answers of one burst: each review's latency, and how many were admitted without a
/// warning, admitted with one (over budget or unverified), or refused.
#[derive(Default)]
struct Burst {
    latencies: Vec<Duration>,
    admitted: usize,
    warned: Vec<String>,
    refused: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// An AdmissionReview of a Pod CREATE, as kube-apiserver sends it.
fn review(ns: &str, name: &str, image: &str) -> Value {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": image}]}});
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("bench-{name}"),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": name, "namespace": ns, "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": pod, "oldObject": null, "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}})
}

async fn burst(client: &reqwest::Client, url: &str, reviews: &[Value]) -> Burst {
    let calls = reviews.iter().map(|r| async move {
        let started = Instant::now();
        let answer: Value = client
            .post(url)
            .json(r)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the webhook answers")
            .json()
            .await
            .expect("an AdmissionReview");
        (started.elapsed(), answer)
    });
    let mut out = Burst::default();
    for (latency, answer) in futures::future::join_all(calls).await {
        out.latencies.push(latency);
        let response = &answer["response"];
        let warnings: Vec<String> = response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(String::from))
            .collect();
        if response["allowed"] != true {
            out.refused.push(response["status"]["message"].as_str().unwrap_or_default().to_string());
        } else if !warnings.is_empty() {
            out.warned.extend(warnings);
        } else {
            out.admitted += 1;
        }
    }
    out.latencies.sort();
    out
}

/// The images of `format`: `CONCURRENCY` tags of one repository, each signed, and the World
/// holding their peers, with the TrustRoot and an Enforce policy applied.
async fn setup(format: Format) -> (World, Vec<String>) {
    use support::notation::{LeafKey, Pki, Signer, Validity};
    use support::oci::Cosign;
    let name = format!("bench-adm-{}", format.label());
    let mut w = World::new(&name).await;
    let repo = format!("bench/{}", format.label());
    let tags: Vec<String> = (0..CONCURRENCY).map(|i| format!("c{i}")).collect();
    let started = Instant::now();
    let root_name = format!("{name}-root");
    let root_spec = match format {
        Format::NotaryV1 => {
            for t in &tags {
                w.push_signed(&repo, t, &format!("{repo} {t}"));
            }
            let mut root = w.trust_root(json!({}));
            root["metadata"]["name"] = json!(root_name);
            root
        }
        Format::Notation => {
            let pki = Pki::new("Bench", None);
            let leaf = pki.issue_leaf("release", LeafKey::Ec("P-256"), Validity::Days(30));
            let signer = Signer::new();
            signer.use_key("release", &leaf.key, &leaf.chain);
            for t in &tags {
                let pushed = w.push(&repo, t, &format!("{repo} {t}"));
                signer.sign(&format!("{}@{}", w.repo(&repo), pushed.digest), "cose", &[]);
            }
            json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
                "metadata": {"name": root_name, "labels": {INSTANCE_LABEL: name}},
                "spec": {"notation": {"trustStores": {"ca": [{"name": "bench", "pem": pki.root_pem()}]},
                                      "trustedIdentities": ["*"]},
                         "registry": {"plainHTTP": true}}})
        }
        Format::Cosign => {
            let cosign = Cosign::new();
            let (key, public) = cosign.generate_key_pair("release");
            for t in &tags {
                let pushed = w.push(&repo, t, &format!("{repo} {t}"));
                cosign.sign(&format!("{}@{}", w.repo(&repo), pushed.digest), &key, &[], &[]);
            }
            json!({"apiVersion": "trustwatch.dev/v1alpha1", "kind": "TrustRoot",
                "metadata": {"name": root_name, "labels": {INSTANCE_LABEL: name}},
                "spec": {"cosign": {"keys": [{"name": "release", "publicKey": public}]},
                         "registry": {"plainHTTP": true}}})
        }
    };
    eprintln!("bench: {} images signed with {} in {:.0?}", tags.len(), format.name(), started.elapsed());
    w.apply(&root_spec);
    let rule = json!([{"pattern": format!("{}/**", w.registry.host()), "trustRoot": root_name}]);
    w.apply(&w.policy(&format!("{name}-policy"), json!({"images": rule, "admission": {"mode": "Enforce"}})));
    let images = tags.iter().map(|t| format!("{}:{t}", w.repo(&repo))).collect();
    (w, images)
}

/// The webhook's CA, from the Secret the operator keeps it in.
fn webhook_ca(w: &World) -> String {
    let b64 = w.webhook_secret("ca.crt");
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap()).unwrap()
}

async fn bench(format: Format, rounds: usize) -> String {
    let (w, images) = setup(format).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let op = w.operator_with(&["--webhook-addr", &addr, "--webhook-host", "127.0.0.1"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !op.ready() {
        assert!(Instant::now() < deadline, "the operator did not become ready:\n{}", op.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every replica loads the trust roots it needs itself; the policy must be in its cache.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ca = reqwest::Certificate::from_pem(webhook_ca(&w).as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("https://{addr}/validate");
    let reviews: Vec<Value> =
        images.iter().enumerate().map(|(i, image)| review(&w.name, &format!("pod-{i}"), image)).collect();

    let cold = burst(&client, &url, &reviews).await;
    let mut warm = Burst::default();
    for _ in 0..rounds {
        let b = burst(&client, &url, &reviews).await;
        warm.latencies.extend(b.latencies);
        warm.admitted += b.admitted;
        warm.warned.extend(b.warned);
        warm.refused.extend(b.refused);
    }
    warm.latencies.sort();
    for (what, b) in [("cold", &cold), ("warm", &warm)] {
        assert!(b.refused.is_empty(), "{} {what}: a signed image was refused: {:?}", format.name(), &b.refused[..1]);
        let unexpected: Vec<&String> = b.warned.iter().filter(|w| !w.contains("AdmissionBudgetExceeded")).collect();
        assert!(unexpected.is_empty(), "{} {what}: not verified: {:?}", format.name(), &unexpected[..1]);
    }
    let over = |b: &Burst| b.warned.len();
    let row = |what: &str, b: &Burst| {
        format!(
            "| {} | {what} | {} | {} | {} | {} | {} | {} |",
            format.name(),
            b.latencies.len(),
            ms(percentile(&b.latencies, 50.0)),
            ms(percentile(&b.latencies, 95.0)),
            ms(percentile(&b.latencies, 99.0)),
            ms(*b.latencies.last().unwrap_or(&Duration::ZERO)),
            over(b),
        )
    };
    let out = format!("{}\n{}", row("cold", &cold), row("warm", &warm));
    drop(op);
    w.cleanup().await;
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    trustwatch::fetch::install_default_provider();
    let rounds: usize = std::env::var("TRUSTWATCH_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut rows = vec![];
    for format in [Format::NotaryV1, Format::Notation, Format::Cosign] {
        rows.push(bench(format, rounds).await);
    }
    println!("## Admission webhook: {CONCURRENCY} concurrent reviews per burst, by tag (one replica, budget 5 s)\n");
    println!("| format | caches | reviews | p50 ms | p95 ms | p99 ms | max ms | over budget |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}
