//! What `/readyz` checks: one verdict per component of a role (its sources, its rules, DNS, the
//! tunnel), each with the reason an operator needs, in the shape kube-apiserver's
//! `/readyz?verbose` uses (`[+]name ok: detail`, `[-]name failed: reason`).
//!
//! The owner of each component provides the check; `/readyz` is 200 only when every check
//! passes, and always lists them all, so a 503 says which component holds the node back and a
//! 200 says what each one is doing.

use crate::named::Named;

/// A component's verdict: `Ok(what it is doing)` or `Err(why it is not ready)`.
pub type Verdict = Result<String, String>;

type Check = Box<dyn Fn() -> Verdict + Send + Sync>;

/// The components `/readyz` asks, in the order they were added; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ReadyChecks(Named<Check>);

impl ReadyChecks {
    /// Adds the component `name`, judged by `verdict` at each request.
    pub fn check(&self, name: &'static str, verdict: impl Fn() -> Verdict + Send + Sync + 'static) {
        self.0.add(name, Box::new(verdict));
    }

    /// The `/readyz` answer: status and body.
    pub fn answer(&self) -> (u16, String) {
        render(&self.0.ask(|verdict| verdict()))
    }
}

/// 200 when every component is ready, else 503; one line per component, then the verdict.
pub fn render(verdicts: &[(&str, Verdict)]) -> (u16, String) {
    let mut body = String::new();
    let mut ready = true;
    for (name, verdict) in verdicts {
        let line = match verdict {
            Ok(detail) => format!("[+]{name} ok: {detail}\n"),
            Err(reason) => {
                ready = false;
                format!("[-]{name} failed: {reason}\n")
            }
        };
        body.push_str(&line);
    }
    body.push_str(if ready { "ready\n" } else { "not ready\n" });
    (if ready { 200 } else { 503 }, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is_and_each_one_says_why() {
        let checks = ReadyChecks::default();
        checks.check("sources", || Ok("every source listed".into()));
        assert_eq!(
            checks.answer(),
            (200, "[+]sources ok: every source listed\nready\n".into())
        );
        checks.check("rules", || Err("waiting for the first rule sync".into()));
        checks.check("dns", || Ok("answering on 169.254.96.16:53".into()));
        assert_eq!(
            checks.answer(),
            (
                503,
                "[+]sources ok: every source listed\n\
                 [-]rules failed: waiting for the first rule sync\n\
                 [+]dns ok: answering on 169.254.96.16:53\n\
                 not ready\n"
                    .into()
            )
        );
    }

    #[test]
    fn no_component_is_ready() {
        assert_eq!(render(&[]), (200, "ready\n".into()));
    }
}
