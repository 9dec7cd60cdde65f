//! Packaging: the Kubernetes manifests validate (`kubernetes-validate --strict` for core kinds,
//! `tests/python/check_istio.py` for Istio's), the Dockerfile lints clean (`hadolint`), and
//! the configuration and policy the manifests ship are ones gatehouse accepts. The tools come
//! from `.venv` (installed by `scripts/install-envoy.sh`); a missing tool fails, never skips.
//! The security review (`docs/security.md`) names only tests and code that exist.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool in `.venv/bin`.
fn tool(name: &str) -> PathBuf {
    let path = repo().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} not found: run scripts/install-envoy.sh (it installs scripts/requirements-test.txt)",
        path.display()
    );
    path
}

/// Runs `program args` in the repository; returns success and the combined output.
fn run(program: &Path, args: &[&Path]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The YAML files of `k8s/<dir>`, sorted.
fn manifests(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("k8s").join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in k8s/{dir}");
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .filter(|document: &Value| !document.is_null())
        .collect()
}

#[test]
fn core_manifests_validate_strictly_against_kubernetes_schemas() {
    let validate = tool("kubernetes-validate");
    let mut files = manifests("sidecar");
    files.extend(manifests("shared"));
    let mut args: Vec<&Path> = vec![Path::new("--strict")];
    args.extend(files.iter().map(PathBuf::as_path));
    let (ok, output) = run(&validate, &args);
    assert!(ok, "kubernetes-validate failed:\n{output}");
    assert!(!output.contains("WARN"), "{output}");
}

#[test]
fn istio_resources_use_documented_fields_and_fail_closed() {
    let python = tool("python3");
    let checker = repo().join("tests/python/check_istio.py");
    let files = manifests("istio");
    let mut args = vec![checker.as_path()];
    args.extend(files.iter().map(PathBuf::as_path));
    let (ok, output) = run(&python, &args);
    assert!(ok, "Istio resources refused:\n{output}");

    // The checker is not vacuous: a fail-open provider without a timeout, an undocumented
    // field and a CUSTOM policy naming an unknown provider are each refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: { name: bad }
spec:
  meshConfig:
    extensionProviders:
      - name: open
        envoyExtAuthzGrpc: { service: a.b, port: 9001, failOpen: true, retries: 3 }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bad }
spec:
  action: CUSTOM
  provider: { name: nobody }
  rules: [{ to: [{ operation: { path: ["/"] } }] }]
"#,
    )
    .unwrap();
    let (ok, output) = run(&python, &[checker.as_path(), bad.as_path()]);
    assert!(!ok, "{output}");
    for expected in [
        "explicit timeout",
        "failOpen must be false",
        "statusOnError",
        "retries: not a documented field",
        "path: not a documented field",
        "'nobody' is not declared",
    ] {
        assert!(
            output.contains(expected),
            "missing {expected:?} in:\n{output}"
        );
    }
}

#[test]
fn dockerfile_passes_hadolint_and_runs_as_a_numeric_non_root_user() {
    let hadolint = tool("hadolint");
    let dockerfile = repo().join("Dockerfile");
    let (ok, output) = run(&hadolint, &[dockerfile.as_path()]);
    assert!(ok, "hadolint:\n{output}");

    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(
        text.contains("FROM rust:1.95"),
        "built with the pinned toolchain"
    );
    let user = text
        .lines()
        .rfind(|line| line.starts_with("USER "))
        .expect("a USER instruction");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER must be a numeric non-root uid: {user}"
    );
}

/// Every container (and native sidecar) of every pod template in `k8s/`.
fn containers() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for dir in ["sidecar", "shared"] {
        for path in manifests(dir) {
            for document in documents(&path) {
                let spec = &document["spec"]["template"]["spec"];
                for list in ["containers", "initContainers"] {
                    if let Some(items) = spec[list].as_sequence() {
                        for container in items {
                            let name = format!("{}:{:?}", path.display(), container["name"]);
                            found.push((name, container.clone()));
                        }
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_container_is_non_root_read_only_and_drops_capabilities() {
    let all = containers();
    assert!(all.len() >= 3, "{all:?}");
    for (name, container) in &all {
        let security = &container["securityContext"];
        assert_eq!(
            security["readOnlyRootFilesystem"],
            Value::Bool(true),
            "{name}"
        );
        assert_eq!(
            security["allowPrivilegeEscalation"],
            Value::Bool(false),
            "{name}"
        );
        let dropped = security["capabilities"]["drop"].as_sequence().unwrap();
        assert!(dropped.contains(&Value::from("ALL")), "{name}");
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{name}"
        );
    }
    // gatehouse itself: probes, and in the sidecar variant a native sidecar.
    let gatehouse: Vec<_> = all
        .iter()
        .filter(|(_, c)| c["image"].as_str().unwrap_or("").contains("gatehouse"))
        .filter(|(_, c)| c["args"][0] == "serve")
        .collect();
    assert_eq!(gatehouse.len(), 2);
    for (name, container) in gatehouse {
        assert_eq!(
            container["securityContext"]["runAsNonRoot"],
            Value::Bool(true)
        );
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            assert!(container[probe].is_mapping(), "{name}: {probe}");
        }
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"],
            Value::from("/readyz")
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"],
            Value::from("/healthz")
        );
        if name.contains("sidecar") {
            assert_eq!(container["restartPolicy"], Value::from("Always"), "{name}");
        }
    }
}

#[tokio::test]
async fn shipped_configurations_and_policy_are_accepted_by_gatehouse() {
    let dir = tempfile::tempdir().unwrap();
    for (file, name) in [
        ("sidecar/configmap.yaml", "gatehouse-sidecar"),
        ("shared/configmap.yaml", "gatehouse"),
    ] {
        let configmap = documents(&repo().join("k8s").join(file)).remove(0);
        assert_eq!(configmap["metadata"]["name"], Value::from(name));
        let toml = configmap["data"]["gatehouse.toml"].as_str().unwrap();
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).unwrap();
        let config = gatehouse::config::Config::load(Some(&path))
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        assert!(config.store.url.starts_with("postgres:"), "{file}");
        assert!(
            config
                .keys
                .encryption_key_path
                .starts_with("/etc/gatehouse/keys")
        );

        if let Some(policy) = configmap["data"]["policy.yaml"].as_str() {
            let url = format!("sqlite://{}", dir.path().join("policy.db").display());
            let mut config = config.clone();
            config.store.url = url;
            let store = gatehouse::server::open_store(&config).await.unwrap();
            gatehouse::admin::apply(store.as_ref(), policy)
                .await
                .unwrap_or_else(|error| panic!("{file} policy.yaml: {error}"));
        }
    }
}

/// The hostile-input cases every security review must cover, by id.
const HOSTILE_INPUT_CASES: [&str; 24] = [
    "B01", "B02", "B05", "B06", "B07", "B08", "B10", "B12", "B13", "B15", "B16", "B18", "B19",
    "B20", "B21", "B22", "B24", "B25", "B27", "B28", "B29", "B30", "B32", "B33",
];

/// Whether `text` (a Rust file) defines the test `name`: a function under `#[test]` or
/// `#[tokio::test]`, or one run on both stores by `on_both_backends!`.
fn defines_test(text: &str, name: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let signature = format!("fn {name}(");
    let Some(at) = lines.iter().position(|line| line.contains(&signature)) else {
        return false;
    };
    let attributed = lines[at.saturating_sub(3)..at]
        .iter()
        .any(|line| matches!(line.trim(), "#[test]" | "#[tokio::test]"));
    attributed || text.contains(&format!("on_both_backends!({name});"))
}

/// Whether `text` defines an item (function, type or constant) called `name`.
fn defines_item(text: &str, name: &str) -> bool {
    ["fn", "struct", "enum", "const", "trait"]
        .iter()
        .any(|kind| {
            text.contains(&format!("{kind} {name}("))
                || text.contains(&format!("{kind} {name} "))
                || text.contains(&format!("{kind} {name}<"))
                || text.contains(&format!("{kind} {name}:"))
        })
}

/// Every code span of `docs/security.md` that names a test (`tests/…rs::name`,
/// `src/…rs::name`) names a test that exists; every span naming a module of `src/`
/// (`check/credential.rs`, optionally `::item`) names one that exists and holds that item;
/// every case has a row; the README links the review.
#[test]
fn security_review_names_only_tests_that_exist() {
    let review = std::fs::read_to_string(repo().join("docs/security.md")).unwrap();
    let mut tests = 0;
    let mut modules = 0;
    // Code spans are the odd pieces between backticks.
    for span in review.split('`').skip(1).step_by(2) {
        let (file, item) = match span.split_once("::") {
            Some((file, item)) => (file, Some(item)),
            None => (span, None),
        };
        if !file.ends_with(".rs") || file.contains([' ', '<']) {
            continue;
        }
        let in_tree = file.starts_with("tests/") || file.starts_with("src/");
        match (in_tree, item) {
            (true, Some(test)) => {
                let text = std::fs::read_to_string(repo().join(file))
                    .unwrap_or_else(|_| panic!("{span}: no file {file}"));
                assert!(defines_test(&text, test), "{span}: no such test");
                tests += 1;
            }
            // A module of tests or a fuzz target named without a test is a pointer, not
            // evidence: only named tests count as such.
            (true, None) => {}
            _ if file.starts_with("fuzz/") || file.starts_with("examples/") => {}
            (false, item) => {
                let path = repo().join("src").join(file);
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|_| panic!("{span}: no module src/{file}"));
                if let Some(item) = item {
                    let last = item.rsplit("::").next().unwrap();
                    assert!(defines_item(&text, last), "{span}: no {last} in src/{file}");
                }
                modules += 1;
            }
        }
    }
    assert!(
        tests >= 150,
        "only {tests} test references found: is the table intact?"
    );
    assert!(modules >= 30, "only {modules} module references found");
    for case in HOSTILE_INPUT_CASES {
        assert!(
            review.contains(&format!("\n| {case} |")),
            "{case} has no row"
        );
    }
    for path in ["examples/auth_timing.rs", "docs/benchmarks.md"] {
        assert!(
            review.contains(path) && repo().join(path).exists(),
            "{path}"
        );
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains("(docs/security.md)"),
        "README does not link the review"
    );
}
