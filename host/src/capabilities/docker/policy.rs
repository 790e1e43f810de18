//! What a container a plugin runs may be, decided by the host: names in Docker's grammar, images
//! and mounts and networks the run has seen on containers the plugin is granted (or loaded from
//! archives the site granted, or named by the operator), never another container's namespace,
//! `--privileged` only where the site allows it. [`Approved`] is what the run has seen; it is kept
//! in the run records so that a rollback in a later process knows it too. Secrets in a
//! container's environment never reach the plugin: it sees a reference, which the host replaces
//! with the value when the plugin runs a container with that variable.

use super::RunSpec;
use crate::bindings::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a plugin sees instead of a secret's value: `opshost-secret:<container>/<VARIABLE>`.
pub const SECRET_PREFIX: &str = "opshost-secret:";

/// The reference a plugin sees for variable `variable` of container `container`.
fn secret_reference(container: &str, variable: &str) -> String {
    format!("{SECRET_PREFIX}{container}/{variable}")
}

/// Environment variables whose values are credentials: their names contain one of these
/// (`MYSQL_PWD`, `DB_PASS` among them).
const SECRET_WORDS: &[&str] = &["PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"];

/// Whether a variable holds a credential, by its name or because the site names it.
pub fn is_secret(variable: &str, site_secrets: &[String]) -> bool {
    let upper = variable.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w)) || site_secrets.iter().any(|s| s.eq_ignore_ascii_case(variable))
}

/// The secret values (with their references) in the environment of `spec`, a container as the
/// engine shows it: what [`hide_secret_values`] takes out of its exec and log output.
pub fn secrets_in(spec: &RunSpec, site_secrets: &[String]) -> Vec<(String, String)> {
    let secret = |(k, v): &&(String, String)| is_secret(k, site_secrets) && !v.starts_with(SECRET_PREFIX);
    spec.env.iter().filter(secret).map(|(k, v)| (secret_reference(&spec.name, k), v.clone())).collect()
}

/// Secret values shorter than this are left in output: one of a few characters would match
/// ordinary text, and a plugin reading the output would find it changed.
pub const SCRUBBED_FROM: usize = 4;

/// Whether `text` holds the value of one of `secrets` (`(reference, value)`) that
/// [`hide_secret_values`] would replace.
fn holds_secret_value(text: &str, secrets: &[(String, String)]) -> bool {
    secrets.iter().any(|(_, v)| v.len() >= SCRUBBED_FROM && text.contains(v.as_str()))
}

/// `text` with every occurrence of a secret's value (`(reference, value)`, of at least
/// [`SCRUBBED_FROM`] bytes) replaced by its reference, longer values first (one may contain
/// another). `docker.exec` and `docker.logs` output goes through this before the plugin, the
/// journal or a transcript sees it: `printenv` in a container prints its password.
pub fn hide_secret_values(text: &str, secrets: &[(String, String)]) -> String {
    if !holds_secret_value(text, secrets) {
        return text.to_string();
    }
    let mut secrets: Vec<&(String, String)> = secrets.iter().filter(|(_, v)| v.len() >= SCRUBBED_FROM).collect();
    secrets.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for (reference, value) in secrets {
        out = out.replace(value.as_str(), reference);
    }
    out
}

/// The run-records key [`Approved`] is kept under; plugins cannot write `opshost.` keys.
pub const RECORD_KEY: &str = "opshost.approved";

/// Images, mount sources and networks per node (`*`: any node) that the run may use.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Approved {
    images: BTreeSet<(String, String)>,
    mounts: BTreeSet<(String, String)>,
    /// Of `mounts`, those every granted container seen mounts read-only: a container may mount
    /// them read-only only (empty in records of earlier versions: then nothing is held to it).
    #[serde(default)]
    read_only_mounts: BTreeSet<(String, String)>,
    networks: BTreeSet<(String, String)>,
    /// Nodes where a granted container already runs with `--privileged`.
    privileged: BTreeSet<String>,
    /// `node/container/VARIABLE` -> the secret value the plugin saw a reference to.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// Secrets were added since the set was last kept.
    #[serde(skip)]
    pub dirty: bool,
}

/// What the site allows beyond what the run has seen.
pub struct SiteRules<'a> {
    /// `[grants."<plugin>"]` keys `images`, `mounts`, `networks`, `privileged` (patterns).
    pub allows: &'a dyn Fn(&str, &str) -> bool,
    /// `[docker_policy] deny_privileged`.
    pub deny_privileged: bool,
}

impl Approved {
    /// A granted container the plugin inspected: what it runs with may be used again.
    pub fn saw_container(&mut self, node: &str, spec: &RunSpec) -> bool {
        let before = self.clone();
        self.images.insert((node.into(), spec.image.clone()));
        for m in &spec.mounts {
            let key = (node.to_string(), m.source.clone());
            if !m.read_only {
                self.read_only_mounts.remove(&key);
            } else if !self.mounts.contains(&key) {
                self.read_only_mounts.insert(key.clone());
            }
            self.mounts.insert(key);
        }
        if !spec.network_mode.starts_with("container:") {
            self.networks.insert((node.into(), spec.network_mode.clone()));
        }
        if spec.privileged {
            self.privileged.insert(node.into());
        }
        *self != before
    }

    /// Replace the values of secret variables in an inspected spec by references, keeping the
    /// values for [`Approved::reveal`]: variables named as secrets, and any whose value holds one
    /// of the site's `credentials` (`(reference, value)`: a MetaDB password in `JDBC_URL`).
    /// Elsewhere in the spec (its command, its labels) a credential is replaced by its reference.
    pub fn hide_secrets(&mut self, node: &str, spec: &mut RunSpec, site_secrets: &[String], credentials: &[(String, String)]) {
        for t in spec.command.iter_mut().chain(spec.labels.iter_mut().map(|(_, v)| v)) {
            *t = hide_secret_values(t, credentials);
        }
        for (k, v) in spec.env.iter_mut().filter(|(k, v)| (is_secret(k, site_secrets) || holds_secret_value(v, credentials)) && !v.starts_with(SECRET_PREFIX)) {
            let slot = format!("{node}/{}/{k}", spec.name);
            if self.secrets.get(&slot) != Some(v) {
                self.secrets.insert(slot, v.clone());
                self.dirty = true;
            }
            *v = secret_reference(&spec.name, k);
        }
    }

    /// Every secret value this run has seen, with the reference the plugin was shown for it.
    pub fn known_secrets(&self) -> Vec<(String, String)> {
        let reference = |slot: &str| format!("{SECRET_PREFIX}{}", slot.split_once('/').map_or(slot, |(_, rest)| rest));
        self.secrets.iter().map(|(slot, value)| (reference(slot), value.clone())).collect()
    }

    /// Put the secret values back into a spec the plugin wants run: a reference is replaced by
    /// the value it stands for, in a variable of the same name only.
    pub fn reveal(&self, node: &str, spec: &mut RunSpec) -> Result<(), Error> {
        for (k, v) in spec.env.iter_mut() {
            let Some(reference) = v.strip_prefix(SECRET_PREFIX) else { continue };
            let value = match reference.split_once('/') {
                Some((container, variable)) if variable == k => self
                    .secrets
                    .get(&format!("{node}/{container}/{variable}"))
                    .or_else(|| self.secrets.iter().find(|(slot, _)| slot.split_once('/').is_some_and(|(_, rest)| rest == reference)).map(|(_, v)| v)),
                _ => None,
            };
            match value {
                Some(secret) => *v = secret.clone(),
                None => {
                    return Err(Error::InvalidInput(format!(
                        "environment variable {k} of container {} refers to a secret ({v}) this run has not seen, or that belongs to another variable",
                        spec.name
                    )))
                }
            }
        }
        Ok(())
    }

    /// Tags an archive the site granted loaded on a node.
    pub fn loaded(&mut self, node: &str, tags: &[String]) -> bool {
        let before = self.images.len();
        self.images.extend(tags.iter().map(|t| (node.to_string(), t.clone())));
        self.images.len() != before
    }

    /// Images the operator named in the site config's (or scenario's) parameters (`image`,
    /// `nginx_image`, …); never a plugin's defaults, which the plugin chose.
    pub fn approve_parameters<'a>(&mut self, parameters: impl IntoIterator<Item = (&'a String, &'a String)>) {
        for (k, v) in parameters {
            if (k == "image" || k.ends_with("_image")) && !v.is_empty() {
                self.images.insert(("*".into(), v.clone()));
            }
        }
    }

    fn has(set: &BTreeSet<(String, String)>, node: &str, what: &str) -> bool {
        set.contains(&(node.to_string(), what.to_string())) || set.contains(&("*".to_string(), what.to_string()))
    }

    /// Whether the plugin may use (or ask about) this image on this node: one the run has seen
    /// or the operator named, another tag of the same repository (the product's next version,
    /// loaded by the operator), or one the site lists.
    pub fn check_image(&self, node: &str, image: &str, site: &SiteRules) -> Result<(), Error> {
        let repo = repository(image);
        let same_repo = self.images.iter().any(|(n, i)| (n == node || n == "*") && repository(i) == repo);
        if Self::has(&self.images, node, image) || same_repo || (site.allows)("images", image) {
            return Ok(());
        }
        Err(Error::Denied(format!(
            "image {image} on node {node} is not one this run may use: only images (and other tags of the repositories) of containers the plugin is granted, images loaded from granted archives, or images the site config names (an `image` parameter, or images = [\"{image}\"] in [grants])"
        )))
    }

    /// The spec the host will actually run, or why not. Only `privileged` may be changed (dropped
    /// under `deny_privileged`); everything else is either allowed as asked or refused.
    pub fn check_run(&self, node: &str, spec: &RunSpec, site: &SiteRules) -> Result<RunSpec, Error> {
        check_container_name(&spec.name)?;
        if spec.command.iter().chain(spec.labels.iter().map(|(_, v)| v)).any(|t| t.contains(SECRET_PREFIX)) {
            return Err(Error::InvalidInput(format!("container {}: secret references may stand only as the value of the variable they came from", spec.name)));
        }
        self.check_image(node, &spec.image, site)?;
        for m in &spec.mounts {
            check_mount_source(&m.source)?;
            check_mount_target(&m.target)?;
            if !Self::has(&self.mounts, node, &m.source) && !(site.allows)("mounts", &m.source) {
                return Err(Error::Denied(format!(
                    "container {}: mounting {} is not allowed: a container may mount only what granted containers on node {node} mount, or paths the site grants (mounts = [\"{}\"] in [grants])",
                    spec.name, m.source, m.source
                )));
            }
            if !m.read_only && Self::has(&self.read_only_mounts, node, &m.source) && !(site.allows)("mounts", &m.source) {
                return Err(Error::Denied(format!(
                    "container {}: {} may be mounted read-only only, as the granted containers on node {node} mount it; mount it read-only, or the site can allow it with mounts = [\"{}\"] in [grants]",
                    spec.name, m.source, m.source
                )));
            }
        }
        let net = spec.network_mode.as_str();
        if net.starts_with("container:") {
            return Err(Error::Denied(format!(
                "container {}: network mode {net} would join another container's network namespace; opshost never allows it",
                spec.name
            )));
        }
        // The host's network reaches every service the node keeps on its loopback (a MetaDB, an
        // engine's TCP port): a plugin's container joins it only where a granted container does.
        if !matches!(net, "bridge" | "none" | "default" | "") && !Self::has(&self.networks, node, net) && !(site.allows)("networks", net) {
            let what = if net == "host" { "the host's network (--net host)".to_string() } else { format!("network {net}") };
            return Err(Error::Denied(format!(
                "container {}: {what} is not one a granted container uses on node {node}; the site can allow it with networks = [\"{net}\"] in [grants]",
                spec.name
            )));
        }
        let mut spec = spec.clone();
        if spec.privileged {
            if site.deny_privileged {
                spec.privileged = false;
            } else if !self.privileged.contains(node) && !(site.allows)("privileged", &spec.name) {
                return Err(Error::Denied(format!(
                    "container {}: --privileged is not allowed: no granted container on node {node} runs privileged; the site can allow it with privileged = [\"{}\"] in [grants], or drop it with deny_privileged = true in [docker_policy]",
                    spec.name, spec.name
                )));
            }
        }
        Ok(spec)
    }
}

/// An image reference without its tag and digest: `reg.example.com/oceanbase/oms` of
/// `reg.example.com/oceanbase/oms:feature_4.2.0-ce` (a registry port is not a tag). An image ID
/// (`sha256:…`, as a container started by ID shows its image) is its own repository: read as a
/// name and a tag, every image on the node would be another tag of `sha256`.
fn repository(image: &str) -> &str {
    if image.starts_with("sha256:") {
        return image;
    }
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// A letter or digit, then letters, digits, `_`, `.` and `-`: the grammar of Docker's container
/// names, which node names follow too. No `/`, so no path tricks through the engine API.
fn plain_name(name: &str, min: usize, max: usize) -> bool {
    let mut chars = name.chars();
    (min..=max).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Docker's container name grammar, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
/// A path for `docker.read-file`: absolute, no `..`, no NUL, at most 4096 bytes.
pub fn check_file_path(path: &str) -> Result<(), Error> {
    if !path.starts_with('/') || path.len() > 4096 || path.contains('\0') || path.split('/').any(|p| p == "..") {
        return Err(Error::InvalidInput(format!(
            "file path {path:?} must be absolute, without .. (a file inside the container, e.g. /home/admin/conf/config.yaml)"
        )));
    }
    Ok(())
}

pub fn check_container_name(name: &str) -> Result<(), Error> {
    if plain_name(name, 2, 128) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("container name {name:?} is not a Docker container name (a letter or digit, then letters, digits, _ . -)")))
    }
}

/// A node name as the site config may spell it.
pub fn check_node_name(name: &str) -> Result<(), Error> {
    if plain_name(name, 1, 64) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("node name {name:?} is not a node of the site config (letters, digits, _ . -)")))
    }
}

/// A bind source is a clean absolute path (no `.` or `..` parts); a volume is a plain name.
/// A mount's source and target reach the engine in a bind string (`source:target[:ro]`): a `:` or
/// `,` in either would add options (`:rw` past a read-only rule, `:rshared`, `:Z`).
fn clean_absolute(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| rest.split('/').all(|p| !matches!(p, "." | "..")) && !path.contains("//") && !path.contains([':', ',']))
}

fn check_mount_source(source: &str) -> Result<(), Error> {
    let ok = if source.starts_with('/') { clean_absolute(source) } else { plain_name(source, 2, 128) };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("mount source {source:?} is neither a clean absolute path nor a volume name")))
    }
}

fn check_mount_target(target: &str) -> Result<(), Error> {
    if clean_absolute(target) && target != "/" {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("mount target {target:?} is not a clean absolute path (no `:` or `,`, and not /)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::docker::Mount;

    fn spec(name: &str, image: &str) -> RunSpec {
        RunSpec {
            name: name.into(),
            image: image.into(),
            env: vec![],
            mounts: vec![Mount { source: "/data/oms/logs".into(), target: "/home/admin/logs".into(), read_only: false }],
            network_mode: "host".into(),
            privileged: true,
            pids_limit: None,
            ulimits: vec![],
            cpu_period: None,
            cpu_quota: None,
            memory_bytes: None,
            interactive: false,
            tty: false,
            command: vec![],
            labels: vec![],
        }
    }

    fn nothing(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn a_successor_may_use_only_what_the_run_has_seen() {
        let site = SiteRules { allows: &nothing, deny_privileged: false };
        let mut a = Approved::default();
        a.saw_container("local", &spec("oms_411", "oms:4.1.1"));
        a.loaded("local", &["oms:4.2.0".to_string()]);
        assert!(a.check_run("local", &spec("oms_420", "oms:4.2.0"), &site).unwrap().privileged);
        // Not on another node, not another image.
        assert!(matches!(a.check_run("node-b", &spec("oms_420", "oms:4.2.0"), &site), Err(Error::Denied(_))));
        assert!(matches!(a.check_run("local", &spec("oms_420", "alpine"), &site), Err(Error::Denied(m)) if m.contains("image alpine")));
        // Another tag of a granted container's repository is the product's, not a stranger's.
        assert!(a.check_image("local", "oms:4.2.1", &site).is_ok());
        assert!(a.check_image("local", "oms-evil:4.2.1", &site).is_err());
        assert_eq!((repository("reg:5000/oms/oms:4.2"), repository("reg:5000/oms"), repository("oms@sha256:ab")), ("reg:5000/oms/oms", "reg:5000/oms", "oms"));
        // A container started by image ID: that ID only, not any other image of the node.
        let mut by_id = Approved::default();
        by_id.saw_container("local", &spec("odc", "sha256:0a1b"));
        assert!(by_id.check_image("local", "sha256:0a1b", &site).is_ok());
        for other in ["sha256:ffee", "sha256", "sha256:latest"] {
            assert!(by_id.check_image("local", other, &site).is_err(), "{other}");
        }
        let mut root = spec("oms_420", "oms:4.2.0");
        root.mounts[0].source = "/".into();
        assert!(matches!(a.check_run("local", &root, &site), Err(Error::Denied(m)) if m.contains("mounting /")));
        root.mounts[0].source = "/data/oms/logs/../../../etc".into();
        assert!(matches!(a.check_run("local", &root, &site), Err(Error::InvalidInput(_))));
        let mut joined = spec("oms_420", "oms:4.2.0");
        joined.network_mode = "container:mariadb".into();
        assert!(matches!(a.check_run("local", &joined, &site), Err(Error::Denied(m)) if m.contains("never")));
        joined.network_mode = "backend".into();
        assert!(matches!(a.check_run("local", &joined, &site), Err(Error::Denied(_))));
        // The host's network only where a granted container uses it (here on `local`, not `node-b`).
        joined.network_mode = "host".into();
        assert!(a.check_run("local", &joined, &site).is_ok());
        let mut bridged = Approved::default();
        let mut old = spec("oms_411", "oms:4.1.1");
        old.network_mode = "bridge".into();
        bridged.saw_container("local", &old);
        assert!(
            matches!(bridged.check_run("local", &joined, &site), Err(Error::Denied(m)) if m.contains("the host's network (--net host)") && m.contains("networks = [\"host\"]"))
        );
        old.network_mode = "none".into();
        assert!(bridged.check_run("local", &old, &site).is_ok(), "bridge, none and the default need no grant");
        let host_allowed = |k: &str, v: &str| k == "networks" && v == "host";
        assert!(bridged.check_run("local", &joined, &SiteRules { allows: &host_allowed, deny_privileged: false }).is_ok());
        assert!(matches!(a.check_run("local", &spec("a/../b", "oms:4.2.0"), &site), Err(Error::InvalidInput(_))));
        // Source and target reach the engine as `source:target[:ro]`: no options slipped in.
        for (source, target) in
            [("/data/oms/logs", "/x:rw"), ("/data/oms/logs", "/x:rshared"), ("/data/oms/logs", "x"), ("/data/oms/logs", "/"), ("/data/oms/logs:/etc", "/x")]
        {
            let mut bind = spec("oms_420", "oms:4.2.0");
            bind.mounts[0] = Mount { source: source.into(), target: target.into(), read_only: true };
            assert!(matches!(a.check_run("local", &bind, &site), Err(Error::InvalidInput(_))), "{source}:{target}");
        }
    }

    /// A bind the granted containers have read-only (`/etc/localtime:ro`) stays read-only: mounted
    /// read-write, a container could write the host's file.
    #[test]
    fn a_read_only_mount_stays_read_only() {
        let site = SiteRules { allows: &nothing, deny_privileged: false };
        let mut a = Approved::default();
        let mut old = spec("oms_411", "oms:4.1.1");
        old.mounts.push(Mount { source: "/etc/localtime".into(), target: "/etc/localtime".into(), read_only: true });
        a.saw_container("local", &old);
        assert!(a.check_run("local", &spec("oms_420", "oms:4.1.1"), &site).is_ok());
        let mut new = old.clone();
        new.name = "oms_420".into();
        assert!(a.check_run("local", &new, &site).is_ok(), "read-only as it was");
        new.mounts[1].read_only = false;
        assert!(matches!(a.check_run("local", &new, &site), Err(Error::Denied(m)) if m.contains("/etc/localtime may be mounted read-only only")));
        // Kept in the run records, it holds in a later process too.
        let kept: Approved = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert!(matches!(kept.check_run("local", &new, &site), Err(Error::Denied(_))));
        // Records of an earlier version have no such list: nothing is held to it.
        let mut earlier = serde_json::to_value(&a).unwrap();
        earlier.as_object_mut().unwrap().remove("read_only_mounts");
        let earlier: Approved = serde_json::from_value(earlier).unwrap();
        assert!(earlier.check_run("local", &new, &site).is_ok());
        // A granted container that mounts it read-write, or the site, allows read-write.
        let allows = |key: &str, what: &str| key == "mounts" && what == "/etc/localtime";
        assert!(a.check_run("local", &new, &SiteRules { allows: &allows, deny_privileged: false }).is_ok());
        let mut other = old.clone();
        other.name = "oms_other".into();
        other.mounts[1].read_only = false;
        a.saw_container("local", &other);
        assert!(a.check_run("local", &new, &site).is_ok());
        a.saw_container("local", &old);
        assert!(a.check_run("local", &new, &site).is_ok(), "seen read-write once, it stays allowed");
    }

    #[test]
    fn privileged_needs_a_privileged_container_or_the_site() {
        let mut a = Approved::default();
        let mut old = spec("odc", "odc:4.2.2");
        old.privileged = false;
        a.saw_container("local", &old);
        let strict = SiteRules { allows: &nothing, deny_privileged: false };
        assert!(matches!(a.check_run("local", &spec("odc2", "odc:4.2.2"), &strict), Err(Error::Denied(m)) if m.contains("--privileged")));
        let deny = SiteRules { allows: &nothing, deny_privileged: true };
        assert!(!a.check_run("local", &spec("odc2", "odc:4.2.2"), &deny).unwrap().privileged);
        let grant = |k: &str, o: &str| k == "privileged" && o == "odc2";
        let granted = SiteRules { allows: &grant, deny_privileged: false };
        assert!(a.check_run("local", &spec("odc2", "odc:4.2.2"), &granted).unwrap().privileged);
    }

    #[test]
    fn secrets_go_back_only_where_they_came_from() {
        let mut a = Approved::default();
        let mut old = spec("odc", "odc:4.2.2");
        old.env = vec![("DATABASE_PASSWORD".into(), "s3cret".into()), ("DATABASE_HOST".into(), "db".into()), ("MY_VAR".into(), "x".into())];
        old.env.extend([("MYSQL_PWD".into(), "pw1".into()), ("DB_PASS".into(), "pw2".into()), ("JDBC_URL".into(), "mysql://u:metapass@db/rm".into())]);
        old.command = vec!["--password=metapass".into()];
        old.labels = vec![("note".into(), "pw metapass".into())];
        let credentials = vec![("opshost-secret:metadb/metadb".to_string(), "metapass".to_string())];
        a.hide_secrets("local", &mut old, &["my_var".to_string()], &credentials);
        assert_eq!(old.env[0].1, "opshost-secret:odc/DATABASE_PASSWORD");
        assert_eq!(old.env[1].1, "db");
        assert_eq!(old.env[2].1, "opshost-secret:odc/MY_VAR");
        assert_eq!(old.env[3].1, "opshost-secret:odc/MYSQL_PWD");
        assert_eq!(old.env[4].1, "opshost-secret:odc/DB_PASS");
        assert_eq!(old.env[5].1, "opshost-secret:odc/JDBC_URL", "a variable holding a MetaDB password, whatever its name");
        assert_eq!(old.command, vec!["--password=opshost-secret:metadb/metadb"]);
        assert_eq!(old.labels[0].1, "pw opshost-secret:metadb/metadb");
        assert!(a.dirty);
        let mut next = old.clone();
        next.name = "odc2".into();
        a.reveal("local", &mut next).unwrap();
        assert_eq!(next.env[0].1, "s3cret");
        // Moved to another variable, or unknown: refused.
        let mut moved = old.clone();
        moved.env.push(("LEAK".into(), "opshost-secret:odc/DATABASE_PASSWORD".into()));
        assert!(matches!(a.reveal("local", &mut moved), Err(Error::InvalidInput(_))));
        let mut cmd = old.clone();
        cmd.command = vec!["echo".into(), "opshost-secret:odc/DATABASE_PASSWORD".into()];
        assert!(a.check_run("local", &cmd, &SiteRules { allows: &nothing, deny_privileged: true }).is_err());
    }

    #[test]
    fn secret_values_in_output_read_as_their_references() {
        let mut a = Approved::default();
        let mut old = spec("oms", "oms:4.1.1");
        old.env = vec![("DATABASE_PASSWORD".into(), "s3cret".into()), ("API_TOKEN".into(), "s3cret-longer".into()), ("PIN_KEY".into(), "abc".into())];
        let shown = secrets_in(&old, &[]);
        assert_eq!(shown[0], ("opshost-secret:oms/DATABASE_PASSWORD".to_string(), "s3cret".to_string()));
        a.hide_secrets("local", &mut old, &[], &[]);
        let (mut known, mut all) = (a.known_secrets(), shown.clone());
        known.sort();
        all.sort();
        assert_eq!(known, all, "the run's own, under the same references");
        assert!(secrets_in(&old, &[]).is_empty(), "a spec already showing references has none");
        let text = "password=s3cret token=s3cret-longer pin=abc\ns3cret";
        assert_eq!(
            hide_secret_values(text, &shown),
            "password=opshost-secret:oms/DATABASE_PASSWORD token=opshost-secret:oms/API_TOKEN pin=abc\nopshost-secret:oms/DATABASE_PASSWORD",
            "longer values first; three characters are left"
        );
        assert_eq!(hide_secret_values("nothing here", &shown), "nothing here");
    }

    #[test]
    fn names_follow_dockers_grammar() {
        for bad in ["", "a", "/x", "oms_411/../victim", "a b", "-x", &"a".repeat(129)] {
            assert!(check_container_name(bad).is_err(), "{bad:?}");
        }
        for good in ["oms_411", "obodc", "odc-nginx.1"] {
            check_container_name(good).unwrap();
        }
        assert!(check_node_name("local").is_ok() && check_node_name("../x").is_err() && check_node_name("").is_err());
    }
}
