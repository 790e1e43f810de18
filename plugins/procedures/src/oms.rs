//! The OMS CE single-node hop (seeds oms-upgrade-4.1.1-to-4.2.0-single-node.md and
//! oms-upgrade-3.2.2-to-3.3.0.md), parameterised by what differs between releases.

use crate::bindings::opshost::plugin::{docker, host};
use crate::bindings::opshost::plugin::docker::{ContainerInfo, RunSpec};
use crate::container::{self, env_value, oms_successor, remove_env, set_env};
use crate::ctx::{failed, info, invalid, not_found, now_ms, recall, record, step, warn, Params, Result, Within};
use crate::metadb::MetaDb;
use crate::version::{digits, image_with_version, version_in_image};
use crate::{ha, Context, Manifest, Need, ParameterSpec, Plan, Step};

/// What one OMS release's upgrade procedure is, as data.
pub struct OmsHop {
    /// Plugin name, e.g. "oms-4.2.0".
    pub name: &'static str,
    pub sources: &'static [&'static str],
    pub target: &'static str,
    /// Pass `IS_UPGRADE=true` to the new container (required from 3.3.1 on).
    pub is_upgrade_env: bool,
    /// Turn HA off for the upgrade and back on afterwards (4.2.0 on).
    pub ha_step: bool,
}

const INIT_SCRIPT: &str = "/root/docker_init.sh";

/// Everything the prechecks established; shared by plan and upgrade.
struct Checked {
    node: String,
    old: ContainerInfo,
    new_name: String,
    image: String,
    archive: Option<String>,
    host_ip: String,
    metadb: MetaDb,
    trim: bool,
    heartbeat_rows: u64,
    ha_before: Option<String>,
    stop_timeout_s: u32,
    online_timeout_s: u64,
    poll_s: u64,
    catch_up: String,
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
        Manifest {
            name: self.name.into(),
            product: "oms".into(),
            sources: self.sources.iter().map(|s| s.to_string()).collect(),
            target: self.target.into(),
            needs,
            parameters: vec![
                p("node", "Docker node of the OMS container", Some("local")),
                p("container", "name of the running OMS container (default oms_<source digits>, e.g. oms_411)", None),
                p("new_container", "name for the new container (default oms_<target digits>)", None),
                p("image_archive", "image archive to load, as named in the site config (omit if the image is already loaded)", None),
                p("image", "new image reference (default: the loaded tag for the target version, or the old image with the version replaced)", None),
                p("host_ip", "OMS_HOST_IP for the new container (default: the old container's)", None),
                p("connection", "MetaDB connection name in the site config", Some("metadb")),
                p("rm_db", "drc_rm_db from config.yaml (default rm_<source digits>)", None),
                p("cm_db", "drc_cm_db from config.yaml (default cm_<source digits>)", None),
                p("cm_hb_db", "drc_cm_heartbeat_db from config.yaml (default cm_hb_<source digits>)", None),
                p("trim_heartbeat", "delete heatbeat_sequence rows below max(id) before the backup, as the vendor does (they are not restored on rollback)", Some("true")),
                p("ha_catch_up", "after re-enabling HA: \"interval\" (refetchStoreIntervalMin > T2 − T1) or \"checkpoint\" (perceiveStoreClientCheckpoint=true)", Some("interval")),
                p("stop_timeout_s", "seconds docker stop waits before killing", Some("60")),
                p("online_timeout_s", "seconds to wait for every server to come online", Some("900")),
                p("poll_interval_s", "seconds between server status checks", Some("10")),
            ],
        }
    }

    fn check(&self, ctx: &Context) -> Result<Checked> {
        if !self.sources.contains(&ctx.source_version.as_str()) {
            return Err(invalid(format!(
                "{} upgrades OMS from {} only, but this deployment is at {}: upgrade through the supported hops first (opshost plan --to {} lists the route)",
                self.name,
                self.sources.join(", "),
                ctx.source_version,
                self.target
            )));
        }
        if ctx.target_version != self.target {
            return Err(invalid(format!("{} upgrades to {}, not {}", self.name, self.target, ctx.target_version)));
        }
        let p = Params(ctx);
        let src = digits(&ctx.source_version);
        let node = p.node();
        let old_name = p.or("container", format!("oms_{src}"));
        let old = container::require(&node, &old_name, "set parameter container to the running OMS container's name")?;
        match version_in_image(&old.spec.image) {
            Some(v) if v != ctx.source_version => {
                return Err(invalid(format!(
                    "container {old_name} runs {} (OMS {v}), not OMS {}: correct the version in the site config",
                    old.spec.image, ctx.source_version
                )))
            }
            _ => {}
        }
        let new_name = p.or("new_container", format!("oms_{}", digits(self.target)));
        if new_name == old_name {
            return Err(invalid(format!("new_container must differ from container ({old_name}): the old one is kept for rollback")));
        }
        container::require_absent(&node, &new_name, "remove it, or set parameter new_container to another name")?;
        let archive = p.get("image_archive").map(str::to_string);
        let image = match p.get("image") {
            Some(i) => i.to_string(),
            None => image_with_version(&old.spec.image, &ctx.source_version, self.target)
                .ok_or_else(|| invalid(format!("cannot derive the new image from {}: set parameter image", old.spec.image)))?,
        };
        if archive.is_none() && !docker::image_exists(&node, &image).within("checking the new image")? {
            return Err(invalid(format!("image {image} is not on node {node}: set parameter image_archive to the OMS {} archive", self.target)));
        }
        let host_ip = match p.get("host_ip").or_else(|| env_value(&old.spec, "OMS_HOST_IP")) {
            Some(ip) => ip.to_string(),
            None => return Err(invalid(format!("container {old_name} has no OMS_HOST_IP: set parameter host_ip"))),
        };
        let metadb = MetaDb {
            connection: p.or("connection", "metadb"),
            databases: vec![
                ("rm".into(), p.or("rm_db", format!("rm_{src}"))),
                ("cm".into(), p.or("cm_db", format!("cm_{src}"))),
                ("cm_hb".into(), p.or("cm_hb_db", format!("cm_hb_{src}"))),
            ],
        };
        metadb.check_exist()?;
        let trim = p.flag("trim_heartbeat", true)?;
        let heartbeat_rows = if trim { metadb.heartbeat_rows_to_trim(metadb.database("cm_hb"))? } else { 0 };
        let ha_before = if self.ha_step {
            let text = ha::current()?;
            ha::is_enabled(&text)?;
            Some(text)
        } else {
            None
        };
        let catch_up = p.or("ha_catch_up", "interval");
        if catch_up != "interval" && catch_up != "checkpoint" {
            return Err(invalid(format!("parameter ha_catch_up = {catch_up:?} must be \"interval\" or \"checkpoint\"")));
        }
        Ok(Checked {
            node,
            old,
            new_name,
            image,
            archive,
            host_ip,
            metadb,
            trim,
            heartbeat_rows,
            ha_before,
            stop_timeout_s: p.number("stop_timeout_s", 60)? as u32,
            online_timeout_s: p.number("online_timeout_s", 900)?,
            poll_s: p.number("poll_interval_s", 10)?.max(1),
            catch_up,
        })
    }

    fn new_spec(&self, c: &Checked) -> RunSpec {
        let mut spec = oms_successor(&c.old.spec, &c.new_name, &c.image);
        set_env(&mut spec, "OMS_HOST_IP", &c.host_ip);
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
        let mut findings = vec![
            format!("OMS {} in container {} ({}, image {}) on node {}", ctx.source_version, c.old.spec.name, container::state_name(c.old.state), c.old.spec.image, c.node),
            format!("mounts: {}", container::describe_mounts(&c.old.spec)),
            format!("MetaDB connection {}: databases {dbs} exist", c.metadb.connection),
        ];
        if let Some(t) = &c.ha_before {
            findings.push(format!("ha.config: HA is {} ({t})", if ha_on { "on" } else { "off" }));
        }
        if c.trim {
            findings.push(format!("{} heartbeat rows below max(id) in {}.heatbeat_sequence will be deleted and are not restored on rollback (vendor step; trim_heartbeat=false keeps them)", c.heartbeat_rows, c.metadb.database("cm_hb")));
        }
        let spec = self.new_spec(&c);
        let mut steps: Vec<Step> = Vec::new();
        match &c.archive {
            Some(a) => steps.push(step("load image", format!("load archive {a} on node {} (before the downtime starts); expect {}", c.node, c.image), true)),
            None => steps.push(step("image present", format!("{} is already on node {}", c.image, c.node), false)),
        }
        if self.ha_step {
            steps.push(step("HA off", if ha_on { "set ha.config enable=false, remembering the current value".to_string() } else { "HA is already off; remember ha.config".to_string() }, ha_on));
        }
        steps.push(step("stop old container", format!("docker stop {} (kept for rollback); record T1", c.old.spec.name), true));
        if c.trim {
            steps.push(step("trim heartbeat", format!("delete {} rows below max(id) from {}.heatbeat_sequence", c.heartbeat_rows, c.metadb.database("cm_hb")), true));
        }
        steps.push(step("back up MetaDB", format!("dump {dbs}; each must be non-empty and match the live database's checksum"), false));
        let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        steps.push(step(
            "run new container",
            format!("{} from {}: --net host --privileged --pids-limit -1 --ulimit nproc=65535:65535, env {env}, mounts {}", spec.name, spec.image, container::describe_mounts(&spec)),
            true,
        ));
        steps.push(step("init schema", format!("docker exec {} bash {INIT_SCRIPT} (changes the schema of {dbs}); fail on a non-zero exit", spec.name), true));
        steps.push(step("wait online", format!("until every server is online and the console healthy (at most {} s)", c.online_timeout_s), false));
        if self.ha_step && ha_on {
            let how = if c.catch_up == "checkpoint" { "perceiveStoreClientCheckpoint=true".to_string() } else { "refetchStoreIntervalMin > (T2 − T1) minutes".to_string() };
            steps.push(step("HA on", format!("set ha.config enable=true, record T2, {how}"), true));
        }
        steps.push(step("notice", "clear the browser cache before logging on to OMS", false));
        let mut rollback = Vec::new();
        if self.ha_step {
            rollback.push(step("HA off", "set ha.config enable=false if it is on", true));
        }
        rollback.push(step("stop new container", format!("docker stop {} if it runs", spec.name), true));
        rollback.push(step("restore MetaDB", format!("drop, create and restore {dbs} from the verified backups; checksums checked"), true));
        rollback.push(step("restart old container", format!("docker restart {}", c.old.spec.name), true));
        if self.ha_step {
            rollback.push(step("ha.config as before", "set ha.config back to the value recorded before the upgrade", true));
        }
        Ok(Plan { findings, steps, rollback })
    }

    pub fn upgrade(&self, ctx: &Context) -> Result<()> {
        if let Some(t) = recall::<u64>("upgrade.finished")? {
            return Err(invalid(format!("this run already finished its upgrade (at {t} ms); start a new run to upgrade again")));
        }
        let c = self.check(ctx)?;
        record("upgrade.started", &now_ms())?;
        // Before the downtime starts: load the new image.
        if let Some(archive) = &c.archive {
            let tags = docker::load_image(&c.node, archive).within(&format!("loading image archive {archive}"))?;
            info(format!("loaded {}", tags.join(", ")));
        }
        if !docker::image_exists(&c.node, &c.image).within("checking the new image")? {
            return Err(invalid(format!("image {} is not on node {} after loading: set parameter image to one of the archive's tags", c.image, c.node)));
        }
        if self.ha_step {
            ha::disable_remembering()?;
        }
        let t1 = container::stop_recording_t1(&c.node, &c.old, c.stop_timeout_s)?;
        if c.trim {
            c.metadb.trim_heartbeat(c.metadb.database("cm_hb"))?;
        }
        c.metadb.backup_and_verify()?;
        let spec = self.new_spec(&c);
        container::run_recorded(&c.node, &spec)?;
        container::run_init_script(&c.node, &spec.name, INIT_SCRIPT)?;
        let n = container::wait_online(&c.node, c.online_timeout_s, c.poll_s)?;
        info(format!("{n} servers online"));
        if self.ha_step {
            if let Some(note) = ha::restore_after_upgrade(t1, now_ms(), &c.catch_up)? {
                host::notice(&note);
            }
        }
        host::notice(&format!("OMS upgraded to {}: clear the browser cache before you log on to the OMS console", self.target));
        record("upgrade.finished", &now_ms())?;
        Ok(())
    }

    pub fn rollback(&self, ctx: &Context) -> Result<()> {
        if let Some(t) = recall::<u64>("rollback.finished")? {
            return Err(invalid(format!("this run was already rolled back (at {t} ms): rolling back twice would overwrite what the old version wrote since")));
        }
        let old: Option<(String, RunSpec)> = recall("old.container")?;
        let ha_before = ha::recorded_before()?;
        if old.is_none() && ha_before.is_none() {
            if recall::<u64>("upgrade.started")?.is_none() {
                return Err(not_found("no upgrade is recorded for this run: nothing to roll back"));
            }
            info("the upgrade stopped before changing anything: nothing to roll back");
            record("rollback.finished", &now_ms())?;
            return Ok(());
        }
        // Seed step 9.1: HA off.
        if self.ha_step {
            ha::turn_off(&ha::current()?)?;
        }
        // 9.2: stop the new container (T3).
        let new: Option<(String, String)> = recall("new.container")?;
        if let Some((node, name)) = &new {
            if container::stop_if_running(node, name, 60)? {
                record("t3", &now_ms())?;
                info(format!("stopped {name}"));
            }
        }
        // 9.3-9.4: drop, create, restore the databases from the verified backups.
        match (MetaDb::verified_backups()?, &new) {
            (Some((connection, backups)), _) => MetaDb::restore(&connection, &backups)?,
            (None, Some(_)) => {
                return Err(failed("a new container was started but no verified backup is recorded: the MetaDB cannot be restored automatically; restore the dumps by hand before restarting the old container"));
            }
            (None, None) => info("no backup was completed and nothing but the heartbeat trim touched the databases: no restore needed"),
        }
        // 9.5: restart the old container.
        if let Some((node, spec)) = &old {
            let how = container::bring_back(node, spec, 60)?;
            info(format!("old container {}: {how}", spec.name));
            if let Some((_, name)) = &new {
                host::notice(&format!("the new container {name} is stopped and kept; remove it (docker rm {name}) before upgrading again"));
            }
        }
        // 9.6: HA as it was, exactly (the checksum of rm then equals the pre-upgrade one).
        if self.ha_step && ha::restore_exactly()? && ha_before.as_deref().map(ha::is_enabled).transpose()?.unwrap_or(false) {
            host::notice("HA is back on with its previous settings; if connectors lag, raise refetchStoreIntervalMin above the minutes since T1");
        }
        if let Some((node, _)) = &old {
            let p = Params(ctx);
            if let Err(e) = container::wait_online(node, p.number("online_timeout_s", 900)?, p.number("poll_interval_s", 10)?.max(1)) {
                warn(format!("after rollback: {}", e.message()));
                host::notice("rolled back, but not every server came online: check the Servers page of the OMS console");
            }
        }
        record("rollback.finished", &now_ms())?;
        Ok(())
    }
}

/// A whole OMS hop plugin from its [`OmsHop`]: the WIT exports and the component's export glue.
///
/// ```ignore
/// opshost_procedures::oms_plugin!(OmsHop { name: "oms-4.2.0", sources: &["4.1.1"], target: "4.2.0", is_upgrade_env: true, ha_step: true });
/// ```
#[macro_export]
macro_rules! oms_plugin {
    ($hop:expr) => {
        const HOP: $crate::oms::OmsHop = $hop;

        struct Plugin;

        impl $crate::bindings::Guest for Plugin {
            fn manifest() -> $crate::Manifest {
                HOP.manifest()
            }
            fn plan(ctx: $crate::Context) -> Result<$crate::Plan, $crate::Error> {
                HOP.plan(&ctx)
            }
            fn upgrade(ctx: $crate::Context) -> Result<(), $crate::Error> {
                HOP.upgrade(&ctx)
            }
            fn rollback(ctx: $crate::Context) -> Result<(), $crate::Error> {
                HOP.rollback(&ctx)
            }
        }

        $crate::bindings::export_plugin!(Plugin);
    };
}
