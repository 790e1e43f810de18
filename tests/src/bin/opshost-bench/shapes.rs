//! The MetaDB shapes the bench measures, each spread over the three OMS databases (rm, cm,
//! cm_hb) as a real deployment is: the goals must hold on every one, not on the data the code
//! was tuned on.

use crate::db::Db;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// The original synthetic OMS MetaDB: bulk tables with plain keys, a large
    /// AUTO_INCREMENT heartbeat table.
    Oms,
    /// Every table keyed by AUTO_INCREMENT (as the vendor's `heatbeat_sequence` is), with JSON
    /// and TEXT columns: about 1.5 M rows.
    Autoinc,
    /// Hundreds of small tables with a secondary key each.
    SmallTables,
    /// Few rows, each tens of kilobytes of TEXT, BLOB or JSON.
    Wide,
    /// A heartbeat table of ten million narrow rows, beside small config tables.
    Heartbeat,
}

pub const ALL: [Shape; 5] = [Shape::Oms, Shape::Autoinc, Shape::SmallTables, Shape::Wide, Shape::Heartbeat];

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Oms => "oms",
            Shape::Autoinc => "autoinc",
            Shape::SmallTables => "small-tables",
            Shape::Wide => "wide",
            Shape::Heartbeat => "heartbeat",
        }
    }

    pub fn parse(name: &str) -> Option<Shape> {
        ALL.into_iter().find(|s| s.name() == name)
    }

    /// Build the shape in the three (emptied) bench databases; `scale` multiplies the rows (and
    /// for small-tables, the tables).
    pub fn build(self, db: &Db, scale: f64) {
        db.reset();
        let n = |base: f64| ((base * scale) as u64).max(10);
        match self {
            Shape::Oms => db.sql(&format!(
                "USE bench_rm;
                 {CONFIG}
                 CREATE TABLE oms_project (id BIGINT PRIMARY KEY, name VARCHAR(128), config JSON, description TEXT, cost DOUBLE, weight FLOAT, created DATETIME(6), KEY (name));
                 INSERT INTO oms_project SELECT seq, CONCAT('project-', seq), CONCAT('{{\"source\":\"ob\",\"tables\":[', seq, ',', seq + 1, '],\"opts\":{{\"batch\":', seq % 1000, '}}}}'), REPEAT(CONCAT('line ', seq, ' it''s \"quoted\" \\\\ text; '), 12), seq / 7, seq / 3, NOW(6) - INTERVAL seq SECOND FROM seq_1_to_{};
                 USE bench_cm;
                 {HOSTS}
                 CREATE TABLE task (id BIGINT PRIMARY KEY, host_id INT, payload BLOB, state VARCHAR(32), updated TIMESTAMP(6) NULL, KEY (host_id));
                 INSERT INTO task SELECT seq, seq % 200, UNHEX(REPEAT(SHA2(seq, 256), 4)), ELT(seq % 3 + 1, 'RUNNING', 'PAUSED', 'FAILED'), NOW(6) FROM seq_1_to_{};
                 USE bench_cm_hb;
                 {}",
                n(340_000.0),
                n(500_000.0),
                heartbeat(n(2_600_000.0))
            )),
            Shape::Autoinc => db.sql(&format!(
                "USE bench_rm;
                 {CONFIG}
                 CREATE TABLE oms_project (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128), config JSON, description TEXT, gmt_created DATETIME(6), KEY (name));
                 INSERT INTO oms_project (name, config, description, gmt_created) SELECT CONCAT('project-', seq), CONCAT('{{\"source\":\"ob\",\"tables\":[', seq, '],\"opts\":{{\"batch\":', seq % 1000, ',\"tz\":\"+08:00\"}}}}'), REPEAT(CONCAT('step ', seq, ' \"done\" '), 16), NOW(6) - INTERVAL seq SECOND FROM seq_1_to_{};
                 USE bench_cm;
                 {HOSTS}
                 CREATE TABLE task (id BIGINT AUTO_INCREMENT PRIMARY KEY, host_id INT, params JSON, log TEXT, state VARCHAR(32), updated TIMESTAMP(6) NULL, KEY (host_id));
                 INSERT INTO task (host_id, params, log, state, updated) SELECT seq % 200, CONCAT('{{\"task\":', seq, ',\"retry\":', seq % 5, '}}'), CONCAT('started ', MD5(seq), ' then ', SHA1(seq), ' ok'), ELT(seq % 3 + 1, 'RUNNING', 'PAUSED', 'FAILED'), NOW(6) FROM seq_1_to_{};
                 USE bench_cm_hb;
                 {}",
                n(300_000.0),
                n(400_000.0),
                heartbeat(n(800_000.0))
            )),
            Shape::SmallTables => {
                let tables = n(150.0);
                for database in crate::DBS {
                    let mut sql = format!("USE {database};");
                    for t in 0..tables {
                        sql.push_str(&format!(
                            "CREATE TABLE t_{t} (id INT PRIMARY KEY, name VARCHAR(64), value TEXT, updated DATETIME, KEY (name));
                             INSERT INTO t_{t} SELECT seq, CONCAT('name-', seq), REPEAT(CONCAT('v', seq, ' '), 8), '2026-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_{};",
                            200 + (t * 37) % 400
                        ));
                    }
                    db.sql(&sql);
                }
            }
            Shape::Wide => db.sql(&format!(
                "USE bench_rm;
                 CREATE TABLE project_doc (id BIGINT PRIMARY KEY, meta JSON, body LONGTEXT);
                 INSERT INTO project_doc SELECT seq, CONCAT('{{\"doc\":', seq, '}}'), REPEAT(CONCAT(MD5(seq), ' line ''quoted'' \\\\ tab\\t; '), 500) FROM seq_1_to_{};
                 USE bench_cm;
                 CREATE TABLE artifact (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64), content LONGBLOB);
                 INSERT INTO artifact (name, content) SELECT CONCAT('artifact-', seq), REPEAT(UNHEX(SHA2(seq, 512)), 500) FROM seq_1_to_{};
                 USE bench_cm_hb;
                 CREATE TABLE snapshot (id INT PRIMARY KEY, state JSON);
                 INSERT INTO snapshot SELECT seq, CONCAT('[', REPEAT(CONCAT('{{\"k\":', seq, ',\"v\":\"', MD5(seq), '\"}},'), 300), '0]') FROM seq_1_to_{};",
                n(6_000.0),
                n(5_000.0),
                n(4_000.0)
            )),
            Shape::Heartbeat => db.sql(&format!(
                "USE bench_rm;
                 {CONFIG}
                 USE bench_cm;
                 {HOSTS}
                 USE bench_cm_hb;
                 CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT);
                 INSERT INTO heatbeat_sequence (node, gmt_created) SELECT CONCAT('10.0.0.', seq % 8), 1767225600000 + seq FROM seq_1_to_{};",
                n(10_000_000.0)
            )),
        }
        // Fresh statistics: the sizes printed and the floor's sharing out of the work use them.
        let tables = db.query("SELECT GROUP_CONCAT(CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'bench\\_%'");
        db.query(&format!("ANALYZE TABLE {tables}"));
    }
}

/// rm's system parameters: a small AUTO_INCREMENT table with a unique key.
const CONFIG: &str = "CREATE TABLE oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, cfg_name VARCHAR(128) NOT NULL UNIQUE, cfg_value LONGTEXT, gmt_modified DATETIME(6));
     INSERT INTO oms_normal_config (cfg_name, cfg_value, gmt_modified) SELECT CONCAT('cfg.', seq), CONCAT('{\"enable\":', IF(seq % 2, 'true', 'false'), ',\"n\":', seq, ',\"list\":[1,2,3]}'), NOW(6) FROM seq_1_to_2000;";

/// cm's hosts.
const HOSTS: &str = "CREATE TABLE host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), host_status VARCHAR(16));
     INSERT INTO host (resource_group_id, ip, host_status) SELECT 1, CONCAT('10.0.', seq DIV 256, '.', seq % 256), 'ONLINE' FROM seq_1_to_200;";

/// cm_hb's heartbeat table, as the vendor's: AUTO_INCREMENT ids, `rows` of them.
fn heartbeat(rows: u64) -> String {
    format!(
        "CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), module VARCHAR(64), gmt_created BIGINT, info VARCHAR(255));
         INSERT INTO heatbeat_sequence (node, module, gmt_created, info) SELECT CONCAT('10.0.0.', seq % 8), ELT(seq % 4 + 1, 'store', 'connector', 'writer', 'supervisor'), 1767225600000 + seq, CONCAT('beat ', seq, ' ok ', MD5(seq)) FROM seq_1_to_{rows};"
    )
}
