//! An extra network namespace joined to this machine's by a veth pair: the extra hosts of the
//! end-to-end scenarios (the swarm's second node, the SFTP backup host) live in one each.

use std::process::{Command, Stdio};

use super::harness::text;

/// Creates namespace `netns` and the pair `host_veth` (this end, at `host_address`/24) to
/// `<host_veth>n` (inside, at `inside_address`/24), both up, with the namespace's loopback.
pub fn create(netns: &str, host_veth: &str, host_address: &str, inside_address: &str) -> Result<(), String> {
    let peer = format!("{host_veth}n");
    let inside = |args: &str| format!("ip netns exec {netns} {args}");
    let script = [
        format!("ip netns add {netns}"),
        format!("ip link add {host_veth} type veth peer name {peer}"),
        format!("ip link set {peer} netns {netns}"),
        format!("ip addr add {host_address}/24 dev {host_veth}"),
        format!("ip link set {host_veth} up"),
        inside(&format!("ip addr add {inside_address}/24 dev {peer}")),
        inside(&format!("ip link set {peer} up")),
        inside("ip link set lo up"),
    ];
    for line in script {
        let out = Command::new("sh").args(["-c", &line]).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("`{line}` failed: {}", text(&out.stderr).trim()));
        }
    }
    Ok(())
}

/// Deletes the namespace and the pair, as far as they exist.
pub fn remove(netns: &str, host_veth: &str) {
    let _ = Command::new("ip").args(["netns", "del", netns]).stderr(Stdio::null()).status();
    let _ = Command::new("ip").args(["link", "del", host_veth]).stderr(Stdio::null()).status();
}
