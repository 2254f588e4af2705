//! notation's trust store: named stores of certificates, `x509/{ca,signingAuthority,tsa}/<name>/`.
//!
//! [`TrustStore::load_dir`] is the only code of the Notation core that touches the file
//! system; everything else takes bytes ([`TrustStore::add_pem`], for stores from a CRD).

use super::error::NotationError;
use super::policy::{StoreRef, StoreType, valid_store_name};
use super::x509::Cert;
use std::collections::BTreeMap;
use std::path::Path;

/// Most certificates in one named store, and largest certificate file.
pub const MAX_STORE_CERTIFICATES: usize = 256;
pub const MAX_CERTIFICATE_FILE_BYTES: u64 = 1024 * 1024;

/// Named stores of certificates.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    stores: BTreeMap<StoreRef, Vec<Cert>>,
    /// Things notation would warn about (sub directories in a named store).
    pub warnings: Vec<String>,
}

fn invalid(detail: impl Into<String>) -> NotationError {
    NotationError::InvalidTrustStore { detail: detail.into() }
}

impl TrustStore {
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Adds certificates (PEM, one or more; or one DER) to a named store.
    ///
    /// Trust store certificates are roots (or, against the specification's advice, pinned
    /// intermediates): each must be a CA certificate or self-signed.
    pub fn add_pem(&mut self, store_type: StoreType, name: &str, bytes: &[u8]) -> Result<(), NotationError> {
        if !valid_store_name(name) {
            return Err(invalid(format!("store name {name:?} is not valid")));
        }
        let certs = Cert::parse_many(bytes).map_err(|e| invalid(format!("{}:{name}: {e}", store_type.as_str())))?;
        let entry = self.stores.entry(StoreRef { store_type, name: name.to_string() }).or_default();
        for c in certs {
            let self_signed = c.is_self_issued() && c.verify_signed_by(&c).is_ok();
            if !self_signed && !is_ca(&c) {
                return Err(invalid(format!(
                    "{}:{name}: certificate {} is neither a CA certificate nor self-signed",
                    store_type.as_str(),
                    c.subject()
                )));
            }
            if !entry.contains(&c) {
                entry.push(c);
            }
        }
        if entry.len() > MAX_STORE_CERTIFICATES {
            return Err(invalid(format!(
                "{}:{name} holds more than {MAX_STORE_CERTIFICATES} certificates",
                store_type.as_str()
            )));
        }
        Ok(())
    }

    /// The certificates of a named store; `None` when the store does not exist.
    pub fn get(&self, r: &StoreRef) -> Option<&[Cert]> {
        self.stores.get(r).map(Vec::as_slice)
    }

    pub fn names(&self) -> impl Iterator<Item = &StoreRef> {
        self.stores.keys()
    }

    /// Loads `<dir>/x509/{ca,signingAuthority,tsa}/<name>/*` (notation's
    /// `$XDG_CONFIG_HOME/notation/truststore`).
    ///
    /// Spec: "Symlinks are not supported for the named store directories or certificate
    /// files. Implementation MUST validate that the named store directory or certificate files
    /// are not symlinks, and fail if it does not meet this condition." / "Any additional sub
    /// directories under names stores and certificates in it are ignored. NOTE: Implementation
    /// SHOULD warn if it finds sub directories with certificates under a named store".
    pub fn load_dir(dir: &Path) -> Result<TrustStore, NotationError> {
        let mut store = TrustStore::new();
        let x509 = dir.join("x509");
        for t in StoreType::ALL {
            let type_dir = x509.join(t.as_str());
            let Ok(entries) = std::fs::read_dir(&type_dir) else { continue };
            for entry in entries {
                let entry = entry.map_err(|e| invalid(format!("{}: {e}", type_dir.display())))?;
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                if meta.file_type().is_symlink() {
                    return Err(invalid(format!("{} is a symlink", path.display())));
                }
                if !meta.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                store.stores.entry(StoreRef { store_type: t, name: name.clone() }).or_default();
                let mut files: Vec<_> = std::fs::read_dir(&path)
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                files.sort_by_key(|f| f.file_name());
                for f in files {
                    let fp = f.path();
                    let meta = std::fs::symlink_metadata(&fp).map_err(|e| invalid(format!("{}: {e}", fp.display())))?;
                    if meta.file_type().is_symlink() {
                        return Err(invalid(format!("{} is a symlink", fp.display())));
                    }
                    if meta.is_dir() {
                        store.warnings.push(format!("sub directory {} of a named store is ignored", fp.display()));
                        continue;
                    }
                    if meta.len() > MAX_CERTIFICATE_FILE_BYTES {
                        return Err(invalid(format!(
                            "{} is larger than {MAX_CERTIFICATE_FILE_BYTES} bytes",
                            fp.display()
                        )));
                    }
                    let bytes = std::fs::read(&fp).map_err(|e| invalid(format!("{}: {e}", fp.display())))?;
                    store.add_pem(t, &name, &bytes).map_err(|e| invalid(format!("{}: {e}", fp.display())))?;
                }
            }
        }
        Ok(store)
    }
}

/// A user's notation configuration directory (`$XDG_CONFIG_HOME/notation`): the trust policy
/// and the trust store, as `notation verify` reads them. notation 1.x reads `trustpolicy.json`
/// only (checked against v1.3.2: it ignores a `trustpolicy.oci.json` beside it); notation 2.x
/// names the same schema `trustpolicy.oci.json`, used here when there is no
/// `trustpolicy.json`.
pub fn load_notation_config(dir: &Path) -> Result<(super::TrustPolicyDocument, TrustStore), NotationError> {
    let v1 = dir.join("trustpolicy.json");
    let path = if v1.is_file() { v1 } else { dir.join("trustpolicy.oci.json") };
    let meta = std::fs::metadata(&path)
        .map_err(|e| NotationError::InvalidTrustPolicy { detail: format!("{}: {e}", path.display()) })?;
    if meta.len() > super::policy::MAX_POLICY_BYTES as u64 {
        return Err(NotationError::InvalidTrustPolicy { detail: format!("{} is too large", path.display()) });
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| NotationError::InvalidTrustPolicy { detail: format!("{}: {e}", path.display()) })?;
    let doc = super::TrustPolicyDocument::from_json(&bytes)?;
    let store = TrustStore::load_dir(&dir.join("truststore"))?;
    Ok((doc, store))
}

fn is_ca(c: &Cert) -> bool {
    matches!(
        c.certificate().tbs_certificate().get_extension::<x509_cert::ext::pkix::BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}
