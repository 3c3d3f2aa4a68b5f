//! DNS routes: from sender domains to the MX hosts a receiver would call.
//!
//! One MX query per distinct domain and one A + AAAA pair per distinct MX host
//! name, however many senders share them. Each domain ends as a [`Route`]:
//! usable hosts in preference order, or the reason there are none, decided as
//! Exim's `dnslookup` router and Postfix's smtp client decide
//! (`research/callout-semantics.md` §1.2, §2.3, §7 rows 1–7).

use crate::verdict::Flag;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("cannot read the system DNS configuration: {0}; give --nameserver IP")]
    SystemConfig(String),
    #[error("cannot start the DNS runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// How to resolve.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// Servers to ask instead of the system configuration (`--nameserver`).
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Tries per query (per server).
    pub attempts: usize,
    /// Lookups in flight at once.
    pub concurrency: usize,
    /// Treat private and loopback MX addresses as usable (`--allow-private-mx`).
    pub allow_private: bool,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
            attempts: 2,
            concurrency: 64,
            allow_private: false,
        }
    }
}

/// One MX host with the addresses the tool may connect to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MxHost {
    /// Host name without the trailing dot (the domain itself for an implicit MX).
    pub name: String,
    pub preference: u16,
    /// Usable addresses, IPv4 first.
    pub addrs: Vec<IpAddr>,
}

/// What DNS says about a sender domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RouteOutcome {
    /// Usable MX hosts, sorted by preference (equal preferences adjacent; the
    /// callout stage shuffles them).
    Hosts {
        hosts: Vec<MxHost>,
        /// A null MX was published beside these (RFC 7505 §3 violation).
        null_mx_mixed: bool,
    },
    /// `MX 0 .` alone: the domain accepts no mail (RFC 7505).
    NullMx,
    /// NXDOMAIN.
    NoDomain,
    /// No MX and no address, or every MX target unusable.
    NoMailHost { reason: String },
    /// SERVFAIL, REFUSED, timeout: says nothing about the sender.
    DnsError { reason: String },
    /// Only private or loopback addresses, which the operator did not allow
    /// (`--allow-private-mx`): never contacted, reported as no mail host.
    PrivateOnly { reason: String },
}

/// A domain's route and the notes gathered on the way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub outcome: RouteOutcome,
    pub flags: Vec<Flag>,
    /// Host names in MX order, usable or not, for reports.
    pub mx_names: Vec<String>,
    /// Why unusable MX targets were dropped.
    pub notes: Vec<String>,
}

impl Route {
    fn new(outcome: RouteOutcome) -> Route {
        Route {
            outcome,
            flags: Vec::new(),
            mx_names: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn hosts(&self) -> &[MxHost] {
        match &self.outcome {
            RouteOutcome::Hosts { hosts, .. } => hosts,
            _ => &[],
        }
    }
}

/// Queries sent, by type.
#[derive(Debug, Default)]
pub struct QueryCounters {
    mx: AtomicU64,
    a: AtomicU64,
    aaaa: AtomicU64,
}

impl QueryCounters {
    fn bump(&self, rtype: RecordType) {
        let counter = match rtype {
            RecordType::MX => &self.mx,
            RecordType::A => &self.a,
            _ => &self.aaaa,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut map = BTreeMap::new();
        map.insert("MX".to_string(), self.mx.load(Ordering::Relaxed));
        map.insert("A".to_string(), self.a.load(Ordering::Relaxed));
        map.insert("AAAA".to_string(), self.aaaa.load(Ordering::Relaxed));
        map
    }
}

/// Where an address may be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrUse {
    Usable,
    /// Private, loopback, link-local, CGNAT, ULA: only with `--allow-private-mx`.
    Private,
    /// Never: unspecified, multicast, broadcast, documentation, reserved.
    Never(&'static str),
}

/// Classify an MX address. Loopback is private here (refused by default, as
/// Exim's stock `ignore_target_hosts` does) but usable when allowed, because
/// test worlds live on loopback.
pub fn classify(ip: IpAddr) -> AddrUse {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            if v6.is_unspecified() {
                AddrUse::Never("unspecified address")
            } else if v6.is_loopback() {
                AddrUse::Private
            } else if v6.is_multicast() {
                AddrUse::Never("multicast address")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                AddrUse::Never("documentation address")
            } else if (seg[0] & 0xfe00) == 0xfc00 || (seg[0] & 0xffc0) == 0xfe80 {
                AddrUse::Private
            } else {
                AddrUse::Usable
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrUse {
    let o = ip.octets();
    if o[0] == 0 {
        AddrUse::Never("'this network' address (0.0.0.0/8)")
    } else if ip.is_broadcast() {
        AddrUse::Never("broadcast address")
    } else if ip.is_multicast() {
        AddrUse::Never("multicast address")
    } else if o[0] >= 240 {
        AddrUse::Never("reserved address (240.0.0.0/4)")
    } else if ip.is_documentation() {
        AddrUse::Never("documentation address")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        AddrUse::Never("benchmarking address (198.18.0.0/15)")
    } else if ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        AddrUse::Private
    } else {
        AddrUse::Usable
    }
}

/// Raw answer of one lookup, reduced to what routing needs.
#[derive(Debug, Clone)]
enum Answer<T> {
    Records(T),
    NxDomain,
    NoData,
    /// SERVFAIL, REFUSED, timeout, network error.
    Temporary(String),
}

#[derive(Debug, Clone)]
struct HostAddrs {
    addrs: Answer<Vec<IpAddr>>,
    cname: bool,
}

/// The run's one resolver.
pub struct Resolver {
    runtime: tokio::runtime::Runtime,
    resolver: TokioResolver,
    options: DnsOptions,
    counters: Arc<QueryCounters>,
}

impl Resolver {
    pub fn new(options: DnsOptions) -> Result<Resolver, DnsSetupError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sendercheck-dns")
            .enable_all()
            .build()?;
        let mut opts = ResolverOpts::default();
        opts.timeout = options.timeout;
        opts.attempts = options.attempts.max(1);
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.cache_size = 0;
        opts.max_active_requests = options.concurrency.max(1) * 2;
        opts.preserve_intermediates = true;
        opts.try_tcp_on_error = true;
        let resolver = {
            let _guard = runtime.enter();
            let provider = TokioRuntimeProvider::default();
            let mut builder = if options.nameservers.is_empty() {
                TokioResolver::builder(provider)
                    .map_err(|e| DnsSetupError::SystemConfig(e.to_string()))?
            } else {
                let servers = options
                    .nameservers
                    .iter()
                    .map(|sa| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = sa.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = sa.port();
                        let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                        ns.connections = vec![udp, tcp];
                        ns
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    provider,
                )
            };
            *builder.options_mut() = opts;
            builder
                .build()
                .map_err(|e| DnsSetupError::Build(e.to_string()))?
        };
        Ok(Resolver {
            runtime,
            resolver,
            options,
            counters: Arc::new(QueryCounters::default()),
        })
    }

    pub fn query_counts(&self) -> BTreeMap<String, u64> {
        self.counters.snapshot()
    }

    /// Route every domain (A-labels, lower case, no trailing dot).
    pub fn routes(&self, domains: &[String]) -> HashMap<String, Route> {
        self.runtime.block_on(self.routes_async(domains))
    }

    async fn routes_async(&self, domains: &[String]) -> HashMap<String, Route> {
        let limit = Arc::new(tokio::sync::Semaphore::new(self.options.concurrency.max(1)));
        // Stage 1: one MX query per domain.
        let mx_answers = run_bounded(&limit, domains.iter().cloned(), {
            let resolver = self.resolver.clone();
            let counters = self.counters.clone();
            move |domain| {
                let resolver = resolver.clone();
                let counters = counters.clone();
                async move { lookup_mx(&resolver, &counters, &domain).await }
            }
        })
        .await;
        let mx_answers: HashMap<String, Answer<Vec<(u16, String)>>> =
            domains.iter().cloned().zip(mx_answers).collect();

        // Stage 2: one A + AAAA pair per distinct host name (MX targets, and
        // the domain itself where there is no MX: implicit MX).
        let mut host_names: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (domain, answer) in &mx_answers {
            match answer {
                Answer::Records(mxs) => {
                    for (_, target) in mxs {
                        if !target.is_empty()
                            && target.parse::<IpAddr>().is_err()
                            && seen.insert(target.clone())
                        {
                            host_names.push(target.clone());
                        }
                    }
                }
                Answer::NoData if seen.insert(domain.clone()) => {
                    host_names.push(domain.clone());
                }
                _ => {}
            }
        }
        host_names.sort();
        let host_answers = run_bounded(&limit, host_names.iter().cloned(), {
            let resolver = self.resolver.clone();
            let counters = self.counters.clone();
            move |host| {
                let resolver = resolver.clone();
                let counters = counters.clone();
                async move { lookup_host(&resolver, &counters, &host).await }
            }
        })
        .await;
        let host_answers: HashMap<String, HostAddrs> =
            host_names.into_iter().zip(host_answers).collect();

        mx_answers
            .into_iter()
            .map(|(domain, answer)| {
                let route = build_route(&domain, answer, &host_answers, self.options.allow_private);
                (domain, route)
            })
            .collect()
    }
}

/// Run `f` over `items` with at most `limit` in flight; results in input order.
async fn run_bounded<I, F, Fut, T>(limit: &Arc<tokio::sync::Semaphore>, items: I, f: F) -> Vec<T>
where
    I: Iterator<Item = String>,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut n = 0usize;
    for (i, item) in items.enumerate() {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let fut = f(item);
        set.spawn(async move {
            let out = fut.await;
            drop(permit);
            (i, out)
        });
        n += 1;
    }
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, value)) = joined {
            out[i] = Some(value);
        }
    }
    out.into_iter()
        .map(|v| v.expect("every lookup task returns"))
        .collect()
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn classify_error(err: &NetError) -> Answer<()> {
    if let NetError::Dns(HickoryDnsError::NoRecordsFound(nr)) = err {
        return match nr.response_code {
            ResponseCode::NXDomain => Answer::NxDomain,
            ResponseCode::NoError => Answer::NoData,
            code => Answer::Temporary(format!("DNS server answered {code}")),
        };
    }
    if let NetError::Dns(HickoryDnsError::ResponseCode(code)) = err {
        return Answer::Temporary(format!("DNS server answered {code}"));
    }
    if matches!(err, NetError::Timeout) {
        return Answer::Temporary("DNS query timed out".to_string());
    }
    Answer::Temporary(format!("DNS lookup failed: {err}"))
}

fn reshape<T>(a: Answer<()>) -> Answer<T> {
    match a {
        Answer::Records(()) => unreachable!("errors never carry records"),
        Answer::NxDomain => Answer::NxDomain,
        Answer::NoData => Answer::NoData,
        Answer::Temporary(s) => Answer::Temporary(s),
    }
}

fn lower_name(name: &hickory_resolver::proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

async fn lookup_mx(
    resolver: &TokioResolver,
    counters: &QueryCounters,
    domain: &str,
) -> Answer<Vec<(u16, String)>> {
    counters.bump(RecordType::MX);
    match resolver.lookup(fqdn(domain), RecordType::MX).await {
        Ok(lookup) => {
            let mxs: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, lower_name(&mx.exchange))),
                    _ => None,
                })
                .collect();
            if mxs.is_empty() {
                Answer::NoData
            } else {
                Answer::Records(mxs)
            }
        }
        Err(e) => reshape(classify_error(&e)),
    }
}

async fn lookup_host(resolver: &TokioResolver, counters: &QueryCounters, host: &str) -> HostAddrs {
    let name = fqdn(host);
    counters.bump(RecordType::A);
    counters.bump(RecordType::AAAA);
    let (a, aaaa) = tokio::join!(
        resolver.lookup(name.clone(), RecordType::A),
        resolver.lookup(name.clone(), RecordType::AAAA)
    );
    let mut addrs = Vec::new();
    let mut cname = false;
    let mut outcomes = Vec::new();
    for result in [a, aaaa] {
        match result {
            Ok(lookup) => {
                for r in lookup.answers() {
                    match &r.data {
                        RData::A(v4) => addrs.push(IpAddr::V4(v4.0)),
                        RData::AAAA(v6) => addrs.push(IpAddr::V6(v6.0)),
                        RData::CNAME(_) => cname = true,
                        _ => {}
                    }
                }
                outcomes.push(Answer::Records(()));
            }
            Err(e) => outcomes.push(classify_error(&e)),
        }
    }
    addrs.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addrs.dedup();
    let answer = if !addrs.is_empty() {
        Answer::Records(addrs)
    } else if let Some(Answer::Temporary(why)) =
        outcomes.iter().find(|o| matches!(o, Answer::Temporary(_)))
    {
        Answer::Temporary(why.clone())
    } else if outcomes.iter().all(|o| matches!(o, Answer::NxDomain)) {
        Answer::NxDomain
    } else {
        Answer::NoData
    };
    HostAddrs {
        addrs: answer,
        cname,
    }
}

/// Outcome of one MX target after its address lookup.
enum TargetState {
    Usable(MxHost),
    Private(String),
    Temporary(String),
    Unusable(String),
}

fn examine_target(
    name: &str,
    preference: u16,
    answer: Option<&HostAddrs>,
    allow_private: bool,
    flags: &mut Vec<Flag>,
) -> TargetState {
    if name.parse::<IpAddr>().is_ok() {
        return TargetState::Unusable(format!(
            "MX target {name} is an IP address, not a host name"
        ));
    }
    let Some(host) = answer else {
        return TargetState::Unusable(format!("MX target {name} was not looked up"));
    };
    if host.cname && !flags.contains(&Flag::MxCname) {
        flags.push(Flag::MxCname);
    }
    match &host.addrs {
        Answer::NxDomain => {
            TargetState::Unusable(format!("MX target {name} does not exist (NXDOMAIN)"))
        }
        Answer::NoData => {
            TargetState::Unusable(format!("MX target {name} has no A or AAAA record"))
        }
        Answer::Temporary(why) => {
            TargetState::Temporary(format!("address lookup for {name} failed: {why}"))
        }
        Answer::Records(addrs) => {
            let mut usable = Vec::new();
            let mut private = Vec::new();
            let mut never = Vec::new();
            for ip in addrs {
                match classify(*ip) {
                    AddrUse::Usable => usable.push(*ip),
                    AddrUse::Private if allow_private => usable.push(*ip),
                    AddrUse::Private => private.push(*ip),
                    AddrUse::Never(what) => never.push(format!("{ip} ({what})")),
                }
            }
            if !usable.is_empty() {
                TargetState::Usable(MxHost {
                    name: name.to_string(),
                    preference,
                    addrs: usable,
                })
            } else if !private.is_empty() {
                let list: Vec<String> = private.iter().map(|ip| ip.to_string()).collect();
                TargetState::Private(format!(
                    "MX target {name} resolves only to private or loopback addresses ({})",
                    list.join(", ")
                ))
            } else {
                TargetState::Unusable(format!(
                    "MX target {name} resolves only to unusable addresses: {}",
                    never.join(", ")
                ))
            }
        }
    }
}

fn build_route(
    domain: &str,
    answer: Answer<Vec<(u16, String)>>,
    hosts: &HashMap<String, HostAddrs>,
    allow_private: bool,
) -> Route {
    let mut flags = Vec::new();
    let (mut targets, implicit) = match answer {
        Answer::NxDomain => return Route::new(RouteOutcome::NoDomain),
        Answer::Temporary(why) => {
            return Route::new(RouteOutcome::DnsError {
                reason: format!("MX lookup for {domain}: {why}"),
            })
        }
        Answer::NoData => (vec![(0u16, domain.to_string())], true),
        Answer::Records(mxs) => (mxs, false),
    };
    let null_mx = targets.iter().any(|(_, t)| t.is_empty());
    let real: usize = targets.iter().filter(|(_, t)| !t.is_empty()).count();
    if null_mx && real == 0 {
        let mut route = Route::new(RouteOutcome::NullMx);
        route.mx_names = vec![".".to_string()];
        return route;
    }
    if null_mx {
        flags.push(Flag::NullMxMixed);
    }
    targets.retain(|(_, t)| !t.is_empty());
    // Stable sort keeps equal preferences adjacent, in answer order.
    targets.sort_by_key(|(pref, _)| *pref);
    targets.dedup_by(|a, b| a.1 == b.1);
    if implicit {
        flags.push(Flag::ImplicitMx);
    }

    let mut usable = Vec::new();
    let mut notes = Vec::new();
    let mut private = Vec::new();
    let mut temporary = Vec::new();
    for (pref, name) in &targets {
        match examine_target(name, *pref, hosts.get(name), allow_private, &mut flags) {
            TargetState::Usable(h) => usable.push(h),
            TargetState::Private(why) => private.push(why),
            TargetState::Temporary(why) => temporary.push(why),
            TargetState::Unusable(why) => notes.push(why),
        }
    }
    let mx_names = targets.iter().map(|(_, n)| n.clone()).collect();
    let outcome = if !usable.is_empty() {
        if !notes.is_empty() || !private.is_empty() || !temporary.is_empty() {
            flags.push(Flag::SomeMxUnusable);
        }
        RouteOutcome::Hosts {
            hosts: usable,
            null_mx_mixed: null_mx,
        }
    } else if implicit
        && matches!(
            hosts.get(domain).map(|h| &h.addrs),
            Some(Answer::NoData | Answer::NxDomain)
        )
    {
        flags.retain(|f| *f != Flag::ImplicitMx);
        RouteOutcome::NoMailHost {
            reason: format!(
                "{domain} has no MX record and no A/AAAA record to use as an implicit MX"
            ),
        }
    } else if !temporary.is_empty() {
        RouteOutcome::DnsError {
            reason: temporary.join("; "),
        }
    } else if !private.is_empty() {
        RouteOutcome::PrivateOnly {
            reason: private.join("; "),
        }
    } else {
        RouteOutcome::NoMailHost {
            reason: format!("no usable MX host: {}", notes.join("; ")),
        }
    };
    notes.extend(private);
    notes.extend(temporary);
    Route {
        outcome,
        flags,
        mx_names,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses_like_a_public_receiver() {
        assert_eq!(classify("8.8.8.8".parse().unwrap()), AddrUse::Usable);
        assert_eq!(classify("127.0.0.1".parse().unwrap()), AddrUse::Private);
        assert_eq!(classify("10.1.2.3".parse().unwrap()), AddrUse::Private);
        assert_eq!(classify("100.64.0.1".parse().unwrap()), AddrUse::Private);
        assert_eq!(classify("169.254.1.1".parse().unwrap()), AddrUse::Private);
        assert!(matches!(
            classify("0.0.0.0".parse().unwrap()),
            AddrUse::Never(_)
        ));
        assert!(matches!(
            classify("192.0.2.7".parse().unwrap()),
            AddrUse::Never(_)
        ));
        assert!(matches!(
            classify("224.0.0.1".parse().unwrap()),
            AddrUse::Never(_)
        ));
        assert!(matches!(
            classify("2001:db8::1".parse().unwrap()),
            AddrUse::Never(_)
        ));
        assert_eq!(classify("fd00::1".parse().unwrap()), AddrUse::Private);
        assert_eq!(
            classify("::ffff:10.0.0.1".parse().unwrap()),
            AddrUse::Private
        );
        assert_eq!(classify("2a00:1450::1".parse().unwrap()), AddrUse::Usable);
    }

    fn host(addrs: &[&str]) -> HostAddrs {
        HostAddrs {
            addrs: Answer::Records(addrs.iter().map(|a| a.parse().unwrap()).collect()),
            cname: false,
        }
    }

    #[test]
    fn null_mx_alone_and_mixed() {
        let hosts = HashMap::from([("mx.a.test".to_string(), host(&["8.8.8.8"]))]);
        let alone = build_route(
            "a.test",
            Answer::Records(vec![(0, String::new())]),
            &hosts,
            false,
        );
        assert_eq!(alone.outcome, RouteOutcome::NullMx);
        let mixed = build_route(
            "a.test",
            Answer::Records(vec![(0, String::new()), (10, "mx.a.test".into())]),
            &hosts,
            false,
        );
        assert!(matches!(
            mixed.outcome,
            RouteOutcome::Hosts {
                null_mx_mixed: true,
                ..
            }
        ));
        assert!(mixed.flags.contains(&Flag::NullMxMixed));
    }

    #[test]
    fn private_targets_need_permission() {
        let hosts = HashMap::from([("mx.a.test".to_string(), host(&["10.0.0.5"]))]);
        let mx = || Answer::Records(vec![(10, "mx.a.test".to_string())]);
        assert!(matches!(
            build_route("a.test", mx(), &hosts, false).outcome,
            RouteOutcome::PrivateOnly { .. }
        ));
        assert_eq!(build_route("a.test", mx(), &hosts, true).hosts().len(), 1);
    }

    #[test]
    fn ip_literal_and_unusable_targets_leave_no_mail_host() {
        let hosts = HashMap::from([("mx.a.test".to_string(), host(&["0.0.0.0"]))]);
        let r = build_route(
            "a.test",
            Answer::Records(vec![(10, "192.0.2.1".into()), (20, "mx.a.test".into())]),
            &hosts,
            true,
        );
        assert!(
            matches!(r.outcome, RouteOutcome::NoMailHost { .. }),
            "{r:?}"
        );
    }

    #[test]
    fn preference_order_is_kept() {
        let hosts = HashMap::from([
            ("b.test".to_string(), host(&["8.8.4.4"])),
            ("a.test".to_string(), host(&["8.8.8.8"])),
        ]);
        let r = build_route(
            "d.test",
            Answer::Records(vec![(20, "b.test".into()), (10, "a.test".into())]),
            &hosts,
            false,
        );
        let names: Vec<&str> = r.hosts().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a.test", "b.test"]);
    }
}
