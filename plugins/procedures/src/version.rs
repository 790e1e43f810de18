//! Product versions: parse `X.Y.Z` and find the version in a vendor image tag.

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
