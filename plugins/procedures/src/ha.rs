//! OMS high availability: `ha.config` off before the upgrade (remembering it exactly), back on
//! afterwards with the store refetch window covering the downtime (T2 − T1).

use crate::bindings::opshost::plugin::console;
use crate::ctx::{failed, info, recall, record, warn, Result, Within};
use serde_json::{Map, Value};

pub const PARAM: &str = "ha.config";
const BEFORE_KEY: &str = "ha.before";

fn parse(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(failed(format!("{PARAM} is not a JSON object: {text:?}; fix it on the System Parameters page first"))),
    }
}

/// HA is on when `enable` is true (not any key containing "enable").
pub fn is_enabled(text: &str) -> Result<bool> {
    Ok(parse(text)?.get("enable").and_then(Value::as_bool).unwrap_or(false))
}

/// `ha.config` as it is, or None where the MetaDB has none (HA was never configured: it is off).
pub fn current() -> Result<Option<String>> {
    console::get_parameter(PARAM).within(&format!("reading {PARAM}"))
}

/// Seed step 1: record `ha.config` as it is, then turn HA off if it is on. Returns whether it was on.
pub fn disable_remembering() -> Result<bool> {
    let Some(before) = current()? else {
        info(format!("no {PARAM} in the MetaDB: HA is off"));
        return Ok(false);
    };
    if recall::<String>(BEFORE_KEY)?.is_none() {
        record(BEFORE_KEY, &before)?;
    }
    turn_off(&before)
}

/// Turn HA off if it is on; returns whether it was on.
pub fn turn_off(text: &str) -> Result<bool> {
    let mut cfg = parse(text)?;
    if !cfg.get("enable").and_then(Value::as_bool).unwrap_or(false) {
        info("HA is off");
        return Ok(false);
    }
    cfg.insert("enable".into(), Value::Bool(false));
    console::set_parameter(PARAM, &Value::Object(cfg).to_string()).within("turning HA off")?;
    info("turned HA off");
    Ok(true)
}

/// The `ha.config` recorded before the upgrade changed it.
pub fn recorded_before() -> Result<Option<String>> {
    recall(BEFORE_KEY)
}

/// Seed step 8: HA back as it was. If it was on: enable it and make the store refetch window
/// cover the downtime: `perceiveStoreClientCheckpoint` when `catch_up` is "checkpoint", otherwise
/// `refetchStoreIntervalMin` > (T2 − T1) minutes, with `margin_min` to spare (the vendor's FAQ
/// advises the downtime and 30 minutes). Returns a line for the operator (a notice), if any.
///
/// As the vendor's step does ("set `enable` to `true`" in the Modify Value dialog), the value
/// edited is `ha.config` as it stands now, after the new version's `docker_init.sh`: a key that
/// version added or changed is kept. Only where there is none now, or it is not a JSON object,
/// is the value recorded before the upgrade edited instead.
pub fn restore_after_upgrade(t1_ms: u64, t2_ms: u64, catch_up: &str, margin_min: u64) -> Result<Option<String>> {
    let Some(before) = recorded_before()? else { return Ok(None) };
    if !is_enabled(&before)? {
        info("HA was off before the upgrade: leaving it off");
        return Ok(None);
    }
    let base = match current()? {
        Some(now) if parse(&now).is_ok() => {
            let changed = changed_keys(&before, &now)?;
            if !changed.is_empty() {
                info(format!("{PARAM} changed during the upgrade ({}): kept as the new version left it", changed.join(", ")));
            }
            now
        }
        Some(now) => {
            warn(format!("{PARAM} is not a JSON object after the upgrade ({now:?}): turning HA on from the value recorded before it"));
            before
        }
        None => {
            warn(format!("no {PARAM} in the MetaDB after the upgrade: turning HA on from the value recorded before it"));
            before
        }
    };
    let (value, note) = enable_covering(&base, t2_ms.saturating_sub(t1_ms), "T2 − T1", catch_up, margin_min)?;
    console::set_parameter(PARAM, &value).within("turning HA back on")?;
    record("ha.t2", &t2_ms)?;
    Ok(Some(note))
}

/// Rollback, the vendor's step 9.6 ("enable HA and set the refetchStoreIntervalMin parameter"):
/// HA as it was before the upgrade; if it was on, on again with the refetch window covering the
/// time since T1 (when the old OMS stopped) as the upgrade does. If it was off, or no OMS was
/// stopped, `ha.config` exactly as recorded. Returns a line for the operator when HA is back on.
pub fn restore_after_rollback(t1_ms: Option<u64>, now_ms: u64, catch_up: &str, margin_min: u64) -> Result<Option<String>> {
    let Some(before) = recorded_before()? else { return Ok(None) };
    // Without T1 no OMS was stopped: the stores never paused, so nothing needs refetching.
    let was_on = is_enabled(&before)?;
    let Some(since_ms) = t1_ms.filter(|_| was_on) else {
        if current()?.as_deref() != Some(before.as_str()) {
            console::set_parameter(PARAM, &before).within("restoring ha.config")?;
            info("restored ha.config exactly as it was before the upgrade");
        }
        return Ok(None);
    };
    let (value, note) = enable_covering(&before, now_ms.saturating_sub(since_ms), "the time since T1", catch_up, margin_min)?;
    if current()?.as_deref() != Some(value.as_str()) {
        console::set_parameter(PARAM, &value).within("turning HA back on after the rollback")?;
    }
    Ok(Some(note))
}

/// The keys of `now` that are not in `before` or hold another value there, and those it lost,
/// `enable` aside (the upgrade turned it off).
fn changed_keys(before: &str, now: &str) -> Result<Vec<String>> {
    let (before, now) = (parse(before)?, parse(now)?);
    let mut out: Vec<String> = now.iter().filter(|(k, v)| *k != "enable" && before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    out.extend(before.keys().filter(|k| *k != "enable" && !now.contains_key(*k)).map(|k| format!("{k} removed")));
    Ok(out)
}

/// `before` with HA enabled and the stores' catch-up covering `gap_ms`: the value to set and a
/// line saying what was chosen.
fn enable_covering(before: &str, gap_ms: u64, gap_name: &str, catch_up: &str, margin_min: u64) -> Result<(String, String)> {
    let mut cfg = parse(before)?;
    cfg.insert("enable".into(), Value::Bool(true));
    let note = if catch_up == "checkpoint" || cfg.get("perceiveStoreClientCheckpoint").and_then(Value::as_bool) == Some(true) {
        cfg.insert("perceiveStoreClientCheckpoint".into(), Value::Bool(true));
        "HA re-enabled with perceiveStoreClientCheckpoint=true: stores restart from the downstream checkpoints".to_string()
    } else {
        let current = cfg.get("refetchStoreIntervalMin").and_then(Value::as_u64).unwrap_or(30);
        // Strictly greater than the gap in whole minutes, and the margin on top.
        let needed = gap_ms / 60_000 + 1 + margin_min;
        let value = current.max(needed);
        cfg.insert("refetchStoreIntervalMin".into(), Value::from(value));
        format!("HA re-enabled; refetchStoreIntervalMin = {value} min ({gap_name} was {:.1} s, the margin {margin_min} min)", gap_ms as f64 / 1000.0)
    };
    Ok((Value::Object(cfg).to_string(), note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_an_upgrade_changed_are_named_enable_aside() {
        let before = r#"{"enable":true,"refetchStoreIntervalMin":30,"gone":1}"#;
        let now = r#"{"enable":false,"refetchStoreIntervalMin":45,"added":"x"}"#;
        let mut keys = changed_keys(before, now).unwrap();
        keys.sort();
        assert_eq!(keys, ["added", "gone removed", "refetchStoreIntervalMin"]);
        assert!(changed_keys(before, r#"{"enable":false,"refetchStoreIntervalMin":30,"gone":1}"#).unwrap().is_empty());
    }

    #[test]
    fn enabling_keeps_every_other_key_of_the_value_it_edits() {
        let now = r#"{"enable":false,"refetchStoreIntervalMin":30,"added":"x"}"#;
        let (value, _) = enable_covering(now, 90 * 60_000, "T2 − T1", "refetch", 30).unwrap();
        let v: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(v["enable"], Value::Bool(true));
        assert_eq!(v["added"], "x");
        assert_eq!(v["refetchStoreIntervalMin"], 121);
    }
}
