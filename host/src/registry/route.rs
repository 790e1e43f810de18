//! Upgrade routes: the shortest chain of plugin hops from a deployed version to a target, the way
//! obd computes them (a shortest path over "version -> can be upgraded to"), and, when there is
//! none, which hop is missing.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// One hop a plugin offers: any of `sources` -> `target`.
#[derive(Clone, Debug)]
pub struct Edge {
    pub plugin: String,
    pub sources: Vec<String>,
    pub target: String,
}

/// Versions compare numerically part by part ("4.2.10" > "4.2.9"); non-numeric parts compare as text.
pub fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-', '_']).map(|p| (p.parse::<u64>().unwrap_or(u64::MAX), p.to_string())).collect()
}

/// Indices into `edges` of the shortest route `from` -> `to` (fewest hops; among equally short
/// routes, the one whose hops reach the lower versions first, so the result does not depend on
/// the order of the plugin files). Err says why there is none and which hop is missing.
pub fn shortest_route(edges: &[Edge], product: &str, from: &str, to: &str) -> Result<Vec<usize>, String> {
    if from == to {
        return Err(format!("{product} is already at {to}: nothing to upgrade"));
    }
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_by(|&a, &b| version_key(&edges[a].target).cmp(&version_key(&edges[b].target)).then(edges[a].plugin.cmp(&edges[b].plugin)));
    // Breadth first over versions; `via[v]` = (the edge that first reached v, the version it left).
    let mut via: HashMap<String, (usize, String)> = HashMap::new();
    let mut queue = VecDeque::from([from.to_string()]);
    let mut seen = BTreeSet::from([from.to_string()]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            let mut route = Vec::new();
            let mut at = v;
            while at != from {
                let (edge, source) = via[&at].clone();
                route.push(edge);
                at = source;
            }
            route.reverse();
            return Ok(route);
        }
        for &i in &order {
            let e = &edges[i];
            if e.sources.contains(&v) && seen.insert(e.target.clone()) {
                via.insert(e.target.clone(), (i, v.clone()));
                queue.push_back(e.target.clone());
            }
        }
    }
    Err(missing_hop(edges, product, from, to))
}

/// Versions reachable from `from` (forward) or leading to `to` (backward), sorted by version.
fn closure(edges: &[Edge], start: &str, forward: bool) -> Vec<String> {
    let mut seen = BTreeSet::from([start.to_string()]);
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(v) = queue.pop_front() {
        for e in edges {
            let next: Vec<&String> = if forward {
                if e.sources.contains(&v) {
                    vec![&e.target]
                } else {
                    vec![]
                }
            } else if e.target == v {
                e.sources.iter().collect()
            } else {
                vec![]
            };
            for n in next {
                if seen.insert(n.clone()) {
                    queue.push_back(n.clone());
                }
            }
        }
    }
    let mut out: Vec<String> = seen.into_iter().collect();
    out.sort_by_key(|v| version_key(v));
    out
}

/// Why there is no route, naming the gap: the versions the plugins reach from `from`, and the
/// versions that would lead on to `to`; a plugin from one set to the other closes it.
fn missing_hop(edges: &[Edge], product: &str, from: &str, to: &str) -> String {
    let reach: Vec<String> = closure(edges, from, true);
    let lead: Vec<String> = closure(edges, to, false);
    let reach_words =
        if reach.len() > 1 { format!("from {from} the plugins reach {}", reach[1..].join(", ")) } else { format!("no plugin upgrades {product} from {from}") };
    let lead_words = if lead.len() > 1 {
        format!("{to} is reached only from {}", lead[..lead.len() - 1].join(", "))
    } else {
        format!("no plugin upgrades {product} to {to}")
    };
    format!(
        "no route from {product} {from} to {to}: {reach_words}; {lead_words}. Missing hop: a plugin that upgrades {product} from {} to {}; add it to the plugin directory",
        if reach.len() > 1 { format!("one of {}", reach.join(", ")) } else { from.to_string() },
        if lead.len() > 1 { format!("one of {}", lead.join(", ")) } else { to.to_string() }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(plugin: &str, sources: &[&str], target: &str) -> Edge {
        Edge { plugin: plugin.into(), sources: sources.iter().map(|s| s.to_string()).collect(), target: target.into() }
    }

    /// The OMS CE hops of DOMAIN.md.
    fn oms() -> Vec<Edge> {
        vec![
            e("oms-3.3.0", &["3.2.2"], "3.3.0"),
            e("oms-3.3.1", &["3.3.0"], "3.3.1"),
            e("oms-4.0.0", &["3.2.2", "3.3.0", "3.3.1"], "4.0.0"),
            e("oms-4.1.0", &["3.2.2", "3.3.0", "3.3.1", "4.0.0"], "4.1.0"),
            e("oms-4.2.0", &["4.1.1"], "4.2.0"),
            e("oms-4.2.1", &["4.2.0"], "4.2.1"),
            e("oms-4.2.2", &["4.2.1"], "4.2.2"),
            e("oms-4.2.4", &["4.2.3"], "4.2.4"),
            e("oms-4.2.9", &["4.2.0", "4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.2.5", "4.2.6", "4.2.7", "4.2.8"], "4.2.9"),
        ]
    }

    fn names(edges: &[Edge], route: &[usize]) -> Vec<String> {
        route.iter().map(|&i| edges[i].plugin.clone()).collect()
    }

    #[test]
    fn single_hop() {
        let g = oms();
        assert_eq!(names(&g, &shortest_route(&g, "oms", "4.1.1", "4.2.0").unwrap()), ["oms-4.2.0"]);
    }

    #[test]
    fn two_hops_in_order() {
        let g = oms();
        assert_eq!(names(&g, &shortest_route(&g, "oms", "3.2.2", "3.3.1").unwrap()), ["oms-3.3.0", "oms-3.3.1"]);
        assert_eq!(names(&g, &shortest_route(&g, "oms", "4.1.1", "4.2.2").unwrap()), ["oms-4.2.0", "oms-4.2.1", "oms-4.2.2"]);
    }

    #[test]
    fn shortest_wins_over_the_long_way() {
        let g = oms();
        // 3.2.2 -> 4.1.0 directly, not through 3.3.0, 3.3.1, 4.0.0.
        assert_eq!(names(&g, &shortest_route(&g, "oms", "3.2.2", "4.1.0").unwrap()), ["oms-4.1.0"]);
        // 4.2.0 -> 4.2.9 in one jump.
        assert_eq!(names(&g, &shortest_route(&g, "oms", "4.2.0", "4.2.9").unwrap()), ["oms-4.2.9"]);
        assert_eq!(names(&g, &shortest_route(&g, "oms", "4.1.1", "4.2.9").unwrap()), ["oms-4.2.0", "oms-4.2.9"]);
    }

    #[test]
    fn file_order_does_not_change_the_route() {
        let mut g = oms();
        g.reverse();
        assert_eq!(names(&g, &shortest_route(&g, "oms", "3.2.2", "3.3.1").unwrap()), ["oms-3.3.0", "oms-3.3.1"]);
    }

    #[test]
    fn names_the_missing_hop() {
        let g = oms();
        let err = shortest_route(&g, "oms", "4.2.2", "4.2.4").unwrap_err();
        assert!(err.contains("no route from oms 4.2.2 to 4.2.4"), "{err}");
        assert!(err.contains("4.2.4 is reached only from 4.2.3"), "{err}");
        assert!(err.contains("from 4.2.2 the plugins reach 4.2.9"), "{err}");
        assert!(err.contains("Missing hop: a plugin that upgrades oms from one of 4.2.2, 4.2.9 to one of 4.2.3, 4.2.4"), "{err}");
        // 4.1.1 is a fresh install only: nothing upgrades to it from 3.x.
        let err = shortest_route(&g, "oms", "3.3.1", "4.2.0").unwrap_err();
        assert!(err.contains("4.2.0 is reached only from 4.1.1"), "{err}");
        let err = shortest_route(&g, "oms", "4.2.0", "5.0.0").unwrap_err();
        assert!(err.contains("no plugin upgrades oms to 5.0.0"), "{err}");
        let err = shortest_route(&g, "oms", "4.2.0", "4.2.0").unwrap_err();
        assert!(err.contains("already at 4.2.0"), "{err}");
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("4.2.10") > version_key("4.2.9"));
        assert!(version_key("3.3.1") < version_key("4.0.0"));
    }
}
