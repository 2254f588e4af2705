//! PEM blocks in, canonical PEM out: configuration files carry keys indented, with headers
//! (`role: root` in the `root.pub` that `docker trust key generate` writes) or several blocks
//! in one string. What the importer emits is re-encoded from the decoded bytes, 64 columns.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block of `text`, in order. RFC 7468 "Textual Encodings of PKIX, PKCS, and CMS
/// Structures" allows whitespace around the base64 text; RFC 1421 headers (`Name: value` lines
/// right after the BEGIN line) are skipped, as Go's `pem.Decode` does.
pub fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut out = vec![];
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                continue;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(format!("the {label} PEM block has no '{end}' line"));
        }
        let der = B64.decode(body.as_bytes()).map_err(|e| format!("the {label} PEM block is not base64: {e}"))?;
        if der.is_empty() {
            return Err(format!("the {label} PEM block is empty"));
        }
        out.push(Block { label: label.to_string(), der });
    }
    if out.is_empty() {
        return Err("is not PEM (no -----BEGIN ...----- line)".into());
    }
    Ok(out)
}

/// `-----BEGIN <label>-----`, the base64 of `der` in 64-column lines, `-----END <label>-----`.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The blocks of `text` labelled `label`, re-encoded; an error when there are none or when
/// another label appears (a private key pasted by mistake must not be passed on).
pub fn only(text: &str, label: &str) -> Result<String, String> {
    let blocks = blocks(text)?;
    if let Some(other) = blocks.iter().find(|b| b.label != label) {
        return Err(format!("holds a {} PEM block, expected {label}", other.label));
    }
    Ok(blocks.iter().map(|b| encode(&b.label, &b.der)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_indentation_are_dropped_and_the_body_rewrapped() {
        let key = "  -----BEGIN PUBLIC KEY-----\n  role: root\n\n  MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELDzXwqie/P66R3gVpFDWMhxOyol5\n  YWD/KWnAaEIcJVTYUR+21NJSZz0yL7KLGrv50H9kHai5WWVsVykOZNoZYQ==\n  -----END PUBLIC KEY-----\n";
        let out = only(key, "PUBLIC KEY").unwrap();
        assert_eq!(
            out,
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELDzXwqie/P66R3gVpFDWMhxOyol5\nYWD/KWnAaEIcJVTYUR+21NJSZz0yL7KLGrv50H9kHai5WWVsVykOZNoZYQ==\n-----END PUBLIC KEY-----\n"
        );
    }

    #[test]
    fn wrong_labels_truncated_blocks_and_non_pem_are_errors() {
        let private = "-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----\n";
        assert!(only(private, "PUBLIC KEY").unwrap_err().contains("EC PRIVATE KEY"));
        assert!(blocks("-----BEGIN PUBLIC KEY-----\nMFkw\n").unwrap_err().contains("no '-----END PUBLIC KEY-----'"));
        assert!(blocks("awskms:///alias/key").unwrap_err().contains("not PEM"));
        assert!(blocks("-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----").unwrap_err().contains("base64"));
    }
}
