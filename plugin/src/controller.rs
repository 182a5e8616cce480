//! The controller's decision logic: from per-service queue depths each tick to
//! "act on this service's short resource" and "revert, the hotspot has passed".
//!
//! It depends on traits, not on a cluster or a kernel: a [`Detector`] scores each
//! service every tick (the trained predictor, [`crate::predict::ModelDetector`],
//! or the reactive queue-rise rule when there is no model); a diagnosis callback names the resource a suspect is
//! short of (hardware counters, or bench-probes); the caller turns each
//! [`Command`] into an action through its backend. Time is the tick index the
//! caller passes in, so the policy is tested without clocks.

use seer_traces::{Resource, ServiceTick};

/// Scores services each tick: higher = more likely to initiate a violation soon;
/// the policy's threshold is the score at which a service becomes a suspect.
pub trait Detector {
    /// Observes one tick of per-service signals (services in a fixed order) and
    /// the application's QoS ratio (the worst entry point's p99 over the QoS
    /// window divided by its target; NaN when not known) and returns one score
    /// per service.
    fn observe(&mut self, tick: &[ServiceTick], qos: f32) -> Vec<f32>;
    /// A short name for reports.
    fn name(&self) -> &str;
}

impl Detector for Box<dyn Detector> {
    fn observe(&mut self, tick: &[ServiceTick], qos: f32) -> Vec<f32> {
        (**self).observe(tick, qos)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// The reactive rule: a service's queue depth relative to its own slow-moving
/// baseline. The baseline is an exponentially weighted mean that does not learn
/// while the service is anomalous, so a long hotspot does not become normal.
#[derive(Debug, Clone)]
pub struct QueueRiseDetector {
    baseline: Vec<f64>,
    seen: u64,
    /// Weight of a new tick in the baseline.
    pub alpha: f64,
    /// Floor of the baseline, requests (idle services must not win by division).
    pub floor: f64,
    /// Ticks to learn before scoring.
    pub warmup: u64,
    /// Scores above this freeze the baseline.
    pub freeze_above: f32,
}

impl Default for QueueRiseDetector {
    fn default() -> Self {
        Self {
            baseline: Vec::new(),
            seen: 0,
            alpha: 0.02,
            floor: 0.5,
            warmup: 20,
            freeze_above: 1.0,
        }
    }
}

impl Detector for QueueRiseDetector {
    fn observe(&mut self, tick: &[ServiceTick], _qos: f32) -> Vec<f32> {
        if self.baseline.len() != tick.len() {
            self.baseline = tick.iter().map(|t| f64::from(t.queue_mean)).collect();
        }
        self.seen += 1;
        let mut scores = Vec::with_capacity(tick.len());
        for (b, t) in self.baseline.iter_mut().zip(tick) {
            let q = f64::from(t.queue_mean);
            let score = if self.seen <= self.warmup {
                0.0
            } else {
                ((q - *b) / b.max(self.floor)) as f32
            };
            if self.seen <= self.warmup || score < self.freeze_above {
                *b += self.alpha * (q - *b);
            }
            scores.push(score);
        }
        scores
    }

    fn name(&self) -> &str {
        "queue-rise"
    }
}

/// When to act and when to let go.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// A score above this makes a service a suspect.
    pub threshold: f32,
    /// Consecutive suspect ticks before acting (hysteresis).
    pub hold_ticks: u32,
    /// Ticks after an action before the same service is acted on again.
    pub cooldown_ticks: u32,
    /// Consecutive quiet ticks (score below `threshold / 2`) before reverting.
    pub quiet_ticks: u32,
    /// Ticks after a revert during which a new suspect is a relapse: the
    /// contention outlived the action. A relapse is acted on at once (no hold,
    /// no cooldown), and a service whose action comes back must then stay quiet
    /// twice as long as before it is reverted again.
    pub relapse_ticks: u32,
    /// Longest quiet period before a revert, however often relapses doubled it.
    pub max_quiet_ticks: u32,
    /// Most actions in force at once (the action budget).
    pub max_active: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            threshold: 1.0,
            hold_ticks: 2,
            cooldown_ticks: 20,
            quiet_ticks: 50,
            relapse_ticks: 50,
            max_quiet_ticks: 600,
            max_active: 4,
        }
    }
}

/// What the controller asks its backend to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Protect `service` on `resource`.
    Act {
        /// Service index.
        service: usize,
        /// The resource it is short of.
        resource: Resource,
    },
    /// Undo what was done to `service`.
    Revert {
        /// Service index.
        service: usize,
    },
}

#[derive(Debug, Clone, Default)]
struct SvcState {
    suspect_for: u32,
    quiet_for: u32,
    /// Quiet ticks needed before the next revert (0: the policy's).
    quiet_needed: u32,
    active: Option<Resource>,
    cooldown_until: u64,
    /// When this service's action was last reverted.
    reverted_at: Option<u64>,
}

/// The decision state machine.
#[derive(Debug)]
pub struct Controller<D> {
    detector: D,
    policy: Policy,
    state: Vec<SvcState>,
    callees: Vec<Vec<usize>>,
}

impl<D: Detector> Controller<D> {
    /// A controller with `detector` and `policy`.
    pub fn new(detector: D, policy: Policy) -> Self {
        Self {
            detector,
            policy,
            state: Vec::new(),
            callees: Vec::new(),
        }
    }

    /// Gives the controller the service graph: `callees[s]` are the services `s`
    /// calls synchronously. A blocked caller's queue rises with its callee's, so
    /// when a suspect has nothing fixable, the controller follows the rise down
    /// to the callee with the highest score (at least a quarter of the
    /// threshold) and diagnoses that one: the hotspot's source, not its echo.
    pub fn with_callees(mut self, callees: Vec<Vec<usize>>) -> Self {
        self.callees = callees;
        self
    }

    /// From a suspect down the callee graph to the first fixable service.
    fn locate(
        &self,
        start: usize,
        scores: &[f32],
        diagnose: &mut impl FnMut(usize) -> Option<Resource>,
    ) -> Option<(usize, Resource)> {
        let mut at = start;
        let mut seen = vec![false; scores.len()];
        loop {
            seen[at] = true;
            if let Some(r) = diagnose(at) {
                return Some((at, r));
            }
            at = self
                .callees
                .get(at)?
                .iter()
                .copied()
                .filter(|&c| {
                    c < scores.len() && !seen[c] && scores[c] > self.policy.threshold / 4.0
                })
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))?;
        }
    }

    /// The detector.
    pub fn detector(&self) -> &D {
        &self.detector
    }

    /// Services with an action in force.
    pub fn active(&self) -> Vec<(usize, Resource)> {
        self.state
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.active.map(|r| (i, r)))
            .collect()
    }

    /// One tick: scores the services, then returns what to do. `qos` is the
    /// application's QoS ratio ([`Detector::observe`]); `diagnose` names the
    /// resource a suspect is short of (`None`: nothing an action can fix).
    pub fn step(
        &mut self,
        tick: u64,
        services: &[ServiceTick],
        qos: f32,
        mut diagnose: impl FnMut(usize) -> Option<Resource>,
    ) -> Vec<Command> {
        let scores = self.detector.observe(services, qos);
        if self.state.len() != scores.len() {
            self.state.resize_with(scores.len(), SvcState::default);
        }
        let mut out = Vec::new();
        let p = &self.policy;
        // Let go of services that have been quiet long enough.
        for (i, st) in self.state.iter_mut().enumerate() {
            if scores[i] < p.threshold / 2.0 {
                st.quiet_for += 1;
            } else {
                st.quiet_for = 0;
            }
            if st.active.is_some() && st.quiet_for >= st.quiet_needed.max(p.quiet_ticks) {
                st.active = None;
                st.cooldown_until = tick + p.cooldown_ticks as u64;
                st.reverted_at = Some(tick);
                out.push(Command::Revert { service: i });
            }
            if scores[i] > p.threshold {
                st.suspect_for += 1;
            } else {
                st.suspect_for = 0;
            }
        }
        // A violation coming back soon after a revert: act without waiting.
        let recent = |st: &SvcState| {
            st.reverted_at
                .is_some_and(|r| tick <= r + u64::from(self.policy.relapse_ticks))
        };
        let relapse = self.state.iter().any(recent);
        // Act on the strongest held suspect, one per tick, within the budget.
        let active = self.state.iter().filter(|s| s.active.is_some()).count();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        for i in order
            .into_iter()
            .take_while(|_| active < self.policy.max_active)
        {
            let st = &self.state[i];
            let held = if relapse {
                st.suspect_for >= 1
            } else {
                st.suspect_for >= self.policy.hold_ticks && tick >= st.cooldown_until
            };
            if !held || st.active.is_some() {
                continue;
            }
            if let Some((i, resource)) = self.locate(i, &scores, &mut diagnose) {
                let p = &self.policy;
                let again = recent(&self.state[i]);
                let st = &mut self.state[i];
                if st.active.is_some() {
                    continue;
                }
                st.quiet_needed = if again {
                    (st.quiet_needed.max(p.quiet_ticks) * 2).min(p.max_quiet_ticks)
                } else {
                    p.quiet_ticks
                };
                st.reverted_at = None;
                st.active = Some(resource);
                st.quiet_for = 0;
                st.cooldown_until = tick + p.cooldown_ticks as u64;
                out.push(Command::Act {
                    service: i,
                    resource,
                });
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(q: &[f32]) -> Vec<ServiceTick> {
        q.iter()
            .map(|&queue_mean| ServiceTick {
                queue_mean,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn acts_on_the_rising_service_after_hold_and_reverts_when_quiet() {
        let policy = Policy {
            hold_ticks: 3,
            quiet_ticks: 5,
            cooldown_ticks: 2,
            ..Policy::default()
        };
        let mut c = Controller::new(
            QueueRiseDetector {
                warmup: 10,
                ..Default::default()
            },
            policy,
        );
        let mut acted = None;
        let mut reverted = None;
        for t in 0..200u64 {
            let hot = (50..80).contains(&t);
            let q = [1.0, if hot { 6.0 } else { 1.0 }, 0.2];
            for cmd in c.step(t, &queues(&q), f32::NAN, |s| {
                Some(if s == 1 { Resource::Llc } else { Resource::Cpu })
            }) {
                match cmd {
                    Command::Act { service, resource } => {
                        assert_eq!((service, resource), (1, Resource::Llc));
                        assert!(acted.replace(t).is_none(), "acted twice");
                    }
                    Command::Revert { service } => {
                        assert_eq!(service, 1);
                        reverted = Some(t);
                    }
                }
            }
        }
        assert_eq!(acted, Some(52), "third suspect tick");
        assert_eq!(reverted, Some(84), "five quiet ticks after the hotspot");
    }

    /// Scores read from a script: service 0 scores 2 at the listed ticks.
    struct Scripted {
        hot: Vec<u64>,
        t: u64,
    }

    impl Detector for Scripted {
        fn observe(&mut self, _: &[ServiceTick], _: f32) -> Vec<f32> {
            let s = if self.hot.contains(&self.t) { 2.0 } else { 0.0 };
            self.t += 1;
            vec![s, 0.0]
        }

        fn name(&self) -> &str {
            "scripted"
        }
    }

    #[test]
    fn a_relapse_soon_after_a_revert_is_acted_on_at_once_and_held_longer() {
        let policy = Policy {
            hold_ticks: 2,
            quiet_ticks: 5,
            cooldown_ticks: 20,
            relapse_ticks: 5,
            max_quiet_ticks: 100,
            ..Policy::default()
        };
        let hot = vec![10, 11, 18, 40, 50, 51];
        let mut c = Controller::new(Scripted { hot, t: 0 }, policy);
        let mut log = Vec::new();
        for t in 0..80u64 {
            for cmd in c.step(t, &queues(&[1.0, 1.0]), f32::NAN, |_| Some(Resource::Cpu)) {
                log.push((t, matches!(cmd, Command::Act { .. })));
            }
        }
        assert_eq!(
            log,
            [
                (11, true),  // held two ticks
                (16, false), // five quiet ticks
                (18, true),  // back within five ticks of the revert: no hold, no cooldown
                (28, false), // ten quiet ticks now
                // tick 40: one suspect tick, long after the revert: held, nothing
                (51, true),
                (56, false), // a fresh action needs five quiet ticks again
            ]
        );
    }

    #[test]
    fn follows_a_blocked_caller_down_to_its_callee() {
        // 0 calls 1 calls 2; 2 is the source (fixable), 0 and 1 rise more.
        let mut c = Controller::new(
            QueueRiseDetector {
                warmup: 5,
                ..Default::default()
            },
            Policy {
                hold_ticks: 1,
                ..Policy::default()
            },
        )
        .with_callees(vec![vec![1], vec![2], vec![]]);
        let mut acted = Vec::new();
        for t in 0..40u64 {
            let q = if t < 20 {
                [2.0, 2.0, 0.2]
            } else {
                [12.0, 10.0, 0.6]
            };
            for cmd in c.step(t, &queues(&q), f32::NAN, |s| {
                (s == 2).then_some(Resource::Llc)
            }) {
                acted.push(cmd);
            }
        }
        assert_eq!(
            acted,
            [Command::Act {
                service: 2,
                resource: Resource::Llc
            }]
        );
    }

    #[test]
    fn nothing_fixable_means_no_action_and_budget_holds() {
        let mut c = Controller::new(
            QueueRiseDetector {
                warmup: 1,
                ..Default::default()
            },
            Policy {
                max_active: 1,
                hold_ticks: 1,
                ..Policy::default()
            },
        );
        let mut acts = 0;
        for t in 0..50u64 {
            let q = if t < 5 {
                [1.0, 1.0, 1.0]
            } else {
                [9.0, 9.0, 9.0]
            };
            acts += c
                .step(t, &queues(&q), f32::NAN, |s| {
                    (s != 0).then_some(Resource::Cpu)
                })
                .len();
        }
        assert_eq!(
            acts, 1,
            "one action allowed in force, service 0 not fixable"
        );
        assert_eq!(c.active().len(), 1);
    }
}
