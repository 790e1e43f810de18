//! The plugin registry: plugin files in a drop-in directory (no rebuild of the host for a new
//! release), their manifests, and the run context a manifest accepts.

use crate::bindings::{Context, Error, Manifest};
use crate::fakehost::inert_env;
use crate::runtime::engine::{LoadedPlugin, Runtime};
use anyhow::{Context as _, Result};
use serde::Serialize;
use signature::{Policy, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A plugin file, accepted by the trust policy, loaded and described by its own manifest.
pub struct Plugin {
    pub path: PathBuf,
    pub loaded: LoadedPlugin,
    pub manifest: Manifest,
    pub verdict: Verdict,
}

#[derive(Serialize)]
pub struct PluginSummary {
    pub path: String,
    pub name: String,
    pub product: String,
    pub sources: Vec<String>,
    pub target: String,
    pub hash: String,
    pub bytes: u64,
    /// Trusted keys that signed it (empty when it runs unverified under --allow-unsigned).
    pub signers: Vec<String>,
    /// Whether a trusted key lets it run; when not, why.
    pub trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_trusted: Option<String>,
}

impl Plugin {
    pub async fn open(runtime: &Runtime, path: &Path, policy: &Policy) -> Result<Plugin> {
        let bytes = std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
        Self::from_bytes(runtime, path, &bytes, policy).await
    }

    /// Check the signature first: bytes the policy refuses are never compiled.
    pub async fn from_bytes(runtime: &Runtime, path: &Path, bytes: &[u8], policy: &Policy) -> Result<Plugin> {
        let verdict = policy.check(bytes, &path.display().to_string())?;
        Self::described(runtime, path, bytes, policy, verdict, false).await
    }

    /// A plugin file only to describe it (`plugins list`/`inspect`), trusted or not: its
    /// manifest() runs with no host imports at all, under the manifest's CPU and time limits.
    /// Nothing but [`Plugin::open`] lets it run.
    pub async fn open_to_read(runtime: &Runtime, path: &Path, policy: &Policy) -> Result<Plugin> {
        let bytes = std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
        let verdict = policy.judge(&bytes, &path.display().to_string());
        Self::described(runtime, path, &bytes, policy, verdict, true).await
    }

    /// Compile, read the manifest, and narrow the verdict to the keys trusted for its name
    /// (refused when none is, unless `to_read`: then it is described as not trusted).
    async fn described(runtime: &Runtime, path: &Path, bytes: &[u8], policy: &Policy, verdict: Verdict, to_read: bool) -> Result<Plugin> {
        let loaded = runtime.load(bytes).with_context(|| format!("loading plugin {}", path.display()))?;
        // manifest() depends on nothing but the bytes: its answer is cached by their hash.
        let answer = match runtime.cached_manifest(&loaded.hash) {
            Some(answer) => answer,
            None => {
                let answer = loaded.manifest(&inert_env()).await.map_err(|e| format!("{e:#}"));
                runtime.store_manifest(&loaded.hash, &answer);
                answer
            }
        };
        let manifest = answer.map_err(|e| anyhow::anyhow!("reading the manifest of {}: {e}", path.display()))?;
        check_plugin_name(&manifest.name).with_context(|| format!("plugin {}", path.display()))?;
        check_manifest_text(&manifest).with_context(|| format!("plugin {}", path.display()))?;
        // A key trusted only for some names vouches only for plugins that bear one.
        let verdict = match verdict {
            Verdict::Trusted { signers } => {
                let (ok, scopes) = policy.trust.scoped_signers(&signers, &manifest.name);
                if ok.is_empty() {
                    let reason = format!(
                        "plugin {} calls itself {}, but the keys that signed it are not trusted for that name: {}",
                        path.display(),
                        manifest.name,
                        scopes.join(", ")
                    );
                    if to_read {
                        return Ok(Plugin { path: path.to_path_buf(), loaded, manifest, verdict: Verdict::Unverified { reason } });
                    }
                    anyhow::bail!("{reason}; refusing to run it (a key's plugins = [...] in the site config's trust says which names it may sign)");
                }
                Verdict::Trusted { signers: ok }
            }
            v => v,
        };
        Ok(Plugin { path: path.to_path_buf(), loaded, manifest, verdict })
    }

    fn signers_words(&self) -> String {
        match &self.verdict {
            Verdict::Trusted { signers } => signers.join(", "),
            Verdict::Unverified { .. } => "none, unverified".to_string(),
        }
    }

    /// The signer keys that vouch for it (empty when it runs unverified).
    pub fn signers(&self) -> &[String] {
        match &self.verdict {
            Verdict::Trusted { signers } => signers,
            Verdict::Unverified { .. } => &[],
        }
    }

    pub fn summary(&self) -> PluginSummary {
        PluginSummary {
            path: self.path.display().to_string(),
            name: self.manifest.name.clone(),
            product: self.manifest.product.clone(),
            sources: self.manifest.sources.clone(),
            target: self.manifest.target.clone(),
            hash: self.loaded.hash.clone(),
            bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            signers: match &self.verdict {
                Verdict::Trusted { signers } => signers.clone(),
                Verdict::Unverified { .. } => Vec::new(),
            },
            trusted: matches!(self.verdict, Verdict::Trusted { .. }),
            not_trusted: match &self.verdict {
                Verdict::Trusted { .. } => None,
                Verdict::Unverified { reason } => Some(reason.clone()),
            },
        }
    }
}

/// A plugin's name as its manifest gives it: what grants and runs are keyed by, and what the
/// terminal shows, so plain: lowercase letters, digits, `.`, `_`, `-`.
fn check_plugin_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    anyhow::ensure!(ok, "its manifest's name {name:?} is not a plugin name (lowercase letters, digits, . _ -, at most 64)");
    Ok(())
}

/// Every text of a manifest is shown as it is (`plugins list`, the plan, grants blocks), even a
/// plugin's that is not trusted: none may hold a control character (an escape sequence would
/// repaint the terminal, and could show an unsigned file as "signed by vendor").
fn check_manifest_text(m: &Manifest) -> Result<()> {
    let needs = m.needs.iter().flat_map(|n| [("a need", &n.capability), ("a need", &n.target), ("a need", &n.why)]);
    let parameters = m
        .parameters
        .iter()
        .flat_map(|p| [("a parameter", &p.name), ("a parameter", &p.description)].into_iter().chain(p.default.iter().map(|d| ("a parameter", d))));
    let fields = [("product", &m.product), ("target", &m.target)].into_iter().chain(m.sources.iter().map(|s| ("sources", s))).chain(needs).chain(parameters);
    for (field, text) in fields {
        anyhow::ensure!(
            !text.chars().any(char::is_control),
            "its manifest's {field} {:?} holds a control character, which the terminal would act on",
            crate::text::one_line(text)
        );
    }
    Ok(())
}

/// Two usable plugin files that give the same name: which one runs (and gets that name's grants)
/// must never depend on file order, so both are refused, named.
fn refuse_duplicate_names(plugins: &[Plugin]) -> Result<()> {
    for (i, a) in plugins.iter().enumerate() {
        if let Some(b) = plugins[i + 1..].iter().find(|b| b.manifest.name == a.manifest.name) {
            anyhow::bail!(
                "two plugin files call themselves {}: {} and {}; remove the one you do not mean to run (its signers: {} and {})",
                a.manifest.name,
                a.path.display(),
                b.path.display(),
                a.signers_words(),
                b.signers_words()
            );
        }
    }
    Ok(())
}

/// `*.wasm` files directly in `dir`, sorted.
pub fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading plugin directory {}: create it or pass --dir", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Every plugin in `dir`; a file that does not load is reported with why, not skipped silently.
pub async fn scan(runtime: &Runtime, dir: &Path, policy: &Policy) -> Result<Vec<Result<Plugin, (PathBuf, anyhow::Error)>>> {
    let mut out = Vec::new();
    for path in plugin_files(dir)? {
        out.push(Plugin::open(runtime, &path, policy).await.map_err(|e| (path, e)));
    }
    Ok(out)
}

/// Every plugin file of `dir` described, trusted or not ([`Plugin::open_to_read`]).
pub async fn scan_to_read(runtime: &Runtime, dir: &Path, policy: &Policy) -> Result<Vec<Result<Plugin, (PathBuf, anyhow::Error)>>> {
    let mut out = Vec::new();
    for path in plugin_files(dir)? {
        out.push(Plugin::open_to_read(runtime, &path, policy).await.map_err(|e| (path, e)));
    }
    Ok(out)
}

/// Where plugins live when nobody says: `$OPSHOST_PLUGINS`, else `plugins/` next to the binary
/// (where the build puts the bundled ones).
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OPSHOST_PLUGINS") {
        return PathBuf::from(d);
    }
    std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("plugins"))).unwrap_or_else(|| PathBuf::from("plugins"))
}

/// A plugin given as a file path, or by manifest name (e.g. "oms-4.2.0") in `dir`.
pub async fn resolve(runtime: &Runtime, spec: &str, dir: &Path, policy: &Policy) -> Result<Plugin> {
    let as_path = Path::new(spec);
    if as_path.is_file() {
        return Plugin::open(runtime, as_path, policy).await;
    }
    let mut names = Vec::new();
    let mut named = Vec::new();
    for p in scan(runtime, dir, policy).await?.into_iter().flatten() {
        names.push(p.manifest.name.clone());
        if p.manifest.name == spec {
            named.push(p);
        }
    }
    refuse_duplicate_names(&named)?;
    if let Some(p) = named.pop() {
        return Ok(p);
    }
    anyhow::bail!(
        "no plugin file {spec} and no plugin named {spec} in {}: plugins there: {}",
        dir.display(),
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    )
}

/// The context for a run, or the refusal that must stop it before the plugin runs: wrong
/// product, target or source version, unknown parameters. Missing parameters get the
/// manifest's defaults.
pub fn context_for(m: &Manifest, product: &str, source: &str, target: &str, params: &BTreeMap<String, String>, nodes: &[String]) -> Result<Context, Error> {
    if m.product != product {
        return Err(Error::InvalidInput(format!("plugin {} is for {}, not {product}", m.name, m.product)));
    }
    if m.target != target {
        return Err(Error::InvalidInput(format!("plugin {} upgrades to {}, not {target}", m.name, m.target)));
    }
    if !m.sources.iter().any(|s| s == source) {
        return Err(Error::InvalidInput(format!(
            "plugin {} upgrades {product} from {} only, but the deployment is at {source}: upgrade through the supported hops first, or correct the version in the site config",
            m.name,
            m.sources.join(", ")
        )));
    }
    let known: Vec<&str> = m.parameters.iter().map(|p| p.name.as_str()).collect();
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::InvalidInput(format!("plugin {} has no parameter {unknown}; it takes: {}", m.name, known.join(", "))));
    }
    let mut parameters: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for p in &m.parameters {
        if let (false, Some(d)) = (params.contains_key(&p.name), &p.default) {
            parameters.push((p.name.clone(), d.clone()));
        }
    }
    parameters.sort();
    Ok(Context { product: product.into(), source_version: source.into(), target_version: target.into(), parameters, nodes: nodes.to_vec() })
}

/// The plugins in `dir` that take `product` from `from` to `to`, in the order they run: one for a
/// single hop, several for a route (shortest, see [`route`]). The error names the missing hop and
/// any plugin file the trust policy refused.
pub async fn find_route(runtime: &Runtime, dir: &Path, product: &str, from: &str, to: &str, policy: &Policy) -> Result<Vec<Plugin>> {
    let mut plugins = Vec::new();
    let mut refused = Vec::new();
    for found in scan(runtime, dir, policy).await? {
        match found {
            Ok(p) if p.manifest.product == product => plugins.push(p),
            Ok(_) => {}
            Err((path, e)) => refused.push(format!("{}: {e:#}", path.display())),
        }
    }
    // The first refusals say why (and what to do); the rest would only repeat it.
    let refused_words = |list: &[String]| match list.len() {
        0 => String::new(),
        1 | 2 => list.join("; "),
        n => format!("{}; and {} more files refused", list[..2].join("; "), n - 2),
    };
    refuse_duplicate_names(&plugins)?;
    if plugins.is_empty() && !refused.is_empty() {
        anyhow::bail!("none of the {} plugin files in {} can be used: {}", refused.len(), dir.display(), refused_words(&refused));
    }
    let edges: Vec<route::Edge> = plugins
        .iter()
        .map(|p| route::Edge { plugin: p.manifest.name.clone(), sources: p.manifest.sources.clone(), target: p.manifest.target.clone() })
        .collect();
    match route::shortest_route(&edges, product, from, to) {
        Ok(order) => {
            let mut slots: Vec<Option<Plugin>> = plugins.into_iter().map(Some).collect();
            Ok(order.into_iter().map(|i| slots[i].take().expect("a route uses each plugin once")).collect())
        }
        Err(why) => anyhow::bail!(
            "{why}{} ({}; {product} plugins there: {}){}",
            did_you_mean(to, &edges.iter().map(|e| e.target.as_str()).collect::<Vec<_>>()),
            dir.display(),
            if edges.is_empty() {
                "none".to_string()
            } else {
                edges.iter().map(|e| format!("{} ({} -> {})", e.plugin, e.sources.join("|"), e.target)).collect::<Vec<_>>().join(", ")
            },
            if refused.is_empty() { String::new() } else { format!("; refused: {}", refused_words(&refused)) }
        ),
    }
}

/// ". Did you mean 4.2.0?" when `to` is no plugin's target but names the start of some
/// (`4.2` for 4.2.0 …) or differs from one by a character.
fn did_you_mean(to: &str, targets: &[&str]) -> String {
    if targets.contains(&to) {
        return String::new();
    }
    let mut near: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| t.starts_with(&format!("{to}.")) || (t.len() == to.len() && t.chars().zip(to.chars()).filter(|(a, b)| a != b).count() == 1))
        .collect();
    near.sort_by_key(|v| route::version_key(v));
    near.dedup();
    match near.as_slice() {
        [] => String::new(),
        [one] => format!(". Did you mean {one}?"),
        many => format!(". Did you mean one of {}?", many.join(", ")),
    }
}

/// The plugin in `dir` with exactly this hash (a rollback must run the plugin the upgrade ran).
pub async fn find_by_hash(runtime: &Runtime, dir: &Path, hash: &str, name: &str, policy: &Policy) -> Result<Plugin> {
    for found in scan(runtime, dir, policy).await?.into_iter().flatten() {
        if found.loaded.hash == hash {
            return Ok(found);
        }
    }
    anyhow::bail!("the run was made with plugin {name} {hash}, which is no longer in {}: put that exact file back to roll back", dir.display())
}
pub mod route;
pub mod signature;

#[cfg(test)]
mod tests {
    use super::{check_manifest_text, did_you_mean};
    use crate::bindings::{Manifest, Need};

    /// A manifest whose text would act on the terminal is refused, naming the field, its text
    /// escaped; ordinary text passes.
    #[test]
    fn a_manifest_holding_a_control_character_is_refused() {
        let mut m = Manifest {
            name: "oms-4.2.0".into(),
            product: "oms".into(),
            sources: vec!["4.1.1".into()],
            target: "4.2.0".into(),
            needs: vec![Need { capability: "docker".into(), target: "oms_*".into(), why: "stop and start OMS".into() }],
            parameters: vec![],
        };
        check_manifest_text(&m).unwrap();
        m.needs[0].why = "fine\x1b[1A\x1b[2Ksigned by vendor".into();
        let e = check_manifest_text(&m).unwrap_err().to_string();
        assert!(e.contains("its manifest's a need") && e.contains("\\u{1b}[1A") && !e.contains('\x1b'), "{e}");
        m.needs[0].why = "fine".into();
        m.sources.push("4.1.1\r".into());
        assert!(check_manifest_text(&m).unwrap_err().to_string().contains("sources"));
    }

    #[test]
    fn a_version_that_names_no_target_gets_the_near_ones() {
        let targets = ["4.2.0", "4.2.1", "4.1.0", "3.3.0"];
        assert_eq!(did_you_mean("4.2", &targets), ". Did you mean one of 4.2.0, 4.2.1?");
        assert_eq!(did_you_mean("4.1.9", &targets), ". Did you mean 4.1.0?");
        assert_eq!(did_you_mean("4.2.0", &targets), "");
        assert_eq!(did_you_mean("9", &targets), "");
    }
}
