//! oslo.messaging's `transport_url` for the rabbit driver, with its
//! passwords kept out of what is shown.

use super::RpcError;

/// A parsed `transport_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportUrl {
    /// AMQP URIs, one per broker host, tried in order.
    pub uris: Vec<String>,
    /// The same without passwords, for logs.
    pub display: String,
}

/// Parse `rabbit://user:pass@host:port[,user:pass@host2:port]/vhost`.
pub fn parse_transport_url(url: &str) -> Result<TransportUrl, RpcError> {
    let bad = || RpcError::BadUrl(mask(url));
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if scheme != "rabbit" && scheme != "amqp" {
        return Err(bad());
    }
    let rest = rest.split('?').next().unwrap_or("");
    let (hosts, vhost) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let vhost = if vhost.is_empty() {
        "%2f".to_string()
    } else {
        vhost.to_string()
    };
    let mut uris = Vec::new();
    let mut shown = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (auth, hostport) = match host.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, host),
        };
        if hostport.is_empty() {
            return Err(bad());
        }
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_string()
        } else {
            format!("{hostport}:5672")
        };
        let auth = auth.unwrap_or("guest:guest");
        uris.push(format!("amqp://{auth}@{hostport}/{vhost}"));
        let user = auth.split(':').next().unwrap_or("");
        shown.push(format!("{user}@{hostport}"));
    }
    if uris.is_empty() {
        return Err(bad());
    }
    Ok(TransportUrl {
        uris,
        display: format!("rabbit://{}/{vhost}", shown.join(",")),
    })
}

pub(super) fn mask(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://****@{host}"),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_urls() {
        let u = parse_transport_url("rabbit://guest:guest@127.0.0.1:5672/").unwrap();
        assert_eq!(u.uris, ["amqp://guest:guest@127.0.0.1:5672/%2f"]);
        assert!(!u.display.contains("guest:guest"));
        let u = parse_transport_url("rabbit://a:pw@h1,b:pw2@h2:5673/magnum").unwrap();
        assert_eq!(
            u.uris,
            ["amqp://a:pw@h1:5672/magnum", "amqp://b:pw2@h2:5673/magnum"]
        );
        assert!(parse_transport_url("kafka://h/").is_err());
        assert!(parse_transport_url("rabbit:///").is_err());
        let e = parse_transport_url("nats://u:secret@h/")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"));
    }
}
