//! A second Docker host on this machine, for the swarm scenario's two-node part: a Docker
//! daemon of its own (data, exec root, socket and containerd under a temporary directory) in
//! a network namespace of its own, joined to this machine's namespace by a veth pair.
//!
//! It reaches the manager at the host end of the pair. The registry answers on 127.0.0.1
//! only, which is where the images' names say it is, so two small forwarders (python3) carry
//! 127.0.0.1:PORT inside the namespace to the host end, and from there to 127.0.0.1:PORT.
//! Everything is undone when it is dropped, also when the test fails.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::harness::{text, wait_for};
use super::netns;

/// The host end of the pair, which the manager advertises, and the node's end.
pub const HOST_ADDRESS: &str = "10.231.0.1";
pub const NODE_ADDRESS: &str = "10.231.0.2";
/// Its host name, which Swarm names it by.
pub const HOSTNAME: &str = "xtask-e2e-node2";

const FORWARDER: &str = r#"
import socket, sys, threading
listen_host, listen_port, to_host, to_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def serve(client):
    upstream = socket.create_connection((to_host, to_port))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((listen_host, listen_port))
server.listen(64)
print("ready", flush=True)
while True:
    client, _ = server.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
"#;

pub struct Node {
    netns: String,
    host_veth: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Node {
    /// The node with its daemon answering, or why this machine cannot have one.
    pub fn start(registry_port: u16) -> Result<Node, String> {
        for tool in ["ip", "nsenter", "unshare", "dockerd", "python3"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status();
            if !found.is_ok_and(|s| s.success()) {
                return Err(format!("{tool} is not installed"));
            }
        }
        let id = std::process::id() % 100_000;
        let dir = tempfile::Builder::new().prefix("xtask-e2e-node-").tempdir().map_err(|e| e.to_string())?;
        let mut node =
            Node { netns: format!("xtask-e2e-{id}"), host_veth: format!("xe2e{id}"), dir, children: Vec::new() };
        node.network()?;
        node.forward(registry_port)?;
        node.daemon()?;
        Ok(node)
    }

    fn network(&self) -> Result<(), String> {
        netns::create(&self.netns, &self.host_veth, HOST_ADDRESS, NODE_ADDRESS)
    }

    /// 127.0.0.1:PORT inside the namespace, through the host end, to 127.0.0.1:PORT here.
    fn forward(&mut self, port: u16) -> Result<(), String> {
        let port = port.to_string();
        let host_side = self.spawn_python(None, &[HOST_ADDRESS, &port, "127.0.0.1", &port])?;
        self.children.push(host_side);
        let node_side = self.spawn_python(Some(&self.netns.clone()), &["127.0.0.1", &port, HOST_ADDRESS, &port])?;
        self.children.push(node_side);
        Ok(())
    }

    fn spawn_python(&self, netns: Option<&str>, args: &[&str]) -> Result<Child, String> {
        let mut command = match netns {
            Some(netns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/var/run/netns/{netns}")).arg("python3");
                c
            }
            None => Command::new("python3"),
        };
        let mut child = command
            .args(["-c", FORWARDER])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut ready = [0u8; 6];
        let read = std::io::Read::read_exact(child.stdout.as_mut().expect("piped"), &mut ready);
        if read.is_err() || &ready != b"ready\n" {
            let _ = child.kill();
            return Err(format!("the forwarder to {} did not start", args.join(":")));
        }
        Ok(child)
    }

    /// dockerd in the namespace. `nsenter --net` rather than `ip netns exec`, which would
    /// mount a fresh /sys without the cgroup hierarchies the daemon needs.
    fn daemon(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        fs::write(root.join("daemon.json"), "{}").map_err(|e| e.to_string())?;
        let log = fs::File::create(root.join("dockerd.log")).map_err(|e| e.to_string())?;
        let driver = text(&Command::new("docker").args(["info", "--format", "{{.Driver}}"]).output().unwrap().stdout);
        // A host name of its own (Swarm names nodes by it), in a UTS namespace of its own.
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["unshare", "--uts", "sh", "-c", &format!("hostname {HOSTNAME} && exec dockerd \"$@\""), "sh"])
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(["--storage-driver", driver.trim()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        self.children.push(child);
        let up = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
            self.docker(&["info", "--format", "{{.ServerVersion}}"]).status.success().then_some(())
        });
        if up.is_none() {
            let log = fs::read_to_string(root.join("dockerd.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or_default().to_owned();
            return Err(format!("its Docker daemon did not answer within 30 s: {last}"));
        }
        Ok(())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `docker ARGS` against the node's daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").arg("-H").arg(format!("unix://{}", self.socket().display())).args(args).output().unwrap()
    }

    /// Joins the swarm whose manager is at `manager`. A busy manager makes `swarm join`
    /// give up waiting ("Timeout was reached before node joined") while the join goes on in
    /// the background, so the node's own state decides.
    pub fn join(&self, token: &str, manager: &str) {
        let out = self.docker(&["swarm", "join", "--token", token, manager]);
        if out.status.success() {
            return;
        }
        let state = wait_for(Duration::from_secs(90), Duration::from_millis(500), || {
            let state = self.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
            (text(&state.stdout).trim() == "active").then_some(())
        });
        assert!(state.is_some(), "docker (second node) swarm join {manager}: {}", text(&out.stderr));
    }

    /// Copies a local image to the node, as its own registry would have it.
    pub fn load(&self, image: &str) {
        let mut save = Command::new("docker").args(["save", image]).stdout(Stdio::piped()).spawn().unwrap();
        let load = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(["load", "--quiet"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success() && load.status.success(), "cannot copy {image} to the second node");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.docker(&["swarm", "leave", "--force"]);
        let containers = text(&self.docker(&["ps", "-aq"]).stdout);
        for container in containers.split_whitespace() {
            let _ = self.docker(&["rm", "--force", container]);
        }
        // The daemon last: SIGTERM, so that it unmounts its layers and stops its containerd.
        for child in self.children.iter_mut().rev() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let stopped = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
                child.try_wait().ok().flatten().map(|_| ())
            });
            if stopped.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        netns::remove(&self.netns, &self.host_veth);
    }
}
