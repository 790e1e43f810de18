//! `opshost plugin new`: the plugin author kit. Writes a standalone plugin crate for one OMS
//! version hop (Cargo.toml, rust-toolchain.toml, src/lib.rs on `hop_plugin!`, scenarios/ with a
//! fake deployment and four passing scenarios) from the templates in `host/templates/oms-plugin/`,
//! then prints the next steps. This file owns the command, its checks and the template filling.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(after_help = "Example:\n  opshost plugin new --product oms --from 4.2.0 --to 4.2.1 oms-4.2.1\n\n\
The crate builds with `cargo build --release --target wasm32-wasip2` and passes its scenarios out of the box;\n\
docs/plugin-authors.md takes it from there to a signed plugin.")]
pub struct NewArgs {
    /// Product the plugin upgrades. Only oms has a template for now.
    #[arg(long, value_name = "PRODUCT")]
    pub product: String,
    /// Version the plugin upgrades from (X.Y.Z).
    #[arg(long, value_name = "VERSION")]
    pub from: String,
    /// Version the plugin upgrades to (X.Y.Z); the plugin is named <product>-<to>.
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// The shared guest library, opshost-procedures (default: plugins/procedures of the opshost
    /// source tree this binary was built from, when it is still there).
    #[arg(long, value_name = "PATH")]
    pub procedures: Option<PathBuf>,
    /// Directory to create the crate in: a new or an empty one.
    pub dir: PathBuf,
}

/// One file of a template: where it goes in the crate, and its text.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($path:literal, $file:literal) => {
        TemplateFile { path: $path, text: include_str!(concat!("../../templates/oms-plugin/", $file)) }
    };
}

const OMS_TEMPLATE: &[TemplateFile] = &[
    template!("Cargo.toml", "Cargo.toml.tmpl"),
    template!("rust-toolchain.toml", "rust-toolchain.toml.tmpl"),
    template!(".gitignore", "gitignore.tmpl"),
    template!("README.md", "README.md.tmpl"),
    template!("src/lib.rs", "src/lib.rs.tmpl"),
    template!("scenarios/_oms-{{from}}-deployment.toml", "scenarios/_deployment.toml.tmpl"),
    template!("scenarios/01-happy-path-then-rollback.toml", "scenarios/01-happy-path-then-rollback.toml.tmpl"),
    template!("scenarios/02-fail-run-then-rollback.toml", "scenarios/02-fail-run-then-rollback.toml.tmpl"),
    template!("scenarios/03-docker-init-fails-then-rollback.toml", "scenarios/03-docker-init-fails-then-rollback.toml.tmpl"),
    template!("scenarios/04-wrong-source-version.toml", "scenarios/04-wrong-source-version.toml.tmpl"),
];

/// The toolchain the repo builds plugins with (its rust-toolchain.toml), for the new crate's.
const REPO_TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// A product version `X.Y.Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u32, u32, u32);

impl Version {
    fn parse(what: &str, s: &str) -> Result<Version> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            bail!("{what} version {s:?} is not a product version: give three numbers separated by dots, e.g. 4.2.0");
        }
        let n = |i: usize| parts[i].parse::<u32>().unwrap();
        Ok(Version(n(0), n(1), n(2)))
    }
    fn digits(self) -> String {
        format!("{}{}{}", self.0, self.1, self.2)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The OMS image tag of a release, as the vendor spells it: `feature_3.3.1_ce`, `feature_4.2.0-ce`.
fn oms_tag(v: Version) -> String {
    if v.0 >= 4 {
        format!("feature_{v}-ce")
    } else {
        format!("feature_{v}_ce")
    }
}

/// A version that is neither `from` nor `to`, for the wrong-source scenario: the release before
/// `from` where there is one.
fn other_version(from: Version, to: Version) -> Version {
    let before = if from.2 > 0 {
        Version(from.0, from.1, from.2 - 1)
    } else if from.1 > 0 {
        Version(from.0, from.1 - 1, 0)
    } else if from.0 > 0 {
        Version(from.0 - 1, 0, 0)
    } else {
        Version(from.0, from.1, from.2 + 1)
    };
    if before != from && before != to {
        before
    } else {
        Version(to.0, to.1, to.2 + 1)
    }
}

/// Fill a template: `{{key}}` takes the value of `key`; `{{#flag}}…{{/flag}}` keeps its text when
/// `flag` is "true", `{{^flag}}…{{/flag}}` when it is not. An unknown key is a bug in the template.
fn fill(template: &str, vars: &BTreeMap<&str, String>, origin: &str) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    // Sections whose text is being dropped, innermost last: (flag, keeping?).
    let mut sections: Vec<(String, bool)> = Vec::new();
    while let Some(start) = rest.find("{{") {
        let keeping = sections.iter().all(|(_, k)| *k);
        if keeping {
            out.push_str(&rest[..start]);
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").with_context(|| format!("template {origin}: unclosed {{{{"))?;
        let tag = &after[..end];
        rest = &after[end + 2..];
        if let Some(flag) = tag.strip_prefix('#').or_else(|| tag.strip_prefix('^')) {
            let value = vars.get(flag).with_context(|| format!("template {origin}: unknown flag {flag}"))?;
            let on = value == "true";
            sections.push((flag.to_string(), if tag.starts_with('#') { on } else { !on }));
        } else if let Some(flag) = tag.strip_prefix('/') {
            match sections.pop() {
                Some((open, _)) if open == flag => {}
                other => bail!("template {origin}: {{{{/{flag}}}}} closes {:?}", other.map(|o| o.0)),
            }
        } else if keeping {
            out.push_str(vars.get(tag).with_context(|| format!("template {origin}: unknown key {tag}"))?);
        }
    }
    anyhow::ensure!(sections.is_empty(), "template {origin}: unclosed section {:?}", sections.last().map(|s| &s.0));
    out.push_str(rest);
    Ok(out)
}

/// The opshost-procedures crate to depend on: `--procedures`, else the one of the source tree
/// this binary was built from.
fn procedures_dir(given: Option<&Path>) -> Result<PathBuf> {
    let (dir, how) = match given {
        Some(p) => (p.to_path_buf(), "--procedures"),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/procedures"), "the default (the source tree opshost was built from)"),
    };
    let manifest = dir.join("Cargo.toml");
    let text = match std::fs::read_to_string(&manifest) {
        Ok(t) => t,
        Err(_) if given.is_none() => bail!(
            "the opshost source tree this binary was built from is gone ({} has no Cargo.toml): give --procedures PATH, the plugins/procedures directory of an opshost checkout",
            dir.display()
        ),
        Err(e) => bail!("--procedures {}: reading {}: {e}: give the plugins/procedures directory of an opshost checkout", dir.display(), manifest.display()),
    };
    let name =
        toml::from_str::<toml::Value>(&text).ok().and_then(|v| v.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()).map(str::to_string));
    anyhow::ensure!(
        name.as_deref() == Some("opshost-procedures"),
        "{} ({how}) is not the opshost-procedures crate (its package is {:?}): give --procedures the plugins/procedures directory of an opshost checkout",
        dir.display(),
        name.unwrap_or_default()
    );
    dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))
}

fn toolchain_channel() -> String {
    toml::from_str::<toml::Value>(REPO_TOOLCHAIN)
        .ok()
        .and_then(|v| v.get("toolchain").and_then(|t| t.get("channel")).and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| "stable".into())
}

pub fn run(a: &NewArgs) -> Result<i32> {
    match a.product.as_str() {
        "oms" => {}
        "odc" => bail!("ODC templates are not available yet: opshost plugin new makes OMS plugins only; write an ODC plugin by hand on opshost-procedures (docs/plugin-authors.md, \"Your own Guest\")"),
        other => bail!("unknown product {other:?}: opshost plugin new makes plugins for --product oms"),
    }
    let from = Version::parse("--from", &a.from)?;
    let to = Version::parse("--to", &a.to)?;
    anyhow::ensure!(from < to, "--from {from} is not older than --to {to}: a plugin upgrades to a newer release (rollback comes with it)");
    if a.dir.exists() {
        anyhow::ensure!(a.dir.is_dir(), "{} exists and is not a directory: give a new directory", a.dir.display());
        let empty = std::fs::read_dir(&a.dir).with_context(|| format!("reading {}", a.dir.display()))?.next().is_none();
        anyhow::ensure!(empty, "{} exists and is not empty: give a new directory, or empty this one", a.dir.display());
    }
    let procedures = procedures_dir(a.procedures.as_deref())?;

    let name = format!("oms-{to}");
    let krate = format!("oms_{}_{}_{}", to.0, to.1, to.2);
    let flag = |b: bool| if b { "true".to_string() } else { "false".to_string() };
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("name", name.clone()),
        ("crate", krate.clone()),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("from_digits", from.digits()),
        ("to_digits", to.digits()),
        ("from_tag", oms_tag(from)),
        ("to_tag", oms_tag(to)),
        ("wrong_source", other_version(from, to).to_string()),
        ("is_upgrade", flag(to >= Version(3, 3, 1))),
        ("ha", flag(to >= Version(4, 2, 0))),
        // OmsHop derives the new image by replacing the version in the old tag; where the tag's
        // spelling changes (3.x `_ce`, 4.x `-ce`) the scenario names it with parameter image.
        ("image_param", flag(oms_tag(from).replace(&from.to_string(), &to.to_string()) != oms_tag(to))),
        ("procedures_toml", toml::Value::String(procedures.display().to_string()).to_string()),
        ("toolchain", toolchain_channel()),
        ("opshost_version", env!("CARGO_PKG_VERSION").to_string()),
    ]);

    // Fill every file before writing any, so a template error leaves nothing behind.
    let mut files = Vec::new();
    for t in OMS_TEMPLATE {
        files.push((fill(t.path, &vars, t.path)?, fill(t.text, &vars, t.path)?));
    }
    for (path, text) in &files {
        let dest = a.dir.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, text).with_context(|| format!("writing {}", dest.display()))?;
    }
    // The bundled plugins' lock file pins the versions they were built and tested with (and lets
    // the first build run offline); cargo drops the entries the new crate does not use.
    if let Some(lock) = procedures.parent().map(|p| p.join("Cargo.lock")).filter(|l| l.is_file()) {
        std::fs::copy(&lock, a.dir.join("Cargo.lock")).with_context(|| format!("copying {} into the new crate", lock.display()))?;
    }

    let dir = a.dir.display();
    let wasm = format!("target/wasm32-wasip2/release/{krate}.wasm");
    println!("created plugin {name} (OMS {from} -> {to}) in {dir}");
    for (path, _) in &files {
        println!("  {path}");
    }
    println!(
        "  IS_UPGRADE=true: {}   HA step: {}   (set from the target version; check them in src/lib.rs)",
        if vars["is_upgrade"] == "true" { "yes" } else { "no" },
        if vars["ha"] == "true" { "yes" } else { "no" }
    );
    println!("  opshost-procedures: {}", procedures.display());
    println!();
    println!("next steps:");
    println!("  cd {dir}");
    println!("  cargo build --release --target wasm32-wasip2");
    println!("  opshost test --allow-unsigned {wasm} --scenario scenarios");
    println!("  opshost plan --allow-unsigned {wasm} --scenario scenarios/01-happy-path-then-rollback.toml");
    println!("  opshost key generate --secret vendor.key --public vendor.pub     # once; keep vendor.key secret");
    println!("  opshost sign --key vendor.key {wasm}");
    println!("  opshost verify --trust vendor.pub {wasm}");
    println!("  opshost test --trust vendor.pub {wasm} --scenario scenarios     # signed: no --allow-unsigned");
    println!("then copy {krate}.wasm into the site's plugins_dir, add vendor.pub to its trust list, and give the");
    println!("plugin its [grants.\"{name}\"] block (opshost plan --config site.toml --product oms --to {to} shows what it needs).");
    println!("guide: docs/plugin-authors.md");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_substitutes_and_keeps_or_drops_sections() {
        let vars = BTreeMap::from([("a", "x".to_string()), ("on", "true".to_string()), ("off", "false".to_string())]);
        assert_eq!(fill("{{a}}-{{#on}}1{{a}}{{/on}}{{#off}}2{{/off}}{{^off}}3{{/off}}", &vars, "t").unwrap(), "x-1x3");
        assert!(fill("{{b}}", &vars, "t").is_err());
        assert!(fill("{{#on}}x", &vars, "t").is_err());
    }

    #[test]
    fn versions_and_the_wrong_source() {
        assert!(Version::parse("--from", "4.2").is_err());
        assert!(Version::parse("--from", "4.2.x").is_err());
        assert!(Version::parse("--from", "4..2").is_err());
        let v = |s| Version::parse("v", s).unwrap();
        assert!(v("3.3.1") < v("4.2.0") && v("4.10.0") > v("4.9.9"));
        assert_eq!(other_version(v("3.3.0"), v("3.3.1")), v("3.2.0"));
        assert_eq!(other_version(v("4.1.1"), v("4.2.0")), v("4.1.0"));
        assert_eq!(oms_tag(v("3.3.1")), "feature_3.3.1_ce");
        assert_eq!(oms_tag(v("4.2.0")), "feature_4.2.0-ce");
    }
}
