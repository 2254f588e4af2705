//! notation's trust policy and trust store as Notation TrustRoots and one ImageTrustPolicy.
//!
//! One TrustRoot per trust policy statement, its named stores' certificates inline as PEM;
//! one image rule per registry scope. The statement's level, overrides, `verifyTimestamp` and
//! `trustedIdentities` carry over as written. Parsing and validation are the Notation core's
//! ([`TrustPolicyDocument::from_json`], [`TrustStore::load_dir`]).

use super::names::{Names, label};
use super::pattern::notation_scope;
use super::{ImportError, Imported, empty_trust_root_spec, metadata, pem, policy_spec};
use crate::crd::{
    CertificateSource, CheckAction, ImageRule, ImageTrustPolicy, NotationLevel, NotationOverrides, NotationTrust,
    NotationTrustStores, RegistryAccess, SecretRef, TrustRoot, VerifyTimestampMode,
};
use crate::notation::{Level, StoreType, TrustPolicy, TrustPolicyDocument, TrustStore, VerifyTimestamp};
use serde_json::Value;
use std::path::Path;

/// The largest `pem` of one CertificateSource (the CRD's bound).
const MAX_SOURCE_PEM: usize = 32768;
/// The most CertificateSources per store type (the CRD's bound).
const MAX_SOURCES: usize = 16;

/// Choices the files do not make.
#[derive(Debug, Clone, Default)]
pub struct NotationOptions {
    /// Prepended to every generated name.
    pub name_prefix: String,
    /// `spec.registry.authSecretRef` of every TrustRoot.
    pub registry_secret: Option<SecretRef>,
    /// `spec.registry.plainHTTP` of every TrustRoot.
    pub plain_http: bool,
}

/// The files of a notation configuration, read.
#[derive(Debug, Clone)]
pub struct NotationInput {
    pub policy_path: String,
    pub policy_json: Vec<u8>,
    pub store: TrustStore,
}

fn read_policy(path: &Path) -> Result<Vec<u8>, ImportError> {
    let unreadable =
        |e: std::io::Error| ImportError::Unreadable { path: path.display().to_string(), detail: e.to_string() };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.len() > crate::notation::policy::MAX_POLICY_BYTES as u64 {
        return Err(ImportError::InvalidNotationConfig { detail: format!("{} is too large", path.display()) });
    }
    std::fs::read(path).map_err(unreadable)
}

fn read_store(dir: &Path) -> Result<TrustStore, ImportError> {
    if !dir.is_dir() {
        return Err(ImportError::Unreadable {
            path: dir.display().to_string(),
            detail: "not a directory (expected notation's truststore, holding x509/)".into(),
        });
    }
    TrustStore::load_dir(dir).map_err(|e| ImportError::InvalidNotationConfig { detail: e.to_string() })
}

/// `--trust-policy FILE --trust-store DIR`.
pub fn load_files(trust_policy: &Path, trust_store: &Path) -> Result<NotationInput, ImportError> {
    Ok(NotationInput {
        policy_path: trust_policy.display().to_string(),
        policy_json: read_policy(trust_policy)?,
        store: read_store(trust_store)?,
    })
}

/// `--notation-config DIR` (`$XDG_CONFIG_HOME/notation`): `trustpolicy.json` (notation 1.x), else
/// `trustpolicy.oci.json` (notation 2.x), and `truststore/`, as
/// [`crate::notation::load_notation_config`] chooses them.
pub fn load_config_dir(dir: &Path) -> Result<NotationInput, ImportError> {
    let v1 = dir.join("trustpolicy.json");
    let policy = if v1.is_file() { v1 } else { dir.join("trustpolicy.oci.json") };
    load_files(&policy, &dir.join("truststore"))
}

/// What the parsed document does not keep verbatim: per statement, the identities, overrides and
/// `verifyTimestamp` as written.
#[derive(Default)]
struct Raw {
    trusted_identities: Vec<String>,
    overrides: Vec<(String, String)>,
}

fn raw_statements(json: &[u8]) -> std::collections::BTreeMap<String, Raw> {
    let doc: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
    let mut out = std::collections::BTreeMap::new();
    for p in doc.get("trustPolicies").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = p.get("name").and_then(Value::as_str) else { continue };
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
        };
        let overrides = p
            .pointer("/signatureVerification/override")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        out.insert(name.to_string(), Raw { trusted_identities: strings(p.get("trustedIdentities")), overrides });
    }
    out
}

fn check_action(v: &str) -> Option<CheckAction> {
    match v {
        "enforce" => Some(CheckAction::Enforce),
        "log" => Some(CheckAction::Log),
        "skip" => Some(CheckAction::Skip),
        _ => None,
    }
}

/// The named stores of a statement as CertificateSources; `Err` names a missing store.
fn sources(policy: &TrustPolicy, store: &TrustStore, t: StoreType) -> Result<Vec<CertificateSource>, String> {
    let mut out = vec![];
    for r in policy.stores_of(t) {
        let certs = store
            .get(r)
            .ok_or_else(|| format!("trust store {}:{} does not exist in the trust store", t.as_str(), r.name))?;
        let mut chunk = String::new();
        let mut chunks = vec![];
        for c in certs {
            let block = pem::encode("CERTIFICATE", c.der());
            if !chunk.is_empty() && chunk.len() + block.len() > MAX_SOURCE_PEM {
                chunks.push(std::mem::take(&mut chunk));
            }
            chunk.push_str(&block);
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        for (i, pem) in chunks.into_iter().enumerate() {
            let base: String = r.name.chars().take(if i == 0 { 63 } else { 59 }).collect();
            let name = if i == 0 { base } else { format!("{base}-{}", i + 1) };
            out.push(CertificateSource { name, pem: Some(pem), config_map_key_ref: None, secret_key_ref: None });
        }
    }
    if out.len() > MAX_SOURCES {
        return Err(format!("its {} stores hold more than {MAX_SOURCES} certificate groups", t.as_str()));
    }
    Ok(out)
}

fn level(l: Level) -> Option<NotationLevel> {
    match l {
        Level::Strict => Some(NotationLevel::Strict),
        Level::Permissive => Some(NotationLevel::Permissive),
        Level::Audit => Some(NotationLevel::Audit),
        Level::Skip => None,
    }
}

/// One statement as a Notation TrustRootSpec.
fn statement_spec(
    policy: &TrustPolicy,
    raw: Option<&Raw>,
    store: &TrustStore,
    opts: &NotationOptions,
) -> Result<crate::crd::TrustRootSpec, String> {
    let verification_level = level(policy.actions.level).ok_or("level skip")?;
    let trust_stores = NotationTrustStores {
        ca: sources(policy, store, StoreType::Ca)?,
        signing_authority: sources(policy, store, StoreType::SigningAuthority)?,
        tsa: sources(policy, store, StoreType::Tsa)?,
    };
    if trust_stores.ca.is_empty() && trust_stores.signing_authority.is_empty() {
        return Err("its ca and signingAuthority stores hold no certificate".into());
    }
    let mut overrides = NotationOverrides::default();
    for (k, v) in raw.map(|r| r.overrides.as_slice()).unwrap_or_default() {
        let action = check_action(v);
        match k.as_str() {
            "authenticity" => overrides.authenticity = action,
            "authenticTimestamp" => overrides.authentic_timestamp = action,
            "expiry" => overrides.expiry = action,
            "revocation" => overrides.revocation = action,
            _ => {}
        }
    }
    let registry = (opts.registry_secret.is_some() || opts.plain_http).then(|| RegistryAccess {
        auth_secret_ref: opts.registry_secret.clone(),
        plain_http: opts.plain_http,
        ..Default::default()
    });
    let mut spec = empty_trust_root_spec();
    spec.notation = Some(NotationTrust {
        trust_stores,
        trusted_identities: raw.map(|r| r.trusted_identities.clone()).unwrap_or_default(),
        verification_level,
        overrides: (overrides != NotationOverrides::default()).then_some(overrides),
        verify_timestamp: match policy.verify_timestamp {
            VerifyTimestamp::Always => None,
            VerifyTimestamp::AfterCertExpiry => Some(VerifyTimestampMode::AfterCertExpiry),
        },
        revocation_timeout: None,
    });
    spec.registry = registry;
    Ok(spec)
}

/// Imports a trust policy document (the bytes of `trustpolicy.json`) and its trust store.
pub fn import(policy_json: &[u8], store: &TrustStore, opts: &NotationOptions) -> Result<Imported, ImportError> {
    let doc = TrustPolicyDocument::from_json(policy_json)
        .map_err(|e| ImportError::InvalidNotationConfig { detail: e.to_string() })?;
    let raw = raw_statements(policy_json);
    let mut out = Imported::default();
    out.notes.extend(store.warnings.iter().map(|w| format!("trust store: {w}")));
    let mut names = Names::default();
    let mut exact: Vec<(ImageRule, String)> = vec![];
    let mut global: Vec<(ImageRule, String)> = vec![];
    // Statements not emitted, with their scopes, for the fallback check below.
    let mut dropped: Vec<(String, Vec<String>, String)> = vec![];
    for policy in &doc.policies {
        let spec = match statement_spec(policy, raw.get(&policy.name), store, opts) {
            Ok(spec) => spec,
            Err(why) => {
                // Spec: level `skip` "does not fetch signatures for artifacts and does not
                // perform any signature verification": nothing a TrustRoot can vouch for.
                let why = if why == "level skip" {
                    "a statement that verifies nothing (level skip) cannot be a TrustRoot".to_string()
                } else {
                    why
                };
                dropped.push((policy.name.clone(), policy.registry_scopes.clone(), why));
                continue;
            }
        };
        let name = names.unique(&format!("{}{}", opts.name_prefix, policy.name));
        let source = format!("notation trust policy statement {:?}", policy.name);
        out.trust_roots.push(TrustRoot { metadata: metadata(&name, &source), spec, status: None });
        for scope in &policy.registry_scopes {
            match notation_scope(scope) {
                Ok((pattern, note)) => {
                    out.notes.extend(note);
                    let rule = ImageRule {
                        pattern,
                        trust_root: Some(name.clone()),
                        trust_roots: vec![],
                        require: None,
                        signers: vec![],
                    };
                    if scope == "*" {
                        global.push((rule, policy.name.clone()));
                    } else {
                        exact.push((rule, policy.name.clone()));
                    }
                }
                Err(e) => out.unmapped.push(format!(
                    "trust policy statement {:?}: registry scope {scope:?} cannot be a trustwatch pattern: {e}",
                    policy.name
                )),
            }
        }
    }
    // Exact scopes first, the global scope last: the order notation evaluates them in. The
    // most-specific rule of trustwatch picks the same (an exact repository has more literal
    // characters than `**`); the order only keeps the output readable.
    let rules: Vec<(ImageRule, String)> = exact.into_iter().chain(global).collect();
    let images: Vec<ImageRule> = rules.iter().map(|(r, _)| r.clone()).collect();
    let spec = policy_spec(images);
    for (statement, scopes, why) in &dropped {
        let mut consequence = vec![];
        for scope in scopes {
            let repo = notation_scope(scope).map(|(p, _)| p).unwrap_or_else(|_| scope.clone());
            match spec.rule_for(&repo) {
                Some(r) => consequence.push(format!(
                    "{scope} falls under the rule {:?} (TrustRoot {}) instead",
                    r.pattern,
                    r.roots().join(", ")
                )),
                None => consequence.push(format!("{scope} is NotCovered")),
            }
        }
        out.unmapped.push(format!(
            "trust policy statement {statement:?} (registryScopes {}): {why}; not emitted: {}",
            scopes.join(", "),
            consequence.join("; ")
        ));
    }
    // Spec, "Evaluation order of trust policies": check that trustwatch picks, for each emitted
    // exact scope, the rule of the statement notation picks.
    for (rule, statement) in &rules {
        if rule.pattern == "**" {
            continue;
        }
        let chosen = spec.rule_for(&rule.pattern).map(|r| r.pattern.clone());
        if chosen.as_deref() != Some(rule.pattern.as_str()) {
            out.unmapped.push(format!(
                "trust policy statement {statement:?}: for {} trustwatch picks the rule {chosen:?}, not its own",
                rule.pattern
            ));
        }
    }
    if !doc.policies.iter().any(TrustPolicy::is_global) {
        out.notes.push(
            "no statement has the global scope \"*\": notation fails images no scope covers; trustwatch reports them NotCovered (set spec.unmatchedImages: Fail to treat them as failing)".into(),
        );
    }
    if !spec.images.is_empty() {
        let name = label(&format!("{}notation", opts.name_prefix), "notation");
        out.policy = Some(ImageTrustPolicy { metadata: metadata(&name, "notation trust policy"), spec, status: None });
        out.notes.push(
            "the ImageTrustPolicy has action Audit (report only); spec.action: Quarantine also isolates pods that fail"
                .into(),
        );
    }
    out.keep_valid();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 CA certificate (openssl req -x509, subject C=US, ST=WA, O=Acme).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIB7DCCAZGgAwIBAgIUTys03BAFiqDsKMbgtj5KVMNuSJMwCgYIKoZIzj0EAwIw
QjELMAkGA1UEBhMCVVMxCzAJBgNVBAgMAldBMQ0wCwYDVQQKDARBY21lMRcwFQYD
VQQDDA5BY21lIFRlc3QgUm9vdDAgFw0yNjEyMDEyMjIwNDdaGA8yMTI2MTEwNzIy
MjA0N1owQjELMAkGA1UEBhMCVVMxCzAJBgNVBAgMAldBMQ0wCwYDVQQKDARBY21l
MRcwFQYDVQQDDA5BY21lIFRlc3QgUm9vdDBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABBCu2cn/KHSQcAn+hEOY51K3vJ12XK/TOQGEYkvYrjKOd8cetqqdm0/ogt+m
GmiMVY36NNzUE62s88DcWC0F50ejYzBhMB0GA1UdDgQWBBQ6y8pHCoKl6hN4g3mu
i3nIoI8vNjAfBgNVHSMEGDAWgBQ6y8pHCoKl6hN4g3mui3nIoI8vNjAPBgNVHRMB
Af8EBTADAQH/MA4GA1UdDwEB/wQEAwICBDAKBggqhkjOPQQDAgNJADBGAiEAgPR2
/qM35+45HbkA1Fq4vmuE2t2PSRQgr70ECFPDez8CIQDhwQuHk/d9EXas+fWd05k+
5PevAfEKQPVrvnFEllegKA==
-----END CERTIFICATE-----
";

    fn store() -> TrustStore {
        let mut s = TrustStore::new();
        s.add_pem(StoreType::Ca, "acme", CA.as_bytes()).unwrap();
        s.add_pem(StoreType::Tsa, "stamps", CA.as_bytes()).unwrap();
        s
    }

    const DOC: &str = r#"{"version":"1.0","trustPolicies":[
      {"name":"Team App","registryScopes":["registry.example.com/team/app","docker.io/nginx"],
       "signatureVerification":{"level":"strict","override":{"revocation":"log"}},
       "trustStores":["ca:acme","tsa:stamps"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme"]},
      {"name":"legacy","registryScopes":["registry.example.com/legacy/tool"],"signatureVerification":{"level":"skip"}},
      {"name":"global","registryScopes":["*"],
       "signatureVerification":{"level":"permissive","verifyTimestamp":"afterCertExpiry"},
       "trustStores":["ca:acme"],"trustedIdentities":["*"]}
    ]}"#;

    #[test]
    fn statements_become_trust_roots_and_scopes_rules_with_the_global_one_last() {
        let opts = NotationOptions {
            name_prefix: "n-".into(),
            registry_secret: Some(SecretRef { name: "pull".into(), namespace: "trustwatch-system".into() }),
            plain_http: false,
        };
        let out = import(DOC.as_bytes(), &store(), &opts).unwrap();
        let names: Vec<&str> = out.trust_roots.iter().map(|r| r.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["n-team-app", "n-global"]);
        let team = out.trust_roots[0].spec.notation.as_ref().unwrap();
        assert_eq!(team.trusted_identities, ["x509.subject: C=US, ST=WA, O=Acme"]);
        assert_eq!(team.verification_level, NotationLevel::Strict);
        assert_eq!(team.overrides.as_ref().unwrap().revocation, Some(CheckAction::Log));
        assert_eq!(team.overrides.as_ref().unwrap().expiry, None);
        assert_eq!(team.verify_timestamp, None);
        assert_eq!(team.trust_stores.ca[0].name, "acme");
        assert_eq!(team.trust_stores.ca[0].pem.as_deref(), Some(CA));
        assert_eq!(team.trust_stores.tsa[0].name, "stamps");
        assert_eq!(out.trust_roots[0].spec.registry.as_ref().unwrap().auth_secret_ref.as_ref().unwrap().name, "pull");
        let global = out.trust_roots[1].spec.notation.as_ref().unwrap();
        assert_eq!(global.verification_level, NotationLevel::Permissive);
        assert_eq!(global.verify_timestamp, Some(VerifyTimestampMode::AfterCertExpiry));
        assert_eq!(global.trusted_identities, ["*"]);
        let policy = out.policy.as_ref().unwrap();
        assert_eq!(policy.metadata.name.as_deref(), Some("n-notation"));
        let rules: Vec<(&str, &str)> =
            policy.spec.images.iter().map(|r| (r.pattern.as_str(), r.trust_root.as_deref().unwrap())).collect();
        assert_eq!(
            rules,
            [
                ("registry.example.com/team/app", "n-team-app"),
                ("docker.io/library/nginx", "n-team-app"),
                ("**", "n-global")
            ]
        );
        assert_eq!(
            out.unmapped,
            [
                "trust policy statement \"legacy\" (registryScopes registry.example.com/legacy/tool): a statement that verifies nothing (level skip) cannot be a TrustRoot; not emitted: registry.example.com/legacy/tool falls under the rule \"**\" (TrustRoot n-global) instead"
            ]
        );
        assert!(
            out.notes.iter().any(|n| n.contains("\"docker.io/nginx\" is matched as \"docker.io/library/nginx\"")),
            "{:?}",
            out.notes
        );
        for r in &out.trust_roots {
            r.spec.validate().unwrap();
        }
        policy.spec.validate().unwrap();
    }

    #[test]
    fn a_missing_store_drops_the_statement_and_says_where_its_images_go() {
        let doc = r#"{"version":"1.0","trustPolicies":[
          {"name":"a","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["ca:nope"],"trustedIdentities":["*"]}]}"#;
        let out = import(doc.as_bytes(), &store(), &NotationOptions::default()).unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            out.unmapped,
            [
                "trust policy statement \"a\" (registryScopes r.io/a): trust store ca:nope does not exist in the trust store; not emitted: r.io/a is NotCovered"
            ]
        );
        let doc = doc.replace("]}]}", r#"]},{"name":"g","registryScopes":["*"],"signatureVerification":{"level":"audit"},"trustStores":["ca:acme"],"trustedIdentities":["*"]}]}"#);
        let out = import(doc.as_bytes(), &store(), &NotationOptions::default()).unwrap();
        assert_eq!(
            out.unmapped,
            [
                "trust policy statement \"a\" (registryScopes r.io/a): trust store ca:nope does not exist in the trust store; not emitted: r.io/a falls under the rule \"**\" (TrustRoot g) instead"
            ]
        );
    }

    #[test]
    fn without_a_global_statement_uncovered_images_are_a_note() {
        let doc = r#"{"version":"1.0","trustPolicies":[
          {"name":"a","registryScopes":["r.io/a"],"signatureVerification":{"level":"audit"},"trustStores":["ca:acme"],"trustedIdentities":["*"]}]}"#;
        let out = import(doc.as_bytes(), &store(), &NotationOptions::default()).unwrap();
        assert!(out.notes.iter().any(|n| n.contains("spec.unmatchedImages: Fail")), "{:?}", out.notes);
        assert!(out.unmapped.is_empty());
    }

    #[test]
    fn an_invalid_document_is_an_input_error() {
        let err = import(b"{}", &store(), &NotationOptions::default()).unwrap_err();
        assert_eq!(err.reason(), "InvalidNotationConfig");
    }
}
