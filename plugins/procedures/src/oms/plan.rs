//! The OMS hop's manifest and plan: what it needs and takes, and the ordered steps it will run,
//! established by the prechecks (read-only).

use super::{nodes_phrase, Checked, OmsHop, OmsNode, INIT_SCRIPT};
use crate::bindings::opshost::plugin::docker::RunSpec;
use crate::container::{self, oms_successor, remove_env, set_env};
use crate::ctx::{step, Result};
use crate::oms_config::{self};
use crate::{ha, Context, Manifest, Need, ParameterSpec, Plan, Step};

/// The restrictions the vendor's upgrade overview states for every hop, for the operator to
/// confirm with the plan (opshost cannot see them from the MetaDB).
fn vendor_restrictions(source: &str) -> Vec<String> {
    let mut v = vec![
        "confirm before you answer yes (vendor restriction): the forward switchover of every migration project is finished, and synchronization is in (quasi-)real time".to_string(),
    ];
    if source.starts_with("3.2.") || source == "3.3.0" {
        v.push(format!(
            "confirm before you answer yes (vendor restriction, sources from 3.2.x): connectors of projects with DDL synchronization created on 3.2.1 or 3.2.2 have the dbType parameter (or db_type) in their source settings; add it first if not (from {source})"
        ));
    }
    v
}

impl OmsHop {
    pub fn manifest(&self) -> Manifest {
        let p = |name: &str, description: &str, default: Option<&str>| ParameterSpec {
            name: name.into(),
            description: description.into(),
            default: default.map(Into::into),
        };
        let need = |capability: &str, target: &str, why: &str| Need { capability: capability.into(), target: target.into(), why: why.into() };
        let mut needs = vec![
            need("docker", "oms_*", "stop the old OMS container, run the new one, run docker_init.sh in it"),
            need("image-archive", "*", "load the new OMS image from the archive named in parameter image_archive"),
            need("sql", "*", "trim the heartbeat table, back up and restore the rm, cm and cm_hb databases named in the parameters"),
            need("console", "servers", "wait until every server is online"),
        ];
        if self.ha_step {
            needs.push(need("console", ha::PARAM, "turn HA off during the upgrade and back on afterwards"));
        }
        let mut parameters = vec![
            p("node", "Docker node of the OMS container", Some("local")),
            p("container", "name of the running OMS container (default oms_<source digits>, e.g. oms_411)", None),
            p("new_container", "name for the new container (default oms_<target digits>)", None),
            p("image_archive", "image archive to load, as named in the site config (omit if the image is already loaded)", None),
            p("image", "new image reference (default: the loaded tag for the target version, or the old image with the version replaced)", None),
            p("host_ip", "OMS_HOST_IP for the new container (default: the old container's)", None),
            p("connection", "MetaDB connection name in the site config", Some("metadb")),
            p("config_file", "where the OMS containers mount OMS's config.yaml, read (never changed) for the MetaDB databases, region and servers", Some(oms_config::DEFAULT_PATH)),
            p("rm_db", "drc_rm_db (default: what config.yaml names; a different value is refused)", None),
            p("cm_db", "drc_cm_db (default: what config.yaml names; a different value is refused)", None),
            p("cm_hb_db", "drc_cm_heartbeat_db of a single node (default: what config.yaml names; a different value is refused); for several regions, the base of <cm_hb_db>_<cm_location> where a region's config.yaml names none", None),
            p(
                "trim_heartbeat",
                "delete heatbeat_sequence rows below max(id) before the backup, as the vendor does (they are not restored on rollback)",
                Some("true"),
            ),
            p(
                "trim_heartbeat_early",
                "trim in two passes: the rows below max(id) before the stop, while OMS runs with HA off, then the vendor's statement after it deletes only those written since (the same rows in all; a shorter downtime); false: all after the stop, the vendor's order",
                Some("true"),
            ),
            p(
                "ha_catch_up",
                "after re-enabling HA: \"interval\" (refetchStoreIntervalMin > T2 − T1) or \"checkpoint\" (perceiveStoreClientCheckpoint=true)",
                Some("interval"),
            ),
            p("ha_refetch_margin_min", "minutes refetchStoreIntervalMin exceeds the downtime T2 − T1 by (the vendor's FAQ: downtime + 30 minutes)", Some("30")),
            p("stop_timeout_s", "seconds docker stop waits before killing", Some("60")),
            p("online_timeout_s", "seconds to wait for every server to come online", Some("900")),
            p("poll_interval_s", "seconds between server status checks, once the first quick ones (from 250 ms, doubling) found them not online", Some("10")),
        ];
        if self.multi_node {
            parameters.push(p(
                "region_nodes",
                "multi-node OMS: regions (cm_location of config.yaml) and their Docker nodes, e.g. hangzhou=node-a,node-b;shanghai=node-c; the container names are the same on every node, each region's heartbeat database is as region_heartbeat_dbs says, else what its config.yaml names, else <cm_hb_db>_<cm_location>, and parameters node and host_ip do not apply (omit for a single node)",
                None,
            ));
            parameters.push(p(
                "region_heartbeat_dbs",
                "multi-node OMS: each region's heartbeat database where its config.yaml does not name it <cm_hb_db>_<cm_location>, e.g. hangzhou=cm_hb1;shanghai=cm_hb2 (the vendor's example)",
                None,
            ));
            parameters.push(p(
                "regions_sharing_config",
                "multi-node OMS: regions (comma-separated) whose nodes mount one shared config.yaml: docker_init.sh runs once there, on the region's first node; in every other region it runs on each node",
                None,
            ));
        }
        Manifest {
            name: self.name.into(),
            product: "oms".into(),
            sources: self.sources.iter().map(|s| s.to_string()).collect(),
            target: self.target.into(),
            needs,
            parameters,
        }
    }

    pub(super) fn new_spec(&self, c: &Checked, n: &OmsNode) -> RunSpec {
        let mut spec = oms_successor(&n.old.spec, &c.new_name, &c.image);
        set_env(&mut spec, "OMS_HOST_IP", &n.host_ip);
        if self.is_upgrade_env {
            set_env(&mut spec, "IS_UPGRADE", "true");
        } else {
            remove_env(&mut spec, "IS_UPGRADE");
        }
        spec
    }

    pub fn plan(&self, ctx: &Context) -> Result<Plan> {
        let c = self.check(ctx)?;
        let ha_on = match &c.ha_before {
            Some(t) => ha::is_enabled(t)?,
            None => false,
        };
        let dbs = c.metadb.databases.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>().join(", ");
        let old_name = c.nodes[0].old.spec.name.clone();
        let mut findings = Vec::new();
        for n in &c.nodes {
            findings.push(format!(
                "OMS {} in container {} ({}, image {}) on node {}",
                ctx.source_version,
                n.old.spec.name,
                container::state_name(n.old.state),
                n.old.spec.image,
                n.node
            ));
            findings.push(format!("mounts{}: {}", c.on(&n.node), container::describe_mounts(&n.old.spec)));
        }
        // What each config.yaml says (one line for the nodes that show the same file).
        let mut seen: Vec<&str> = Vec::new();
        for n in &c.nodes {
            if seen.contains(&n.config.text.as_str()) {
                continue;
            }
            seen.push(&n.config.text);
            let same: Vec<String> = c.nodes.iter().filter(|m| m.config.text == n.config.text).map(|m| m.node.clone()).collect();
            let whose = if c.multi() { format!(" on {}", nodes_phrase(&same)) } else { String::new() };
            findings.push(format!("config.yaml{whose}: {}", n.config.summary()));
        }
        for r in &c.regions {
            let said = r.nodes.iter().find_map(|&i| c.nodes[i].config.get("drc_cm_heartbeat_db"));
            if let (Some(loc), Some(said)) = (&r.location, said) {
                if said != r.heartbeat_db {
                    findings.push(format!(
                        "region {loc}: heartbeat database {} as parameter region_heartbeat_dbs says, where its config.yaml names {said}",
                        r.heartbeat_db
                    ));
                }
            }
        }
        for r in &c.regions {
            if let Some(loc) = &r.location {
                let names: Vec<String> = r.nodes.iter().map(|&i| c.nodes[i].node.clone()).collect();
                let init = if r.shares_config {
                    format!("share one config.yaml: docker_init.sh runs once, on {}", names[0])
                } else {
                    match names.len() {
                        1 => "has its own config.yaml: docker_init.sh runs on it".to_string(),
                        _ => {
                            // The vendor: "If the same configuration file is used for multiple
                            // cm_nodes in the same region, you need to execute the docker_init.sh
                            // script only once in a region". Identical text does not say it is one
                            // file; the operator knows.
                            let first = &c.nodes[r.nodes[0]].config.text;
                            let hint = if r.nodes.iter().all(|&i| &c.nodes[i].config.text == first) {
                                format!(" (their config.yaml read the same: if it is one shared file, add {loc} to parameter regions_sharing_config and it runs once, as the vendor says)")
                            } else {
                                String::new()
                            };
                            format!("have a config.yaml each: docker_init.sh runs on each node{hint}")
                        }
                    }
                };
                findings.push(format!("region {loc}: {} {init}; heartbeat database {}", nodes_phrase(&names), r.heartbeat_db));
            }
        }
        findings.push(format!("MetaDB connection {}: databases {dbs} exist", c.metadb.connection));
        findings.extend(self.notes.iter().map(|n| n.to_string()));
        findings.extend(vendor_restrictions(&ctx.source_version));
        if let Some(t) = &c.ha_before {
            findings.push(format!("ha.config: HA is {} ({t})", if ha_on { "on" } else { "off" }));
        }
        if c.trim {
            for r in &c.regions {
                findings.push(format!("{} heartbeat rows below max(id) in {}.heatbeat_sequence will be deleted and are not restored on rollback (vendor step; trim_heartbeat=false keeps them)", r.heartbeat_rows, r.heartbeat_db));
            }
        }
        let mut steps: Vec<Step> = Vec::new();
        match &c.archive {
            Some(a) => {
                steps.push(step("load image", format!("load archive {a} on {} (before the downtime starts); expect {}", c.nodes_phrase(), c.image), true))
            }
            None => steps.push(step("image present", format!("{} is already on {}", c.image, c.nodes_phrase()), false)),
        }
        for n in &c.nodes {
            // As the host will run it (after site policy), or refused now rather than after the stop.
            let spec = container::check_run(&n.node, &self.new_spec(&c, n))?;
            let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            steps.push(step(
                "create new container",
                format!(
                    "docker create {}{} from {}: {}, env {env}, mounts {} (before anything stops: the engine refuses a taken name or a bad option now; started after the backup)",
                    spec.name,
                    c.on(&n.node),
                    spec.image,
                    container::describe_flags(&spec),
                    container::describe_mounts(&spec)
                ),
                true,
            ));
        }
        if self.ha_step {
            steps.push(step(
                "HA off",
                if ha_on {
                    "set ha.config enable=false, remembering the current value".to_string()
                } else {
                    "HA is already off; remember ha.config".to_string()
                },
                ha_on,
            ));
        }
        if c.trim_early {
            for r in &c.regions {
                steps.push(step(
                    "trim heartbeat, first pass",
                    format!(
                        "while OMS still runs: delete the {} rows below max(id) from {}.heatbeat_sequence; the vendor deletes them after the stop, and the second pass there deletes what was written since: the same rows in all (trim_heartbeat_early=false: all after the stop)",
                        r.heartbeat_rows, r.heartbeat_db
                    ),
                    true,
                ));
            }
        }
        let stop_where = if c.multi() { format!(" on {}", c.nodes_phrase()) } else { String::new() };
        steps.push(step("stop old container", format!("docker stop {old_name}{stop_where} (kept for rollback); record T1"), true));
        if c.trim {
            for r in &c.regions {
                let detail = if c.trim_early {
                    format!("delete the rows below max(id) from {}.heatbeat_sequence written since the first pass (the vendor's statement)", r.heartbeat_db)
                } else {
                    format!("delete {} rows below max(id) from {}.heatbeat_sequence", r.heartbeat_rows, r.heartbeat_db)
                };
                steps.push(step(if c.trim_early { "trim heartbeat, second pass" } else { "trim heartbeat" }, detail, true));
            }
        }
        steps.push(step("back up MetaDB", format!("dump {dbs}; each must be non-empty and match the live database's checksum"), false));
        steps.push(step("start new container", format!("docker start {}{stop_where}", c.new_name), true));
        for (node, why) in c.init_targets() {
            let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
            // rm, cm and the heartbeat database of the node's region (what its config.yaml names).
            let region_hb = c.regions.iter().find(|r| r.nodes.iter().any(|&i| c.nodes[i].node == node)).map(|r| r.heartbeat_db.as_str());
            let touched: Vec<&str> =
                c.metadb.databases.iter().filter(|(role, d)| !role.starts_with("cm_hb") || Some(d.as_str()) == region_hb).map(|(_, d)| d.as_str()).collect();
            steps.push(step(
                "init schema",
                format!(
                    "docker exec {}{} bash {INIT_SCRIPT}{why} (changes the schema of {}); fail on a non-zero exit",
                    c.new_name,
                    c.on(node),
                    touched.join(", ")
                ),
                true,
            ));
        }
        steps.push(step(
            "wait online",
            format!(
                "until {} has logged \"{}\"{stop_where}, every server is online and the console healthy (at most {} s)",
                c.new_name,
                container::OMS_STARTED_LINE,
                c.online_timeout_s
            ),
            false,
        ));
        if self.ha_step && ha_on {
            let how = if c.catch_up == "checkpoint" {
                "perceiveStoreClientCheckpoint=true".to_string()
            } else {
                format!("refetchStoreIntervalMin ≥ (T2 − T1) + {} minutes", c.refetch_margin_min)
            };
            steps.push(step("HA on", format!("set ha.config enable=true (in the value as the new version left it), record T2, {how}"), true));
        }
        steps.push(step("notice", "clear the browser cache before logging on to OMS", false));
        let mut rollback = Vec::new();
        if self.ha_step {
            rollback.push(step("HA off", "set ha.config enable=false if it is on", true));
        }
        rollback.push(step("stop new container", format!("docker stop {}{stop_where} if it runs", c.new_name), true));
        rollback.push(step("restore MetaDB", format!("drop, create and restore {dbs} from the verified backups; checksums checked"), true));
        rollback.push(step("restart old container", format!("docker restart {old_name}{stop_where}"), true));
        if self.ha_step {
            let how = if c.catch_up == "checkpoint" {
                "perceiveStoreClientCheckpoint=true".to_string()
            } else {
                format!("refetchStoreIntervalMin ≥ (minutes since T1) + {}", c.refetch_margin_min)
            };
            rollback.push(step(
                "HA on",
                if ha_on {
                    format!("set ha.config as recorded before the upgrade, enable=true, {how} (the vendor's rollback step 6)")
                } else {
                    "set ha.config back to the value recorded before the upgrade (HA off)".to_string()
                },
                true,
            ));
        }
        Ok(Plan { findings, steps, rollback })
    }
}
