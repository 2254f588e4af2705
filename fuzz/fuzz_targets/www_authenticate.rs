//! `WWW-Authenticate` challenges (what a server says to get credentials): no input panics;
//! a bearer challenge written back with its realm and parameters reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustwatch::fetch::{Challenge, parse_challenge};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Some(Challenge::Bearer { realm, params }) = parse_challenge(s) else { return };
    let plain = |v: &str| !v.contains(['"', ',', '=']) && v.trim() == v && !v.is_empty();
    if plain(&realm) && params.iter().all(|(k, v)| plain(k) && plain(v) && k != "realm" && k.to_ascii_lowercase() == *k)
    {
        let mut header = format!("Bearer realm=\"{realm}\"");
        for (k, v) in &params {
            header.push_str(&format!(",{k}=\"{v}\""));
        }
        assert_eq!(parse_challenge(&header), Some(Challenge::Bearer { realm, params }), "{header}");
    }
});
