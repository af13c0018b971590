//! What the hub needs to know about a serving certificate: its validity, whether it belongs to
//! a key and covers an identity, and when to renew it.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::csr::Identity;

/// The leaf certificate's facts, read from PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DER SubjectPublicKeyInfo.
    spki: Vec<u8>,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    common_name: String,
}

impl CertInfo {
    /// Reads the first certificate of a PEM chain; the error says what is wrong with it.
    pub fn parse(pem: &str) -> Result<Self, String> {
        let der = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .ok_or("no PEM CERTIFICATE block")?
            .map_err(|e| format!("bad PEM: {e}"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let validity = cert.validity();
        let (dns_names, ips) = sans(&cert);
        Ok(CertInfo {
            not_before: from_unix(validity.not_before.timestamp()),
            not_after: from_unix(validity.not_after.timestamp()),
            spki: cert.public_key().raw.to_vec(),
            common_name: common_name(&cert),
            dns_names,
            ips,
        })
    }

    /// Whether the certificate carries `key`'s public key.
    pub fn matches_key(&self, key: &KeyPair) -> bool {
        self.spki == key.subject_public_key_info()
    }

    /// Whether it is for `identity`'s node and names every address and name it must.
    pub fn covers(&self, identity: &Identity) -> bool {
        self.common_name == identity.common_name()
            && identity.ips.iter().all(|ip| self.ips.contains(ip))
            && identity
                .dns_names
                .iter()
                .all(|n| self.dns_names.contains(n))
    }
}

fn from_unix(seconds: i64) -> SystemTime {
    match u64::try_from(seconds) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The DNS names and IP addresses of the subjectAltName extension.
fn sans(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let (mut dns_names, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => ips.extend(ip_of(bytes)),
                _ => {}
            }
        }
    }
    (dns_names, ips)
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed: at 80% of its lifetime
/// (kubelet renews between 70% and 90%), or `margin` before it expires when that comes first.
/// A certificate whose dates make no sense (`not_after` first) is due at once.
pub fn renewal_due(not_before: SystemTime, not_after: SystemTime, margin: Duration) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return not_before.min(not_after);
    };
    let by_share = not_before + lifetime.mul_f64(0.8);
    let by_margin = not_after.checked_sub(margin).unwrap_or(UNIX_EPOCH);
    by_share.min(by_margin).max(not_before)
}

/// How long to wait from `now` until `due` (zero when it has passed).
pub fn wait_until(now: SystemTime, due: SystemTime) -> Duration {
    due.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(hours: u64) -> SystemTime {
        UNIX_EPOCH + HOUR * 1_000_000 + HOUR * u32::try_from(hours).unwrap()
    }

    #[test]
    fn renewal_comes_at_80_percent_of_the_lifetime() {
        // 100 h certificate: due at hour 80.
        assert_eq!(renewal_due(at(0), at(100), Duration::ZERO), at(80));
        // A year-long certificate with a 30-day margin: 80% (292 days) comes first.
        let year = at(0) + HOUR * 24 * 365;
        let due = renewal_due(at(0), year, HOUR * 24 * 30);
        assert_eq!(due, at(0) + (HOUR * 24 * 365).mul_f64(0.8));
    }

    #[test]
    fn a_margin_larger_than_the_last_fifth_wins() {
        assert_eq!(renewal_due(at(0), at(100), HOUR * 50), at(50));
        // A margin longer than the lifetime: renew as soon as it is valid.
        assert_eq!(renewal_due(at(10), at(20), HOUR * 100), at(10));
    }

    #[test]
    fn nonsense_dates_are_due_at_once() {
        assert_eq!(renewal_due(at(20), at(10), Duration::ZERO), at(10));
    }

    #[test]
    fn the_wait_is_zero_once_due() {
        assert_eq!(wait_until(at(90), at(80)), Duration::ZERO);
        assert_eq!(wait_until(at(79), at(80)), HOUR);
    }

    #[test]
    fn parse_reads_dates_key_and_names() {
        let key = KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["hub.edge".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:edge-1");
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 11);
        let pem = params.self_signed(&key).unwrap().pem();
        let info = CertInfo::parse(&pem).unwrap();
        assert!(info.matches_key(&key));
        assert!(!info.matches_key(&KeyPair::generate().unwrap()));
        let ten_days = info.not_after.duration_since(info.not_before).unwrap();
        assert_eq!(ten_days, HOUR * 240);
        let wanted = Identity::new("edge-1", None, &["hub.edge".into()]);
        assert!(!info.covers(&wanted), "localhost is missing");
        let narrower = Identity {
            dns_names: vec!["hub.edge".into()],
            ..wanted.clone()
        };
        assert!(info.covers(&narrower));
        let other_node = Identity {
            node_name: "edge-2".into(),
            ..narrower
        };
        assert!(!info.covers(&other_node));
        assert!(CertInfo::parse("garbage").is_err());
    }
}
