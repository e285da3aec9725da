//! The guard on outbound calls whose target a tenant chooses (webhooks).
//!
//! A tenant token is assumed to be in an attacker's hands, so a URL it sets
//! must not reach the network behind Userfeed: the cluster's services, the
//! cloud's metadata endpoint, the daemon's own ports. The guard works at two
//! points:
//!
//! - **When the URL is set** ([`check_url`]): the syntax (https, a host, no
//!   credentials, at most [`MAX_URL_LENGTH`] characters), and a host that is
//!   an IP literal in any spelling the URL standard normalises (`2130706433`,
//!   `0x7f000001`, `[::ffff:a9fe:a9fe]`) or a name that only resolves
//!   inside a network (`localhost`, `*.internal`, `*.svc`, a single label)
//!   is refused unless the operator allowed it.
//! - **When the call is made** ([`GuardedResolver`]): every address a name
//!   resolves to is checked the same way, and the HTTP client connects only
//!   to the addresses that passed. The check and the connection use the
//!   same answer, so a name that resolves to a public address when set and
//!   to `127.0.0.1` a second later (DNS rebinding) still cannot reach
//!   loopback.
//!
//! The operator's allow-list ([`Allowed`], `notify.allowed_hosts`) admits an
//! in-cluster receiver on purpose: CIDRs admit addresses, names admit a host
//! whatever it resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The longest URL a tenant may set.
pub const MAX_URL_LENGTH: usize = 2048;

/// Why a URL is refused, in the customer's words (never a configuration
/// key, never a resolved address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Longer than [`MAX_URL_LENGTH`].
    #[error("is longer than {MAX_URL_LENGTH} characters")]
    TooLong,
    /// Does not parse.
    #[error("is not a URL ({0})")]
    NotAUrl(String),
    /// Not https (or http where allowed).
    #[error("must start with https://")]
    Scheme,
    /// No host.
    #[error("has no host")]
    NoHost,
    /// Carries a user name or password.
    #[error("must not carry a user name or password; the signature authenticates the call")]
    Credentials,
    /// The host is an address of a private, loopback or otherwise
    /// non-public range.
    #[error("points at a {0} address, which Userfeed does not call")]
    Address(&'static str),
    /// The host is a name that only exists inside a network.
    #[error("points at an internal host name, which Userfeed does not call")]
    InternalName,
    /// The host's name resolves only to refused addresses (at call time).
    #[error("the host name resolves only to addresses Userfeed does not call")]
    ResolvesInside,
}

/// The operator's allow-list: networks and host names a webhook may reach
/// although they are not public.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    nets: Vec<IpNet>,
    names: Vec<String>,
}

impl Allowed {
    /// Parses entries that are each a CIDR (`10.1.0.0/16`), an address
    /// (`127.0.0.1`) or a host name (`hooks.ops.svc`); the error names the
    /// entry that is none of these.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut out = Allowed::default();
        for e in entries {
            let e = e.as_ref().trim();
            if let Ok(net) = e.parse::<IpNet>() {
                out.nets.push(net);
            } else if let Ok(ip) = e.parse::<IpAddr>() {
                out.nets.push(IpNet::from(ip));
            } else if is_host_name(e) {
                out.names.push(e.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{e:?} is neither a network (10.0.0.0/8), an address nor a host name"
                ));
            }
        }
        Ok(out)
    }

    /// Whether a call may connect to `ip`.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        non_public_range(ip).is_none() || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether `name` is allow-listed by name (it may then resolve to
    /// anything).
    pub fn admits_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An IPv4 address carried in IPv6 (mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`) as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The name of the non-public range `ip` is in, or `None` for a public
/// address. IPv4 in IPv6 is judged as the IPv4 address.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        (127, ..) => "loopback",
        (10, ..) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "protocol-assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // IPv4-compatible (deprecated) `::a.b.c.d`: nothing public.
        0 if s[1..6] == [0; 5] => "unspecified",
        0xfc00..=0xfdff => "unique-local",
        0xfe80..=0xfebf => "link-local",
        // Site-local, deprecated but still routed by some stacks.
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        // 6to4 and Teredo embed an IPv4 address a relay would reach.
        0x2002 => "6to4",
        0x2001 if s[1] == 0 => "Teredo",
        0x0100 if s[1..4] == [0; 3] => "discard",
        _ => return None,
    })
}

/// Checks a webhook URL a tenant sets: its syntax, its length, and a host
/// that is not a non-public address or an internal name (unless allowed).
pub fn check_url(raw: &str, allow_http: bool, allowed: &Allowed) -> Result<url::Url, Refusal> {
    if raw.chars().count() > MAX_URL_LENGTH {
        return Err(Refusal::TooLong);
    }
    let url = url::Url::parse(raw).map_err(|e| Refusal::NotAUrl(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(Refusal::Scheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    match url.host() {
        None => Err(Refusal::NoHost),
        Some(url::Host::Domain("")) => Err(Refusal::NoHost),
        Some(url::Host::Ipv4(v4)) => check_ip(IpAddr::V4(v4), allowed).map(|()| url.clone()),
        Some(url::Host::Ipv6(v6)) => check_ip(IpAddr::V6(v6), allowed).map(|()| url.clone()),
        Some(url::Host::Domain(name)) => {
            if allowed.admits_name(name) || !internal_name(name) {
                Ok(url.clone())
            } else {
                Err(Refusal::InternalName)
            }
        }
    }
}

fn check_ip(ip: IpAddr, allowed: &Allowed) -> Result<(), Refusal> {
    match non_public_range(ip) {
        Some(range) if !allowed.admits(ip) => Err(Refusal::Address(range)),
        _ => Ok(()),
    }
}

/// Names that resolve only inside a network: one label (`redis`), and the
/// special-use and cluster suffixes.
fn internal_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    const SUFFIXES: &[&str] = &[
        "localhost",
        "local",
        "internal",
        "intranet",
        "lan",
        "home",
        "corp",
        "private",
        "svc",
        "cluster.local",
        "home.arpa",
        "arpa",
        "invalid",
        "test",
    ];
    !name.contains('.')
        || SUFFIXES
            .iter()
            .any(|s| name == *s || name.ends_with(&format!(".{s}")))
}

/// The HTTP client's resolver for guarded calls: resolves with the system
/// resolver and hands the client only addresses [`Allowed::admits`], so
/// the connection is pinned to a checked address. A name on the
/// allow-list keeps all its addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allowed: Arc<Allowed>,
    hosts: Arc<Hosts>,
}

/// Names answered before the system resolver, as `/etc/hosts` would be:
/// how a test makes a public-looking name resolve to loopback. The guard
/// checks these answers like any other.
pub type Hosts = std::collections::HashMap<String, Vec<IpAddr>>;

impl GuardedResolver {
    /// A resolver admitting what `allowed` admits beyond public addresses.
    pub fn new(allowed: Arc<Allowed>) -> Self {
        Self::with_hosts(allowed, Hosts::new())
    }

    /// Like [`GuardedResolver::new`], answering `hosts`' names from it.
    pub fn with_hosts(allowed: Arc<Allowed>, hosts: Hosts) -> Self {
        GuardedResolver {
            allowed,
            hosts: Arc::new(hosts),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (allowed, hosts) = (self.allowed.clone(), self.hosts.clone());
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let addrs: Vec<SocketAddr> = match hosts.get(&host) {
                Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let keep: Vec<SocketAddr> = if allowed.admits_name(&host) {
                addrs
            } else {
                addrs
                    .into_iter()
                    .filter(|a| allowed.admits(a.ip()))
                    .collect()
            };
            if keep.is_empty() {
                return Err(Box::new(Refusal::ResolvesInside) as _);
            }
            Ok(Box::new(keep.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client builder for calls to tenant-chosen URLs: the guarded
/// resolver, no proxy from the environment (a proxy would resolve the
/// name itself, past the guard) and no redirects (one could leave the
/// checked URL for anywhere).
pub fn guarded_client(resolver: GuardedResolver) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(resolver))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> Refusal {
        check_url(url, true, &Allowed::default()).expect_err(url)
    }

    #[test]
    fn every_spelling_of_an_inside_address_is_refused() {
        for (url, range) in [
            ("http://127.0.0.1:8080/metrics", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://2130706433/", "loopback"),
            ("http://0x7f000001/", "loopback"),
            ("http://0177.0.0.1/", "loopback"),
            ("http://127.1/", "loopback"),
            ("http://10.0.0.5/", "private"),
            ("http://172.16.0.1/", "private"),
            ("http://172.31.255.255/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
            ("http://[fd00::1]/", "unique-local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[ff02::1]/", "multicast"),
            ("http://224.0.0.1/", "multicast"),
            ("http://100.64.0.1/", "shared (CGNAT)"),
            ("http://0.0.0.0/", "unspecified"),
            ("http://[::]/", "unspecified"),
        ] {
            assert_eq!(refused(url), Refusal::Address(range), "{url}");
        }
    }

    #[test]
    fn internal_names_are_refused_and_public_ones_pass() {
        for url in [
            "http://localhost/",
            "http://metadata.google.internal/",
            "http://kubernetes.default.svc/",
            "http://api.default.svc.cluster.local/",
            "http://redis:6379/",
            "http://printer.local/",
        ] {
            assert_eq!(refused(url), Refusal::InternalName, "{url}");
        }
        for url in [
            "https://hooks.example.com/userfeed",
            "https://93.184.215.14/x",
            "https://[2606:4700::1111]/",
        ] {
            assert!(check_url(url, false, &Allowed::default()).is_ok(), "{url}");
        }
    }

    #[test]
    fn the_allow_list_admits_its_networks_and_names_only() {
        let allowed = Allowed::parse(&["127.0.0.1", "10.1.0.0/16", "hooks.ops.svc"]).unwrap();
        assert!(check_url("http://127.0.0.1:9000/x", true, &allowed).is_ok());
        assert!(check_url("http://10.1.2.3/x", true, &allowed).is_ok());
        assert!(check_url("http://hooks.ops.svc/x", true, &allowed).is_ok());
        assert_eq!(
            check_url("http://10.2.0.1/x", true, &allowed).unwrap_err(),
            Refusal::Address("private")
        );
        assert_eq!(
            check_url("http://127.0.0.2/x", true, &allowed).unwrap_err(),
            Refusal::Address("loopback")
        );
        assert!(Allowed::parse(&["10.0.0.0/33"]).is_err());
        assert!(Allowed::parse(&["not a host"]).is_err());
    }

    #[test]
    fn syntax_length_scheme_and_credentials_are_checked() {
        let none = Allowed::default();
        assert_eq!(
            check_url("http://hooks.example.com/", false, &none).unwrap_err(),
            Refusal::Scheme
        );
        assert_eq!(
            check_url("ftp://hooks.example.com/", true, &none).unwrap_err(),
            Refusal::Scheme
        );
        assert_eq!(
            check_url("https://u:p@hooks.example.com/", false, &none).unwrap_err(),
            Refusal::Credentials
        );
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(
            check_url(&long, false, &none).unwrap_err(),
            Refusal::TooLong
        );
        assert!(matches!(
            check_url("not a url", false, &none).unwrap_err(),
            Refusal::NotAUrl(_)
        ));
    }

    #[tokio::test]
    async fn the_resolver_drops_inside_addresses_unless_the_name_is_allowed() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let guarded = GuardedResolver::new(Arc::new(Allowed::default()));
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let err = guarded.resolve(name).await.err().expect("refused");
        assert!(err.to_string().contains("resolves only"), "{err}");

        let open = GuardedResolver::new(Arc::new(Allowed::parse(&["localhost"]).unwrap()));
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let addrs: Vec<_> = open.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
