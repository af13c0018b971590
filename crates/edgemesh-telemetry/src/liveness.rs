//! What `/healthz` checks: a role's long-running loops are still running.
//!
//! Each loop is either a task whose `JoinHandle` is kept here (it has ended when it is
//! finished) or a probe the owner of the loop provides (the tunnel's driver: its command
//! channel closes when it stops). A loop that ended is never restarted in process: `/healthz`
//! answers 503 naming it, so the kubelet restarts the agent.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::named::Named;

enum Probe {
    Task(JoinHandle<()>),
    Check(Box<dyn Fn() -> bool + Send + Sync>),
}

impl Probe {
    fn alive(&self) -> bool {
        match self {
            Probe::Task(handle) => !handle.is_finished(),
            Probe::Check(alive) => alive(),
        }
    }
}

/// The watched loops; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Liveness(Named<Probe>);

impl Liveness {
    /// Spawns `task` as the loop `name`.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.0.add(name, Probe::Task(tokio::spawn(task)));
    }

    /// Watches a loop run elsewhere through `alive`.
    pub fn check(&self, name: &'static str, alive: impl Fn() -> bool + Send + Sync + 'static) {
        self.0.add(name, Probe::Check(Box::new(alive)));
    }

    /// The `/healthz` answer: status and body.
    pub fn health(&self) -> (u16, String) {
        verdict(&self.0.ask(Probe::alive))
    }
}

/// 200 "ok" while every loop runs; else 503 naming the loops that ended.
pub fn verdict(loops: &[(&str, bool)]) -> (u16, String) {
    let dead: Vec<&str> = loops
        .iter()
        .filter(|(_, alive)| !alive)
        .map(|(name, _)| *name)
        .collect();
    if dead.is_empty() {
        (200, "ok\n".to_owned())
    } else {
        (503, format!("unhealthy: stopped: {}\n", dead.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_every_loop_runs() {
        assert_eq!(verdict(&[("publisher", true), ("proxier", true)]).0, 200);
        let (status, body) = verdict(&[("publisher", true), ("proxier", false), ("dns", false)]);
        assert_eq!(status, 503);
        assert_eq!(body, "unhealthy: stopped: proxier, dns\n");
    }

    #[tokio::test]
    async fn a_task_that_ends_makes_the_agent_unhealthy() {
        let liveness = Liveness::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        liveness.spawn("proxier", async {
            let _ = stopped.await;
        });
        liveness.check("tunnel driver", || true);
        assert_eq!(liveness.health().0, 200);
        drop(stop);
        for _ in 0..100 {
            if liveness.health().0 == 503 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            liveness.health(),
            (503, "unhealthy: stopped: proxier\n".into())
        );
    }
}
