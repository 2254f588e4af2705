//! The webhook's serving certificate: the operator makes its own CA and a serving certificate
//! signed by it, keeps both in one Secret of its namespace that every replica shares, puts the
//! CA in the `caBundle` of its Validating- and MutatingWebhookConfiguration, and rotates them
//! before expiry.
//!
//! Rotation never fails a request: the new CA joins the bundle next to the old one, the
//! bundle is patched into the webhook configuration, and only then (after the API server
//! had time to read it) does each replica serve the new certificate.

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default of `--webhook-secret`: the Secret holding the CA bundle, certificate and key.
pub const DEFAULT_SECRET: &str = "trustwatch-webhook-tls";
/// Annotation on the Secret: when its serving certificate expires (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "trustwatch.dev/not-after";
/// Annotation on the Secret: the serving certificate's names, comma-separated.
pub const NAMES_ANNOTATION: &str = "trustwatch.dev/names";
/// Default validity of a serving certificate (and of the CA that signs it).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The serving certificate, its key and the CA bundle that vouches for it (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The CA of this certificate, followed by the previous CA while it is still valid.
    pub ca_bundle: String,
    pub cert: String,
    pub key: String,
    pub not_after: Timestamp,
    /// The names the certificate is valid for (DNS names and IP addresses).
    pub names: Vec<String>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").field("not_after", &self.not_after).field("names", &self.names).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("Kubernetes API error on {what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error("the webhook configuration {0} has no webhooks to give a caBundle to")]
    NoWebhooks(String),
}

impl CertError {
    pub fn reason(&self) -> &'static str {
        match self {
            CertError::Generate(_) => "CertificateGenerationFailed",
            CertError::Kube { .. } => "KubeApiError",
            CertError::NoWebhooks(_) => "NoWebhooks",
        }
    }
}

/// The names a serving certificate must carry: the Service's DNS names in the operator's
/// namespace, and any extra host names or IP addresses (`--webhook-host`).
pub fn serving_names(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    for e in extra {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    names
}

/// Whether the material must be replaced: it names other hosts, or less than a third of its
/// validity is left (so a replica that checks every few minutes rotates well before expiry).
pub fn needs_rotation(m: &TlsMaterial, names: &[String], validity: Duration, now: Timestamp) -> bool {
    let mut have = m.names.clone();
    let mut want = names.to_vec();
    have.sort();
    want.sort();
    let left = m.not_after.duration_since(now);
    have != want || left.as_secs_f64() < validity.as_secs_f64() / 3.0
}

/// A new CA and a serving certificate for `names`, valid from an hour ago (clock skew) for
/// `validity`. The previous material's first CA stays in the bundle, while it is valid, so
/// that the API server keeps trusting the certificate replicas serve until they switch.
pub fn generate(
    names: &[String],
    validity: Duration,
    now: Timestamp,
    previous: Option<&TlsMaterial>,
) -> Result<TlsMaterial, CertError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let start = Duration::from_secs((now.as_second() - 3600).max(0) as u64);
    let not_before = epoch + start;
    let not_after = epoch + start + validity + Duration::from_secs(3600);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "trustwatch webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("trustwatch"));
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let issuer = Issuer::new(ca, ca_key);
    let cert = leaf.signed_by(&key, &issuer)?;

    let mut ca_bundle = ca_cert.pem();
    if let Some(prev) = previous.filter(|p| p.not_after > now)
        && let Some(first) = first_pem(&prev.ca_bundle)
    {
        ca_bundle.push_str(&first);
    }
    let not_after = now + jiff::SignedDuration::try_from(validity).unwrap_or(jiff::SignedDuration::from_hours(24));
    Ok(TlsMaterial { ca_bundle, cert: cert.pem(), key: key.serialize_pem(), not_after, names: names.to_vec() })
}

/// The first PEM block of a bundle.
fn first_pem(bundle: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = bundle.find(END)? + END.len();
    Some(format!("{}\n", bundle[..end].trim_start()))
}

/// The material a Secret holds (`ca.crt`, `tls.crt`, `tls.key` and the annotations); `None`
/// when anything is missing.
pub fn from_secret(secret: &Secret) -> Option<TlsMaterial> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| data.get(k).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let annotations = secret.metadata.annotations.as_ref()?;
    Some(TlsMaterial {
        ca_bundle: text("ca.crt")?,
        cert: text("tls.crt")?,
        key: text("tls.key")?,
        not_after: annotations.get(NOT_AFTER_ANNOTATION)?.parse().ok()?,
        names: annotations.get(NAMES_ANNOTATION)?.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
    })
}

/// The Secret holding `m` (type kubernetes.io/tls).
pub fn to_secret(name: &str, namespace: &str, m: &TlsMaterial, resource_version: Option<String>) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            resource_version,
            labels: Some(BTreeMap::from([(
                crate::controller::MANAGED_BY.0.to_string(),
                crate::controller::MANAGED_BY.1.to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (NOT_AFTER_ANNOTATION.to_string(), m.not_after.to_string()),
                (NAMES_ANNOTATION.to_string(), m.names.join(",")),
            ])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("ca.crt".to_string(), bytes(&m.ca_bundle)),
            ("tls.crt".to_string(), bytes(&m.cert)),
            ("tls.key".to_string(), bytes(&m.key)),
        ])),
        ..Default::default()
    }
}

/// Where the material lives and what it must say.
#[derive(Debug, Clone)]
pub struct CertConfig {
    pub namespace: String,
    pub secret: String,
    pub names: Vec<String>,
    pub validity: Duration,
    /// The Validating- and MutatingWebhookConfiguration whose caBundle the operator keeps.
    pub configuration: String,
}

/// The material every replica agrees on: the Secret's when it is still good, else new
/// material written to it. Replicas race only on the write: creation is refused to all but
/// one (409 AlreadyExists) and a replacement to all but one (409 Conflict on the
/// resourceVersion); the losers read back the winner's.
pub async fn ensure(client: &kube::Client, config: &CertConfig, now: Timestamp) -> Result<TlsMaterial, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let kube_err = |what: &str| {
        let what = format!("Secret {}/{} ({what})", config.namespace, config.secret);
        move |source| CertError::Kube { what, source }
    };
    for _ in 0..3 {
        let existing = api.get_opt(&config.secret).await.map_err(kube_err("get"))?;
        let current = existing.as_ref().and_then(from_secret);
        if let Some(m) = &current
            && !needs_rotation(m, &config.names, config.validity, now)
        {
            return Ok(m.clone());
        }
        let fresh = generate(&config.names, config.validity, now, current.as_ref())?;
        let result = match &existing {
            None => {
                api.create(&PostParams::default(), &to_secret(&config.secret, &config.namespace, &fresh, None)).await
            }
            Some(s) => {
                let rv = s.metadata.resource_version.clone();
                api.replace(
                    &config.secret,
                    &PostParams::default(),
                    &to_secret(&config.secret, &config.namespace, &fresh, rv),
                )
                .await
            }
        };
        match result {
            Ok(_) => {
                tracing::info!(secret = %config.secret, not_after = %fresh.not_after, "webhook serving certificate written");
                return Ok(fresh);
            }
            // Another replica wrote first: read back what it wrote.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(kube_err("write")(e)),
        }
    }
    let existing = api.get(&config.secret).await.map_err(kube_err("get"))?;
    from_secret(&existing).ok_or_else(|| {
        kube_err("read back")(kube::Error::Service(
            format!("Secret {} lost the race and is unreadable", config.secret).into(),
        ))
    })
}

/// Puts `ca_bundle` into both webhook configurations named `configuration`: the
/// ValidatingWebhookConfiguration, and the MutatingWebhookConfiguration when it is installed
/// (`spec.admission.pinDigest`; an install without it has none). Whether either changed.
pub async fn patch_ca_bundle(client: &kube::Client, configuration: &str, ca_bundle: &str) -> Result<bool, CertError> {
    let validating = patch_one::<ValidatingWebhookConfiguration>(client, configuration, ca_bundle, |c| {
        c.webhooks.iter().flatten().map(|w| (w.name.clone(), w.client_config.ca_bundle.clone())).collect()
    });
    let mutating = patch_one::<MutatingWebhookConfiguration>(client, configuration, ca_bundle, |c| {
        c.webhooks.iter().flatten().map(|w| (w.name.clone(), w.client_config.ca_bundle.clone())).collect()
    });
    let (validating, mutating) = futures::join!(validating, mutating);
    let mutating = match mutating {
        Err(CertError::Kube { source: kube::Error::Api(e), .. }) if e.code == 404 => false,
        other => other?,
    };
    Ok(validating? || mutating)
}

/// Puts `ca_bundle` into every webhook of one configuration, unless it is there already.
/// A JSON patch per webhook index, each guarded by a test of the webhook's name, so that a
/// configuration changed in between is refused rather than patched at the wrong place.
async fn patch_one<K>(
    client: &kube::Client,
    configuration: &str,
    ca_bundle: &str,
    webhooks: impl Fn(&K) -> Vec<(String, Option<ByteString>)>,
) -> Result<bool, CertError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let kube_err = |what: &str| {
        let what = format!("{} {configuration} ({what})", K::kind(&()));
        move |source| CertError::Kube { what, source }
    };
    let webhooks = webhooks(&api.get(configuration).await.map_err(kube_err("get"))?);
    if webhooks.is_empty() {
        return Err(CertError::NoWebhooks(configuration.into()));
    }
    let wanted = ByteString(ca_bundle.as_bytes().to_vec());
    if webhooks.iter().all(|(_, b)| b.as_ref() == Some(&wanted)) {
        return Ok(false);
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(ca_bundle.as_bytes());
    let mut ops = vec![];
    for (i, (name, _)) in webhooks.iter().enumerate() {
        ops.push(serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}));
        ops.push(
            serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}),
        );
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops)).expect("a valid JSON patch");
    api.patch(configuration, &PatchParams::default(), &Patch::<()>::Json(patch)).await.map_err(kube_err("patch"))?;
    tracing::info!(kind = &*K::kind(&()), configuration, "webhook caBundle patched");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        serving_names("trustwatch-webhook", "trustwatch-system", &["127.0.0.1".into()])
    }

    #[test]
    fn serving_names_are_the_service_dns_names_and_the_extra_hosts() {
        assert_eq!(
            names(),
            [
                "trustwatch-webhook",
                "trustwatch-webhook.trustwatch-system",
                "trustwatch-webhook.trustwatch-system.svc",
                "trustwatch-webhook.trustwatch-system.svc.cluster.local",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn material_is_rotated_when_a_third_of_its_validity_is_left_or_the_names_change() {
        let now: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let validity = Duration::from_secs(90 * 24 * 3600);
        let m = generate(&names(), validity, now, None).unwrap();
        assert!(!needs_rotation(&m, &names(), validity, now));
        assert!(!needs_rotation(&m, &names(), validity, now + jiff::SignedDuration::from_hours(59 * 24)));
        assert!(needs_rotation(&m, &names(), validity, now + jiff::SignedDuration::from_hours(61 * 24)));
        assert!(needs_rotation(&m, &names()[..4], validity, now));
    }

    #[test]
    fn a_rotation_keeps_the_previous_ca_in_the_bundle_while_it_is_valid() {
        let now: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let validity = Duration::from_secs(3600);
        let old = generate(&names(), validity, now, None).unwrap();
        assert_eq!(old.ca_bundle.matches("BEGIN CERTIFICATE").count(), 1);
        let new = generate(&names(), validity, now, Some(&old)).unwrap();
        assert_eq!(new.ca_bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(new.ca_bundle.ends_with(&old.ca_bundle), "the old CA follows the new one");
        let later = now + jiff::SignedDuration::from_hours(2);
        let newer = generate(&names(), validity, later, Some(&old)).unwrap();
        assert_eq!(newer.ca_bundle.matches("BEGIN CERTIFICATE").count(), 1, "an expired CA is dropped");
    }

    #[test]
    fn the_serving_certificate_verifies_under_its_ca_for_each_name() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let now = Timestamp::now();
        let m = generate(&names(), DEFAULT_VALIDITY, now, None).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(m.ca_bundle.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::fetch::tls_provider(),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(m.cert.as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(now.as_second() as u64));
        use rustls::client::danger::ServerCertVerifier as _;
        for name in ["trustwatch-webhook.trustwatch-system.svc", "127.0.0.1"] {
            let server = ServerName::try_from(name).unwrap();
            verifier.verify_server_cert(&leaf, &[], &server, &[], at).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = ServerName::try_from("evil.example").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], at).is_err());
    }

    #[test]
    fn the_material_survives_a_round_trip_through_its_secret() {
        let m = generate(&names(), DEFAULT_VALIDITY, Timestamp::now(), None).unwrap();
        let s = to_secret(DEFAULT_SECRET, "trustwatch-system", &m, None);
        let back = from_secret(&s).unwrap();
        assert_eq!(back.names, m.names);
        assert_eq!(back.not_after.as_second(), m.not_after.as_second());
        assert_eq!((back.cert, back.key, back.ca_bundle), (m.cert, m.key, m.ca_bundle));
    }
}
