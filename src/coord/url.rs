//! `zk://host1:2181,host2:2181/path` URLs (docs/zookeeper.md Z1).

use std::fmt;

/// A parsed `zk://` URL: the ensemble's hosts and the base path of this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port` of each server, as given.
    pub hosts: Vec<String>,
    /// The base path, starting with `/`, without a trailing `/` (never `/` alone).
    pub path: String,
}

impl ZkUrl {
    /// Whether `text` is meant as a ZooKeeper URL (starts with `zk://`).
    pub fn is_zk(text: &str) -> bool {
        text.trim_start().starts_with("zk://")
    }

    /// Parses `zk://host:port[,host:port...]/path`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<ZkUrl, String> {
        let bad = |why: &str| format!("malformed ZooKeeper URL '{text}': {why}");
        let rest = text
            .trim()
            .strip_prefix("zk://")
            .ok_or_else(|| bad("it must start with zk://"))?;
        let (hosts, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => return Err(bad("a path is missing (zk://host:2181/revenant)")),
        };
        if hosts.is_empty() {
            return Err(bad("no host"));
        }
        let mut parsed = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(bad(&format!("host '{host}' has no port (host:2181)")));
            };
            if name.is_empty() {
                return Err(bad(&format!("host '{host}' has no name")));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(&format!("host '{host}' has a bad port '{port}'")));
            }
            parsed.push(host.to_owned());
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(bad("the path is empty (zk://host:2181/revenant)"));
        }
        if path
            .split('/')
            .skip(1)
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(bad(&format!(
                "path '{path}' has an empty, '.' or '..' part"
            )));
        }
        Ok(ZkUrl {
            hosts: parsed,
            path: path.to_owned(),
        })
    }

    /// The hosts as a ZooKeeper connect string (`h1:2181,h2:2181`).
    pub fn connect_string(&self) -> String {
        self.hosts.join(",")
    }

    /// The group the masters join (docs/zookeeper.md Z2).
    pub fn members_path(&self) -> String {
        format!("{}/members", self.path)
    }

    /// The registry node (docs/zookeeper.md Z7).
    pub fn registry_path(&self) -> String {
        format!("{}/registry", self.path)
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.connect_string(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_path() {
        let url = ZkUrl::parse("zk://h1:2181,h2:2182/revenant/prod/").unwrap();
        assert_eq!(url.hosts, vec!["h1:2181", "h2:2182"]);
        assert_eq!(url.path, "/revenant/prod");
        assert_eq!(url.members_path(), "/revenant/prod/members");
        assert_eq!(url.to_string(), "zk://h1:2181,h2:2182/revenant/prod");
    }

    #[test]
    fn bad_urls_are_named() {
        for (text, why) in [
            ("h1:2181/x", "must start with zk://"),
            ("zk://h1:2181", "a path is missing"),
            ("zk:///x", "no host"),
            ("zk://h1/x", "has no port"),
            ("zk://h1:port/x", "bad port"),
            ("zk://h1:0/x", "bad port"),
            ("zk://:2181/x", "has no name"),
            ("zk://h1:2181/", "the path is empty"),
            ("zk://h1:2181/a//b", "empty, '.' or '..' part"),
            ("zk://h1:2181/a/../b", "empty, '.' or '..' part"),
        ] {
            let error = ZkUrl::parse(text).unwrap_err();
            assert!(error.contains(text), "{error}");
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
