//! Product versions: parse `X.Y.Z`, find the version in a vendor image tag, and refuse a run a
//! hop does not take.

use crate::ctx::{invalid, Result};
use crate::Context;

/// Refuse a run from a version not among `sources`, or to another version than `target`;
/// `product` names the product in the message (`OMS`, `ODC`), `or` is a further way out.
pub fn check_hop(product: &str, name: &str, sources: &[&str], target: &str, ctx: &Context, or: &str) -> Result<()> {
    if !sources.contains(&ctx.source_version.as_str()) {
        return Err(invalid(format!(
            "{name} upgrades {product} from {} only, but this deployment is at {}: upgrade through the supported hops first (opshost plan --to {target} lists the route){or}",
            sources.join(", "),
            ctx.source_version,
        )));
    }
    if ctx.target_version != target {
        return Err(invalid(format!("{name} upgrades to {target}, not {}", ctx.target_version)));
    }
    Ok(())
}

/// The `X.Y.Z` in an image reference such as `reg/oms:feature_4.1.1-ce` or `odc-server:4.2.0`.
pub fn version_in_image(image: &str) -> Option<String> {
    let tag = image.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/'))?;
    let start = tag.find(|c: char| c.is_ascii_digit())?;
    let rest = &tag[start..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let v = rest[..end].trim_end_matches('.');
    (v.split('.').count() == 3 && v.split('.').all(|p| !p.is_empty())).then(|| v.to_string())
}

/// `4.1.1` -> `411`, the form container and database names use (`oms_411`, `rm_411`).
pub fn digits(version: &str) -> String {
    version.chars().filter(char::is_ascii_digit).collect()
}

/// Replace the version in an image tag: `reg/oms:feature_4.1.1-ce` -> `reg/oms:feature_4.2.0-ce`.
pub fn image_with_version(image: &str, from: &str, to: &str) -> Option<String> {
    let (repo, tag) = image.rsplit_once(':')?;
    tag.contains(from).then(|| format!("{repo}:{}", tag.replacen(from, to, 1)))
}
