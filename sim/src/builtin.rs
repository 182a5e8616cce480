//! Built-in topologies, embedded in the crate so that they work without any data
//! files: `social-network`, `hotel-reservation`, `media-service`, `chain`, `fanout`.

/// Names of the built-in topologies.
pub const NAMES: [&str; 5] = [
    "social-network",
    "hotel-reservation",
    "media-service",
    "chain",
    "fanout",
];

/// The TOML source of a built-in topology.
pub fn source(name: &str) -> Option<&'static str> {
    Some(match name {
        "social-network" => include_str!("../topologies/social-network.toml"),
        "hotel-reservation" => include_str!("../topologies/hotel-reservation.toml"),
        "media-service" => include_str!("../topologies/media-service.toml"),
        "chain" => include_str!("../topologies/chain.toml"),
        "fanout" => include_str!("../topologies/fanout.toml"),
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn every_builtin_compiles() {
        for n in NAMES {
            let t = Topology::load(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(t.name, n);
            assert!(t.work_capacity_rps() > 0.0);
        }
    }

    #[test]
    fn social_network_is_faithful() {
        let t = Topology::load("social-network").unwrap();
        assert!(t.services.len() >= 25, "{} services", t.services.len());
        let shares: Vec<(&str, f64)> = t.apis.iter().map(|a| (a.name.as_str(), a.share)).collect();
        assert_eq!(
            shares,
            vec![
                ("/wrk2-api/home-timeline/read", 0.6),
                ("/wrk2-api/user-timeline/read", 0.3),
                ("/wrk2-api/post/compose", 0.1)
            ]
        );
        // ComposePost fans out to the four upload services in one step.
        let nginx = t.service_id("nginx-web-server").unwrap();
        let compose = &t.ops[t.op_id(nginx, "ComposePost").unwrap() as usize];
        assert_eq!(compose.steps.len(), 1);
        assert_eq!(compose.steps[0].len(), 4);
        // The home-timeline fan-out goes through the message queue asynchronously.
        let mq = t.service_id("write-home-timeline-rabbitmq").unwrap();
        let publish = &t.ops[t.op_id(mq, "Publish").unwrap() as usize];
        assert!(publish.steps[0][0].asynchronous);
    }

    #[test]
    fn unknown_builtin_lists_the_names() {
        let e = Topology::load("social").unwrap_err().to_string();
        assert!(
            e.contains("social-network") && e.contains("\"social\""),
            "{e}"
        );
    }
}
