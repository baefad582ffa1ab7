//! The deployment files under `deploy/` cannot run here (no Docker, no Kubernetes), so this
//! checks that they agree with the real server: every flag and environment variable they set
//! is one the binary accepts (by starting it with them), every path they probe answers 200,
//! and the numbers that must match (ports, user, grace period against the drain) do; and that
//! the TLS examples (deploy/tls/, nginx's 443 block) name files and settings that agree.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Server;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The JSON array after `prefix` on its line (`CMD ["serve"]`, `args: ["serve"]`).
fn json_array(text: &str, prefix: &str) -> Vec<String> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix}"));
    serde_json::from_str(line[prefix.len()..].trim()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The value of the first `key: value` line (trimmed, quotes removed).
fn yaml_value<'a>(text: &'a str, key: &str) -> &'a str {
    yaml_values(text, key).into_iter().next().unwrap_or_else(|| panic!("no {key}"))
}

fn yaml_values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let key = format!("{key}:");
    text.lines()
        .map(|l| l.trim().trim_start_matches("- "))
        .filter_map(|l| l.strip_prefix(key.as_str()))
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
        .collect()
}

/// The container's environment: each `- name: X` of the `env:` block, with the `value: "Y"`
/// that follows it (secret references have no value and come back as `None`).
fn k8s_env(text: &str) -> BTreeMap<String, Option<String>> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "env:").expect("env:");
    let mut env = BTreeMap::new();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let trimmed = line.trim();
        // The block ends at the first key no deeper than `env:` itself.
        if !trimmed.is_empty() && !trimmed.starts_with('-') && indent(line) <= indent(lines[start]) {
            break;
        }
        if let Some(name) = trimmed.strip_prefix("- name: ") {
            let value =
                lines.get(i + 1).and_then(|l| l.trim().strip_prefix("value: ")).map(|v| v.trim_matches('"').to_owned());
            env.insert(name.to_owned(), value);
        }
    }
    env
}

/// `ENV A=1 \ B=2` of the Dockerfile, continuation lines joined.
fn docker_env(dockerfile: &str) -> BTreeMap<String, String> {
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn help_text() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bareapi")).args(["serve", "--help"]).output().expect("bareapi --help");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// `bareapi ARGS --help`: clap reads every argument before the `--help` that follows them, so an
/// unknown subcommand or flag, or a flag's missing or bad value, fails it. The help printed, or
/// what clap said.
fn parses(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_bareapi")).args(argv).arg("--help").output().expect("bareapi");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_dockerfile_and_manifests_agree_with_the_server() {
    let dockerfile = read("deploy/Dockerfile");
    let k8s = read("deploy/k8s/deployment.yaml");
    let help = help_text();

    // Every environment variable set is one the server reads.
    let denv = docker_env(&dockerfile);
    let kenv = k8s_env(&k8s);
    assert!(kenv.contains_key("DATABASE_URL") && kenv.contains_key("BAREAPI_WORKERS"), "{kenv:?}");
    for name in denv.keys().chain(kenv.keys()) {
        assert!(help.contains(&format!("[env: {name}")), "{name} is not a setting of `bareapi serve`");
    }
    // The arguments each file passes are ones the binary takes, as a whole: the subcommand, every
    // flag and every flag's value (clap refuses the bad ones before it prints the help).
    let cmd = json_array(&dockerfile, "CMD");
    let args = json_array(&k8s, "args:");
    assert!(parses(&["serve", "--no-such-flag"]).is_err(), "the check below cannot fail");
    assert!(parses(&["serve", "--workers", "many"]).is_err(), "the check below cannot fail");
    for (file, argv) in [("Dockerfile CMD", &cmd), ("deployment args", &args)] {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let help = parses(&argv).unwrap_or_else(|e| panic!("{file} {argv:?} is refused: {e}"));
        assert!(help.contains("Usage: bareapi serve"), "{file} {argv:?} does not run `serve`");
    }

    // Ports: the image listens where it says it does, and the pod exposes that port.
    let listen: std::net::SocketAddr = denv["BAREAPI_LISTEN"].parse().expect("BAREAPI_LISTEN is an address");
    let expose: u16 = dockerfile.lines().find_map(|l| l.strip_prefix("EXPOSE ")).unwrap().trim().parse().unwrap();
    let container_port: u16 = yaml_value(&k8s, "containerPort").parse().unwrap();
    assert_eq!((listen.port(), expose), (container_port, container_port));

    // The image runs as the non-root user the pod asks for, the binary where it is copied.
    let user = dockerfile.lines().find_map(|l| l.strip_prefix("USER ")).unwrap().trim();
    let uid = user.split(':').next().unwrap();
    assert_ne!(uid, "0");
    assert_eq!(yaml_value(&k8s, "runAsUser"), uid);
    assert_eq!(yaml_value(&k8s, "runAsNonRoot"), "true");
    let entrypoint = json_array(&dockerfile, "ENTRYPOINT");
    assert!(
        dockerfile.contains(&format!("/bareapi {}", entrypoint[0])),
        "ENTRYPOINT {entrypoint:?} is not the copied binary"
    );

    // The grace period covers the preStop sleep and the whole drain.
    let grace: u64 = yaml_value(&k8s, "terminationGracePeriodSeconds").parse().unwrap();
    let sleep_line = k8s.lines().find(|l| l.contains("/bin/sleep")).expect("preStop sleep");
    let pre_stop: u64 = json_array(sleep_line, "command:")[1].parse().unwrap();
    let drain_ms: u64 = kenv["BAREAPI_DRAIN_TIMEOUT_MS"].as_deref().unwrap().parse().unwrap();
    assert!(grace > pre_stop + drain_ms.div_ceil(1000), "grace {grace} s < preStop {pre_stop} s + drain {drain_ms} ms");

    // The Service and the autoscaler point at what exists.
    let deployment_name = yaml_value(&k8s, "name");
    assert!(yaml_values(&k8s, "targetPort").contains(&"http"));
    assert!(yaml_values(&k8s, "name").contains(&"http"), "container port named http");
    assert!(k8s.contains(&format!("kind: Deployment\n    name: {deployment_name}")), "HPA target");

    // Started with exactly this configuration (the database and a free port swapped in), the
    // server comes up, and every probed path answers 200.
    let mut env: Vec<(String, String)> = denv.into_iter().collect();
    env.extend(kenv.clone().into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!((cmd[0].as_str(), args[0].as_str()), ("serve", "serve"));
    let mut flags: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    // The metrics listener on a free port too (the flag overrides the manifest's variable).
    let metrics_port: u16 =
        kenv["BAREAPI_METRICS_LISTEN"].as_deref().unwrap().parse::<std::net::SocketAddr>().unwrap().port();
    assert!(k8s.contains(&format!("name: metrics\n              containerPort: {metrics_port}")), "metrics port");
    assert!(k8s.contains(&format!("prometheus.io/port: \"{metrics_port}\"")), "scrape port");
    flags.extend(["--metrics-listen", "127.0.0.1:0"]);
    let mut server = Server::start_with_env(&flags, &env_refs);
    let metrics_addr: std::net::SocketAddr = server
        .start_up
        .iter()
        .find_map(|l| l.split("\"metrics_addr\":\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the metrics listener's address in the start-up log")
        .parse()
        .unwrap();
    // Each probe on the port it names.
    let lines: Vec<&str> = k8s.lines().map(str::trim).collect();
    let probes: Vec<(&str, &str)> =
        lines.windows(2).filter_map(|w| Some((w[0].strip_prefix("path: ")?, w[1].strip_prefix("port: ")?))).collect();
    assert!(probes.len() >= 2, "{probes:?}");
    for (path, port) in probes {
        let at = match port {
            "http" => server.addr,
            "metrics" => metrics_addr,
            other => panic!("probe {path} on unknown port {other}"),
        };
        let res = common::Conn::new(at).request("GET", path);
        assert_eq!(res.status, 200, "probe {path} on {port}: {}", res.text());
    }
    // Metrics where the scraper looks, and not on the public port.
    assert_eq!(common::Conn::new(metrics_addr).request("GET", "/metrics").status, 200);
    assert_eq!(server.get("/metrics").status, 404);
    server.terminate();
    let status = server.wait_exit(Duration::from_millis(drain_ms)).expect("exits within the drain time");
    assert!(status.success());
}

#[test]
fn the_nginx_file_names_two_upstreams_with_keepalive_and_failover() {
    let conf = read("deploy/nginx/bareapi.conf");
    assert_eq!(conf.matches("\n    server 127.0.0.1:").count(), 2, "two upstream servers");
    for needed in [
        "keepalive ",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_next_upstream error",
        // TLS at the load balancer: terminated here, cleartext to the instances.
        "listen 443 ssl http2;",
        "ssl_certificate /",
        "ssl_certificate_key /",
        "proxy_pass http://bareapi;",
    ] {
        assert!(conf.contains(needed), "missing {needed}");
    }
}

/// TLS at bareapi (deploy/tls/): the systemd unit starts the binary with flags it takes, on the
/// files the certbot hook writes, and reloads with SIGHUP; the hook is valid sh that reloads
/// the unit; the Kubernetes patch sets settings the server reads, pointing into the mounted
/// Secret, and probes over HTTPS.
#[test]
fn the_tls_examples_agree_with_the_server() {
    let unit = read("deploy/tls/bareapi.service");
    let hook = read("deploy/tls/certbot-deploy-hook.sh");
    let patch = read("deploy/tls/k8s-patch.yaml");
    let help = help_text();

    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(argv[0].ends_with("/bareapi"), "{exec}");
    let parsed = parses(&argv[1..]).unwrap_or_else(|e| panic!("ExecStart {exec} is refused: {e}"));
    assert!(parsed.contains("Usage: bareapi serve"), "{exec}");
    let flag = |name: &str| argv.iter().position(|a| *a == name).map(|i| argv[i + 1]).expect(name);
    let (cert, key) = (flag("--tls-cert"), flag("--tls-key"));
    assert_eq!(unit.lines().find_map(|l| l.strip_prefix("ExecReload=")), Some("/bin/kill -HUP $MAINPID"));
    for line in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let name = line.split('=').next().unwrap();
        assert!(help.contains(&format!("[env: {name}")), "{name} is not a setting of `bareapi serve`");
    }

    // The hook writes exactly the files the unit serves, then reloads the unit.
    let dir = hook.lines().find_map(|l| l.strip_prefix("dir=")).expect("dir=");
    assert_eq!((cert, key), (format!("{dir}/fullchain.pem").as_str(), format!("{dir}/privkey.pem").as_str()));
    assert!(hook.contains("for name in privkey.pem fullchain.pem"), "both files, the key first");
    assert!(hook.contains("systemctl reload bareapi"));
    let hook_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tls/certbot-deploy-hook.sh");
    assert!(Command::new("sh").arg("-n").arg(&hook_path).status().expect("sh").success(), "sh -n {hook_path:?}");

    // The patch: settings the server reads, files inside the mounted Secret, HTTPS probes.
    let env = k8s_env(&patch);
    for name in env.keys() {
        assert!(help.contains(&format!("[env: {name}")), "{name} is not a setting of `bareapi serve`");
    }
    let mount = yaml_value(&patch, "mountPath");
    for name in ["BAREAPI_TLS_CERT", "BAREAPI_TLS_KEY"] {
        let path = env[name].as_deref().unwrap_or_else(|| panic!("{name} has a value"));
        assert!(path.starts_with(&format!("{mount}/")), "{name} {path} is not in {mount}");
    }
    assert_eq!(yaml_value(&patch, "secretName"), "bareapi-tls");
    assert_eq!(yaml_value(&patch, "scheme"), "HTTPS");
    assert!(patch.contains("kill -HUP \"$(pidof bareapi)\""), "the sidecar reloads with SIGHUP");
    assert_eq!(yaml_value(&patch, "shareProcessNamespace"), "true");
}
