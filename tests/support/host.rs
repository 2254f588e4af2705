//! This machine's addresses.

/// An address of this machine that is not loopback: reachable without leaving the host (the
/// tests stay offline), where loopback is refused (an EndpointSlice's address, a token realm
/// "off this machine").
pub fn non_loopback_ip() -> String {
    let out = std::process::Command::new("hostname").arg("-I").output().expect("run hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .unwrap_or_else(|| panic!("this test needs a non-loopback IPv4 address (hostname -I printed nothing usable)"))
        .to_string()
}
