//! Which URLs a webhook may target.
//!
//! A webhook makes the hub send requests to a URL an admin typed in, from
//! inside the network the hub runs in. Unchecked, that reaches services that
//! are not meant to be reachable (cloud metadata endpoints, databases, admin
//! consoles on loopback). So targets must be `http`/`https`, and every
//! address their host resolves to must be public: loopback and private
//! addresses only when the configuration allows them, link-local,
//! unspecified, multicast, broadcast and reserved addresses never.
//!
//! The check runs at creation (a clear 422) and again on every attempt,
//! inside the HTTP client's DNS resolver ([`GuardedResolver`]): DNS answers
//! can change after creation, and checking the addresses the connection
//! actually uses leaves no gap between check and connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::config::WebhookSettings;

/// The longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "`{0}` is not a valid URL; give an absolute http or https URL such as https://example.com/hooks"
    )]
    Invalid(String),
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("scheme `{0}` is not allowed; webhook URLs must start with http:// or https://")]
    Scheme(String),
    #[error("the URL has no host; give one such as https://example.com/hooks")]
    NoHost,
    #[error("the URL must not contain a user name or password")]
    Credentials,
    #[error("host `{host}` does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("{}", refused_message(host, *addr, *class))]
    Refused {
        host: String,
        addr: IpAddr,
        class: AddressClass,
    },
}

fn refused_message(host: &str, addr: IpAddr, class: AddressClass) -> String {
    let how = match class {
        AddressClass::Loopback => "; set webhooks.allow_loopback = true to allow loopback targets",
        AddressClass::Private => "; set webhooks.allow_private = true to allow private targets",
        _ => "; such targets are never allowed",
    };
    let article = if class == AddressClass::Unspecified {
        "an"
    } else {
        "a"
    };
    if host.trim_matches(['[', ']']).parse::<IpAddr>() == Ok(addr) {
        format!("{addr} is {article} {} address{how}", class.as_str())
    } else {
        format!(
            "host `{host}` resolves to {addr}, {article} {} address{how}",
            class.as_str()
        )
    }
}

/// The kind of a non-public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
}

impl AddressClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// What kind of address `ip` is (IPv4-mapped IPv6 addresses count as their IPv4 address).
///
/// The named classes come first, for their messages and settings. Anything
/// else listed in IANA's IPv4 and IPv6 Special-Purpose Address Registries
/// (the `iprfc` crate's RFC 6890 tables, generated from them) or in RFC 2765
/// (IPv4-translated `::ffff:0:0:0/96`) is `Reserved`: documentation and
/// benchmarking ranges, NAT64 `64:ff9b::/96` and 6to4 `2002::/16` (which
/// embed an IPv4 address a gateway would reach for us), discard `100::/64`.
/// None of them is a place a webhook receiver lives.
pub fn classify(ip: IpAddr) -> AddressClass {
    let class = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => return classify(IpAddr::V4(v4)),
            None => classify_v6(v6),
        },
    };
    if class == AddressClass::Public
        && (iprfc::RFC6890.contains(&ip) || iprfc::RFC2765.contains(&ip))
    {
        return AddressClass::Reserved;
    }
    class
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // 10/8, 172.16/12, 192.168/16, and 100.64/10 (carrier-grade NAT).
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if a >= 240 || (a == 192 && b == 0 && ip.octets()[2] == 0) {
        // 240/4 (future use) and 192.0.0.0/24 (protocol assignments).
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if first & 0xfe00 == 0xfc00 {
        // fc00::/7, unique local.
        AddressClass::Private
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        // fe80::/10 link-local, fec0::/10 (deprecated site-local).
        AddressClass::LinkLocal
    } else if ip.to_ipv4().is_some() {
        // Deprecated IPv4-compatible ::a.b.c.d.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The address rules of one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

impl AddressPolicy {
    pub fn new(settings: &WebhookSettings) -> Self {
        Self {
            allow_loopback: settings.allow_loopback,
            allow_private: settings.allow_private,
        }
    }

    /// `Err(class)` when `ip` may not be targeted.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            AddressClass::Public => Ok(()),
            AddressClass::Loopback if self.allow_loopback => Ok(()),
            AddressClass::Private if self.allow_private => Ok(()),
            class => Err(class),
        }
    }

    /// Every address of `host` (a name or an IP literal), all of which must be allowed.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| TargetError::Unresolvable {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(TargetError::Unresolvable {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        for addr in &addrs {
            self.check(addr.ip())
                .map_err(|class| TargetError::Refused {
                    host: host.to_owned(),
                    addr: addr.ip(),
                    class,
                })?;
        }
        Ok(addrs)
    }
}

/// Parses and checks the syntax of a target URL (no DNS).
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| TargetError::Invalid(raw.to_owned()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(TargetError::Scheme(other.to_owned())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    Ok(url)
}

/// Parses `raw` and checks every address its host resolves to.
pub async fn check_url(raw: &str, policy: &AddressPolicy) -> Result<Url, TargetError> {
    let url = parse_url(raw)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    policy.resolve(&host, port).await?;
    Ok(url)
}

/// The host (and port) a URL's circuit breaker and concurrency limit key on.
pub fn host_key(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_owned(),
    }
}

/// The delivery client's DNS resolver: resolves like the system does, then
/// refuses the connection when any address is not allowed.
pub struct GuardedResolver {
    pub policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy.resolve(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl GuardedResolver {
    pub fn new(policy: AddressPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classifies_the_special_ranges() {
        for (ip, want) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.9.9.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            // Special-purpose ranges from the IANA registries.
            ("64:ff9b::a00:1", AddressClass::Reserved),
            ("64:ff9b::808:808", AddressClass::Reserved),
            ("2002:a00:1::1", AddressClass::Reserved),
            ("::ffff:0:a00:1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("198.19.255.1", AddressClass::Reserved),
            ("198.51.100.7", AddressClass::Reserved),
            ("203.0.113.9", AddressClass::Reserved),
            ("::ffff:192.0.2.1", AddressClass::Reserved),
            ("8.8.8.8", AddressClass::Public),
            ("1.1.1.1", AddressClass::Public),
            ("2001:4860:4860::8888", AddressClass::Public),
            ("172.32.0.1", AddressClass::Public),
            ("100.128.0.1", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn policy_allows_only_what_is_configured() {
        let strict = AddressPolicy {
            allow_loopback: false,
            allow_private: false,
        };
        let lax = AddressPolicy {
            allow_loopback: true,
            allow_private: true,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(strict.check(ip("127.0.0.1")), Err(AddressClass::Loopback));
        assert_eq!(strict.check(ip("10.0.0.1")), Err(AddressClass::Private));
        assert_eq!(lax.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(lax.check(ip("10.0.0.1")), Ok(()));
        assert_eq!(
            lax.check(ip("169.254.169.254")),
            Err(AddressClass::LinkLocal)
        );
        assert_eq!(lax.check(ip("0.0.0.0")), Err(AddressClass::Unspecified));
        assert_eq!(strict.check(ip("93.184.216.34")), Ok(()));
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(parse_url("https://example.com/x?y=1").is_ok());
        assert!(parse_url("http://[::1]:8080/").is_ok());
        assert_eq!(
            parse_url("ftp://example.com/").unwrap_err(),
            TargetError::Scheme("ftp".into())
        );
        assert!(matches!(
            parse_url("file:///etc/passwd"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            parse_url("/relative"),
            Err(TargetError::Invalid(_))
        ));
        assert_eq!(
            parse_url("https://u:p@example.com/").unwrap_err(),
            TargetError::Credentials
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_url(&long).unwrap_err(), TargetError::TooLong);
    }

    #[tokio::test]
    async fn literal_and_resolved_addresses_are_checked() {
        let strict = AddressPolicy {
            allow_loopback: false,
            allow_private: false,
        };
        let err = check_url("http://127.0.0.1:9/x", &strict)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "127.0.0.1 is a loopback address; set webhooks.allow_loopback = true to allow loopback targets"
        );
        let err = check_url("http://[::1]/", &strict).await.unwrap_err();
        assert!(
            err.to_string().starts_with("::1 is a loopback address"),
            "{err}"
        );
        let err = check_url("http://localhost:9/", &strict).await.unwrap_err();
        assert!(
            err.to_string().starts_with("host `localhost` resolves to "),
            "{err}"
        );
        let err = check_url("http://10.0.0.7/", &strict).await.unwrap_err();
        assert!(
            err.to_string().contains("10.0.0.7 is a private address"),
            "{err}"
        );
        assert_eq!(host_key("https://Example.com/a"), "example.com:443");
        assert_eq!(host_key("http://127.0.0.1:8080/a"), "127.0.0.1:8080");
    }
}
