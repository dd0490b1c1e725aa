//! The fleet files of `examples/fleet/`, held against the validators of the systems that run
//! them, as part of step 6 of `cargo xtask test` (and alone as `cargo xtask check-fleet`):
//!
//! * `spacecore-k8s.yaml`, the Kubernetes manifest: `kubernetes-validate --strict`, which checks
//!   each resource against the Kubernetes OpenAPI schemas it ships (offline), for the oldest and
//!   the newest Kubernetes version the file is written for. It is a package of the Python
//!   package index, installed at pinned versions (with its dependencies, each pinned) by `pip
//!   install --no-deps --target target/tools/pip/kubernetes-validate-VERSION`, into a scratch
//!   directory renamed when complete, and reused on later runs.
//! * `spacecore.nomad.hcl`, the Nomad job: no registry this project can use offers Nomad or a
//!   jobspec validator, so it is parsed with the `hcl-rs` crate and its blocks and attributes are
//!   checked against the jobspec keys this file may use ([`nomad`]).
//! * `spacecore@.service`, the systemd template unit of docs/operations.md: `systemd-analyze
//!   verify`, the host's own (from Debian's `systemd` package), which must print nothing.
//! * every spacecore spec the manifest and the job carry: validated by `hac` as `hac-launch
//!   --check` would, and held against the file around it (ports, names, one instance per signer).
//!
//! A validator that cannot be had here (no `python3` with pip, no `systemd-analyze`) fails the
//! step in CI and is reported as SKIPPED otherwise, like the fuzz targets without nightly.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::cmd::{self, progress};

mod nomad;

/// Where the fleet files are, under the workspace.
pub const DIR: &str = "examples/fleet";
const KUBERNETES: &str = "spacecore-k8s.yaml";
const NOMAD: &str = "spacecore.nomad.hcl";
const UNIT: &str = "spacecore@.service";

/// kubernetes-validate and its dependencies, each at a pinned version, installed with
/// `--no-deps` so that exactly these are used.
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
const PYTHON_PINS: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "attrs==26.1.0",
    "PyYAML==6.0.4",
    "packaging==26.4",
    "importlib-resources==7.1.0",
    "typing-extensions==4.16.0",
];
/// The Kubernetes versions the manifest is validated against: the first whose API has every field
/// it uses (`securityContext.appArmorProfile` came in 1.30), and the newest kubernetes-validate
/// ships.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// The launcher's path in the unit; replaced by a stub when verifying, since `systemd-analyze
/// verify` checks that the commands exist.
const UNIT_LAUNCHER: &str = "/usr/local/bin/hac-launch";

/// What the fleet check could not run here: one line per validator, with the reason.
pub type Skipped = Vec<String>;

/// `cargo xtask check-fleet`: the check of step 6 alone.
pub fn run() -> Result<()> {
    let skipped = check(cmd::in_ci())?;
    banner(&skipped);
    Ok(())
}

/// Checks every fleet file. A validator that cannot be had fails the check in CI (`in_ci`) and
/// is returned as skipped otherwise; a file that a validator refuses always fails it.
pub fn check(in_ci: bool) -> Result<Skipped> {
    let started = Instant::now();
    let dir = cmd::workspace_root().join(DIR);
    let mut skipped = Vec::new();
    let mut unavailable = |what: &str, error: anyhow::Error| -> Result<()> {
        if in_ci {
            return Err(error.context(format!(
                "{what} is unavailable, and in CI every fleet file must be checked by its validator"
            )));
        }
        skipped.push(format!("{what}: {error:#}"));
        Ok(())
    };

    let job = read(&dir.join(NOMAD))?;
    let specs = nomad::check(&job).with_context(|| format!("{DIR}/{NOMAD}"))?;
    progress(format_args!(
        "{DIR}/{NOMAD}: HCL parsed (hcl-rs), jobspec keys and {specs} spacecore spec(s) checked"
    ));

    let manifest_path = dir.join(KUBERNETES);
    let manifest = read(&manifest_path)?;
    let specs = check_manifest_specs(&manifest).with_context(|| format!("{DIR}/{KUBERNETES}"))?;
    progress(format_args!("{DIR}/{KUBERNETES}: {specs} spacecore spec(s) of the ConfigMap checked"));
    match kubernetes_validate() {
        Ok(site) => {
            for version in KUBERNETES_VERSIONS {
                let mut validate = python(&site);
                validate.args(["-m", "kubernetes_validate", "--strict", "--quiet", "--kubernetes-version"]);
                validate.arg(version).arg(&manifest_path);
                let out = validate.output().context("cannot run kubernetes-validate")?;
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                ensure!(
                    out.status.success(),
                    "{DIR}/{KUBERNETES} does not validate against Kubernetes {version} \
                     (kubernetes-validate {KUBERNETES_VALIDATE_VERSION} --strict):\n{}",
                    text.trim_end()
                );
            }
            progress(format_args!(
                "{DIR}/{KUBERNETES}: valid for Kubernetes {} (kubernetes-validate {KUBERNETES_VALIDATE_VERSION} --strict)",
                KUBERNETES_VERSIONS.join(" and ")
            ));
        }
        Err(e) => unavailable("kubernetes-validate (Kubernetes manifests)", e)?,
    }

    let unit = read(&dir.join(UNIT))?;
    match systemd_analyze() {
        Ok((binary, version)) => {
            verify_unit(&binary, &unit)?;
            progress(format_args!("{DIR}/{UNIT}: `systemd-analyze verify` is silent ({version})"));
        }
        Err(e) => unavailable("systemd-analyze (the systemd unit)", e)?,
    }
    progress(format_args!("fleet files checked in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(skipped)
}

/// The loud report of validators that did not run; nothing when all ran.
pub fn banner(skipped: &Skipped) {
    if skipped.is_empty() {
        return;
    }
    let mut lines =
        vec!["FLEET FILES NOT FULLY CHECKED: a validator is unavailable (in CI this fails)".to_owned()];
    lines.extend(skipped.iter().map(|s| format!("SKIPPED {s}")));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    cmd::banner(&lines);
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Limits that let a fleet spec ask for what any KVM host might give: the host it runs on checks
/// its own room at start.
const FLEET_LIMITS: hac::HostLimits = hac::HostLimits { max_vcpus: 64, max_memory_bytes: 256 << 30 };

/// Validates one spacecore spec as `hac-launch --check` would, `path` naming where it lands.
fn spec(text: &str, path: &str) -> Result<hac::Plan> {
    hac::parse_str(text, Path::new(path), &FLEET_LIMITS).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The ConfigMap's specs (`NAME.toml: |` block scalars of its `data`), each valid, named after
/// the pod that reads it (`metadata.name` = NAME), as many as the StatefulSet's `replicas`.
fn check_manifest_specs(manifest: &str) -> Result<usize> {
    let specs = configmap_specs(manifest);
    ensure!(!specs.is_empty(), "no `NAME.toml: |` spec in the ConfigMap's data");
    for (file, text) in &specs {
        let plan = spec(text, &format!("/etc/spacecore/specs/{file}"))?;
        let pod = file.trim_end_matches(".toml");
        ensure!(
            plan.name == pod,
            "{file}: metadata.name is {:?}, but the pod that reads this spec is {pod:?}",
            plan.name
        );
    }
    let replicas: Vec<usize> = manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("replicas:"))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    ensure!(
        replicas == [specs.len()],
        "the StatefulSet's replicas ({replicas:?}) must be the number of specs in the ConfigMap ({}): \
         one pod per spacecore",
        specs.len()
    );
    Ok(specs.len())
}

/// The `NAME.toml: |` literal block scalars of a YAML text, unindented: the ConfigMap's specs.
/// (The YAML itself is kubernetes-validate's to check; this reads only these blocks.)
fn configmap_specs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut specs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        i += 1;
        let Some(name) = line.trim().strip_suffix(": |").filter(|name| name.ends_with(".toml")) else {
            continue;
        };
        let mut body: Vec<&str> = Vec::new();
        while i < lines.len() {
            let next = lines[i];
            let next_indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && next_indent <= indent {
                break;
            }
            body.push(next);
            i += 1;
        }
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        let strip =
            body.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min();
        let text: String =
            body.iter().map(|l| format!("{}\n", l.get(strip.unwrap_or(0)..).unwrap_or(""))).collect();
        specs.push((name.to_owned(), text));
    }
    specs
}

/// `python3` with `site` (kubernetes-validate's install) first on its path and nothing of the
/// user's.
fn python(site: &Path) -> Command {
    let mut command = Command::new("python3");
    command.env("PYTHONPATH", site).env("PYTHONNOUSERSITE", "1").env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// kubernetes-validate's install directory (for `PYTHONPATH`): installed before with these
/// pins, or installed now.
fn kubernetes_validate() -> Result<PathBuf> {
    let base = cmd::target_dir().join("tools/pip");
    let dir = base.join(format!("kubernetes-validate-{KUBERNETES_VALIDATE_VERSION}"));
    let pins = PYTHON_PINS.join("\n") + "\n";
    let reports_version = |dir: &Path| {
        python(dir).args(["-m", "kubernetes_validate", "--version"]).output().is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == KUBERNETES_VALIDATE_VERSION
        })
    };
    if fs::read_to_string(dir.join("pins.txt")).is_ok_and(|p| p == pins) && reports_version(&dir) {
        progress(format_args!(
            "kubernetes-validate {KUBERNETES_VALIDATE_VERSION} (cached): {}",
            dir.display()
        ));
        return Ok(dir);
    }
    let pip_runs = || {
        Command::new("python3").args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success())
    };
    if !pip_runs() {
        // As chain_tools does for node and npm: a fresh machine of this project's kind has them,
        // this keeps the test command self-sufficient where it does not.
        progress(
            "python3 or its pip is missing: installing Debian's python3 and python3-pip packages (apt-get)...",
        );
        let installed = cmd::run(Command::new("apt-get").args(["update", "-qq"])).and_then(|()| {
            cmd::run(Command::new("apt-get").args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "python3",
                "python3-pip",
            ]))
        });
        if let Err(e) = installed {
            bail!("`python3 -m pip` does not run, and Debian's python3-pip could not be installed: {e:#}");
        }
        ensure!(pip_runs(), "`python3 -m pip` does not run, even after installing Debian's python3-pip");
    }
    let scratch = base.join(format!("kubernetes-validate-{KUBERNETES_VALIDATE_VERSION}.partial"));
    for old in [&scratch, &dir] {
        if old.exists() {
            fs::remove_dir_all(old).with_context(|| format!("cannot remove {}", old.display()))?;
        }
    }
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    progress(format_args!(
        "installing kubernetes-validate {KUBERNETES_VALIDATE_VERSION} from the Python package index into {}...",
        dir.display()
    ));
    let started = Instant::now();
    cmd::run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-input",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--progress-bar", "off", "--target"])
            .arg(&scratch)
            .args(PYTHON_PINS)
            .env("PIP_ROOT_USER_ACTION", "ignore"),
    )
    .context("pip could not install kubernetes-validate")?;
    fs::write(scratch.join("pins.txt"), &pins).context("cannot write pins.txt")?;
    fs::rename(&scratch, &dir)
        .with_context(|| format!("cannot rename {} to {}", scratch.display(), dir.display()))?;
    ensure!(
        reports_version(&dir),
        "kubernetes-validate does not report {KUBERNETES_VALIDATE_VERSION} after its install"
    );
    progress(format_args!(
        "kubernetes-validate {KUBERNETES_VALIDATE_VERSION} installed in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(dir)
}

/// The host's `systemd-analyze` and its version line (`systemd 252 (252.38-1~deb12u1)`).
fn systemd_analyze() -> Result<(PathBuf, String)> {
    let binary = PathBuf::from("systemd-analyze");
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .context("systemd-analyze is not installed (it comes with Debian's systemd package)")?;
    ensure!(out.status.success(), "`systemd-analyze --version` failed");
    let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_owned();
    Ok((binary, version))
}

/// `systemd-analyze verify` of the unit as the instance `spacecore@avs-a.service`, the launcher's
/// path pointing at a stub: it must exit 0 and print nothing (it reports unknown keys and bad
/// values as warnings and still exits 0).
fn verify_unit(binary: &Path, unit: &str) -> Result<()> {
    ensure!(unit.contains(UNIT_LAUNCHER), "{DIR}/{UNIT} does not run {UNIT_LAUNCHER}");
    let dir = cmd::target_dir().join("fleet-check").join(std::process::id().to_string());
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = verify_unit_in(binary, unit, &dir);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn verify_unit_in(binary: &Path, unit: &str, dir: &Path) -> Result<()> {
    let stub = dir.join("hac-launch");
    fs::write(&stub, "#!/bin/sh\nexit 0\n").context("cannot write the launcher stub")?;
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755))
        .context("cannot make the stub executable")?;
    let stub_text = stub.to_str().context("the target directory's path is not UTF-8")?;
    let instance = dir.join("spacecore@avs-a.service");
    fs::write(&instance, unit.replace(UNIT_LAUNCHER, stub_text)).context("cannot write the unit")?;
    let out = Command::new(binary)
        .args(["verify", "--man=no"])
        .arg(&instance)
        .output()
        .context("cannot run systemd-analyze")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(
        out.status.success() && text.trim().is_empty(),
        "`systemd-analyze verify` finds fault with {DIR}/{UNIT} ({}; {UNIT_LAUNCHER} read as {stub_text}):\n{}",
        out.status,
        text.trim_end()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet_file(name: &str) -> String {
        read(&cmd::workspace_root().join(DIR).join(name)).unwrap()
    }

    #[test]
    fn the_configmap_specs_are_read_as_written() {
        let yaml = "data:\n  # a comment\n  a.toml: |\n    x = 1\n\n    [t]\n      y = 2\n  b.toml: |\n    z = 3\n---\nkind: X\n";
        let specs = configmap_specs(yaml);
        assert_eq!(
            specs,
            [
                ("a.toml".to_owned(), "x = 1\n\n[t]\n  y = 2\n".to_owned()),
                ("b.toml".to_owned(), "z = 3\n".to_owned())
            ]
        );
    }

    #[test]
    fn the_manifest_specs_are_valid_and_one_per_pod() {
        let manifest = fleet_file(KUBERNETES);
        assert_eq!(check_manifest_specs(&manifest).unwrap(), 2);
        for (_, text) in configmap_specs(&manifest) {
            assert!(spec(&text, "/x.toml").unwrap().signs(), "the example's spacecores are signers");
        }
        // A signer asked to scale is refused by hac; a spec named for another pod, by the check.
        let scaled = manifest.replacen("scaling = \"None\"", "scaling = \"HorizontalAutoScaling\"", 1);
        let error = format!("{:#}", check_manifest_specs(&scaled).unwrap_err());
        assert!(error.contains("spec.operations.scaling") && error.contains("but it signs"), "{error}");
        let renamed = manifest.replacen("name = \"spacecore-1\"", "name = \"avs-x\"", 1);
        let error = format!("{:#}", check_manifest_specs(&renamed).unwrap_err());
        assert!(error.contains("the pod that reads this spec is \"spacecore-1\""), "{error}");
        let more = manifest.replacen("replicas: 2", "replicas: 3", 1);
        assert!(check_manifest_specs(&more).is_err(), "a third pod would have no spec");
    }

    #[test]
    fn the_nomad_job_passes_its_checks() {
        assert_eq!(nomad::check(&fleet_file(NOMAD)).unwrap(), 2);
    }

    /// docs/operations.md shows no copy of the unit that could drift from the file: it points at it.
    #[test]
    fn operations_md_references_the_unit_file() {
        let docs = read(&cmd::workspace_root().join("docs/operations.md")).unwrap();
        assert!(docs.contains(&format!("../{DIR}/{UNIT}")), "docs/operations.md must link {DIR}/{UNIT}");
        assert!(!docs.contains("```ini\n[Unit]"), "docs/operations.md must not keep a copy of the unit");
        for file in [KUBERNETES, NOMAD] {
            assert!(docs.contains(&format!("../{DIR}/{file}")), "docs/operations.md must link {DIR}/{file}");
        }
    }

    #[test]
    fn systemd_analyze_verify_refuses_a_bad_unit() {
        let Ok((binary, _)) = systemd_analyze() else {
            eprintln!("systemd-analyze is not installed here: not tested");
            return;
        };
        let unit = fleet_file(UNIT);
        verify_unit(&binary, &unit).unwrap();
        for (from, to) in [("KillMode=mixed", "KillMode=bogus"), ("TimeoutStopSec=", "TimeoutStopSecs=")] {
            let bad = unit.replacen(from, to, 1);
            assert!(verify_unit(&binary, &bad).is_err(), "{to} passed");
        }
    }
}
