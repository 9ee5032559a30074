//! The deployment files: what can be checked without a container runtime.
//! The compose file parses, names the four services and mounts only files
//! that exist; Prometheus' configuration passes `promtool check config`
//! (which loads the alert rules too); the Dockerfile runs as a non-root
//! user with a health check on `/ready`, and builds with the command the
//! README gives.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds tests/")
        .to_path_buf()
}

#[test]
fn compose_names_the_services_and_mounts_files_that_exist() {
    let deploy = repo().join("deploy");
    let text = std::fs::read_to_string(deploy.join("compose.yaml")).expect("deploy/compose.yaml");
    let compose: Value = serde_yaml_ng::from_str(&text).expect("compose.yaml is YAML");
    let services = compose["services"].as_mapping().expect("services");
    for name in ["hub", "postgres", "prometheus", "grafana"] {
        assert!(
            services.contains_key(Value::from(name)),
            "no `{name}` service in compose.yaml"
        );
    }
    let build = &compose["services"]["hub"]["build"];
    let context = deploy.join(build["context"].as_str().expect("hub build context"));
    assert!(
        context
            .join(build["dockerfile"].as_str().expect("dockerfile"))
            .is_file()
    );
    let mut mounts = 0;
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            if let Some(source) = spec.split(':').next().filter(|s| s.starts_with("./")) {
                mounts += 1;
                assert!(
                    deploy.join(source).exists(),
                    "{name:?} mounts {source}, which does not exist under deploy/"
                );
            }
        }
    }
    assert!(mounts >= 4, "the Prometheus and Grafana files are mounted");
}

#[tokio::test]
async fn prometheus_configuration_passes_promtool() {
    let out = tokio::process::Command::new(super::metrics::promtool())
        .args(["check", "config", "prometheus.yml"])
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .await
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check_and_the_readme_build() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/ready"));
    let user = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert_ne!(user.trim(), "root");
    assert!(dockerfile.contains("VOLUME"));
    let builds: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("RUN cargo "))
        .collect();
    assert!(!builds.is_empty(), "the image builds with cargo");
    for build in builds {
        assert!(
            readme.contains(&format!("cargo {build}")),
            "the Dockerfile runs `cargo {build}`, which the README does not give"
        );
    }
}
