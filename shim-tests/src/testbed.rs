//! The test bed: network namespaces and veth pairs made for one run and
//! removed after it, even when the test fails or panics.
//!
//! Names carry the creating process's pid (`shunt-<pid>-<n>-<role>`), so
//! parallel runs never collide. Cleanup happens three ways: on drop (a
//! passing or panicking test); by a small reaper process started with the
//! test bed, which outlives a test process killed by Ctrl-C or SIGKILL and
//! then removes its namespaces; and, as a last resort, by the next test bed,
//! which removes namespaces of runs whose process is gone. Interfaces live
//! inside the namespaces, so their names can be short and fixed.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);
const PREFIX: &str = "shunt-";

pub struct Testbed {
    tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    reaper: Option<Child>,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run ip(8): is iproute2 installed?")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Remove namespaces of earlier runs whose process no longer exists.
pub fn remove_stale() {
    let out = ip(&["netns", "list"]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Start a process that waits for this one to die (however it dies) and
/// then removes every namespace named `tag-*`. It ignores the terminal's
/// Ctrl-C, which goes to the whole process group.
fn spawn_reaper(tag: &str) -> Option<Child> {
    let script = format!(
        "trap '' INT HUP; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         for ns in $(ip netns list | awk '{{print $1}}' | grep '^{tag}-'); do \
           for p in $(ip netns pids $ns); do kill -9 $p; done; ip netns del $ns; done",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

impl Testbed {
    pub fn new() -> Testbed {
        remove_stale();
        let tag = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let reaper = spawn_reaper(&tag);
        Testbed {
            tag,
            namespaces: Vec::new(),
            children: Vec::new(),
            reaper,
        }
    }

    /// Make a namespace with loopback up; returns its full name.
    pub fn ns(&mut self, role: &str) -> String {
        let name = self.ns_bare(role);
        ip_ok(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A namespace left as the kernel makes it: loopback down, no address
    /// ever configured (so no local routing table either).
    pub fn ns_bare(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.tag);
        ip_ok(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        name
    }

    /// Join `ns_a:if_a` and `ns_b:if_b` by a veth pair, both ends up.
    pub fn veth(&mut self, ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) {
        ip_ok(&[
            "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
        ]);
        ip_ok(&["-n", ns_a, "link", "set", if_a, "up"]);
        ip_ok(&["-n", ns_b, "link", "set", if_b, "up"]);
    }

    /// Add an address (`192.0.2.1/24`, `2001:db8::1/64`; IPv6 without DAD
    /// so it is usable at once).
    pub fn addr(&self, ns: &str, ifname: &str, cidr: &str) {
        if cidr.contains(':') {
            ip_ok(&["-n", ns, "addr", "add", cidr, "dev", ifname, "nodad"]);
        } else {
            ip_ok(&["-n", ns, "addr", "add", cidr, "dev", ifname]);
        }
    }

    /// A command that runs inside `ns`.
    pub fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Run `sh -c script` inside `ns` and return its output.
    pub fn sh(&self, ns: &str, script: &str) -> Output {
        self.cmd(ns, "sh")
            .args(["-c", script])
            .output()
            .expect("cannot run sh")
    }

    /// Start `sh -c script` inside `ns`; it is killed when the test bed goes.
    pub fn spawn_sh(&mut self, ns: &str, script: &str) -> &mut Child {
        let child = self
            .cmd(ns, "sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot run sh");
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }

    /// Keep a child started elsewhere, to kill it on cleanup.
    pub fn adopt(&mut self, child: Child) -> &mut Child {
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl Default for Testbed {
    fn default() -> Self {
        Testbed::new()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Processes started with `ip netns exec` may have forked: kill
        // whatever still runs in our namespaces before deleting them.
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                });
            let _ = ip(&["netns", "del", ns]);
        }
        if let Some(mut r) = self.reaper.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
}
