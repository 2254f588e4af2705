//! notation's trust policy (`trustpolicy.json`, `trustpolicy.oci.json`, version `1.0`):
//! parsing, the specification's validation rules, policy selection by repository, and
//! verification levels with their overrides.

use super::error::{Check, NotationError};
use der::Tagged as _;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest trust policy document accepted.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// What happens when a validation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Enforce,
    Log,
    Skip,
}

/// Spec: "supported values are `strict`, `permissive`, `audit` and `skip`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "strict" => Some(Level::Strict),
            "permissive" => Some(Level::Permissive),
            "audit" => Some(Level::Audit),
            "skip" => Some(Level::Skip),
            _ => None,
        }
    }

    /// The specification's table:
    ///
    /// ```text
    /// |            |Integrity|Authenticity|Authentic timestamp|Expiry |Revocation check|
    /// |strict      |enforced |enforced    |enforced           |enforced|enforced       |
    /// |permissive  |enforced |enforced    |logged             |logged |logged          |
    /// |audit       |enforced |logged      |logged             |logged |logged          |
    /// |skip        |skipped  |skipped     |skipped            |skipped|skipped         |
    /// ```
    pub fn default_action(self, check: Check) -> Action {
        use Action::*;
        match (self, check) {
            (Level::Skip, _) => Skip,
            (_, Check::Integrity) => Enforce,
            (Level::Strict, _) => Enforce,
            (Level::Permissive, Check::Authenticity) => Enforce,
            (Level::Permissive, _) => Log,
            (Level::Audit, _) => Log,
        }
    }
}

/// `verifyTimestamp`: `always` (default) or `afterCertExpiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VerifyTimestamp {
    #[default]
    Always,
    AfterCertExpiry,
}

/// A level with its overrides resolved: the action of each validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actions {
    pub level: Level,
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
    pub revocation: Action,
}

impl Actions {
    pub fn of_level(level: Level) -> Actions {
        Actions {
            level,
            authenticity: level.default_action(Check::Authenticity),
            authentic_timestamp: level.default_action(Check::AuthenticTimestamp),
            expiry: level.default_action(Check::Expiry),
            revocation: level.default_action(Check::Revocation),
        }
    }

    /// Spec, "Custom Verification Level": "`integrity` validation cannot be overriden" /
    /// "`authenticity` - Supported values are `enforce` and `log`." /
    /// "`authenticTimestamp` - Supported values are `enforce` and `log`." /
    /// "`expiry` - Supported values are `enforce` and `log`." /
    /// "`revocation` - Supported values are `enforce`, `log`, and `skip`." /
    /// "A `skip` level cannot be customized."
    pub fn with_overrides(level: Level, overrides: &BTreeMap<String, String>) -> Result<Actions, String> {
        let mut a = Actions::of_level(level);
        if level == Level::Skip && !overrides.is_empty() {
            return Err("a skip level cannot be customized with override".into());
        }
        for (k, v) in overrides {
            let action = match v.as_str() {
                "enforce" => Action::Enforce,
                "log" => Action::Log,
                "skip" => Action::Skip,
                other => return Err(format!("override value {other:?} for {k:?} is not enforce, log or skip")),
            };
            let slot = match k.as_str() {
                "authenticity" => &mut a.authenticity,
                "authenticTimestamp" => &mut a.authentic_timestamp,
                "expiry" => &mut a.expiry,
                "revocation" => &mut a.revocation,
                "integrity" => return Err("integrity validation cannot be overridden".into()),
                other => return Err(format!("override key {other:?} is not supported")),
            };
            if action == Action::Skip && k != "revocation" {
                return Err(format!("{k} cannot be skipped, only enforced or logged"));
            }
            *slot = action;
        }
        Ok(a)
    }

    pub fn action(&self, check: Check) -> Action {
        match check {
            Check::Integrity => {
                if self.level == Level::Skip {
                    Action::Skip
                } else {
                    Action::Enforce
                }
            }
            Check::Authenticity => self.authenticity,
            Check::AuthenticTimestamp => self.authentic_timestamp,
            Check::Expiry => self.expiry,
            Check::Revocation => self.revocation,
        }
    }
}

/// Trust store types: `ca`, `signingAuthority`, `tsa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum StoreType {
    #[serde(rename = "ca")]
    Ca,
    #[serde(rename = "signingAuthority")]
    SigningAuthority,
    #[serde(rename = "tsa")]
    Tsa,
}

impl StoreType {
    pub const ALL: [StoreType; 3] = [StoreType::Ca, StoreType::SigningAuthority, StoreType::Tsa];
    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
        }
    }
    pub fn parse(s: &str) -> Option<StoreType> {
        StoreType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A reference to a named store: `ca:acme-rockets`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct StoreRef {
    pub store_type: StoreType,
    pub name: String,
}

/// Named store names as notation accepts them (and as directory names can hold them safely).
pub fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One attribute of a distinguished name: type (`C`, `ST`, `O`, `CN`, an OID...) and value.
pub type Rdn = (String, String);

/// `trustedIdentities`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TrustedIdentities {
    /// `"*"`: "any certificate that chains to the associated trust store".
    Any,
    /// `x509.subject:` DNs; the leaf subject must contain all attributes of one of them.
    Subjects(Vec<Vec<Rdn>>),
}

/// Parses the DN of an `x509.subject:` identity.
///
/// Spec: "If a value starts or ends with a space, then that space character MUST be escaped
/// as `\`. All occurrences of the comma character (`,`) MUST be escaped as `\,`. All
/// occurrences of the semicolon character (`;`) MUST be escaped as `\;`. All occurrences of
/// the backslash character (`\`) MUST be escaped as `\\`." Multi-valued RDNs (`+`) are not
/// supported, as in notation.
pub fn parse_dn(s: &str) -> Result<Vec<Rdn>, String> {
    let mut rdns = vec![];
    let mut parts: Vec<(String, bool)> = vec![]; // (text, ends with an escaped space)
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut escaped_tail = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let n = chars.next().ok_or("DN ends with a lone backslash")?;
                // A placeholder byte keeps an escaped space from being trimmed.
                cur.push(if n == ' ' { '\u{0}' } else { n });
                escaped_tail = true;
                continue;
            }
            ',' | ';' => {
                parts.push((std::mem::take(&mut cur), escaped_tail));
            }
            '+' => return Err("multi-valued RDNs (+) are not supported".into()),
            c => cur.push(c),
        }
        escaped_tail = false;
    }
    parts.push((cur, escaped_tail));
    for (part, _) in parts {
        let (k, v) =
            part.split_once('=').ok_or_else(|| format!("RDN {:?} is not TYPE=value", part.replace('\u{0}', " ")))?;
        let k = k.trim().replace('\u{0}', " ");
        let v = v.trim().replace('\u{0}', " ");
        if k.is_empty() || v.is_empty() {
            return Err(format!("RDN {:?} has an empty type or value", part.replace('\u{0}', " ")));
        }
        if rdns.iter().any(|(t, _): &Rdn| t.eq_ignore_ascii_case(&k)) {
            return Err(format!("attribute {k} appears more than once"));
        }
        rdns.push((k.to_ascii_uppercase(), v));
    }
    Ok(rdns)
}

/// The leaf subject as attribute type -> value, with the short names notation uses.
pub fn subject_rdns(name: &x509_cert::name::Name) -> Result<Vec<Rdn>, String> {
    let mut out: Vec<Rdn> = vec![];
    for atv in name.iter() {
        let o = atv.oid.to_string();
        let short = match o.as_str() {
            "2.5.4.6" => "C",
            "2.5.4.8" => "ST",
            "2.5.4.7" => "L",
            "2.5.4.10" => "O",
            "2.5.4.11" => "OU",
            "2.5.4.3" => "CN",
            "2.5.4.5" => "SERIALNUMBER",
            "2.5.4.9" => "STREET",
            "2.5.4.17" => "POSTALCODE",
            _ => o.as_str(),
        }
        .to_string();
        let value = directory_string(&atv.value).ok_or_else(|| format!("subject attribute {short} is not a string"))?;
        // notation: "distinguished name ... has duplicate attribute type" is an error.
        if out.iter().any(|(t, _)| *t == short) {
            return Err(format!("subject has attribute {short} more than once"));
        }
        out.push((short, value));
    }
    Ok(out)
}

fn directory_string(any: &der::Any) -> Option<String> {
    use der::Tag;
    let bytes = any.value();
    match any.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString | Tag::VisibleString => {
            std::str::from_utf8(bytes).ok().map(str::to_string)
        }
        Tag::BmpString => {
            let units: Vec<u16> =
                bytes.chunks(2).filter(|c| c.len() == 2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// Spec: the `trustedIdentities` list items support "a full and partial list of all the
/// attribute types present in subject DN": an identity matches when every one of its
/// attributes is in the leaf subject with the same value.
pub fn identity_matches(identity: &[Rdn], subject: &[Rdn]) -> bool {
    identity.iter().all(|(k, v)| subject.iter().any(|(sk, sv)| sk.eq_ignore_ascii_case(k) && sv == v))
}

/// Spec: identities "are considered overlapping if there exists a certificate for which
/// multiple DNs evaluate true": no attribute type on which both name different values.
fn overlapping(a: &[Rdn], b: &[Rdn]) -> bool {
    a.iter().all(|(k, v)| b.iter().all(|(bk, bv)| !bk.eq_ignore_ascii_case(k) || bv == v))
}

impl TrustedIdentities {
    /// Spec, "Trusted Identities Constraints": "`x509.subject:` MUST be followed by
    /// comma-separated one or more RDNs" / "Each identity in `identities` list MUST contain
    /// country (C), state or province (ST), and organization (O) RDNs." / "`trustedIdentities`
    /// list items MUST NOT have overlapping values" / `*` as a single item.
    pub fn parse(items: &[String]) -> Result<TrustedIdentities, String> {
        if items.is_empty() {
            return Err("trustedIdentities is empty".into());
        }
        if items.iter().any(|i| i.trim() == "*") {
            if items.len() > 1 {
                return Err("the wildcard \"*\" must be the only trusted identity".into());
            }
            return Ok(TrustedIdentities::Any);
        }
        let mut dns: Vec<Vec<Rdn>> = vec![];
        for item in items {
            let (prefix, value) =
                item.split_once(':').ok_or_else(|| format!("trusted identity {item:?} has no type prefix"))?;
            if prefix.trim() != "x509.subject" {
                return Err(format!("trusted identity type {:?} is not supported (x509.subject)", prefix.trim()));
            }
            let dn = parse_dn(value.trim()).map_err(|e| format!("trusted identity {item:?}: {e}"))?;
            for mandatory in ["C", "ST", "O"] {
                if !dn.iter().any(|(k, _)| k == mandatory) {
                    return Err(format!("trusted identity {item:?} lacks the mandatory {mandatory} attribute"));
                }
            }
            if let Some(other) = dns.iter().find(|d| overlapping(d, &dn)) {
                return Err(format!("trusted identities {item:?} and {other:?} overlap"));
            }
            dns.push(dn);
        }
        Ok(TrustedIdentities::Subjects(dns))
    }

    pub fn trusts(&self, subject: &[Rdn]) -> bool {
        match self {
            TrustedIdentities::Any => true,
            TrustedIdentities::Subjects(dns) => dns.iter().any(|d| identity_matches(d, subject)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocJson {
    version: Option<String>,
    trust_policies: Option<Vec<PolicyJson>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyJson {
    name: Option<String>,
    registry_scopes: Option<Vec<String>>,
    signature_verification: Option<SigVerJson>,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigVerJson {
    level: Option<String>,
    #[serde(default)]
    r#override: BTreeMap<String, String>,
    verify_timestamp: Option<String>,
}

/// One validated trust policy statement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustPolicy {
    pub name: String,
    /// Fully qualified repositories, or `["*"]`.
    pub registry_scopes: Vec<String>,
    pub actions: Actions,
    pub verify_timestamp: VerifyTimestamp,
    pub trust_stores: Vec<StoreRef>,
    pub trusted_identities: TrustedIdentities,
}

impl TrustPolicy {
    pub fn is_global(&self) -> bool {
        self.registry_scopes.iter().any(|s| s == "*")
    }
    pub fn stores_of(&self, t: StoreType) -> impl Iterator<Item = &StoreRef> {
        self.trust_stores.iter().filter(move |s| s.store_type == t)
    }
}

/// A validated trust policy document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustPolicyDocument {
    pub policies: Vec<TrustPolicy>,
}

fn invalid(detail: impl Into<String>) -> NotationError {
    NotationError::InvalidTrustPolicy { detail: detail.into() }
}

/// Spec: "The scope field supports filtering based on fully qualified repository URI
/// `${registry-name}/${namespace}/${repository-name}`" / "The repository URI MUST NOT contain
/// the asterisk character `*`." / "The scope MUST NOT support reference expansion".
fn valid_scope(scope: &str) -> Result<(), String> {
    let (registry, path) = scope
        .split_once('/')
        .ok_or_else(|| format!("registry scope {scope:?} is not a fully qualified repository (registry/repository)"))?;
    if registry.is_empty() || path.is_empty() || scope.contains('*') || scope.contains('@') || scope.ends_with('/') {
        return Err(format!("registry scope {scope:?} is not a fully qualified repository"));
    }
    if path.contains(':') || scope.chars().any(|c| c.is_whitespace() || c.is_ascii_uppercase()) {
        return Err(format!("registry scope {scope:?} must be a repository without tag or digest, in lower case"));
    }
    Ok(())
}

impl TrustPolicyDocument {
    /// Parses and validates `trustpolicy.json` / `trustpolicy.oci.json` (the same schema).
    pub fn from_json(bytes: &[u8]) -> Result<TrustPolicyDocument, NotationError> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(invalid(format!("{} bytes, over the {MAX_POLICY_BYTES}-byte limit", bytes.len())));
        }
        let doc: DocJson = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        // "`version` ... The supported value is `1.0`."
        match doc.version.as_deref() {
            Some("1.0") => {}
            other => return Err(invalid(format!("version {other:?} is not supported (1.0)"))),
        }
        let raw = doc.trust_policies.ok_or_else(|| invalid("trustPolicies is missing"))?;
        if raw.is_empty() {
            return Err(invalid("trustPolicies is empty"));
        }
        let mut policies: Vec<TrustPolicy> = vec![];
        for p in raw {
            let name = p.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| invalid("a trust policy has no name"))?;
            if policies.iter().any(|q| q.name == name) {
                return Err(invalid(format!("trust policy name {name:?} is used more than once")));
            }
            let ctx = |e: String| invalid(format!("trust policy {name:?}: {e}"));
            // "Each trust policy MUST contain scope property and the scope collection MUST
            // contain at least one value." / "A single value with one asterisk character `*`."
            let scopes = p.registry_scopes.unwrap_or_default();
            if scopes.is_empty() {
                return Err(ctx("registryScopes is empty".into()));
            }
            if scopes.iter().any(|s| s == "*") {
                if scopes.len() > 1 {
                    return Err(ctx("the global scope \"*\" must be the only registry scope".into()));
                }
            } else {
                for s in &scopes {
                    valid_scope(s).map_err(ctx)?;
                }
            }
            let sv = p.signature_verification.ok_or_else(|| ctx("signatureVerification is missing".into()))?;
            let level_str = sv.level.ok_or_else(|| ctx("signatureVerification.level is missing".into()))?;
            let level = Level::parse(&level_str)
                .ok_or_else(|| ctx(format!("level {level_str:?} is not strict, permissive, audit or skip")))?;
            let actions = Actions::with_overrides(level, &sv.r#override).map_err(ctx)?;
            let verify_timestamp = match sv.verify_timestamp.as_deref() {
                None | Some("always") => VerifyTimestamp::Always,
                Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
                Some(other) => return Err(ctx(format!("verifyTimestamp {other:?} is not always or afterCertExpiry"))),
            };
            // Spec: "`skip` cannot be used with a global scope (`*`), the value of
            // `registryScopes` MUST contain fully qualified registry URL(s)."
            let global = scopes.iter().any(|s| s == "*");
            let (trust_stores, trusted_identities) = if level == Level::Skip {
                if global {
                    return Err(ctx("the skip level cannot be used with the global scope \"*\"".into()));
                }
                if !p.trust_stores.is_empty() || !p.trusted_identities.is_empty() {
                    return Err(ctx("a skip policy must not list trustStores or trustedIdentities".into()));
                }
                (vec![], TrustedIdentities::Subjects(vec![]))
            } else {
                // "`trustStores` ... This REQUIRED property specifies a set of one or more named
                // trust stores ... `{trust-store-type}:{named-store}`" ("When a TSA is used,
                // the format `ca:acme-rockets,tsa:acme-tsa` is supported").
                let mut stores: Vec<StoreRef> = vec![];
                for item in p.trust_stores.iter().flat_map(|s| s.split(',')) {
                    let item = item.trim();
                    let (t, n) =
                        item.split_once(':').ok_or_else(|| ctx(format!("trust store {item:?} is not type:name")))?;
                    let store_type = StoreType::parse(t)
                        .ok_or_else(|| ctx(format!("trust store type {t:?} is not ca, signingAuthority or tsa")))?;
                    if !valid_store_name(n) {
                        return Err(ctx(format!("trust store name {n:?} is not valid")));
                    }
                    let r = StoreRef { store_type, name: n.to_string() };
                    if !stores.contains(&r) {
                        stores.push(r);
                    }
                }
                if !stores.iter().any(|s| s.store_type != StoreType::Tsa) {
                    return Err(ctx("trustStores needs at least one ca or signingAuthority store".into()));
                }
                let ids = TrustedIdentities::parse(&p.trusted_identities).map_err(ctx)?;
                (stores, ids)
            };
            policies.push(TrustPolicy {
                name,
                registry_scopes: scopes,
                actions,
                verify_timestamp,
                trust_stores,
                trusted_identities,
            });
        }
        // "There can only be one trust policy that uses a global scope." / "For a given
        // artifact there MUST be only one applicable trust policy, except for trust policy
        // with global scope."
        if policies.iter().filter(|p| p.is_global()).count() > 1 {
            return Err(invalid("more than one trust policy uses the global scope \"*\""));
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for p in &policies {
            for s in p.registry_scopes.iter().filter(|s| *s != "*") {
                if let Some(other) = seen.insert(s, &p.name) {
                    return Err(invalid(format!(
                        "registry scope {s:?} is in trust policies {other:?} and {:?}",
                        p.name
                    )));
                }
            }
        }
        Ok(TrustPolicyDocument { policies })
    }

    /// Spec, "Evaluation order of trust policies": "Exact match: If there exists a trust
    /// policy whose scope contains the artifact's repository URI then the aforementioned
    /// policy MUST be used ... Global: If there exists a trust policy with global scope then
    /// use that policy ... Otherwise, fail the signature verification."
    ///
    /// `repository` is the fully qualified repository, `registry/path` (no tag or digest).
    pub fn policy_for(&self, repository: &str) -> Result<&TrustPolicy, NotationError> {
        self.policies
            .iter()
            .find(|p| p.registry_scopes.iter().any(|s| s == repository))
            .or_else(|| self.policies.iter().find(|p| p.is_global()))
            .ok_or_else(|| NotationError::NoApplicablePolicy { repository: repository.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(policies: &str) -> Result<TrustPolicyDocument, NotationError> {
        TrustPolicyDocument::from_json(format!(r#"{{"version":"1.0","trustPolicies":[{policies}]}}"#).as_bytes())
    }

    const GLOBAL: &str = r#"{"name":"g","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:acme"],"trustedIdentities":["*"]}"#;

    #[test]
    fn an_exact_scope_beats_the_global_one_and_no_match_fails() {
        let d = doc(&format!(
            r#"{GLOBAL},{{"name":"e","registryScopes":["r.io/team/app"],"signatureVerification":{{"level":"audit"}},"trustStores":["ca:acme"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme"]}}"#
        ))
        .unwrap();
        assert_eq!(d.policy_for("r.io/team/app").unwrap().name, "e");
        assert_eq!(d.policy_for("r.io/team/other").unwrap().name, "g");
        let d = doc(r#"{"name":"e","registryScopes":["r.io/team/app"],"signatureVerification":{"level":"strict"},"trustStores":["ca:acme"],"trustedIdentities":["*"]}"#).unwrap();
        let err = d.policy_for("r.io/team/other").unwrap_err();
        assert_eq!((err.reason(), err.verdict()), ("NoApplicableTrustPolicy", crate::verdict::Verdict::NotCovered));
    }

    #[test]
    fn the_specs_validation_rules_reject_bad_documents() {
        let cases = [
            (r#"{"name":"s","registryScopes":["*"],"signatureVerification":{"level":"skip"}}"#, "skip with *"),
            (&format!("{GLOBAL},{}", GLOBAL.replace("\"g\"", "\"h\"")), "two global policies"),
            (&format!("{GLOBAL},{GLOBAL}"), "duplicate names"),
            (
                r#"{"name":"x","registryScopes":["*","r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "* with others",
            ),
            (
                r#"{"name":"x","registryScopes":["app"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "unqualified scope",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "wildcard in scope",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict","override":{"integrity":"log"}},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "integrity override",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict","override":{"expiry":"skip"}},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "expiry skip",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"skip","override":{"revocation":"log"}}}"#,
                "customized skip",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"lenient"},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "unknown level",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["x509:a"],"trustedIdentities":["*"]}"#,
                "bad store type",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a"],"trustedIdentities":["x509.subject: C=US, O=Acme"]}"#,
                "missing ST",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme, OU=a","x509.subject: C=US, ST=WA, O=Acme"]}"#,
                "overlapping identities",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a"],"trustedIdentities":["*","x509.subject: C=US, ST=WA, O=Acme"]}"#,
                "* with others",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["tsa:a"],"trustedIdentities":["*"]}"#,
                "only a tsa store",
            ),
            (
                r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict","verifyTimestamp":"never"},"trustStores":["ca:a"],"trustedIdentities":["*"]}"#,
                "bad verifyTimestamp",
            ),
        ];
        for (p, why) in cases {
            let err = doc(p).expect_err(why);
            assert_eq!(err.reason(), "InvalidTrustPolicy", "{why}");
        }
        assert!(TrustPolicyDocument::from_json(br#"{"version":"2.0","trustPolicies":[]}"#).is_err());
        // Two identities that differ on an attribute both name do not overlap.
        doc(r#"{"name":"x","registryScopes":["r.io/a"],"signatureVerification":{"level":"strict"},"trustStores":["ca:a","tsa:t"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Acme, OU=a","x509.subject: C=US, ST=WA, O=Acme, OU=b"]}"#).unwrap();
    }

    #[test]
    fn levels_and_overrides_follow_the_specs_table() {
        let p = Actions::of_level(Level::Permissive);
        assert_eq!(
            (p.authenticity, p.authentic_timestamp, p.expiry, p.revocation),
            (Action::Enforce, Action::Log, Action::Log, Action::Log)
        );
        let a = Actions::of_level(Level::Audit);
        assert_eq!((a.authenticity, a.action(Check::Integrity)), (Action::Log, Action::Enforce));
        let s = Actions::of_level(Level::Strict);
        assert!([s.authenticity, s.authentic_timestamp, s.expiry, s.revocation].iter().all(|x| *x == Action::Enforce));
        let o = Actions::with_overrides(
            Level::Strict,
            &[("expiry".to_string(), "log".to_string()), ("revocation".to_string(), "skip".to_string())].into(),
        )
        .unwrap();
        assert_eq!((o.expiry, o.revocation, o.authenticity), (Action::Log, Action::Skip, Action::Enforce));
        assert_eq!(Actions::of_level(Level::Skip).action(Check::Integrity), Action::Skip);
    }

    #[test]
    fn distinguished_names_parse_with_escapes_and_match_as_subsets() {
        let dn = parse_dn(r"C=US, ST=WA, O=Acme\, Inc., OU=\ spaced\ , CN=a\\b\;c").unwrap();
        assert_eq!(
            dn,
            vec![
                ("C".into(), "US".into()),
                ("ST".into(), "WA".into()),
                ("O".into(), "Acme, Inc.".into()),
                ("OU".into(), " spaced ".into()),
                ("CN".into(), r"a\b;c".into()),
            ]
        );
        assert!(parse_dn("C=US+ST=WA").is_err());
        assert!(parse_dn("C=US, C=CA").is_err());
        assert!(parse_dn("C=US, =x").is_err());
        let subject: Vec<Rdn> = vec![
            ("C".into(), "US".into()),
            ("ST".into(), "WA".into()),
            ("O".into(), "Acme".into()),
            ("CN".into(), "build".into()),
        ];
        assert!(identity_matches(&parse_dn("C=US, ST=WA, O=Acme").unwrap(), &subject));
        assert!(identity_matches(&parse_dn("CN=build, O=Acme, ST=WA, C=US").unwrap(), &subject));
        assert!(!identity_matches(&parse_dn("C=US, ST=WA, O=Acme, OU=x").unwrap(), &subject));
        assert!(!identity_matches(&parse_dn("C=US, ST=WA, O=acme").unwrap(), &subject), "values compare exactly");
    }
}
