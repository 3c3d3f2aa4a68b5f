//! The plan: senders grouped by the MX hosts that serve their domain, longest
//! queue first, optionally cut to one deterministic shard.

use crate::dns::MxHost;
use std::collections::BTreeMap;

/// A sender waiting for a callout (an index into the run's address book).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainWork {
    pub domain: String,
    /// Ids of the distinct addresses of this domain.
    pub senders: Vec<usize>,
}

/// Domains served by the same ordered MX host set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The key: MX host names in try order, joined by spaces.
    pub key: String,
    pub hosts: Vec<MxHost>,
    pub domains: Vec<DomainWork>,
    pub in_shard: bool,
}

impl Group {
    pub fn sender_count(&self) -> usize {
        self.domains.iter().map(|d| d.senders.len()).sum()
    }
}

/// `--shard K/N`: keep the groups whose key hashes to K (1-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard wants K/N with 1 <= K <= N (for example 2/4), got '{0}'")]
pub struct ShardError(String);

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let err = || ShardError(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let index: u32 = k.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        if index == 0 || count == 0 || index > count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    /// Stable across runs, machines and Rust versions: FNV-1a of the key.
    pub fn contains(&self, key: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % u64::from(self.count)) as u32 == self.index - 1
    }
}

/// Build the groups from routed domains: `(domain, hosts, sender ids)`.
pub fn build(domains: Vec<(String, Vec<MxHost>, Vec<usize>)>, shard: Option<Shard>) -> Vec<Group> {
    let mut by_key: BTreeMap<String, Group> = BTreeMap::new();
    for (domain, hosts, senders) in domains {
        let key = hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let group = by_key.entry(key.clone()).or_insert_with(|| Group {
            in_shard: shard.is_none_or(|s| s.contains(&key)),
            key,
            hosts,
            domains: Vec::new(),
        });
        group.domains.push(DomainWork { domain, senders });
    }
    let mut groups: Vec<Group> = by_key.into_values().collect();
    for g in &mut groups {
        g.domains.sort_by(|a, b| a.domain.cmp(&b.domain));
    }
    // Longest queue first; the key breaks ties so the order is deterministic.
    groups.sort_by(|a, b| {
        b.sender_count()
            .cmp(&a.sender_count())
            .then(a.key.cmp(&b.key))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> MxHost {
        MxHost {
            name: name.to_string(),
            preference: 10,
            addrs: vec!["192.0.2.1".parse().unwrap()],
        }
    }

    #[test]
    fn groups_by_host_set_longest_first() {
        let groups = build(
            vec![
                ("a.test".into(), vec![host("mx1")], vec![0]),
                ("b.test".into(), vec![host("mx2")], vec![1, 2, 3]),
                ("c.test".into(), vec![host("mx1")], vec![4, 5, 6]),
            ],
            None,
        );
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].key, "mx1");
        assert_eq!(groups[0].sender_count(), 4);
        assert_eq!(groups[1].key, "mx2");
    }

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        let keys: Vec<String> = (0..500).map(|i| format!("mx{i}.example.net")).collect();
        for n in 1..=5u32 {
            for key in &keys {
                let owners = (1..=n)
                    .filter(|k| {
                        Shard {
                            index: *k,
                            count: n,
                        }
                        .contains(key)
                    })
                    .count();
                assert_eq!(owners, 1, "{key} in {owners} of {n} shards");
            }
        }
    }

    #[test]
    fn shard_parse_rejects_nonsense() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "x/2", "3", "1/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
