//! The offline mail world: an authoritative DNS server and scripted SMTP servers
//! on loopback, so tests and `sendercheck demo` can play every behaviour the
//! auditor must classify without sending a packet off the machine.
//!
//! This module knows nothing of the rest of the crate; it only serves.

pub mod dns;
mod net;
pub mod smtp;

pub use dns::{DnsServer, Transport, Zone};
pub use smtp::{unused_port_free_ip, Greeting, Hostile, NullSender, Script, ServerLog, SmtpServer};

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

/// The demo world bundled with the binary (`sendercheck demo`).
pub const DEMO_TOML: &str = include_str!("../../samples/world.toml");

/// Why a world could not be described or started.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("world spec is not valid: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("world spec: {0}")]
    Spec(String),
    #[error("cannot start the world's DNS server: {0}")]
    Dns(#[source] io::Error),
    #[error("cannot start SMTP server {name} on {ip}: {source}")]
    Smtp {
        name: String,
        ip: Ipv4Addr,
        #[source]
        source: io::Error,
    },
}

/// DNS records of one name. Mirrors the [`Zone`] builder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainSpec {
    /// Zone-file style `"<preference> <host>"`; host `"."` is a null MX.
    pub mx: Vec<String>,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub cname: Option<String>,
    pub txt: Vec<String>,
    pub servfail: bool,
    pub refused: bool,
    pub silent: bool,
    pub tcp_only: bool,
}

/// One SMTP server: a name (also its host name and, unless the `[dns]` table
/// gives the name `a` records, an A record), a loopback IP and its behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub name: String,
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub script: Script,
}

/// A whole world: what the DNS says and which SMTP servers answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    /// Port shared by every SMTP server; 0 picks a free one.
    #[serde(default)]
    pub smtp_port: u16,
    #[serde(default)]
    pub dns: BTreeMap<String, DomainSpec>,
    #[serde(default)]
    pub smtp: Vec<ServerSpec>,
}

fn parse_mx(s: &str) -> Option<(u16, &str)> {
    let mut parts = s.split_whitespace();
    let pref = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    parts.next().is_none().then_some((pref, host))
}

impl WorldSpec {
    /// Parses and checks a spec, so a bad world fails here rather than serving
    /// something subtly different from what was written.
    pub fn from_toml(text: &str) -> Result<WorldSpec, WorldError> {
        let spec: WorldSpec = toml::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// The bundled demo world.
    pub fn demo() -> Result<WorldSpec, WorldError> {
        WorldSpec::from_toml(DEMO_TOML)
    }

    pub fn validate(&self) -> Result<(), WorldError> {
        let bad = |m: String| Err(WorldError::Spec(m));
        for (name, d) in &self.dns {
            for mx in &d.mx {
                if parse_mx(mx).is_none() {
                    return bad(format!("{name}: mx {mx:?} is not \"<preference> <host>\""));
                }
            }
            if d.cname.is_some()
                && (!d.mx.is_empty() || !d.a.is_empty() || !d.aaaa.is_empty() || !d.txt.is_empty())
            {
                return bad(format!("{name}: a CNAME cannot have other records"));
            }
        }
        let mut names = BTreeSet::new();
        let mut ips = BTreeSet::new();
        for s in &self.smtp {
            if !s.ip.is_loopback() {
                return bad(format!("server {}: {} is not in 127.0.0.0/8", s.name, s.ip));
            }
            if !names.insert(s.name.to_ascii_lowercase()) {
                return bad(format!("server {} is defined twice", s.name));
            }
            if !ips.insert(s.ip) {
                return bad(format!("two servers share {}", s.ip));
            }
        }
        Ok(())
    }

    /// The DNS zone this spec describes, server A records included.
    pub fn zone(&self) -> Zone {
        let mut z = Zone::new();
        for (name, d) in &self.dns {
            for (pref, host) in d.mx.iter().filter_map(|m| parse_mx(m)) {
                z.mx(name, pref, host);
            }
            for ip in &d.a {
                z.a(name, *ip);
            }
            for ip in &d.aaaa {
                z.aaaa(name, *ip);
            }
            if let Some(target) = &d.cname {
                z.cname(name, target);
            }
            for t in &d.txt {
                z.txt(name, t);
            }
            if d.servfail {
                z.servfail(name);
            }
            if d.refused {
                z.refused(name);
            }
            if d.silent {
                z.silent(name);
            }
            if d.tcp_only {
                z.tcp_only(name);
            }
        }
        for s in &self.smtp {
            let explicit = self.dns.iter().any(|(n, d)| {
                n.trim_end_matches('.')
                    .eq_ignore_ascii_case(s.name.trim_end_matches('.'))
                    && !d.a.is_empty()
            });
            if !explicit {
                z.a(&s.name, s.ip);
            }
        }
        z
    }
}

/// A running world. Dropping it stops every server.
pub struct World {
    pub dns: DnsServer,
    /// (server name, server), in spec order.
    pub servers: Vec<(String, SmtpServer)>,
}

impl World {
    /// Starts the DNS server and every SMTP server, all SMTP servers on one port
    /// (the first server's, when the spec says 0). A port free on the first IP
    /// can be taken on another; then the whole set is retried on a new port.
    pub fn start(spec: &WorldSpec) -> Result<World, WorldError> {
        spec.validate()?;
        let dns = DnsServer::start(spec.zone()).map_err(WorldError::Dns)?;
        let attempts = if spec.smtp_port == 0 { 8 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            match start_servers(spec) {
                Ok(servers) => return Ok(World { dns, servers }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| WorldError::Spec("no attempt made".into())))
    }

    /// Starts the bundled demo world.
    pub fn demo() -> Result<World, WorldError> {
        World::start(&WorldSpec::demo()?)
    }

    /// The port every SMTP server listens on (0 if the world has none).
    pub fn smtp_port(&self) -> u16 {
        self.servers.first().map_or(0, |(_, s)| s.addr().port())
    }

    /// Where to send DNS queries (UDP and TCP).
    pub fn nameserver(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// The server with this name (case-insensitive, trailing dot optional).
    pub fn server(&self, name: &str) -> Option<&SmtpServer> {
        let name = name.trim_end_matches('.');
        self.servers
            .iter()
            .find(|(n, _)| n.trim_end_matches('.').eq_ignore_ascii_case(name))
            .map(|(_, s)| s)
    }
}

fn start_servers(spec: &WorldSpec) -> Result<Vec<(String, SmtpServer)>, WorldError> {
    let mut port = spec.smtp_port;
    let mut servers = Vec::with_capacity(spec.smtp.len());
    for s in &spec.smtp {
        let mut script = s.script.clone();
        if script.hostname.is_empty() {
            script.hostname = s.name.trim_end_matches('.').to_string();
        }
        let server = SmtpServer::start(s.ip, port, script).map_err(|source| WorldError::Smtp {
            name: s.name.clone(),
            ip: s.ip,
            source,
        })?;
        port = server.addr().port();
        servers.push((s.name.clone(), server));
    }
    Ok(servers)
}
