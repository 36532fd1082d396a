//! Picking one instance within a set: power of two choices on outstanding requests.
//! Two random candidates, the less busy wins; this tracks least-outstanding closely
//! without scanning every instance or sharing a lock.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::fast_random;
use crate::upstream::Upstream;

/// Picks an available instance, never `exclude`. Falls back to an ejected (but still
/// active) instance rather than failing the request when nothing else is left.
pub(crate) fn pick(
    instances: &[Arc<Upstream>],
    now_ms: u64,
    exclude: Option<SocketAddr>,
) -> Option<&Arc<Upstream>> {
    let usable = |u: &Arc<Upstream>| Some(u.addr) != exclude && u.is_available(now_ms);
    match instances.len() {
        0 => return None,
        1 => {
            if usable(&instances[0]) {
                return Some(&instances[0]);
            }
        }
        n => {
            let a = fast_random::below(n as u64) as usize;
            let b = (a + 1 + fast_random::below(n as u64 - 1) as usize) % n;
            let (ua, ub) = (&instances[a], &instances[b]);
            match (usable(ua), usable(ub)) {
                (true, true) => {
                    return Some(if ub.in_flight() < ua.in_flight() {
                        ub
                    } else {
                        ua
                    });
                }
                (true, false) => return Some(ua),
                (false, true) => return Some(ub),
                (false, false) => {}
            }
        }
    }
    least_loaded(instances, usable).or_else(|| {
        least_loaded(instances, |u: &Arc<Upstream>| {
            Some(u.addr) != exclude && u.is_active()
        })
    })
}

fn least_loaded(
    instances: &[Arc<Upstream>],
    keep: impl Fn(&Arc<Upstream>) -> bool,
) -> Option<&Arc<Upstream>> {
    instances
        .iter()
        .filter(|u| keep(u))
        .min_by_key(|u| u.in_flight())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(n: u16) -> Vec<Arc<Upstream>> {
        (0..n)
            .map(|i| Upstream::new(SocketAddr::from(([127, 0, 0, 1], 1000 + i))))
            .collect()
    }

    #[test]
    fn prefers_the_less_busy_instance() {
        let instances = set(2);
        let _busy: Vec<_> = (0..5).map(|_| instances[0].begin().unwrap()).collect();
        for _ in 0..100 {
            assert_eq!(pick(&instances, 0, None).unwrap().addr, instances[1].addr);
        }
    }

    #[test]
    fn skips_ejected_and_excluded_instances() {
        let instances = set(3);
        instances[0].eject(0, Duration::from_secs(10));
        for _ in 0..100 {
            let picked = pick(&instances, 0, Some(instances[1].addr)).unwrap();
            assert_eq!(picked.addr, instances[2].addr);
        }
    }

    #[test]
    fn falls_back_to_an_ejected_instance_rather_than_none() {
        let instances = set(1);
        instances[0].eject(0, Duration::from_secs(10));
        assert!(pick(&instances, 0, None).is_some());
        assert!(pick(&instances, 0, Some(instances[0].addr)).is_none());
    }

    #[test]
    fn spreads_evenly_when_idle() {
        let instances = set(4);
        let mut counts = [0usize; 4];
        for _ in 0..4_000 {
            let picked = pick(&instances, 0, None).unwrap();
            let i = instances
                .iter()
                .position(|u| u.addr == picked.addr)
                .unwrap();
            counts[i] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
