//! Renewal while the hub serves: sleep until the certificate on disk is due, request a new one
//! with the same flow as `edgemesh hub bootstrap`, write it; the listener reloads it by itself.

use std::time::{Duration, SystemTime};

use super::{Api, CertFiles, CsrSettings, request_certificate, wait_until};

/// The longest sleep before the files are looked at again (someone may replace them).
const RECHECK: Duration = Duration::from_secs(600);
/// First pause after a failed renewal; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Runs for the life of the hub.
pub async fn run(api: Api, settings: CsrSettings, files: CertFiles) {
    let mut failures: u32 = 0;
    let mut announced = None;
    loop {
        let due = files.renewal_due(&settings);
        let wait = wait_until(SystemTime::now(), due);
        if !wait.is_zero() {
            if announced != Some(due) {
                announced = Some(due);
                tracing::info!(renew_in = ?wait, "serving certificate renewal scheduled");
            }
            tokio::time::sleep(wait.min(RECHECK)).await;
            continue;
        }
        tracing::info!("renewing the serving certificate");
        match request_certificate(&api, &settings, &files).await {
            Ok(issued) => {
                failures = 0;
                let valid_for = wait_until(SystemTime::now(), issued.info.not_after);
                tracing::info!(
                    csr = %issued.csr_name,
                    valid_for = ?valid_for,
                    "serving certificate renewed; the HTTPS listener reloads it"
                );
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let retry = backoff(failures);
                tracing::warn!(error = %e, retry_in = ?retry, "cannot renew the serving certificate");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Pause after `failures` failed renewals in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(10);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(5), FIRST_BACKOFF * 16);
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
