//! Trust roots at run time: a `TrustRoot` spec turned into a verifier of its kind, and the
//! verifications of a scan plan run against them through the one seam every format shares
//! ([`crate::verifier::Verifier`]). Shared by the operator and `trustwatch audit`.

use crate::cosign::{CosignKey, CosignVerifier, LogKey, TrustConfig as CosignConfig};
use crate::crd::{
    CertificateSource, CertificateStatus, CheckAction, KeySource, NotationLevel, Retirement, TrustRootSpec,
    VerifyTimestampMode,
};
use crate::engine::TrustEngine;
use crate::fetch::{Credentials, NotaryHttp, ServerConfig};
use crate::image::ImageRef;
use crate::notation::policy::{Actions, Level, TrustedIdentities, VerifyTimestamp};
use crate::notation::{Cert, NotationTrustSource, NotationVerifier, ShellOptions, TrustConfig as NotationConfig};
use crate::oci::{DockerConfig, RegistryClient, RegistryConfig};
use crate::scanner::VerifyKey;
use crate::scanner::pods::PullRef;
use crate::tuf::{Anchors, PinnedKey};
use crate::verdict::Verdict;
use crate::verifier::{Resolution, SignatureFormat, Verifier, VerifyRequest};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many verifications run at once.
pub const VERIFY_CONCURRENCY: usize = 16;

/// What a trust root needs from outside its spec: Secret and ConfigMap contents, read by the
/// controller (or given on the command line offline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalInputs {
    /// Notary v1: credentials for the server's token service.
    pub notary_credentials: Option<Credentials>,
    /// Notation and cosign: registry credentials (a docker config), as raw JSON.
    pub registry_config: Option<Vec<u8>>,
    /// The running pod's own credentials (`registry.usePodPullSecrets`), merged over those.
    pub pod_registry_config: Option<Vec<u8>>,
    /// The contents of the ConfigMap and Secret keys the spec references, by `kind/name/key`.
    pub pem: BTreeMap<String, String>,
}

/// The key under which [`ExternalInputs::pem`] holds a referenced key: `ConfigMap/NAME/KEY`.
pub fn pem_key(kind: &str, name: &str, key: &str) -> String {
    format!("{kind}/{name}/{key}")
}

/// The verifier of a trust root, by kind.
pub enum Backend {
    NotaryV1(TrustEngine<NotaryHttp>),
    Notation(Box<NotationVerifier>),
    Cosign(CosignVerifier),
}

impl Backend {
    pub fn verifier(&self) -> &dyn Verifier {
        match self {
            Backend::NotaryV1(e) => e,
            Backend::Notation(n) => n.as_ref(),
            Backend::Cosign(c) => c,
        }
    }

    /// The Notary v1 engine, for the per-repository refresh and status of that kind.
    pub fn notary(&self) -> Option<&TrustEngine<NotaryHttp>> {
        match self {
            Backend::NotaryV1(e) => Some(e),
            _ => None,
        }
    }
}

/// A trust root ready to verify.
pub struct TrustRootRuntime {
    pub name: String,
    /// The spec and outside inputs it was built from: when either changes, a new runtime (and
    /// a fresh trust state, seeded from status) replaces it.
    pub spec: TrustRootSpec,
    pub inputs: ExternalInputs,
    pub backend: Backend,
    pub expiry_warning: SignedDuration,
    pub refresh_interval: Duration,
    /// Notary v1: the canonical key IDs of the pinned root keys.
    pub pinned_key_ids: Vec<String>,
    /// Notary v1: when the server is a known retiring endpoint.
    pub retirement: Option<Retirement>,
    /// Notation: the certificates of the trust stores, with their expiry.
    pub certificates: Vec<ListedCertificate>,
    /// `registry.usePodPullSecrets`: a verifier per set of pod credentials (by a hash of the
    /// merged docker configuration), each with its own registry client and caches.
    pull_backends: std::sync::Mutex<HashMap<u64, Arc<Backend>>>,
    /// Notary v1: what the last status was built from, so that a refresh that changed
    /// nothing neither rebuilds nor compares it (see [`StatusMark`]).
    pub status_mark: std::sync::Mutex<Option<StatusMark>>,
    /// When the outside inputs (Secrets, ConfigMaps) were last read and found equal to
    /// [`Self::inputs`]: a replica that does not reconcile TrustRoots (a follower answering
    /// admission) reads them again when this is older than [`Self::inputs_recheck`].
    pub inputs_checked: std::sync::Mutex<std::time::Instant>,
}

/// The TrustRoot a Notary v1 status was last built for, and the engine's generation read
/// before the views it was built from. When the TrustRoot's resourceVersion is still the same
/// (nobody changed spec, labels or status) and the generation has not moved since (every
/// view since then kept the same state, see `TrustEngine::generation`), a new status would
/// equal it except for `lastRefresh`, which is not written on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMark {
    pub resource_version: String,
    pub generation: u64,
}

/// The most credential sets a trust root keeps a verifier for (each holds its own caches).
const MAX_PULL_BACKENDS: usize = 256;

/// The longest a follower answers admission from Secrets and ConfigMaps it read earlier
/// (shorter when the trust root's `refreshInterval` is).
pub const INPUTS_RECHECK: Duration = Duration::from_secs(30);

impl TrustRootRuntime {
    pub fn kind(&self) -> SignatureFormat {
        self.spec.kind()
    }

    /// How often a replica that does not reconcile this trust root reads its Secrets and
    /// ConfigMaps again: its refresh interval, at most [`INPUTS_RECHECK`].
    pub fn inputs_recheck(&self) -> Duration {
        self.refresh_interval.min(INPUTS_RECHECK)
    }

    /// Whether the outside inputs are due to be read again.
    pub fn inputs_due(&self) -> bool {
        self.inputs_checked.lock().expect("inputs_checked lock poisoned").elapsed() >= self.inputs_recheck()
    }

    /// The outside inputs were just read and found unchanged.
    pub fn inputs_confirmed(&self) {
        *self.inputs_checked.lock().expect("inputs_checked lock poisoned") = std::time::Instant::now();
    }

    /// Whether the trust root reads registries with each pod's own pull credentials.
    pub fn uses_pod_pull_secrets(&self) -> bool {
        self.spec.registry.as_ref().is_some_and(|r| r.use_pod_pull_secrets) && self.spec.server.is_none()
    }

    /// The verifier for a pod's credentials (a docker configuration, merged over the trust
    /// root's own), built once per distinct set.
    pub fn backend_with_credentials(&self, docker_config: &[u8]) -> Result<Arc<Backend>, Vec<String>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        docker_config.hash(&mut h);
        let key = h.finish();
        if let Some(b) = self.pull_backends.lock().expect("pull backends poisoned").get(&key) {
            return Ok(b.clone());
        }
        let mut inputs = self.inputs.clone();
        inputs.pod_registry_config = Some(docker_config.to_vec());
        let backend = Arc::new(match self.kind() {
            SignatureFormat::Cosign => Backend::Cosign(build_cosign(&self.spec, &inputs)?),
            SignatureFormat::Notation => {
                Backend::Notation(Box::new(build_notation(&self.name, &self.spec, &inputs)?.0))
            }
            _ => return Err(vec!["spec.registry.usePodPullSecrets applies to Notation and cosign trust roots".into()]),
        });
        let mut map = self.pull_backends.lock().expect("pull backends poisoned");
        if map.len() >= MAX_PULL_BACKENDS {
            map.clear();
        }
        map.insert(key, backend.clone());
        Ok(backend)
    }
}

/// Known retirements of Notary v1 endpoints, by host suffix: (host or `.suffix`, date, source).
pub const RETIRING_ENDPOINTS: &[(&str, &str, &str)] = &[
    (
        "notary.docker.io",
        "2026-12-08",
        "Docker: Docker Content Trust retirement notice, https://docs.docker.com/engine/security/trust/ (notary.docker.io shuts down on 2026-12-08; move to Notation or cosign)",
    ),
    (
        ".azurecr.io",
        "2028-03-31",
        "Microsoft: Azure Container Registry content trust is removed on 2028-03-31, https://learn.microsoft.com/azure/container-registry/container-registry-content-trust (move to Notation)",
    ),
];

/// The retirement of a Notary server, if it is a known retiring endpoint.
pub fn retirement_of(server: &str) -> Option<Retirement> {
    let host = server.split("://").nth(1).unwrap_or(server).split(['/', ':']).next().unwrap_or_default();
    RETIRING_ENDPOINTS.iter().find(|(h, _, _)| if h.starts_with('.') { host.ends_with(h) } else { host == *h }).map(
        |(h, date, source)| Retirement {
            endpoint: if h.starts_with('.') { host.to_string() } else { h.to_string() },
            date: date.to_string(),
            source: source.to_string(),
        },
    )
}

/// Builds the runtime of a trust root. Errors name the field to fix.
pub fn build_trust_root(
    name: &str,
    spec: &TrustRootSpec,
    inputs: ExternalInputs,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Result<TrustRootRuntime, Vec<String>> {
    spec.validate()?;
    let expiry_warning =
        SignedDuration::try_from(spec.expiry_warning_period()).unwrap_or(SignedDuration::from_hours(168));
    let mut certificates = vec![];
    let backend = match spec.kind() {
        SignatureFormat::NotaryV1 => build_notary(spec, &inputs, tweak)?,
        SignatureFormat::Cosign => Backend::Cosign(build_cosign(spec, &inputs)?),
        SignatureFormat::Notation => {
            let (verifier, certs) = build_notation(name, spec, &inputs)?;
            certificates = certs;
            Backend::Notation(Box::new(verifier))
        }
    };
    let mut runtime = TrustRootRuntime {
        name: name.to_string(),
        spec: spec.clone(),
        inputs: inputs.clone(),
        backend,
        expiry_warning,
        refresh_interval: spec.refresh_period(),
        pinned_key_ids: vec![],
        retirement: spec.server.as_deref().and_then(retirement_of),
        certificates,
        pull_backends: Default::default(),
        status_mark: Default::default(),
        inputs_checked: std::sync::Mutex::new(std::time::Instant::now()),
    };
    if let Backend::NotaryV1(e) = &runtime.backend {
        runtime.pinned_key_ids = e.anchors().pinned.iter().map(|p| p.canonical_id.clone()).collect();
    }
    Ok(runtime)
}

fn build_notary(
    spec: &TrustRootSpec,
    inputs: &ExternalInputs,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Result<Backend, Vec<String>> {
    let server = spec.server.as_deref().expect("validated: a Notary v1 trust root has a server");
    let mut pinned = vec![];
    let mut errors = vec![];
    for (i, k) in spec.root_keys.iter().enumerate() {
        match PinnedKey::from_pem(&k.name, &k.public_key) {
            Ok(p) => pinned.push(p),
            Err(e) => errors.push(format!("spec.rootKeys[{i}].publicKey: {e}")),
        }
    }
    let mut config = ServerConfig::new(server);
    config.ca_pem = spec.ca_bundle.clone();
    config.credentials = inputs.notary_credentials.clone();
    tweak(&mut config);
    let http = NotaryHttp::new(config).map_err(|e| vec![format!("spec: {e}")]);
    if !errors.is_empty() {
        return Err(errors);
    }
    let anchors = Anchors { pinned, revoked: spec.revoked_keys.iter().cloned().collect() };
    Ok(Backend::NotaryV1(TrustEngine::new(http?, anchors)))
}

/// The registry client of a Notation or cosign trust root.
pub fn registry_client(spec: &TrustRootSpec, inputs: &ExternalInputs) -> Result<Arc<RegistryClient>, Vec<String>> {
    let access = spec.registry.clone().unwrap_or_default();
    let mut config =
        RegistryConfig { ca_pem: access.ca_bundle.clone(), plain_http: access.plain_http, ..Default::default() };
    if let Some(raw) = &inputs.registry_config {
        config.credentials = DockerConfig::parse(raw).map_err(|e| vec![format!("spec.registry.authSecretRef: {e}")])?;
    }
    if let Some(raw) = &inputs.pod_registry_config {
        let pod = DockerConfig::parse(raw).map_err(|e| vec![format!("the pod's imagePullSecrets: {e}")])?;
        config.credentials.merge(pod);
    }
    RegistryClient::new(config).map(Arc::new).map_err(|e| vec![format!("spec.registry: {e}")])
}

/// The PEM of a certificate source: inline, or from the ConfigMap or Secret key the inputs hold.
fn certificate_pem(source: &CertificateSource, inputs: &ExternalInputs) -> Result<String, String> {
    key_pem(
        &KeySource {
            name: source.name.clone(),
            public_key: source.pem.clone(),
            config_map_key_ref: source.config_map_key_ref.clone(),
            secret_key_ref: source.secret_key_ref.clone(),
            rsa_pss: false,
        },
        inputs,
    )
}

/// A trust store certificate as the status lists it, and when it expires.
pub type ListedCertificate = (CertificateStatus, Timestamp);

/// A Notation trust root over the registry client, and its trust stores' certificates with
/// their expiry (for the status).
fn build_notation(
    name: &str,
    spec: &TrustRootSpec,
    inputs: &ExternalInputs,
) -> Result<(NotationVerifier, Vec<ListedCertificate>), Vec<String>> {
    let client = registry_client(spec, inputs);
    let trust = notation_trust(name, spec, inputs);
    match (client, trust) {
        (Ok(client), Ok(t)) => {
            let source = NotationTrustSource::Config(t.config);
            Ok((NotationVerifier::new(client, source, t.options), t.certificates))
        }
        (client, trust) => Err([client.err(), trust.err()].into_iter().flatten().flatten().collect()),
    }
}

/// What `spec.notation` resolves to, without I/O.
pub struct NotationTrust {
    /// The one trust policy statement the trust root is.
    pub config: NotationConfig,
    pub options: ShellOptions,
    pub certificates: Vec<ListedCertificate>,
}

/// Resolves `spec.notation` into one trust policy statement (what notation reads from
/// `trustpolicy.json` and `truststore/x509/`). Errors name the field to fix.
pub fn notation_trust(name: &str, spec: &TrustRootSpec, inputs: &ExternalInputs) -> Result<NotationTrust, Vec<String>> {
    let n = spec.notation.as_ref().ok_or_else(|| vec!["spec.notation: not a Notation trust root".to_string()])?;
    let mut errors = vec![];
    let mut listed = vec![];
    let stores = &n.trust_stores;
    let mut store = |kind: &str, sources: &[CertificateSource]| -> Vec<Cert> {
        let mut certs = vec![];
        for (i, source) in sources.iter().enumerate() {
            let parsed = certificate_pem(source, inputs).and_then(|pem| Cert::parse_many(pem.as_bytes()));
            match parsed {
                Ok(parsed) => {
                    for c in &parsed {
                        let status = CertificateStatus {
                            store: format!("{kind}/{}", source.name),
                            subject: c.subject().to_string(),
                            not_after: c.not_after().to_string(),
                        };
                        listed.push((status, c.not_after()));
                    }
                    certs.extend(parsed);
                }
                Err(e) => errors.push(format!("spec.notation.trustStores.{kind}[{i}] ({:?}): {e}", source.name)),
            }
        }
        certs
    };
    let (ca, signing_authority, tsa) =
        (store("ca", &stores.ca), store("signingAuthority", &stores.signing_authority), store("tsa", &stores.tsa));
    // Trust policy, "verificationLevel": strict, permissive or audit, each a default action
    // per check; "override" changes the action of one check ("integrity validation cannot be
    // overriden"; authenticity and authenticTimestamp take enforce or log only).
    let level = match n.verification_level {
        NotationLevel::Strict => Level::Strict,
        NotationLevel::Permissive => Level::Permissive,
        NotationLevel::Audit => Level::Audit,
    };
    let mut overrides = BTreeMap::new();
    if let Some(o) = &n.overrides {
        let checks = [
            ("authenticity", o.authenticity),
            ("authenticTimestamp", o.authentic_timestamp),
            ("expiry", o.expiry),
            ("revocation", o.revocation),
        ];
        for (check, action) in checks {
            let Some(action) = action else { continue };
            let action = match action {
                CheckAction::Enforce => "enforce",
                CheckAction::Log => "log",
                CheckAction::Skip => "skip",
            };
            overrides.insert(check.to_string(), action.to_string());
        }
    }
    let actions = Actions::with_overrides(level, &overrides).map_err(|e| format!("spec.notation.overrides: {e}"));
    let identities =
        TrustedIdentities::parse(&n.trusted_identities).map_err(|e| format!("spec.notation.trustedIdentities: {e}"));
    // A revocation published by the CA is seen within one refresh interval (and one hour at
    // most), not only at the CRL's nextUpdate.
    let mut options = ShellOptions::default();
    options.revocation_max_age = options.revocation_max_age.min(spec.refresh_period());
    if let Some(t) = &n.revocation_timeout {
        match crate::crd::parse_duration(t) {
            Ok(d) => (options.revocation_timeout, options.ocsp_timeout) = (d, d),
            Err(e) => errors.push(format!("spec.notation.revocationTimeout: {e}")),
        }
    }
    for e in [actions.as_ref().err(), identities.as_ref().err()].into_iter().flatten() {
        errors.push(e.clone());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let config = NotationConfig {
        policy_name: name.to_string(),
        actions: actions.expect("checked"),
        verify_timestamp: match n.verify_timestamp {
            Some(VerifyTimestampMode::AfterCertExpiry) => VerifyTimestamp::AfterCertExpiry,
            Some(VerifyTimestampMode::Always) | None => VerifyTimestamp::Always,
        },
        ca,
        signing_authority,
        tsa,
        trusted_identities: identities.expect("checked"),
    };
    Ok(NotationTrust { config, options, certificates: listed })
}

/// The PEM of a key source: inline, or from the ConfigMap or Secret key the inputs hold.
pub fn key_pem(source: &KeySource, inputs: &ExternalInputs) -> Result<String, String> {
    if let Some(pem) = &source.public_key {
        return Ok(pem.clone());
    }
    let (kind, r) = match (&source.config_map_key_ref, &source.secret_key_ref) {
        (Some(r), _) => ("ConfigMap", r),
        (None, Some(r)) => ("Secret", r),
        (None, None) => return Err("has no publicKey, configMapKeyRef or secretKeyRef".into()),
    };
    inputs
        .pem
        .get(&pem_key(kind, &r.name, &r.key))
        .cloned()
        .ok_or_else(|| format!("{kind} {} has no key {:?} (or cannot be read)", r.name, r.key))
}

fn build_cosign(spec: &TrustRootSpec, inputs: &ExternalInputs) -> Result<CosignVerifier, Vec<String>> {
    let c = spec.cosign.as_ref().expect("validated: a cosign trust root");
    let mut errors = vec![];
    let mut keys = vec![];
    for (i, k) in c.keys.iter().enumerate() {
        let key = key_pem(k, inputs)
            .and_then(|pem| CosignKey::from_pem(&k.name, &pem))
            .and_then(|key| if k.rsa_pss { key.with_rsa_pss() } else { Ok(key) });
        match key {
            Ok(key) => keys.push(key),
            Err(e) => errors.push(format!("spec.cosign.keys[{i}] ({:?}): {e}", k.name)),
        }
    }
    let mut log_keys = vec![];
    for (i, k) in c.log_keys.iter().enumerate() {
        match key_pem(k, inputs).and_then(|pem| LogKey::from_pem(&k.name, &pem)) {
            Ok(key) => log_keys.push(key),
            Err(e) => errors.push(format!("spec.cosign.logKeys[{i}] ({:?}): {e}", k.name)),
        }
    }
    let client = registry_client(spec, inputs);
    if let Err(e) = &client {
        errors.extend(e.iter().cloned());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let trust = CosignConfig { keys, required_annotations: c.annotations.clone(), log_keys };
    Ok(CosignVerifier::new(client.expect("checked"), trust))
}

/// Runs every verification of a plan, at most [`VERIFY_CONCURRENCY`] at once. Trust data is
/// refreshed when older than the trust root's refresh interval (so a scan of many pods costs
/// one refresh per repository), or always when `force` is set.
/// Registry credentials of pods, read by the controller: a merged docker configuration per
/// [`PullRef`], or why it could not be read.
pub type PullConfigs = HashMap<PullRef, Result<Vec<u8>, String>>;

/// What the answers to `keys` rest on besides the clock, per trust root: each root's
/// [`Verifier::answers_generation`]. `None` when any answer could change without it: a trust
/// root that is missing or cannot tell (registry formats), or pod pull credentials (read
/// afresh per scan). The same map before two scans means the same answers, but for the clock.
pub fn answers_generation(
    keys: &BTreeSet<VerifyKey>,
    roots: &HashMap<String, Arc<TrustRootRuntime>>,
) -> Option<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for key in keys {
        if key.pull.is_some() {
            return None;
        }
        if !out.contains_key(&key.trust_root) {
            let generation = roots.get(&key.trust_root)?.backend.verifier().answers_generation()?;
            out.insert(key.trust_root.clone(), generation);
        }
    }
    Some(out)
}

pub async fn verify_all(
    keys: &BTreeSet<VerifyKey>,
    roots: &HashMap<String, Arc<TrustRootRuntime>>,
    now: Timestamp,
    force: bool,
    metrics: Option<&crate::telemetry::Metrics>,
    pulls: &PullConfigs,
) -> HashMap<VerifyKey, Resolution> {
    let started = Instant::now();
    futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            let t = Instant::now();
            let r = verify_one(&key, roots, now, force, started, pulls).await;
            if let Some(m) = metrics {
                m.record_verification(&key.trust_root, r.verdict, t.elapsed().as_secs_f64());
            }
            (key, r)
        })
        .buffer_unordered(VERIFY_CONCURRENCY)
        .collect()
        .await
}

async fn verify_one(
    key: &VerifyKey,
    roots: &HashMap<String, Arc<TrustRootRuntime>>,
    now: Timestamp,
    force: bool,
    started: Instant,
    pulls: &PullConfigs,
) -> Resolution {
    let image = match ImageRef::parse(&key.image) {
        Ok(i) => i,
        Err(e) => return unavailable(key, SignatureFormat::NotaryV1, "InvalidImageReference", Verdict::Unsigned, e),
    };
    let Some(root) = roots.get(&key.trust_root) else {
        return unavailable(
            key,
            SignatureFormat::NotaryV1,
            "TrustRootNotReady",
            Verdict::TrustDataUnavailable,
            format!(
                "TrustRoot {:?} does not exist or is not ready (kubectl describe troot {})",
                key.trust_root, key.trust_root
            ),
        );
    };
    let fresh_since =
        if force { started } else { Instant::now().checked_sub(root.refresh_interval).unwrap_or(started) };
    let request =
        VerifyRequest { image: &image, signers: &key.signers, now, expiry_warning: root.expiry_warning, fresh_since };
    match &key.pull {
        None => root.backend.verifier().verify(request).await,
        Some(pull) => {
            let config = match pulls.get(pull) {
                Some(Ok(c)) => c.clone(),
                Some(Err(e)) => {
                    return unavailable(
                        key,
                        root.kind(),
                        "PullSecretUnreadable",
                        Verdict::TrustDataUnavailable,
                        e.clone(),
                    );
                }
                None => b"{}".to_vec(),
            };
            match root.backend_with_credentials(&config) {
                Ok(backend) => {
                    tracing::debug!(trust_root = %key.trust_root, namespace = %pull.namespace, secrets = ?pull.secrets, bytes = config.len(), "verifying with the pod's pull credentials");
                    backend.verifier().verify(request).await
                }
                Err(es) => {
                    unavailable(key, root.kind(), "PullSecretUnusable", Verdict::TrustDataUnavailable, es.join("; "))
                }
            }
        }
    }
}

/// An answer without a verification (an outage, a reference that does not parse): the key's
/// image, with the verdict and why.
pub(crate) fn unavailable(
    key: &VerifyKey,
    format: SignatureFormat,
    reason: &str,
    verdict: Verdict,
    message: String,
) -> Resolution {
    match ImageRef::parse(&key.image) {
        Ok(image) => Resolution::new(format, &image, verdict, reason, message),
        Err(_) => Resolution::unparsed(format, &key.image, verdict, reason, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notation_trust_root_names_every_field_to_fix() {
        let spec: TrustRootSpec = serde_json::from_value(serde_json::json!({
            "notation": {
                "trustStores": {
                    "ca": [{"name": "acme", "configMapKeyRef": {"name": "certs", "key": "acme.pem"}}],
                    "tsa": [{"name": "tsa", "pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}]
                },
                "trustedIdentities": ["x509.subject: CN=only-a-common-name"]
            }
        }))
        .unwrap();
        let errors = match build_trust_root("acme", &spec, ExternalInputs::default(), |_| {}) {
            Err(e) => e,
            Ok(_) => panic!("built a trust root from unusable certificates"),
        };
        let all = errors.join("\n");
        assert!(all.contains("spec.notation.trustStores.ca[0] (\"acme\"): ConfigMap certs has no key"), "{all}");
        assert!(all.contains("spec.notation.trustStores.tsa[0] (\"tsa\")"), "{all}");
        assert!(all.contains("spec.notation.trustedIdentities"), "{all}");
    }

    #[test]
    fn known_retiring_notary_endpoints_are_recognized_with_their_date_and_source() {
        let r = retirement_of("https://notary.docker.io").unwrap();
        assert_eq!((r.endpoint.as_str(), r.date.as_str()), ("notary.docker.io", "2026-12-08"));
        assert!(r.source.contains("docs.docker.com"));
        let r = retirement_of("https://myregistry.azurecr.io:443/").unwrap();
        assert_eq!((r.endpoint.as_str(), r.date.as_str()), ("myregistry.azurecr.io", "2028-03-31"));
        assert!(retirement_of("https://notary.example.com").is_none());
        assert!(retirement_of("https://evil-notary.docker.io.example.com").is_none());
    }
}
