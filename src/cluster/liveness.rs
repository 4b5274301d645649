//! Node liveness without trusting clocks across machines: each node bumps its own beat
//! counter (a blind write), and every node judges the others by whether their counter moved
//! during the last `lease` of its OWN monotonic clock.
//!
//! [`LivenessTracker`] is the sans-IO judge: observations in, a liveness view out. A gap in
//! its own observations (this process was paused, or the store was unreachable) resets every
//! judgement: what it did not watch it cannot call dead. So a node resumed after SIGSTOP does
//! not declare the whole cluster expired; it first watches for a lease.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::store::ownership::{Liveness, NodeId, NodeRecord, NodeState};

#[derive(Debug, Clone, Copy)]
struct Seen {
    beat: u64,
    changed: Instant,
    state: NodeState,
}

/// Judges liveness from successive observations of the registry.
#[derive(Debug)]
pub struct LivenessTracker {
    lease: Duration,
    seen: HashMap<NodeId, Seen>,
    last_observation: Option<Instant>,
}

impl LivenessTracker {
    pub fn new(lease: Duration) -> LivenessTracker {
        LivenessTracker {
            lease,
            seen: HashMap::new(),
            last_observation: None,
        }
    }

    /// Takes one observation of every registered node and its beat counter, made at `now`,
    /// and returns the view: every registered node, alive or expired.
    pub fn observe(
        &mut self,
        now: Instant,
        nodes: &[(NodeRecord, u64)],
    ) -> HashMap<NodeId, Liveness> {
        // Observations further apart than half a lease leave a hole in what we watched.
        let gap = self
            .last_observation
            .is_none_or(|last| now.saturating_duration_since(last) > self.lease / 2);
        self.last_observation = Some(now);
        let mut view = HashMap::with_capacity(nodes.len());
        let mut seen = HashMap::with_capacity(nodes.len());
        for (record, beat) in nodes {
            let previous = self.seen.get(&record.id);
            let changed = match previous {
                Some(previous) if previous.beat == *beat && !gap => previous.changed,
                _ => now,
            };
            let entry = Seen {
                beat: *beat,
                changed,
                state: record.state,
            };
            let liveness = if entry.state == NodeState::Left
                || now.saturating_duration_since(entry.changed) > self.lease
            {
                Liveness::Expired
            } else {
                Liveness::Alive
            };
            seen.insert(record.id, entry);
            view.insert(record.id, liveness);
        }
        self.seen = seen;
        view
    }

    /// How long `node` has been silent (its beat unchanged), as last observed.
    pub fn silent_for(&self, node: NodeId, now: Instant) -> Option<Duration> {
        self.seen
            .get(&node)
            .map(|seen| now.saturating_duration_since(seen.changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId, state: NodeState) -> NodeRecord {
        NodeRecord {
            id,
            name: format!("n{id}"),
            url: String::new(),
            state,
            registered_at: 0,
        }
    }

    #[test]
    fn a_node_whose_beat_stops_expires_after_one_lease() {
        let lease = Duration::from_millis(1000);
        let mut tracker = LivenessTracker::new(lease);
        let start = Instant::now();
        let step = Duration::from_millis(250);
        let mut beat_a = 1;
        for tick in 0..12u32 {
            let now = start + step * tick;
            beat_a += 1;
            // B beats only during the first second.
            let beat_b = u64::from(tick.min(4));
            let view = tracker.observe(
                now,
                &[
                    (node(1, NodeState::Active), beat_a),
                    (node(2, NodeState::Active), beat_b),
                ],
            );
            assert_eq!(view[&1], Liveness::Alive, "tick {tick}");
            let silent = now.saturating_duration_since(start + step * 4);
            let expected = if silent > lease {
                Liveness::Expired
            } else {
                Liveness::Alive
            };
            assert_eq!(view[&2], expected, "tick {tick}");
        }
    }

    #[test]
    fn a_gap_in_observation_expires_nobody() {
        let lease = Duration::from_millis(1000);
        let mut tracker = LivenessTracker::new(lease);
        let start = Instant::now();
        let nodes = [(node(2, NodeState::Active), 5)];
        tracker.observe(start, &nodes);
        // This process was paused for a minute: B's counter looks unchanged, but we did not
        // watch, so B gets a fresh lease.
        let view = tracker.observe(start + Duration::from_secs(60), &nodes);
        assert_eq!(view[&2], Liveness::Alive);
        let view = tracker.observe(start + Duration::from_millis(60_400), &nodes);
        assert_eq!(view[&2], Liveness::Alive);
        let mut now = start + Duration::from_secs(60);
        for _ in 0..6 {
            now += Duration::from_millis(400);
            tracker.observe(now, &nodes);
        }
        assert_eq!(tracker.observe(now, &nodes)[&2], Liveness::Expired);
    }

    #[test]
    fn a_node_that_left_is_expired_at_once() {
        let mut tracker = LivenessTracker::new(Duration::from_secs(10));
        let view = tracker.observe(Instant::now(), &[(node(3, NodeState::Left), 9)]);
        assert_eq!(view[&3], Liveness::Expired);
    }
}
