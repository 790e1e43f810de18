//! The ODC hop's manifest and plan: what it needs and takes, and the ordered steps it will run,
//! established by the prechecks (read-only).

use super::*;
use crate::container::{self, env_value, state_name};
use crate::ctx::{step, Result};
use crate::{Context, Manifest, Need, ParameterSpec, Plan, Step};

impl OdcHop {
    pub fn manifest(&self) -> Manifest {
        let p = |name: &str, description: &str, default: Option<&str>| ParameterSpec {
            name: name.into(),
            description: description.into(),
            default: default.map(Into::into),
        };
        let need = |capability: &str, target: &str, why: &str| Need { capability: capability.into(), target: target.into(), why: why.into() };
        Manifest {
            name: self.name.into(),
            product: "odc".into(),
            sources: self.sources.iter().map(|s| s.to_string()).collect(),
            target: self.target.into(),
            needs: vec![
                need("docker", "*odc*", "inspect, stop and remove the ODC containers, run the new ones (and the old ones again on rollback)"),
                need("docker", "*nginx*", "swap the nginx container in front of an HA ODC (parameter nginx_container)"),
                need("image-archive", "*", "load the new ODC (and nginx) image from the archives named in parameters image_archive and nginx_image_archive"),
                need("sql", "*", "back up the ODC MetaDB before the new ODC migrates it, restore it on rollback"),
                need("console", "servers", "wait until each ODC node answers /api/v1/heartbeat/isHealthy"),
            ],
            parameters: vec![
                p("container", "name of the ODC container on every node", Some("obodc")),
                p("node_containers", "HA ODC whose containers are named differently per node: node=container,node=container (nodes as named in the site config, upgraded in this order); default: every node of the product with parameter container", None),
                p("image_archive", "new ODC image archive, as named in the site config, loaded on every node before the downtime (omit if the image is already loaded)", None),
                p("image", "new ODC image reference (default: the old image with the version replaced, e.g. odc-server:4.2.2 -> odc-server:<target>)", None),
                p("connection", "MetaDB connection name in the site config", Some("metadb")),
                p("database", "the ODC MetaDB database (default: DATABASE_NAME of the ODC containers)", None),
                p("cpu_period", "--cpu-period of the new containers (default: the old container's, else 100000)", None),
                p("cpu_quota", "--cpu-quota of the new containers (default: the old container's, else 400000)", None),
                p("memory", "--memory of the new containers, e.g. 8G (default: the old container's, else 8G)", None),
                p("nginx_container", "HA: the nginx container in front of the ODC nodes (omit when there is none)", None),
                p("nginx_node", "node of the nginx container (default: the first ODC node)", None),
                p("nginx_image", "new nginx image; without it the nginx container is left as it is", None),
                p("nginx_image_archive", "archive holding nginx_image, as named in the site config", None),
                p("nginx_health", "a node name of the console's health_urls whose URL goes through nginx, checked after the nginx swap", None),
                p("stop_timeout_s", "seconds docker stop waits before killing", Some("30")),
                p("healthy_timeout_s", "seconds to wait for each ODC node to answer healthy", Some("600")),
                p("poll_interval_s", "seconds between health checks, once the first quick ones (from 250 ms, doubling) found it not ready", Some("5")),
                p("ha_order", "HA ODC: \"vendor\" stops every node, backs up the MetaDB once, then starts the new version on every node (the vendor's process: no old node writes after the backup or serves on a migrated schema); \"rolling\" goes node by node (shorter outage, but the backup is taken while the other old nodes still write)", Some("vendor")),
            ],
        }
    }

    pub fn plan(&self, ctx: &Context) -> Result<Plan> {
        let c = self.check(ctx)?;
        let db = c.database().to_string();
        let mut findings = Vec::new();
        for n in &c.nodes {
            let s = &n.old.spec;
            findings.push(format!(
                "ODC {} in container {} ({}, image {}) on node {}: MetaDB {}:{}/{}, profile {}, port {}",
                ctx.source_version,
                s.name,
                state_name(n.old.state),
                s.image,
                n.node,
                env_value(s, "DATABASE_HOST").unwrap_or("?"),
                env_value(s, "DATABASE_PORT").unwrap_or("?"),
                env_value(s, "DATABASE_NAME").unwrap_or("?"),
                env_value(s, "ODC_PROFILE_MODE").unwrap_or("default"),
                env_value(s, "ODC_SERVER_PORT").unwrap_or("8989"),
            ));
            if !s.mounts.is_empty() {
                findings.push(format!("mounts of {} on node {}: {} (kept)", s.name, n.node, container::describe_mounts(s)));
            }
        }
        findings.extend(self.notes.iter().map(|n| n.to_string()));
        findings.extend(considerations(&ctx.source_version));
        findings.push(match &c.schema {
            Some(v) => format!(
                "MetaDB connection {}: database {db} exists, schema version {v} (migrate_schema_history); ODC {} migrates it when it starts",
                c.metadb.connection, self.target
            ),
            None => format!("MetaDB connection {}: database {db} exists (no migrate_schema_history found)", c.metadb.connection),
        });
        if c.ha() && c.all_at_once {
            findings.push(format!(
                "HA: {} ODC nodes, in the vendor's order: every node stops, the MetaDB is backed up once with nothing writing, then the new version starts on each node in turn (ha_order = \"rolling\" goes node by node instead)",
                c.nodes.len()
            ));
        } else if c.ha() {
            findings.push(format!(
                "HA: {} ODC nodes, upgraded one at a time (ha_order = \"rolling\"); each is healthy again before the next goes down. The MetaDB is backed up once the first node is down, while the others still run: what they write after the backup is lost if you roll back, and old nodes serve on the schema the first new one migrated",
                c.nodes.len()
            ));
        }
        match &c.nginx {
            Some(x) => findings.push(match &x.image {
                Some(i) => format!("nginx container {} ({}) on node {}: upgraded to {i} after the ODC nodes", x.old.spec.name, x.old.spec.image, x.node),
                None => format!("nginx container {} ({}) on node {}: left as it is (set nginx_image to upgrade it)", x.old.spec.name, x.old.spec.image, x.node),
            }),
            None if c.ha() => findings.push("no nginx container given (parameter nginx_container): only the ODC nodes are upgraded".into()),
            None => {}
        }
        let mut steps: Vec<Step> = Vec::new();
        match &c.archive {
            Some(a) => steps.push(step("load image", format!("load archive {a} on {} before the downtime; expect {}", c.nodes_phrase(), c.image), true)),
            None => steps.push(step("image present", format!("{} is already on {}", c.image, c.nodes_phrase()), false)),
        }
        if let Some(Nginx { image: Some(i), archive: Some(a), node, .. }) = &c.nginx {
            steps.push(step("load nginx image", format!("load archive {a} on node {node}; expect {i}"), true));
        }
        steps.push(step(
            "record",
            format!(
                "the run spec of every container ({}) in the run records, for rollback",
                c.nodes.iter().map(|n| format!("{} on {}", n.old.spec.name, n.node)).collect::<Vec<_>>().join(", ")
            ),
            false,
        ));
        let backup =
            step("back up MetaDB", format!("dump {db} before any new ODC starts; the dump must be non-empty and match the live database's checksum"), false);
        if c.all_at_once {
            for n in &c.nodes {
                let name = &n.old.spec.name;
                steps.push(step("stop and remove", format!("docker stop {name} and docker rm {name} on node {}", n.node), true));
            }
            steps.push(backup.clone());
        }
        for (i, n) in c.nodes.iter().enumerate() {
            let name = &n.old.spec.name;
            if !c.all_at_once {
                steps.push(step("stop and remove", format!("docker stop {name} and docker rm {name} on node {}", n.node), true));
                if i == 0 {
                    steps.push(backup.clone());
                }
            }
            let spec = container::check_run(&n.node, &c.new_spec(&n.old.spec))?;
            steps.push(step(
                "run new ODC",
                format!("on node {}: {}{}", n.node, describe_run(&spec), if i == 0 { format!(" (migrates the schema of {db})") } else { String::new() }),
                true,
            ));
            steps.push(step(
                "wait healthy",
                format!("GET /api/v1/heartbeat/isHealthy of node {} answers {{\"data\":true}} (at most {} s)", n.node, c.healthy_timeout_s),
                false,
            ));
        }
        if let Some(Nginx { image: Some(i), node, old, health, .. }) = &c.nginx {
            let name = &old.spec.name;
            let spec = container::check_run(node, &nginx_spec(&old.spec, i))?;
            steps.push(step("swap nginx", format!("docker stop {name} and docker rm {name} on node {node}, then {}", describe_run(&spec)), true));
            steps.push(step(
                "wait nginx",
                match health {
                    Some(h) => format!("{name} runs and the health URL of {h} answers healthy through it"),
                    None => format!("{name} runs"),
                },
                false,
            ));
        }
        steps.push(step("notice", "clear the browser cache before logging on to ODC", false));
        let mut rollback = vec![
            step("stop new containers", format!("docker stop and docker rm the new ODC containers on {}", c.nodes_phrase()), true),
            step("restore MetaDB", format!("drop, create and restore {db} from the verified backup, checksum checked, before any old ODC starts (ODC {} migrated the schema; ODC {} refuses to start on it)", self.target, ctx.source_version), true),
            step("run old ODC", format!("on {}: the old image with the recorded options, each waited for until healthy", c.nodes_phrase()), true),
        ];
        if let Some(Nginx { image: Some(_), old, .. }) = &c.nginx {
            rollback.push(step("nginx back", format!("{} from {} with its recorded options", old.spec.name, old.spec.image), true));
        }
        Ok(Plan { findings, steps, rollback })
    }
}
