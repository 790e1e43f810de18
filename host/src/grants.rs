//! Capability grants: what a plugin's manifest declares it needs, intersected with what the site
//! config grants it (`[grants."<plugin>"]`). Computed once per run; `check` is then a pure lookup
//! on every host call, before any backend sees it. A denial names the capability and the site
//! config line that would grant it, and never reveals whether the object exists.

use crate::bindings::{Error, Manifest};
use std::collections::BTreeMap;

/// What one host call touches.
#[derive(Clone, Debug)]
pub enum Target {
    /// Host services, and reads that reveal nothing (image-exists).
    Free,
    /// (node, container)
    Container(String, String),
    Archive(String),
    Database {
        connection: String,
        database: String,
    },
    /// Several databases of one connection in one call: each must be granted.
    Databases {
        connection: String,
        databases: Vec<String>,
    },
    Parameter(String),
    Servers,
}

impl Target {
    /// (capability, object) of each object, as written in manifests and grants.
    fn keys(&self) -> Vec<(&'static str, String)> {
        vec![match self {
            Target::Free => return vec![],
            Target::Databases { connection, databases } => return databases.iter().map(|d| ("sql", format!("{connection}/{d}"))).collect(),
            Target::Container(node, c) => ("docker", format!("{node}/{c}")),
            Target::Archive(a) => ("image-archive", a.to_string()),
            Target::Database { connection, database } => ("sql", format!("{connection}/{database}")),
            Target::Parameter(p) => ("console", p.to_string()),
            Target::Servers => ("console", "servers".to_string()),
        }]
    }
}

/// Patterns per capability, e.g. `docker = ["oms_411", "oms_420"]`.
pub type GrantTable = BTreeMap<String, Vec<String>>;

#[derive(Clone, Debug)]
pub struct Grants {
    plugin: String,
    needs: Vec<(String, String)>,
    /// None: everything the manifest needs (the fake host during plugin development).
    granted: Option<GrantTable>,
}

/// Does a pattern cover an object? Docker objects are `node/container`; a pattern without a node
/// (`oms_*`) covers that container name on every node, and `*` never matches across the `/`
/// (container and node names are checked against Docker's grammar before this, too).
fn covers(cap: &str, pattern: &str, object: &str) -> bool {
    if cap == "docker" {
        let Some((node, name)) = object.split_once('/') else { return false };
        return match pattern.split_once('/') {
            None => matches(pattern, name) && !name.contains('/'),
            Some((pn, pc)) => matches(pn, node) && matches(pc, name) && !name.contains('/'),
        };
    }
    matches(pattern, object)
}

/// [`matches`] for each `/`-separated component of `path`, the pattern having as many.
pub fn matches_path(pattern: &str, path: &str) -> bool {
    pattern.split('/').count() == path.split('/').count() && pattern.split('/').zip(path.split('/')).all(|(p, c)| matches(p, c))
}

/// `*` matches any run of characters; everything else literally.
pub fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl Grants {
    pub fn new(manifest: &Manifest, granted: Option<GrantTable>) -> Grants {
        Grants { plugin: manifest.name.clone(), needs: manifest.needs.iter().map(|n| (n.capability.clone(), n.target.clone())).collect(), granted }
    }

    /// Everything (only for calling `manifest()`, which needs nothing).
    pub fn unrestricted() -> Grants {
        Grants { plugin: String::new(), needs: vec![("*".into(), "*".into())], granted: None }
    }

    /// Whether `call` may touch `target`: every object of it declared in the manifest and granted
    /// by the site; else the first that is not, denied.
    pub fn check(&self, call: &str, target: &Target) -> Result<(), Error> {
        for (cap, object) in target.keys() {
            self.check_one(call, cap, &object)?;
        }
        Ok(())
    }

    /// Whether the plugin may touch this object (declared and granted), without an error.
    pub fn allows(&self, cap: &str, object: &str) -> bool {
        self.check_one("", cap, object).is_ok()
    }

    /// Whether the site's own grants name this object under `key` (`images`, `mounts`,
    /// `networks`, `privileged`): things a plugin cannot declare, only the site can allow.
    /// A `mounts` pattern matches a path component by component: `*` never crosses a `/`, so
    /// `/data/oms/*` allows `/data/oms/logs` but not `/data/oms/logs/r` (which a container
    /// mounting `/data/oms/logs` could have made a symbolic link to `/`).
    pub fn site_allows(&self, key: &str, object: &str) -> bool {
        let matching = |p: &String| if key == "mounts" { matches_path(p, object) } else { matches(p, object) };
        self.granted.as_ref().and_then(|t| t.get(key)).is_some_and(|ps| ps.iter().any(matching))
    }

    fn check_one(&self, call: &str, cap: &str, object: &str) -> Result<(), Error> {
        let declared = self.needs.iter().any(|(c, p)| (c == cap || c == "*") && covers(cap, p, object));
        if !declared {
            return Err(Error::Denied(format!(
                "{call} on {cap} {object}: plugin {} does not declare that need in its manifest, so it cannot be granted",
                self.plugin
            )));
        }
        let granted = match &self.granted {
            None => true,
            Some(t) => t.get(cap).is_some_and(|ps| ps.iter().any(|p| covers(cap, p, object))),
        };
        if !granted {
            return Err(Error::Denied(format!(
                "{call} on {cap} {object} is not granted to {}: add \"{object}\" to {cap} in [grants.\"{}\"] of the site config",
                self.plugin, self.plugin
            )));
        }
        Ok(())
    }

    /// The objects the site grants by exact name (no `*`) under a capability, e.g. the
    /// `connection/database` of every MetaDB database a plugin may back up.
    pub fn exact(&self, cap: &str) -> Vec<String> {
        self.granted.as_ref().and_then(|t| t.get(cap)).map(|ps| ps.iter().filter(|p| !p.contains('*')).cloned().collect()).unwrap_or_default()
    }

    /// For the plan: each need, and what the site grants of it.
    pub fn describe(&self) -> Vec<String> {
        self.needs
            .iter()
            .map(|(cap, pattern)| {
                let granted: Vec<&String> = match &self.granted {
                    None => return format!("needs {cap} {pattern}: granted (no site grants: fake host)"),
                    // A node-qualified docker grant (`local/oms_411`) answers a need by its name.
                    Some(t) => t
                        .get(cap)
                        .map(|ps| {
                            ps.iter()
                                .filter(|p| {
                                    let p = if cap == "docker" { p.rsplit_once('/').map_or(p.as_str(), |(_, name)| name) } else { p.as_str() };
                                    matches(pattern, p) || matches(p, pattern)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                if granted.is_empty() {
                    format!("needs {cap} {pattern}: NOT granted (add to {cap} in [grants.\"{}\"])", self.plugin)
                } else {
                    format!("needs {cap} {pattern}: granted {}", granted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_pattern_matches_one_path_component_per_star() {
        assert!(matches_path("/data/oms/*", "/data/oms/logs"));
        assert!(matches_path("/data/*/logs", "/data/oms/logs"));
        assert!(matches_path("/data/oms/logs", "/data/oms/logs"));
        assert!(!matches_path("/data/oms/*", "/data/oms/logs/r"), "a link made inside an allowed directory");
        assert!(!matches_path("/data/oms/*", "/data/oms"));
        assert!(!matches_path("/data/*", "/etc/passwd"));
        // Other site keys keep `*` as any run of characters.
        assert!(matches("reg.example.com/*", "reg.example.com/oceanbase/oms"));
        let site = GrantTable::from([("mounts".to_string(), vec!["/data/oms/*".to_string()]), ("images".to_string(), vec!["reg/*".to_string()])]);
        let g = Grants::new(&manifest(), Some(site));
        assert!(g.site_allows("mounts", "/data/oms/logs") && !g.site_allows("mounts", "/data/oms/logs/r"));
        assert!(g.site_allows("images", "reg/oceanbase/oms:4.2.0"));
    }
    use crate::bindings::Need;

    fn manifest() -> Manifest {
        let need = |c: &str, t: &str| Need { capability: c.into(), target: t.into(), why: String::new() };
        Manifest {
            name: "oms-4.2.0".into(),
            product: "oms".into(),
            sources: vec![],
            target: "4.2.0".into(),
            needs: vec![need("docker", "oms_*"), need("sql", "metadb/*"), need("console", "ha.config"), need("console", "servers"), need("image-archive", "*")],
            parameters: vec![],
        }
    }

    fn site() -> GrantTable {
        BTreeMap::from([
            ("docker".into(), vec!["oms_411".into(), "oms_420".into(), "mariadb".into()]),
            ("sql".into(), vec!["metadb/rm_411".into(), "metadb/cm_*".into()]),
            ("console".into(), vec!["ha.config".into(), "servers".into()]),
        ])
    }

    #[test]
    fn the_plan_counts_a_node_qualified_docker_grant_as_granted() {
        let mut site = site();
        site.insert("docker".into(), vec!["local/oms_411".into()]);
        let lines = Grants::new(&manifest(), Some(site)).describe();
        assert!(lines.iter().any(|l| l == "needs docker oms_*: granted local/oms_411"), "{lines:?}");
    }

    #[test]
    fn a_call_needs_both_the_manifest_and_the_site() {
        let g = Grants::new(&manifest(), Some(site()));
        let ok = |t: Target| g.check("x", &t).is_ok();
        assert!(ok(Target::Container("local".into(), "oms_411".into())));
        assert!(ok(Target::Database { connection: "metadb".into(), database: "cm_hb_411".into() }));
        assert!(ok(Target::Servers));
        assert!(ok(Target::Free));
        // Granted by the site but not declared by the plugin.
        assert!(
            matches!(g.check("docker.stop", &Target::Container("local".into(), "mariadb".into())), Err(Error::Denied(m)) if m.contains("does not declare"))
        );
        // Declared but not granted: the message names the site config line.
        assert!(
            matches!(g.check("docker.stop", &Target::Container("local".into(), "oms_999".into())), Err(Error::Denied(m)) if m.contains("add \"local/oms_999\" to docker in [grants.\"oms-4.2.0\"]"))
        );
        assert!(matches!(g.check("sql.execute", &Target::Database { connection: "metadb".into(), database: "mysql".into() }), Err(Error::Denied(_))));
        // Several databases in one call: every one must be granted, and the one that is not is named.
        assert!(ok(Target::Databases { connection: "metadb".into(), databases: vec!["rm_411".into(), "cm_411".into(), "cm_hb_411".into()] }));
        assert!(
            matches!(g.check("sql.dump-databases", &Target::Databases { connection: "metadb".into(), databases: vec!["rm_411".into(), "mysql".into()] }), Err(Error::Denied(m)) if m.contains("metadb/mysql is not granted"))
        );
        assert!(matches!(g.check("console.set-parameter", &Target::Parameter("oms.alarm.config".into())), Err(Error::Denied(_))));
        assert!(matches!(g.check("docker.load-image", &Target::Archive("/etc/shadow".into())), Err(Error::Denied(_))));
    }

    #[test]
    fn container_grants_can_name_the_node() {
        let mut t = site();
        t.insert("docker".into(), vec!["node-a/oms_411".into()]);
        let g = Grants::new(&manifest(), Some(t));
        assert!(g.check("x", &Target::Container("node-a".into(), "oms_411".into())).is_ok());
        assert!(matches!(g.check("x", &Target::Container("node-b".into(), "oms_411".into())), Err(Error::Denied(m)) if m.contains("node-b/oms_411")));
    }

    #[test]
    fn without_site_grants_the_manifest_still_binds() {
        let g = Grants::new(&manifest(), None);
        assert!(g.check("x", &Target::Container("local".into(), "oms_1".into())).is_ok());
        assert!(g.check("x", &Target::Container("local".into(), "mysql".into())).is_err());
    }

    #[test]
    fn a_wildcard_never_crosses_a_slash() {
        let mut t = site();
        t.insert("docker".into(), vec!["oms_*".into(), "node-*/odc_*".into()]);
        let g = Grants::new(&manifest(), Some(t));
        assert!(g.check("x", &Target::Container("local".into(), "oms_411".into())).is_ok());
        assert!(g.check("x", &Target::Container("local".into(), "oms_411/../victim".into())).is_err());
        assert!(g.check("x", &Target::Container("node-a/x".into(), "oms_1".into())).is_err());
        assert!(!covers("docker", "node-*/oms_*", "node-a/oms_1/../x"));
        assert!(covers("docker", "node-*/oms_*", "node-a/oms_1"));
    }

    #[test]
    fn wildcards() {
        assert!(matches("oms_*", "oms_411") && matches("*", "") && matches("a*c*e", "abcde") && !matches("oms_*", "xoms_1") && !matches("a*c", "ab"));
    }
}
