//! Connaisseur's Helm values as TrustRoots and one ImageTrustPolicy.
//!
//! Layouts (Connaisseur's `charts/connaisseur/values.yaml` and docs): Connaisseur 3 keeps
//! `validators` and `policy` under `application` (camelCase keys, features under
//! `application.features`); Connaisseur 2 has them at the top level with snake_case keys
//! (`trust_roots`, `trust_root`, `secret_name`) and top-level features. Keys of both are read.
//!
//! One TrustRoot per validator trust root (`<validator>-<trust root>`); a rule whose options
//! change what a TrustRoot verifies (notation `verificationLevel`, cosign
//! `verifyInTransparencyLog: false`) gets a variant of it. Static validators, keyless cosign
//! trust roots, KMS keys and everything else trustwatch cannot express are reported, and the
//! rule selection of the result is checked against Connaisseur's own on sample images.

use super::names::{Names, label};
use super::pattern::{ConnaisseurVersion, connaisseur_pattern, connaisseur_rule_for, image_string, witnesses};
use super::{ImportError, Imported, empty_trust_root_spec, metadata, pem, policy_spec};
use crate::crd::{
    CertificateSource, CosignTrust, ImageRule, ImageTrustPolicy, KeySource, NotationLevel, NotationTrust,
    NotationTrustStores, RegistryAccess, Require, RootKey, SecretRef, TrustRoot, VerifyTimestampMode,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The Notary server Connaisseur uses when a notaryv1 validator names no `host`.
pub const DEFAULT_NOTARY: &str = "https://notary.docker.io";
/// The namespace label of Connaisseur's namespaced validation.
pub const NAMESPACE_LABEL: &str = "securesystemsengineering.connaisseur/webhook";

/// Choices the values do not make.
#[derive(Debug, Clone)]
pub struct ConnaisseurOptions {
    /// Prepended to every generated name.
    pub name_prefix: String,
    /// Namespace of the Secrets the TrustRoots refer to (the operator's).
    pub secret_namespace: String,
}

impl Default for ConnaisseurOptions {
    fn default() -> Self {
        ConnaisseurOptions { name_prefix: String::new(), secret_namespace: super::DEFAULT_SECRET_NAMESPACE.into() }
    }
}

// ---------------------------------------------------------------------------------------------
// The values
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Validator {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    trust_roots: Vec<Root>,
    host: Option<Value>,
    cert: Option<String>,
    auth: Option<Auth>,
    approve: Option<bool>,
    /// Not a Connaisseur key: read when present, so that a user can give notation identities.
    trusted_identities: Option<Vec<String>>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
struct Root {
    name: String,
    key: Option<String>,
    cert: Option<String>,
    ts_cert: Option<String>,
    keyless: Option<Value>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Auth {
    secret_name: Option<String>,
    username: Option<String>,
    password: Option<String>,
    use_keychain: Option<bool>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Rule {
    pattern: String,
    validator: Option<String>,
    #[serde(default)]
    with: With,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct With {
    trust_root: Option<String>,
    #[serde(default)]
    delegations: Vec<String>,
    threshold: Option<u32>,
    #[serde(default)]
    required: Vec<String>,
    verify_in_transparency_log: Option<bool>,
    #[serde(rename = "verifySCT", alias = "verifySct")]
    verify_sct: Option<bool>,
    verification_level: Option<String>,
    verify_timestamp: Option<String>,
    /// `mutate` or `insecureValidateOnly`: how Connaisseur rewrites admitted pods; trustwatch
    /// verifies the digest a container runs either way.
    #[allow(dead_code)]
    mode: Option<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// `trust_roots` -> `trustRoots`: Connaisseur 2 keys in Connaisseur 3 spelling.
fn camel_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let mut out = String::new();
                    let mut upper = false;
                    for c in k.chars() {
                        if c == '_' {
                            upper = true;
                        } else if upper {
                            out.extend(c.to_uppercase());
                            upper = false;
                        } else {
                            out.push(c);
                        }
                    }
                    (out, camel_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_keys).collect()),
        other => other,
    }
}

fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        Value::Object(_) => Some(true),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Validators to TrustRoots
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Static(bool),
    NotaryV1,
    Cosign,
    Notation,
}

/// A trust root of a validator that maps: its key or certificates, canonical PEM.
#[derive(Debug, Clone)]
struct Anchor {
    name: String,
    pem: String,
    tsa_pem: Option<String>,
}

/// What TrustRoots of one validator share.
#[derive(Debug, Clone)]
struct Model {
    name: String,
    kind: Kind,
    /// Every trust root name, in order (also those that do not map).
    root_names: Vec<String>,
    anchors: Vec<Anchor>,
    /// Why a trust root does not map.
    unmappable: BTreeMap<String, String>,
    server: Option<String>,
    ca_bundle: Option<String>,
    auth_secret: Option<SecretRef>,
    registry: Option<RegistryAccess>,
    rekor_key: Option<String>,
    trusted_identities: Vec<String>,
    /// Comment lines for the TrustRoots (the Secret to create).
    comment: Vec<String>,
}

/// One TrustRoot to emit: which anchors, with which per-rule options.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Wanted {
    validator: String,
    /// Anchor names; several for a Notation `trustRoot: "*"` (one trust policy, several CAs).
    anchors: Vec<String>,
    level: Option<String>,
    verify_timestamp: Option<String>,
    tlog: bool,
}

struct Builder<'a> {
    opts: &'a ConnaisseurOptions,
    out: Imported,
    names: Names,
    emitted: BTreeMap<Wanted, String>,
    commented: BTreeSet<String>,
}

impl Builder<'_> {
    fn unmapped(&mut self, line: String) {
        self.out.unmapped.push(line);
    }

    fn note(&mut self, line: String) {
        if !self.out.notes.contains(&line) {
            self.out.notes.push(line);
        }
    }

    /// The TrustRoot for `w`, emitted on first use.
    fn trust_root(&mut self, m: &Model, w: Wanted) -> String {
        if let Some(name) = self.emitted.get(&w) {
            return name.clone();
        }
        let anchors: Vec<&Anchor> = w.anchors.iter().filter_map(|a| m.anchors.iter().find(|x| &x.name == a)).collect();
        let mut wanted_name = format!("{}{}-", self.opts.name_prefix, m.name);
        if w.anchors.len() == 1 {
            wanted_name.push_str(&w.anchors[0]);
        } else {
            wanted_name.push_str("all");
        }
        for suffix in
            [w.level.as_deref().filter(|l| *l != "strict"), w.verify_timestamp.as_deref()].into_iter().flatten()
        {
            wanted_name.push('-');
            wanted_name.push_str(suffix);
        }
        if m.kind == Kind::Cosign && !w.tlog && m.rekor_key.is_some() {
            wanted_name.push_str("-no-tlog");
        }
        let name = self.names.unique(&wanted_name);
        let mut spec = empty_trust_root_spec();
        match m.kind {
            Kind::NotaryV1 => {
                spec.server = m.server.clone();
                spec.ca_bundle = m.ca_bundle.clone();
                spec.auth_secret_ref = m.auth_secret.clone();
                spec.root_keys =
                    anchors.iter().map(|a| RootKey { name: a.name.clone(), public_key: a.pem.clone() }).collect();
            }
            Kind::Cosign => {
                spec.cosign = Some(CosignTrust {
                    keys: anchors.iter().map(|a| key_source(&a.name, &a.pem)).collect(),
                    annotations: BTreeMap::new(),
                    log_keys: m.rekor_key.iter().filter(|_| w.tlog).map(|k| key_source("rekor", k)).collect(),
                });
                spec.registry = m.registry.clone();
            }
            Kind::Notation => {
                let level = match w.level.as_deref() {
                    Some("permissive") => NotationLevel::Permissive,
                    Some("audit") => NotationLevel::Audit,
                    _ => NotationLevel::Strict,
                };
                spec.notation = Some(NotationTrust {
                    trust_stores: NotationTrustStores {
                        ca: anchors.iter().map(|a| cert_source(&a.name, &a.pem)).collect(),
                        signing_authority: vec![],
                        tsa: anchors
                            .iter()
                            .filter_map(|a| a.tsa_pem.as_ref().map(|p| cert_source(&a.name, p)))
                            .collect(),
                    },
                    trusted_identities: m.trusted_identities.clone(),
                    verification_level: level,
                    overrides: None,
                    verify_timestamp: (w.verify_timestamp.as_deref() == Some("after-cert-expiry"))
                        .then_some(VerifyTimestampMode::AfterCertExpiry),
                    revocation_timeout: None,
                });
                spec.registry = m.registry.clone();
            }
            Kind::Static(_) => unreachable!("static validators have no trust roots"),
        }
        let source = if w.anchors.len() == 1 {
            format!("connaisseur validator {:?}, trust root {:?}", m.name, w.anchors[0])
        } else {
            format!("connaisseur validator {:?}, trust roots {}", m.name, w.anchors.join(", "))
        };
        if !m.comment.is_empty() && self.commented.insert(m.name.clone()) {
            self.out.comments.insert(name.clone(), m.comment.clone());
            let secret = m
                .auth_secret
                .as_ref()
                .or(m.registry.as_ref().and_then(|r| r.auth_secret_ref.as_ref()))
                .map(|s| format!("{}/{}", s.namespace, s.name))
                .unwrap_or_default();
            self.note(format!(
                "validators[{}]: its TrustRoots read Secret {secret}, which must exist: see the comment above TrustRoot {name} in the output",
                m.name
            ));
        }
        self.out.trust_roots.push(TrustRoot { metadata: metadata(&name, &source), spec, status: None });
        self.emitted.insert(w, name.clone());
        name
    }
}

fn key_source(name: &str, pem: &str) -> KeySource {
    KeySource {
        name: name.chars().take(63).collect(),
        public_key: Some(pem.to_string()),
        config_map_key_ref: None,
        secret_key_ref: None,
        rsa_pss: false,
    }
}

fn cert_source(name: &str, pem: &str) -> CertificateSource {
    CertificateSource {
        name: name.chars().take(63).collect(),
        pem: Some(pem.to_string()),
        config_map_key_ref: None,
        secret_key_ref: None,
    }
}

/// PEM certificates, checked by the Notation core's parser.
fn certificates(text: &str) -> Result<String, String> {
    let pem = pem::only(text, "CERTIFICATE")?;
    crate::notation::Cert::parse_many(pem.as_bytes())?;
    Ok(pem)
}

fn secret_ref(name: &str, ns: &str) -> SecretRef {
    SecretRef { name: name.to_string(), namespace: ns.to_string() }
}

impl Builder<'_> {
    fn model(&mut self, v: &Validator) -> Option<Model> {
        let what = format!("validators[{}]", v.name);
        let kind = match v.kind.as_str() {
            "static" => match v.approve {
                Some(a) => Kind::Static(a),
                None => {
                    self.unmapped(format!("{what}: a static validator without approve; ignored"));
                    return None;
                }
            },
            "notaryv1" => Kind::NotaryV1,
            "cosign" => Kind::Cosign,
            "notation" | "notaryv2" => Kind::Notation,
            other => {
                self.unmapped(format!("{what}: validator type {other:?} has no trustwatch equivalent; not emitted"));
                return None;
            }
        };
        let ns = self.opts.secret_namespace.clone();
        let mut m = Model {
            name: v.name.clone(),
            kind,
            root_names: v.trust_roots.iter().map(|r| r.name.clone()).collect(),
            anchors: vec![],
            unmappable: BTreeMap::new(),
            server: None,
            ca_bundle: None,
            auth_secret: None,
            registry: None,
            rekor_key: None,
            trusted_identities: vec![],
            comment: vec![],
        };
        for k in v.extra.keys() {
            if k == "isAcr" && kind == Kind::NotaryV1 {
                self.unmapped(format!(
                    "{what}.isAcr: no trustwatch equivalent (Azure Container Registry's Notary is read like any other)"
                ));
            } else {
                self.unmapped(format!("{what}.{k}: not a key of a Connaisseur {} validator; ignored", v.kind));
            }
        }
        if let Kind::Static(_) = kind {
            return Some(m);
        }
        // Registry or Notary access.
        let auth = v.auth.as_ref();
        for k in auth.map(|a| a.extra.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            self.unmapped(format!("{what}.auth.{k}: not a Connaisseur auth key; ignored"));
        }
        if auth.and_then(|a| a.use_keychain) == Some(true) {
            self.unmapped(format!(
                "{what}.auth.useKeychain: cosign's Kubernetes keychain (workload identity) is not mapped; spec.registry.usePodPullSecrets reads the pods' own pull secrets instead"
            ));
        }
        let cert = match v.cert.as_deref().map(certificates) {
            Some(Ok(pem)) => Some(pem),
            Some(Err(e)) => {
                self.unmapped(format!("{what}.cert: {e}; not mapped"));
                None
            }
            None => None,
        };
        match kind {
            Kind::NotaryV1 => {
                let host = v.host.as_ref().and_then(Value::as_str).map(str::trim).filter(|h| !h.is_empty());
                m.server = Some(match host {
                    None => DEFAULT_NOTARY.to_string(),
                    Some(h) if h.to_ascii_lowercase().starts_with("https://") => h.trim_end_matches('/').to_string(),
                    Some(h) if h.to_ascii_lowercase().starts_with("http://") => {
                        self.unmapped(format!(
                            "{what}.host {h:?}: trustwatch reads Notary servers over https only; validator not emitted"
                        ));
                        return None;
                    }
                    Some(h) => format!("https://{}", h.trim_end_matches('/')),
                });
                m.ca_bundle = cert;
                if let Some(a) = auth {
                    match (&a.secret_name, &a.username, &a.password) {
                        (Some(s), _, _) => {
                            m.auth_secret = Some(secret_ref(s, &ns));
                            m.comment = vec![
                                format!(
                                    "Connaisseur validator {:?} read Notary credentials from Secret {s} in Connaisseur's namespace.",
                                    v.name
                                ),
                                format!(
                                    "This TrustRoot reads Secret {ns}/{s}: keys username and password (or a .dockerconfigjson). Create it:"
                                ),
                                format!(
                                    "  kubectl -n {ns} create secret generic {s} --from-literal=username=<username> --from-literal=password=<password>"
                                ),
                            ];
                        }
                        (None, Some(_), _) | (None, None, Some(_)) => {
                            let s = label(&format!("{}{}-notary-auth", self.opts.name_prefix, v.name), "notary-auth");
                            m.auth_secret = Some(secret_ref(&s, &ns));
                            m.comment = vec![
                                format!(
                                    "Connaisseur validator {:?} had inline Notary credentials (auth.username, auth.password); they are not copied here.",
                                    v.name
                                ),
                                format!("This TrustRoot reads Secret {ns}/{s}: keys username and password. Create it:"),
                                format!(
                                    "  kubectl -n {ns} create secret generic {s} --from-literal=username=<username> --from-literal=password=<password>"
                                ),
                            ];
                        }
                        (None, None, None) => {}
                    }
                }
            }
            Kind::Cosign | Kind::Notation => {
                let mut registry = RegistryAccess { ca_bundle: cert, ..Default::default() };
                if let Some(a) = auth {
                    if let Some(s) = &a.secret_name {
                        registry.auth_secret_ref = Some(secret_ref(s, &ns));
                        m.comment = vec![
                            format!(
                                "Connaisseur validator {:?} read registry credentials from Secret {s} (a .dockerconfigjson) in Connaisseur's namespace.",
                                v.name
                            ),
                            format!("This TrustRoot reads the same Secret from {ns}: copy it there, e.g."),
                            format!(
                                "  kubectl -n <connaisseur namespace> get secret {s} -o yaml | sed 's/namespace: .*/namespace: {ns}/' | kubectl apply -f -"
                            ),
                        ];
                    } else if a.username.is_some() || a.password.is_some() {
                        self.unmapped(format!(
                            "{what}.auth.username/password: {} validators take registry credentials from a .dockerconfigjson Secret (auth.secretName); not mapped",
                            v.kind
                        ));
                    }
                }
                m.registry = (registry != RegistryAccess::default()).then_some(registry);
            }
            Kind::Static(_) => {}
        }
        if v.host.is_some() && kind == Kind::Notation {
            self.unmapped(format!("{what}.host: not a key of a Connaisseur notation validator; ignored"));
        }
        if kind == Kind::Notation {
            m.trusted_identities = match &v.trusted_identities {
                Some(ids) if !ids.is_empty() => ids.clone(),
                _ => {
                    self.note(format!(
                        "{what}: Connaisseur accepts any signer its certificates anchor; the TrustRoots use trustedIdentities [\"*\"]: narrow them to the signers' x509.subject"
                    ));
                    vec!["*".into()]
                }
            };
        } else if v.trusted_identities.is_some() {
            self.unmapped(format!("{what}.trustedIdentities: applies to notation validators only; ignored"));
        }
        // Trust roots.
        if v.trust_roots.is_empty() {
            self.unmapped(format!("{what}: no trust roots (Connaisseur rejects such a validator); not emitted"));
            return None;
        }
        for r in &v.trust_roots {
            let rwhat = format!("{what}.trustRoots[{}]", r.name);
            for k in r.extra.keys() {
                self.unmapped(format!("{rwhat}.{k}: not a Connaisseur trust root key; ignored"));
            }
            match self.anchor(kind, r) {
                Ok(a) => m.anchors.push(a),
                Err(why) => {
                    self.unmapped(format!("{rwhat}: {why}; not emitted"));
                    m.unmappable.insert(r.name.clone(), why);
                }
            }
        }
        if kind == Kind::Cosign && !m.anchors.is_empty() {
            self.cosign_host(v, &mut m, &what);
        }
        Some(m)
    }

    fn cosign_host(&mut self, v: &Validator, m: &mut Model, what: &str) {
        let (rekor, rekor_pubkey, keyless_keys) = match &v.host {
            None => (None, None, vec![]),
            // Connaisseur 2: `host` is the Rekor URL.
            Some(Value::String(url)) => (Some(url.clone()), None, vec![]),
            Some(Value::Object(h)) => {
                let s = |k: &str| h.get(k).and_then(Value::as_str).map(str::to_string);
                let keyless: Vec<String> = ["fulcioCert", "ctLogPubkey"]
                    .into_iter()
                    .filter(|k| h.contains_key(*k))
                    .map(String::from)
                    .collect();
                for k in
                    h.keys().filter(|k| !["rekor", "rekorPubkey", "fulcioCert", "ctLogPubkey"].contains(&k.as_str()))
                {
                    self.unmapped(format!("{what}.host.{k}: not a Connaisseur cosign host key; ignored"));
                }
                (s("rekor"), s("rekorPubkey"), keyless)
            }
            Some(_) => (None, None, vec![]),
        };
        for k in keyless_keys {
            self.unmapped(format!(
                "{what}.host.{k}: for keyless signatures, which trustwatch does not verify; not mapped"
            ));
        }
        match rekor_pubkey.as_deref().map(|p| pem::only(p, "PUBLIC KEY")) {
            Some(Ok(pem)) => match crate::cosign::keys::LogKey::from_pem("rekor", &pem) {
                Ok(_) => m.rekor_key = Some(pem),
                Err(e) => self.unmapped(format!("{what}.host.rekorPubkey: {e}; not mapped")),
            },
            Some(Err(e)) => self.unmapped(format!("{what}.host.rekorPubkey: {e}; not mapped")),
            None => {
                let log = rekor.as_deref().unwrap_or("rekor.sigstore.dev");
                self.unmapped(format!(
                    "{what}: Connaisseur checks signatures against the transparency log {log} (unless a rule sets verifyInTransparencyLog: false); trustwatch checks a log only with its public key in spec.cosign.logKeys, which the values do not give (host.rekorPubkey): the log check is not mapped"
                ));
            }
        }
    }

    fn anchor(&mut self, kind: Kind, r: &Root) -> Result<Anchor, String> {
        if r.keyless.is_some() {
            return Err("keyless (Fulcio certificate) trust roots cannot be mapped: trustwatch verifies cosign signatures with keys".into());
        }
        match kind {
            Kind::NotaryV1 => {
                let key = r.key.as_deref().ok_or("no key")?;
                let pem = pem::blocks(key).map_err(|e| format!("key {e}"))?;
                let pem: String = pem.iter().map(|b| pem::encode(&b.label, &b.der)).collect();
                crate::tuf::PinnedKey::from_pem(&r.name, &pem)?;
                Ok(Anchor { name: r.name.clone(), pem, tsa_pem: None })
            }
            Kind::Cosign => {
                let key = r.key.as_deref().ok_or("no key")?;
                if key.contains("://") && !key.contains("-----BEGIN") {
                    return Err(format!(
                        "the KMS key {:?} cannot be mapped: export its public key (cosign public-key --key ...) and use it as PEM",
                        key.trim()
                    ));
                }
                let pem = pem::only(key, "PUBLIC KEY").map_err(|e| format!("key {e}"))?;
                crate::cosign::keys::CosignKey::from_pem(&r.name, &pem)?;
                Ok(Anchor { name: r.name.clone(), pem, tsa_pem: None })
            }
            Kind::Notation => {
                let cert = r.cert.as_deref().or(r.key.as_deref()).ok_or("no cert")?;
                let pem = certificates(cert).map_err(|e| format!("cert {e}"))?;
                let tsa_pem = match r.ts_cert.as_deref().map(certificates) {
                    Some(Ok(p)) => Some(p),
                    Some(Err(e)) => return Err(format!("tsCert {e}")),
                    None => None,
                };
                Ok(Anchor { name: r.name.clone(), pem, tsa_pem })
            }
            Kind::Static(_) => unreachable!(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Policy rules to image rules
// ---------------------------------------------------------------------------------------------

/// How a rule ended up.
#[derive(Debug, Clone)]
enum Outcome {
    /// An image rule of spec.images.
    Emitted,
    /// Not emitted: why (the consequence for its images is appended later).
    Dropped(String),
    /// Not emitted, with its own complete line already reported (its pattern does not translate).
    Reported,
}

/// The trust roots an image rule needs: the anchors of each TrustRoot, and how they combine.
struct Roots {
    groups: Vec<Vec<String>>,
    require: Require,
}

impl Roots {
    fn each(names: Vec<String>, require: Require) -> Roots {
        Roots { groups: names.into_iter().map(|n| vec![n]).collect(), require }
    }
}

impl Builder<'_> {
    /// The TrustRoots for a rule's `with`, per validator kind (Connaisseur's semantics quoted).
    fn rule_roots(&mut self, m: &Model, with: &With, what: &str) -> Result<Roots, String> {
        let trust_root = with.trust_root.as_deref().filter(|t| !t.is_empty()).unwrap_or("default");
        // Connaisseur basics.md: "If no trust root is specified, the trust root with name
        // `default` is used if it exists."
        let named = |name: &str| -> Result<String, String> {
            if !m.root_names.iter().any(|n| n == name) {
                return Err(format!(
                    "validator {:?} has no trust root {name:?} (Connaisseur fails images under this rule)",
                    m.name
                ));
            }
            if let Some(why) = m.unmappable.get(name) {
                return Err(format!("its trust root {name:?} could not be mapped ({why})"));
            }
            Ok(name.to_string())
        };
        let mappable_all = |b: &mut Self| -> Vec<String> {
            for n in m.root_names.iter().filter(|n| m.unmappable.contains_key(*n)) {
                b.unmapped(format!(
                    "{what}: trust root {n:?} of validator {:?} could not be mapped; the rule uses the others",
                    m.name
                ));
            }
            m.anchors.iter().map(|a| a.name.clone()).collect()
        };
        match m.kind {
            Kind::NotaryV1 => {
                if with.threshold.is_some() || !with.required.is_empty() {
                    self.unmapped(format!("{what}: with.threshold and with.required apply to cosign validators; Connaisseur ignores them here, and so does the import"));
                }
                if trust_root == "*" {
                    // Connaisseur `validateRoot`: "for each key, verify that at least one
                    // signature is valid": the root metadata must be signed by every key.
                    let all = mappable_all(self);
                    if all.is_empty() {
                        return Err("none of its trust roots could be mapped".into());
                    }
                    Ok(Roots::each(all, Require::AllOf))
                } else {
                    Ok(Roots::each(vec![named(trust_root)?], Require::AnyOf))
                }
            }
            Kind::Notation => {
                if with.threshold.is_some() || !with.required.is_empty() {
                    self.unmapped(format!("{what}: with.threshold and with.required apply to cosign validators; Connaisseur ignores them here, and so does the import"));
                }
                if trust_root == "*" {
                    // Connaisseur `setUpTrustPolicy`: one trust policy whose trustStores list
                    // `ca:<name>` of every trust root: any of them anchors a signature.
                    let all = mappable_all(self);
                    if all.is_empty() {
                        return Err("none of its trust roots could be mapped".into());
                    }
                    Ok(Roots { groups: vec![all], require: Require::AnyOf })
                } else {
                    Ok(Roots::each(vec![named(trust_root)?], Require::AnyOf))
                }
            }
            Kind::Cosign => self.cosign_roots(m, with, trust_root, what, named),
            Kind::Static(_) => unreachable!(),
        }
    }

    fn cosign_roots(
        &mut self,
        m: &Model,
        with: &With,
        trust_root: &str,
        what: &str,
        named: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Roots, String> {
        let t = with.threshold.unwrap_or(0) as usize;
        let req = &with.required;
        for r in req {
            if !m.root_names.contains(r) {
                return Err(format!("with.required names {r:?}, which validator {:?} lacks", m.name));
            }
        }
        if trust_root != "*" {
            // Connaisseur `ValidateImage`: only the named trust root is checked, and the
            // threshold applies to "*" only; `required` must be among the validating roots.
            if req.iter().any(|r| r != trust_root) {
                return Err(format!(
                    "with.required {req:?} with trustRoot {trust_root:?}: Connaisseur only checks {trust_root:?} and so denies every image"
                ));
            }
            if t > 0 {
                self.note(format!(
                    "{what}: with.threshold applies to trustRoot \"*\" only; Connaisseur ignores it here"
                ));
            }
            return Ok(Roots::each(vec![named(trust_root)?], Require::AnyOf));
        }
        let all: Vec<String> = m.root_names.clone();
        // Connaisseur: "As neither threshold nor required are specified, Connaisseur will
        // require signatures of all trust roots"; with `required`, those trust roots must have
        // signed; with `threshold`, that many distinct trust roots.
        let (names, require) = if !req.is_empty() && t <= req.len() {
            (req.clone(), Require::AllOf)
        } else if req.is_empty() && t == 0 {
            (all.clone(), Require::AllOf)
        } else if t > all.len() {
            return Err(format!(
                "with.threshold {t} exceeds the {} trust roots of validator {:?}: Connaisseur denies every image",
                all.len(),
                m.name
            ));
        } else if t == all.len() {
            (all.clone(), Require::AllOf)
        } else if t == 1 && req.is_empty() {
            (all.clone(), Require::AnyOf)
        } else {
            self.unmapped(format!(
                "{what}: with.threshold {t} of {} trust roots{} cannot be expressed (trustwatch combines trust roots with AnyOf or AllOf); emitted AllOf over all {}, which is stricter",
                all.len(),
                if req.is_empty() { String::new() } else { format!(" with required {req:?}") },
                all.len()
            ));
            (all.clone(), Require::AllOf)
        };
        let mut mapped = vec![];
        for n in names {
            match m.unmappable.get(&n) {
                Some(_) => self.unmapped(format!(
                    "{what}: trust root {n:?} of validator {:?} could not be mapped; the rule uses the others",
                    m.name
                )),
                None => mapped.push(n),
            }
        }
        if mapped.is_empty() {
            return Err("none of its trust roots could be mapped".into());
        }
        Ok(Roots::each(mapped, require))
    }

    fn rule(&mut self, m: &Model, rule: &Rule, pattern: String, what: &str) -> Result<ImageRule, String> {
        let with = &rule.with;
        for k in with.extra.keys().chain(rule.extra.keys()) {
            let hint = if k == "key" { " (Connaisseur 1 spelling; Connaisseur 2 and 3 read trustRoot)" } else { "" };
            self.unmapped(format!("{what}: {k:?} is not a Connaisseur rule option{hint}; ignored"));
        }
        let mut signers = vec![];
        let mut w_level = None;
        let mut w_ts = None;
        let mut tlog = true;
        match m.kind {
            Kind::NotaryV1 => {
                // Connaisseur notaryv1.md: "Connaisseur will enforce that *all* delegations must
                // have signed a matching image."
                signers = with.delegations.clone();
                if signers.is_empty() {
                    self.note("Connaisseur requires targets/releases when a repository has delegations and no with.delegations is set; trustwatch then resolves as docker trust does (targets/releases, then targets, then other delegations)".into());
                }
            }
            Kind::Cosign => {
                if with.verify_in_transparency_log == Some(false) {
                    tlog = false;
                }
                if with.verify_sct.is_some() {
                    self.unmapped(format!(
                        "{what}: with.verifySCT is for keyless signatures, which trustwatch does not verify; ignored"
                    ));
                }
            }
            Kind::Notation => {
                w_level = match with.verification_level.as_deref() {
                    None | Some("strict") => None,
                    Some(l @ ("permissive" | "audit")) => Some(l.to_string()),
                    Some("skip") => {
                        return Err(
                            "with.verificationLevel skip verifies nothing, which a TrustRoot cannot express".into()
                        );
                    }
                    Some(other) => {
                        return Err(format!("with.verificationLevel {other:?} is not strict, permissive or audit"));
                    }
                };
                w_ts = match with.verify_timestamp.as_deref() {
                    None | Some("always") => None,
                    Some("afterCertExpiry") => Some("after-cert-expiry".to_string()),
                    Some(other) => {
                        return Err(format!("with.verifyTimestamp {other:?} is not always or afterCertExpiry"));
                    }
                };
            }
            Kind::Static(_) => unreachable!(),
        }
        if m.kind != Kind::NotaryV1 && !with.delegations.is_empty() {
            self.unmapped(format!("{what}: with.delegations applies to notaryv1 validators; ignored"));
        }
        if m.kind != Kind::Cosign && (with.verify_in_transparency_log.is_some() || with.verify_sct.is_some()) {
            self.unmapped(format!(
                "{what}: with.verifyInTransparencyLog and with.verifySCT apply to cosign validators; ignored"
            ));
        }
        if m.kind != Kind::Notation && (with.verification_level.is_some() || with.verify_timestamp.is_some()) {
            self.unmapped(format!(
                "{what}: with.verificationLevel and with.verifyTimestamp apply to notation validators; ignored"
            ));
        }
        let roots = self.rule_roots(m, with, what)?;
        let mut names = vec![];
        for anchors in roots.groups {
            let w = Wanted {
                validator: m.name.clone(),
                anchors,
                level: w_level.clone(),
                verify_timestamp: w_ts.clone(),
                tlog,
            };
            names.push(self.trust_root(m, w));
        }
        let (trust_root, trust_roots, require) =
            if names.len() == 1 { (names.pop(), vec![], None) } else { (None, names, Some(roots.require)) };
        Ok(ImageRule { pattern, trust_root, trust_roots, require, signers })
    }
}

/// The image rules made so far and what became of each Connaisseur rule.
#[derive(Default)]
struct Rules {
    images: Vec<ImageRule>,
    /// For each image rule, the index of its Connaisseur rule.
    origin: Vec<usize>,
    outcomes: Vec<Outcome>,
    translated: Vec<Option<super::pattern::Translation>>,
}

impl Builder<'_> {
    fn policy_rule(
        &mut self,
        i: usize,
        r: Option<&Rule>,
        models: &BTreeMap<String, Model>,
        version: ConnaisseurVersion,
        rs: &mut Rules,
    ) {
        let Some(r) = r else {
            rs.outcomes.push(Outcome::Reported);
            rs.translated.push(None);
            return;
        };
        let what = format!("policy[{i}] {:?}", r.pattern);
        let t = match connaisseur_pattern(version, &r.pattern) {
            Ok(t) => t,
            Err(e) => {
                self.unmapped(format!("{what}: {e}; not emitted"));
                rs.outcomes.push(Outcome::Reported);
                rs.translated.push(None);
                return;
            }
        };
        for n in &t.notes {
            self.note(format!("{what}: {n}"));
        }
        rs.translated.push(Some(t.clone()));
        // Connaisseur basics.md: "If no validator is specified, the validator with name
        // `default` is used if it exists."
        let vname = r.validator.as_deref().filter(|v| !v.is_empty()).unwrap_or("default");
        let Some(m) = models.get(vname) else {
            rs.outcomes.push(Outcome::Dropped(format!(
                "validator {vname:?} does not exist or could not be mapped (Connaisseur fails images under this rule)"
            )));
            return;
        };
        if let Kind::Static(approve) = m.kind {
            rs.outcomes.push(Outcome::Dropped(if approve {
                format!("validator {vname:?} is static (approve: true): trustwatch has no image rule without verification")
            } else {
                format!("validator {vname:?} is static (approve: false): trustwatch cannot deny an image without verifying it")
            }));
            return;
        }
        if let Some(tag) = &t.tag {
            self.unmapped(format!(
                "{what}: the tag filter {tag:?} cannot be expressed: the rule covers every tag of {}",
                t.pattern
            ));
        }
        if let Some(j) = rs.images.iter().position(|x| x.pattern == t.pattern) {
            rs.outcomes.push(Outcome::Dropped(format!(
                "it maps to the same repository pattern {:?} as policy[{}]",
                t.pattern, rs.origin[j]
            )));
            return;
        }
        match self.rule(m, r, t.pattern.clone(), &what) {
            Ok(rule) => {
                rs.outcomes.push(Outcome::Emitted);
                rs.images.push(rule);
                rs.origin.push(i);
            }
            Err(e) => rs.outcomes.push(Outcome::Dropped(e)),
        }
    }
}

/// Imports Connaisseur Helm values (`source` names the file in messages).
pub fn import(values_yaml: &str, source: &str, opts: &ConnaisseurOptions) -> Result<Imported, ImportError> {
    let values: Value = serde_saphyr::from_str(values_yaml)
        .map_err(|e| ImportError::InvalidYaml { path: source.to_string(), detail: e.to_string() })?;
    let app = values.get("application").filter(|a| a.get("validators").is_some());
    let (version, root) = match app {
        Some(app) => (ConnaisseurVersion::V3, app),
        None if values.get("validators").is_some() => (ConnaisseurVersion::V2, &values),
        None if values.get("notaries").is_some() => {
            return Err(ImportError::UnsupportedConnaisseurVersion {
                path: source.to_string(),
                detail: "Connaisseur 1 values (notaries, rootKeys) are not supported: migrate them to the 2.x layout (validators, policy) first".into(),
            });
        }
        None => return Err(ImportError::NotConnaisseurValues { path: source.to_string() }),
    };
    let root = camel_keys(root.clone());
    let features = match version {
        ConnaisseurVersion::V3 => root.get("features").cloned().unwrap_or(Value::Null),
        ConnaisseurVersion::V2 => root.clone(),
    };
    let mut b = Builder {
        opts,
        out: Imported::default(),
        names: Names::default(),
        emitted: BTreeMap::new(),
        commented: BTreeSet::new(),
    };

    // Validators, in order; TrustRoots of every mappable trust root.
    let mut models: BTreeMap<String, Model> = BTreeMap::new();
    for (i, v) in root.get("validators").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let v: Validator = match serde_json::from_value(v.clone()) {
            Ok(v) => v,
            Err(e) => {
                b.unmapped(format!("validators[{i}]: {e}; ignored"));
                continue;
            }
        };
        if models.contains_key(&v.name) {
            b.unmapped(format!("validators[{}]: a second validator of that name; ignored", v.name));
            continue;
        }
        if let Some(m) = b.model(&v) {
            for a in m.anchors.clone() {
                b.trust_root(
                    &m,
                    Wanted {
                        validator: m.name.clone(),
                        anchors: vec![a.name],
                        level: None,
                        verify_timestamp: None,
                        tlog: true,
                    },
                );
            }
            models.insert(m.name.clone(), m);
        }
    }

    // Policy rules.
    let rules: Vec<Value> = root.get("policy").and_then(Value::as_array).cloned().unwrap_or_default();
    if rules.is_empty() {
        b.unmapped("policy: no rules (Connaisseur denies every image); no ImageTrustPolicy".into());
    }
    let mut parsed: Vec<Option<Rule>> = vec![];
    for (i, r) in rules.iter().enumerate() {
        match serde_json::from_value::<Rule>(r.clone()) {
            Ok(r) => parsed.push(Some(r)),
            Err(e) => {
                b.unmapped(format!("policy[{i}]: {e}; ignored"));
                parsed.push(None);
            }
        }
    }
    let mut rs = Rules::default();
    let mut rule_lines: Vec<Vec<String>> = vec![];
    for (i, r) in parsed.iter().enumerate() {
        // The lines about one rule stay together, in rule order (see below).
        let start = b.out.unmapped.len();
        b.policy_rule(i, r.as_ref(), &models, version, &mut rs);
        rule_lines.push(b.out.unmapped.split_off(start));
    }
    let Rules { images, origin, outcomes, translated } = rs;
    let mut spec = policy_spec(images);

    // Rule selection: for sample images of every rule, the rule Connaisseur applies and the one
    // trustwatch applies must be the same rule.
    let emulated: Vec<Option<&str>> = parsed
        .iter()
        .map(|r| r.as_ref().map(|r| r.pattern.as_str()).filter(|p| !p.contains(['[', ']', '{', '}', '\\', '!'])))
        .collect();
    let static_deny = |i: usize| {
        let v = parsed[i].as_ref().and_then(|r| r.validator.as_deref()).filter(|v| !v.is_empty()).unwrap_or("default");
        models.get(v).is_some_and(|m| m.kind == Kind::Static(false))
    };
    let mut consequences: BTreeMap<usize, Vec<(Option<usize>, String)>> = BTreeMap::new();
    let mut differences: Vec<String> = vec![];
    for (i, t) in translated.iter().enumerate() {
        let Some(t) = t else { continue };
        let tag = t.tag.as_deref().map(|t| t.replace('*', "w")).unwrap_or_else(|| "latest".into());
        for repo in witnesses(&t.pattern) {
            let image = format!("{repo}:{tag}");
            let c = connaisseur_rule_for(version, &emulated, &image_string(version, &repo, &tag));
            let tw = spec.rule_for(&repo).and_then(|r| spec.images.iter().position(|x| x.pattern == r.pattern));
            let tw_origin = tw.map(|j| origin[j]);
            if c == tw_origin {
                continue;
            }
            let tw_text = match tw {
                Some(j) => format!(
                    "trustwatch applies policy[{}] {:?}",
                    origin[j],
                    parsed[origin[j]].as_ref().map(|r| r.pattern.as_str()).unwrap_or("")
                ),
                None => "trustwatch reports them NotCovered".to_string(),
            };
            match c {
                Some(ci) if !matches!(outcomes[ci], Outcome::Emitted) => {
                    // What becomes of the images of a rule that was not emitted.
                    if ci == i {
                        let list = consequences.entry(ci).or_default();
                        if !list.iter().any(|(target, _)| *target == tw) {
                            list.push((tw, image.clone()));
                        }
                    }
                }
                Some(ci) => {
                    let line = format!(
                        "rule selection differs for images such as {image}: Connaisseur applies policy[{ci}] {:?}, {tw_text}",
                        parsed[ci].as_ref().map(|r| r.pattern.as_str()).unwrap_or("")
                    );
                    if !differences.contains(&line) {
                        differences.push(line);
                    }
                }
                None => {
                    let line = format!(
                        "images such as {image} match no Connaisseur rule (Connaisseur denies them), but {tw_text}"
                    );
                    if !differences.contains(&line) {
                        differences.push(line);
                    }
                }
            }
        }
    }
    for (i, (o, lines)) in outcomes.iter().zip(rule_lines).enumerate() {
        b.out.unmapped.extend(lines);
        if let Outcome::Dropped(why) = o {
            let pattern = parsed[i].as_ref().map(|r| r.pattern.as_str()).unwrap_or("");
            let mut line = format!("policy[{i}] {pattern:?}: {why}; not emitted");
            let fates: Vec<String> = consequences
                .get(&i)
                .into_iter()
                .flatten()
                .map(|(target, image)| match target {
                    Some(j) => format!(
                        "its images (e.g. {image}) fall under policy[{}] {:?} instead",
                        origin[*j], spec.images[*j].pattern
                    ),
                    None if static_deny(i) => "its images are NotCovered (reported, not failing; spec.unmatchedImages: Fail would count every image no rule covers as failing)".to_string(),
                    None => "its images are NotCovered (reported, not failing)".to_string(),
                })
                .collect();
            if !fates.is_empty() {
                line.push_str(": ");
                line.push_str(&fates.join("; "));
            }
            b.unmapped(line);
        }
    }
    for d in differences {
        b.unmapped(d);
    }
    // Connaisseur basics.md: "Should an image match none of the rules, Connaisseur will deny
    // the request".
    if !translated.iter().flatten().any(|t| t.pattern == "**") {
        b.note("no rule matches every image (\"*:*\"): Connaisseur denies images no rule matches; trustwatch reports them NotCovered (spec.unmatchedImages: Fail counts them as failing)".into());
    }
    if version == ConnaisseurVersion::V3 && translated.iter().any(Option::is_some) {
        b.note("Connaisseur 3 matches a pattern anywhere in the image name (it adds a leading and a trailing `*`); trustwatch patterns match whole repositories".into());
    }

    // Features.
    let detection = truthy(features.get("detectionMode")).unwrap_or(false);
    let namespaced = match version {
        ConnaisseurVersion::V3 => features.get("namespacedValidation").filter(|v| truthy(Some(v)) == Some(true)),
        ConnaisseurVersion::V2 => {
            features.get("namespacedValidation").filter(|v| truthy(v.get("enabled")) == Some(true))
        }
    };
    if let Some(nv) = namespaced {
        // Connaisseur's webhook: `NotIn [ignore]` by default, `In [validate]` with mode validate.
        let validate = nv.get("mode").and_then(Value::as_str) == Some("validate");
        spec.namespace_selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAMESPACE_LABEL.into(),
                operator: if validate { "In" } else { "NotIn" }.into(),
                values: Some(vec![if validate { "validate" } else { "ignore" }.into()]),
            }]),
            match_labels: None,
        });
        b.note(format!(
            "namespacedValidation ({}) is spec.namespaceSelector on the label {NAMESPACE_LABEL}; it replaces trustwatch's default exclusion of kube-system and the operator's namespace",
            if validate { "validate" } else { "ignore" }
        ));
    }
    if values.get("alerting").is_some() || root.get("alerting").is_some() {
        b.unmapped("alerting: Connaisseur's alert receivers are not mapped; trustwatch reports through events, metrics and its Prometheus alert rules".into());
    }
    if !spec.images.is_empty() {
        let name = label(&format!("{}connaisseur", opts.name_prefix), "connaisseur");
        b.note(if detection {
            "detectionMode is on (Connaisseur only warns): the ImageTrustPolicy has action Audit, which reports only".to_string()
        } else {
            "Connaisseur denies untrusted images; the ImageTrustPolicy has action Audit (report only): spec.action: Quarantine is trustwatch's stronger equivalent (it isolates running pods that fail), set it knowingly".to_string()
        });
        b.out.policy =
            Some(ImageTrustPolicy { metadata: metadata(&name, &format!("connaisseur {source}")), spec, status: None });
    }
    let mut out = b.out;
    out.keep_valid();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connaisseur_2_keys_read_like_connaisseur_3_keys() {
        let v = camel_keys(serde_json::json!({"trust_roots": [{"name": "a", "key": "x_y"}], "secret_name": "s"}));
        assert_eq!(v, serde_json::json!({"trustRoots": [{"name": "a", "key": "x_y"}], "secretName": "s"}));
    }

    #[test]
    fn values_without_validators_or_in_the_1_x_layout_are_input_errors() {
        let opts = ConnaisseurOptions::default();
        assert_eq!(import("foo: 1\n", "v.yaml", &opts).unwrap_err().reason(), "NotConnaisseurValues");
        assert_eq!(import("notaries: []\n", "v.yaml", &opts).unwrap_err().reason(), "UnsupportedConnaisseurVersion");
        assert_eq!(import("a: [\n", "v.yaml", &opts).unwrap_err().reason(), "InvalidYaml");
    }
}
