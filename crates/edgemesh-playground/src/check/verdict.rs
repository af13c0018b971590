//! Pure verdicts over the answers a probe collected: Ok(detail) or Err(why it failed).

use std::collections::BTreeMap;

/// Ok(detail) when the check passed, Err(reason) when it failed.
pub type Verdict = Result<String, String>;

/// "web-a1×4 web-a2×4".
pub fn counts(answers: &[String]) -> String {
    let mut counts = BTreeMap::new();
    for a in answers {
        *counts.entry(a.as_str()).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}×{n}")).collect();
    parts.join(" ")
}

fn strangers<'a>(answers: &'a [String], pods: &[&str]) -> Vec<&'a str> {
    answers
        .iter()
        .map(String::as_str)
        .filter(|a| !pods.contains(a))
        .collect()
}

/// Every answer comes from one of `pods`.
pub fn replica(answers: &[String], pods: &[&str]) -> Verdict {
    let unknown = strangers(answers, pods);
    if answers.is_empty() {
        return Err("no answer".into());
    }
    if !unknown.is_empty() {
        return Err(format!("answered by {unknown:?}, not a pod of the service"));
    }
    Ok(counts(answers))
}

/// Every pod answered at least once.
pub fn all_replicas(answers: &[String], pods: &[&str]) -> Verdict {
    let detail = replica(answers, pods)?;
    let missing: Vec<&&str> = pods
        .iter()
        .filter(|p| !answers.iter().any(|a| a == *p))
        .collect();
    if missing.is_empty() {
        Ok(detail)
    } else {
        Err(format!("{missing:?} never answered ({detail})"))
    }
}

/// Round robin: every pod answers, and no pod answers twice in a row.
pub fn round_robin(answers: &[String], pods: &[&str]) -> Verdict {
    let detail = all_replicas(answers, pods)?;
    if pods.len() > 1
        && let Some(pair) = answers.windows(2).find(|w| w[0] == w[1])
    {
        return Err(format!("{} answered twice in a row ({detail})", pair[0]));
    }
    Ok(detail)
}

/// Consistent hash: each user's answers are all the same pod, and with several pods the users
/// do not all land on one.
pub fn consistent_hash(per_user: &[(String, Vec<String>)], pods: &[&str]) -> Verdict {
    let mut chosen = Vec::new();
    for (user, answers) in per_user {
        replica(answers, pods)?;
        if answers.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "user {user} moved between pods: {}",
                counts(answers)
            ));
        }
        chosen.extend(answers.first().cloned());
    }
    if pods.len() > 1 && chosen.windows(2).all(|w| w[0] == w[1]) {
        return Err(format!("all {} users hashed to one pod", per_user.len()));
    }
    Ok(format!("{} users: {}", per_user.len(), counts(&chosen)))
}

/// Affinity: every answer is the same pod.
pub fn sticky(answers: &[String], pods: &[&str]) -> Verdict {
    let detail = replica(answers, pods)?;
    if answers.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!(
            "requests of one client moved between pods: {detail}"
        ));
    }
    Ok(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const PODS: [&str; 2] = ["a", "b"];

    #[test]
    fn verdicts() {
        type Judge = fn(&[String], &[&str]) -> Verdict;
        let cases: [(Judge, &[&str], bool); 13] = [
            (replica, &["a", "b"], true),
            (replica, &["a", "x"], false),
            (replica, &[], false),
            (all_replicas, &["a", "b", "a"], true),
            (all_replicas, &["a", "a"], false),
            (round_robin, &["a", "b", "a", "b"], true),
            (round_robin, &["b", "a", "b"], true),
            (round_robin, &["a", "a", "b"], false),
            (round_robin, &["a", "a"], false),
            (sticky, &["b", "b", "b"], true),
            (sticky, &["b", "a"], false),
            (sticky, &["x", "x"], false),
            (sticky, &[], false),
        ];
        for (judge, answers, ok) in cases {
            assert_eq!(judge(&v(answers), &PODS).is_ok(), ok, "{answers:?}");
        }
    }

    #[test]
    fn consistent_hash_needs_stable_users_and_some_spread() {
        let user = |name: &str, answers: &[&str]| (name.to_string(), v(answers));
        let good = [user("u1", &["a", "a"]), user("u2", &["b", "b"])];
        assert!(consistent_hash(&good, &PODS).is_ok());
        let moved = [user("u1", &["a", "b"]), user("u2", &["b", "b"])];
        assert!(
            consistent_hash(&moved, &PODS)
                .unwrap_err()
                .contains("u1 moved")
        );
        let one_pod = [user("u1", &["a"]), user("u2", &["a"])];
        assert!(
            consistent_hash(&one_pod, &PODS)
                .unwrap_err()
                .contains("one pod")
        );
    }

    #[test]
    fn counts_are_sorted_by_pod() {
        assert_eq!(counts(&v(&["b", "a", "b"])), "a×1 b×2");
    }
}
