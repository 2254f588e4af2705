//! A small wrapper around `kubectl`: every call pinned to one context and bounded in time,
//! JSON in and out, and [`eventually`] for bounded waits that say what they last saw.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a single kubectl request may take.
const REQUEST_TIMEOUT: &str = "--request-timeout=30s";
/// How often [`eventually`] checks again.
const POLL: Duration = Duration::from_secs(2);

/// A cluster reached through `kubectl --context CONTEXT`.
#[derive(Debug, Clone)]
pub struct Cluster {
    context: String,
}

/// One event about an object, as `kubectl get events` shows it.
#[derive(Debug, Clone)]
pub struct Event {
    pub type_: String,
    pub reason: String,
    pub message: String,
}

impl Cluster {
    pub fn new(context: &str) -> Cluster {
        Cluster { context: context.to_string() }
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    /// Runs kubectl with `stdin`; the trimmed stdout, or an error with the command and stderr.
    /// Every request is bounded by a 30s request timeout, except `delete`, whose `--wait` is
    /// bounded by its own `--timeout`.
    pub fn try_kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--context").arg(&self.context);
        if args.first() != Some(&"delete") {
            cmd.arg(REQUEST_TIMEOUT);
        }
        cmd.args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().map_err(|e| format!("cannot run kubectl: {e}"))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(input.as_bytes()).map_err(|e| format!("kubectl stdin: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "`kubectl {}` failed ({}): {} {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
    }

    pub fn try_kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.try_kubectl_stdin(args, None)
    }

    /// Runs kubectl and panics with its error output when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.try_kubectl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kubectl apply -f -` with the object (or `List`) as JSON; retried for up to 30s, since
    /// right after CRDs are installed kubectl may not know the kinds yet.
    pub fn apply(&self, manifest: &Value) {
        let json = serde_json::to_string(manifest).expect("manifest serializes");
        let what = match manifest["kind"].as_str() {
            Some("List") => format!("a List of {} objects", manifest["items"].as_array().map_or(0, Vec::len)),
            kind => format!("{} {}", kind.unwrap_or("object"), manifest["metadata"]["name"].as_str().unwrap_or("?")),
        };
        eventually(&format!("kubectl apply of {what}"), Duration::from_secs(30), || {
            self.try_kubectl_stdin(&["apply", "-f", "-"], Some(&json))
        });
    }

    /// `kubectl get RESOURCE NAME -o json`; `None` when it does not exist. Errors (the API
    /// server or kubectl's discovery having a bad moment) are returned, so that a wait retries.
    pub fn get(&self, namespace: Option<&str>, resource: &str, name: &str) -> Result<Option<Value>, String> {
        let mut args = vec!["get", resource, name, "-o", "json", "--ignore-not-found"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let out = self.try_kubectl(&args)?;
        if out.is_empty() { Ok(None) } else { parse(&out).map(Some) }
    }

    /// `kubectl get RESOURCE [-l SELECTOR] -o json`: the items.
    pub fn list(&self, namespace: &str, resource: &str, selector: Option<&str>) -> Result<Vec<Value>, String> {
        let mut args = vec!["get", resource, "-n", namespace, "-o", "json"];
        if let Some(s) = selector {
            args.extend(["-l", s]);
        }
        let list = parse(&self.try_kubectl(&args)?)?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Deletes, ignoring what does not exist; waits for it to be gone (bounded by `--timeout`).
    pub fn delete(&self, namespace: Option<&str>, what: &[&str]) -> Result<String, String> {
        let mut args = vec!["delete", "--ignore-not-found", "--wait=true", "--timeout=180s"];
        args.extend(what);
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        self.try_kubectl(&args)
    }

    /// The events whose involved object is `name` in `namespace`.
    pub fn events_about(&self, namespace: &str, name: &str) -> Result<Vec<Event>, String> {
        let selector = format!("involvedObject.name={name}");
        let args = ["get", "events", "-n", namespace, "--field-selector", &selector, "-o", "json"];
        let list = parse(&self.try_kubectl(&args)?)?;
        let events = list["items"].as_array().into_iter().flatten();
        Ok(events
            .map(|e| Event {
                type_: e["type"].as_str().unwrap_or_default().to_string(),
                reason: e["reason"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().or(e["note"].as_str()).unwrap_or_default().to_string(),
            })
            .collect())
    }

    /// Waits until the Deployment has rolled out: the latest generation observed and every
    /// replica updated and available. On timeout, says why its pods are not ready.
    pub fn wait_for_rollout(&self, namespace: &str, name: &str, timeout: Duration) {
        eventually(&format!("deployment {namespace}/{name} to roll out"), timeout, || {
            let d = self.get(Some(namespace), "deployment", name)?.ok_or("the deployment does not exist")?;
            let s = &d["status"];
            let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let observed = s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64();
            let updated = s["updatedReplicas"].as_i64().unwrap_or(0);
            let available = s["availableReplicas"].as_i64().unwrap_or(0);
            let stale = s["replicas"].as_i64().unwrap_or(0) - updated;
            if observed && updated == want && available == want && stale == 0 {
                return Ok(());
            }
            let selector = d["spec"]["selector"]["matchLabels"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())))
                .map(|kv| kv.collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            Err(format!(
                "updated {updated}/{want}, available {available}/{want}; pods: {}",
                self.pod_states(namespace, &selector)
            ))
        })
    }

    /// One line per pod: phase and the waiting or terminated reason of each container
    /// (`ImagePullBackOff: ...` says at once what is wrong).
    pub fn pod_states(&self, namespace: &str, selector: &str) -> String {
        let pods = match self.list(namespace, "pods", Some(selector)) {
            Ok(pods) => pods,
            Err(e) => return e,
        };
        if pods.is_empty() {
            return "none".into();
        }
        pods.iter()
            .map(|p| {
                let containers: Vec<String> = p["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let state = &c["state"];
                        let why = ["waiting", "terminated"]
                            .iter()
                            .find_map(|k| state[*k].as_object().map(|o| (k, o)))
                            .map(|(k, o)| {
                                format!(
                                    "{k} {} {}",
                                    o.get("reason").and_then(Value::as_str).unwrap_or_default(),
                                    o.get("message").and_then(Value::as_str).unwrap_or_default()
                                )
                            })
                            .unwrap_or_else(|| format!("ready={}", c["ready"]));
                        format!("{}: {}", c["name"].as_str().unwrap_or_default(), why.trim())
                    })
                    .collect();
                format!(
                    "{} {} [{}]",
                    p["metadata"]["name"].as_str().unwrap_or_default(),
                    p["status"]["phase"].as_str().unwrap_or_default(),
                    containers.join("; ")
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// `kubectl port-forward TARGET :PORT`: a local port forwarded until the guard drops.
    pub fn port_forward(&self, namespace: &str, target: &str, remote_port: u16) -> PortForward {
        let mut child = Command::new("kubectl")
            .args(["--context", &self.context, "-n", namespace, "port-forward", "--address", "127.0.0.1"])
            .arg(target)
            .arg(format!(":{remote_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl port-forward: {e}"));
        // Both pipes are drained for as long as kubectl runs, so that it never blocks on them.
        // stdout: "Forwarding from 127.0.0.1:40123 -> 4443", then "Handling connection for ...".
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let port = line
                    .strip_prefix("Forwarding from 127.0.0.1:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok());
                if let Some(p) = port {
                    let _ = tx.send(p);
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut e = sink.lock().expect("stderr buffer");
                if e.len() < 64 * 1024 {
                    e.push_str(&line);
                    e.push('\n');
                }
            }
        });
        let mut guard = PortForward { child, local_port: 0 };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => guard.local_port = port,
            Err(_) => {
                drop(guard);
                let err = errors.lock().expect("stderr buffer").clone();
                panic!("kubectl port-forward {target} :{remote_port} in {namespace} did not start: {}", err.trim());
            }
        }
        guard
    }
}

/// A running `kubectl port-forward`, stopped on drop.
pub struct PortForward {
    child: Child,
    local_port: u16,
}

impl PortForward {
    pub fn local_port(&self) -> u16 {
        self.local_port
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks until `check` returns `Ok`, every 2 seconds, for at most `timeout`. Panics with
/// what it waited for and the last reason `check` gave.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        let last = match check() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            panic!("timed out after {}s waiting for {what}; last seen: {last}", timeout.as_secs());
        }
        std::thread::sleep(POLL);
    }
}

/// A progress line with the time since the suite started (shown with `--nocapture`).
pub fn step(what: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs();
    eprintln!("[e2e {:>3}:{:02}] {what}", t / 60, t % 60);
}

fn parse(json: &str) -> Result<Value, String> {
    serde_json::from_str(json).map_err(|e| format!("kubectl printed invalid JSON ({e}): {json}"))
}
